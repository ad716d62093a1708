package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/schema"
)

// dlqEntry is a dead letter as the CLI shows it: its id (the DLQ_<site>
// sequence) and, when the record decodes, a summary of it.
type dlqEntry struct {
	ID uint64 `json:"id"`
	consumer.DeadLetter
	Version *schema.VersionInfo `json:"version,omitempty"`
}

func newDLQCmd() *cobra.Command {
	var t target
	var asJSON bool
	c := &cobra.Command{Use: "dlq", Short: "Inspect and settle a site's dead-letter queue"}
	t.flags(c)
	c.PersistentFlags().BoolVar(&asJSON, "json", false, "JSON output")
	entries := func(cmd *cobra.Command, s *site) ([]dlqEntry, error) {
		var out []dlqEntry
		err := s.readAll(cmd.Context(), broker.DLQStream(s.name), time.Time{}, func(seq uint64, data []byte) error {
			e := dlqEntry{ID: seq}
			if err := json.Unmarshal(data, &e.DeadLetter); err != nil {
				return fmt.Errorf("dead letter %d: %w", seq, err)
			}
			// For display only (not verified; retry and resolve verify).
			if rec, err := schema.Decode(e.Record); err == nil {
				vi := schema.InfoOf(rec.Version)
				e.Version = &vi
			}
			out = append(out, e)
			return nil
		})
		return out, err
	}
	list := &cobra.Command{
		Use: "list", Short: "List dead letters", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			es, err := entries(cmd, s)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSONLines(out, es)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tREASON\tFROM\tBUCKET\tKEY\tVERSION\tATTEMPTS\tLAST FAILURE\tERROR")
			for _, e := range es {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%q\t%s\t%d\t%s\t%s\n", e.ID, e.Reason, e.Stream+":"+strconv.FormatUint(e.Seq, 10),
					e.Bucket, e.Key, e.VersionID, e.Attempts, e.LastFailure.Format(time.RFC3339), e.Error)
			}
			return tw.Flush()
		},
	}
	show := &cobra.Command{
		Use: "show ID", Short: "Show one dead letter in full (JSON)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			es, err := entries(cmd, s)
			if err != nil {
				return err
			}
			for _, e := range es {
				if e.ID == id {
					b, _ := json.MarshalIndent(e, "", "  ")
					fmt.Fprintln(cmd.OutOrStdout(), string(b))
					return nil
				}
			}
			return fmt.Errorf("no dead letter %d at site %s", id, s.name)
		},
	}
	var all, yes, trust bool
	var pick string
	admin := func(cmd *cobra.Command, s *site, verb string, req agent.AdminRequest) error {
		out, err := s.admin(verb, req)
		if err != nil {
			return fmt.Errorf("%d: %w", req.Seq, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%d: %s\n", req.Seq, out)
		return nil
	}
	retry := &cobra.Command{
		Use: "retry ID|--all", Short: "Apply dead letters again (an entry stays if it fails again)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) || len(args) > 1 {
				return errors.New("give one ID or --all")
			}
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			var ids []uint64
			if all {
				es, err := entries(cmd, s)
				if err != nil {
					return err
				}
				for _, e := range es {
					ids = append(ids, e.ID)
				}
			} else {
				id, err := parseID(args[0])
				if err != nil {
					return err
				}
				ids = []uint64{id}
			}
			var failed int
			for _, id := range ids {
				if err := admin(cmd, s, "dlq.retry", agent.AdminRequest{Seq: id, TrustEntry: trust}); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d dead letters failed again (they stay in the queue)", failed, len(ids))
			}
			return nil
		},
	}
	retry.Flags().BoolVar(&all, "all", false, "every entry (a parked conflict that is still a conflict stays parked)")
	const trustHelp = "when the mirror no longer holds an entry's record (retention), apply the entry's own bytes if they decode and validate (they are otherwise unverified: anyone who may publish into the DLQ could have written them)"
	retry.Flags().BoolVar(&trust, "trust-entry", false, trustHelp)
	drop := &cobra.Command{
		Use: "drop ID", Short: "Remove a dead letter for good (needs --yes)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			if !yes {
				return fmt.Errorf("dropping %d discards that record at this site for good: add --yes", id)
			}
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			st, err := s.js.Stream(cmd.Context(), broker.DLQStream(s.name))
			if err != nil {
				return err
			}
			if err := st.DeleteMsg(cmd.Context(), id); err != nil {
				return fmt.Errorf("drop %d: %w", id, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d: dropped\n", id)
			return nil
		},
	}
	drop.Flags().BoolVar(&yes, "yes", false, "confirm")
	resolve := &cobra.Command{
		Use: "resolve ID --pick SITE", Short: "Settle a parked (manual) conflict: SITE's version wins everywhere", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			if pick == "" {
				return errors.New("--pick SITE is required")
			}
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			return admin(cmd, s, "dlq.resolve", agent.AdminRequest{Seq: id, Pick: pick, TrustEntry: trust})
		},
	}
	resolve.Flags().StringVar(&pick, "pick", "", "the site whose version wins")
	resolve.Flags().BoolVar(&trust, "trust-entry", false, trustHelp)
	c.AddCommand(list, show, retry, drop, resolve)
	return c
}

// parseID parses a dead-letter id (its DLQ_<site> sequence).
func parseID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("id %q: want the number `s3mesh dlq list` shows", s)
	}
	return id, nil
}

// printJSONLines writes each of vs as one line of JSON (the --json output
// of the list commands).
func printJSONLines[T any](w io.Writer, vs []T) error {
	for _, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(w, string(b)); err != nil {
			return err
		}
	}
	return nil
}
