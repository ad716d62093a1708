package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/consumer"
)

func newDeletesCmd() *cobra.Command {
	var t target
	var asJSON bool
	var peer, bucket string
	c := &cobra.Command{Use: "deletes", Short: "Inspect, release or discard the peers' deletes a site holds"}
	t.flags(c)
	c.PersistentFlags().BoolVar(&asJSON, "json", false, "JSON output")
	list := &cobra.Command{
		Use: "list", Short: "List the held deletes by peer and bucket", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			out, err := s.admin("deletes.list", agent.AdminRequest{Peer: peer, Bucket: bucket})
			if err != nil {
				return err
			}
			var bs []agent.HeldBatch
			if err := json.Unmarshal([]byte(out), &bs); err != nil {
				return fmt.Errorf("site %s's answer: %w", s.name, err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSONLines(w, bs)
			}
			if len(bs) == 0 {
				fmt.Fprintf(w, "site %s holds no deletes\n", s.name)
				return nil
			}
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PEER\tBUCKET\tCOUNT\tSINCE\tFIRST KEYS")
			for _, b := range bs {
				keys := make([]string, len(b.FirstKeys))
				for i, k := range b.FirstKeys {
					keys[i] = fmt.Sprintf("%q", k)
				}
				more := ""
				if b.Count > len(b.FirstKeys) {
					more = fmt.Sprintf(" (+%d)", b.Count-len(b.FirstKeys))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s%s\n", b.Peer, b.Bucket, b.Count, b.Since.Format(time.RFC3339), strings.Join(keys, " "), more)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&peer, "peer", "", "only this peer's")
	list.Flags().StringVar(&bucket, "bucket", "", "only this bucket's")
	settle := func(verb, use, short, did string) *cobra.Command {
		var peer, bucket string
		cmd := &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if peer == "" {
					return errors.New("--peer P is required")
				}
				s, err := t.connect()
				if err != nil {
					return err
				}
				defer s.close()
				out, err := s.adminWithin(verb, agent.AdminRequest{Peer: peer, Bucket: bucket}, 30*time.Minute)
				if err != nil {
					return err
				}
				var res consumer.Settled
				if err := json.Unmarshal([]byte(out), &res); err != nil {
					return fmt.Errorf("site %s's answer: %w", s.name, err)
				}
				w := cmd.OutOrStdout()
				if asJSON {
					fmt.Fprintln(w, out)
				} else {
					fmt.Fprintf(w, "%d held deletes of %s: %d %s, %d with nothing to do (superseded), %d failed (still held)\n",
						res.Done+len(res.Failed), peer, res.Applied, did, res.Skipped, len(res.Failed))
					for _, f := range res.Failed {
						fmt.Fprintln(cmd.ErrOrStderr(), "  failed:", f)
					}
				}
				if len(res.Failed) > 0 {
					return fmt.Errorf("%d held deletes failed and stay held", len(res.Failed))
				}
				return nil
			},
		}
		cmd.Flags().StringVar(&peer, "peer", "", "the peer whose held deletes (required)")
		cmd.Flags().StringVar(&bucket, "bucket", "", "only this bucket's (default: every bucket)")
		return cmd
	}
	release := settle("deletes.release", "release --peer P [--bucket B]",
		"Apply the held deletes, in the order they were held (one a later write superseded is skipped)", "applied")
	discard := settle("deletes.discard", "discard --peer P [--bucket B]",
		"Refuse the held deletes for good: this site writes each object again as its own new version, so every site holds it again", "written again")
	c.AddCommand(list, release, discard)
	return c
}
