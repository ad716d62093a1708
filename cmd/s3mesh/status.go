package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
)

func newStatusCmd() *cobra.Command {
	var t target
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show a site's replication state: peers (silence, lag, pending), held buckets, dead letters, warnings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			out, err := s.admin("status", agent.AdminRequest{})
			if err != nil {
				return err
			}
			if asJSON {
				fmt.Fprintln(cmd.OutOrStdout(), out)
				return nil
			}
			var st agent.Status
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "site %s  (tombstone retention %s, %d dead letters)\n\n", st.Site, st.Retention, st.DeadLetters)
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PEER\tLAST SEQ\tLAG\tSILENT FOR\tPENDING APPLY\tSTATE")
			for _, p := range st.Peers {
				state := "ok"
				if p.Stalled {
					state = "STALLED"
				}
				if p.NeedsRebuild {
					state = "NEEDS REBUILD"
				}
				silent := fmt.Sprintf("%.1fs", p.SilentFor)
				if p.SilentFor < 0 {
					silent = "never heard"
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\n", p.Peer, p.LastSeq, p.Lag, silent, p.PendingApply, state)
			}
			tw.Flush()
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BUCKET\tLAST SCAN\tLISTED\tPUBLISHED\tDELETES\tDELETES HELD")
			for _, b := range st.Buckets {
				held := "no"
				if b.Held != nil {
					held = fmt.Sprintf("YES: %d of %d keys missing", b.Held.Missing, b.Held.Known)
				}
				last := "never"
				if !b.LastScan.IsZero() {
					last = b.LastScan.Format("15:04:05")
				}
				if b.Scanning {
					last = fmt.Sprintf("running (%d listed)", b.Listed)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", b.Bucket, last, b.Last.Listed, b.Last.Published, b.Last.Deleted, held)
			}
			tw.Flush()
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EVENT SOURCE\tTYPE\tA LOCAL CHANGE BECOMES A RECORD")
			for _, src := range st.Sources {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", src.Name, src.Type, src.Lag)
			}
			tw.Flush()
			if c := st.Store; c != nil {
				fmt.Fprintf(w, "\nstore: conditional PUT %v, conditional DELETE %v, metadata values up to %d B, keys up to %d B, unicode keys %v, multipart %v (etag %s)\n",
					c.ConditionalPut, c.ConditionalDelete, c.MetadataBytes, c.KeyBytes, c.Unicode, c.Multipart, c.MultipartETag)
				for _, n := range c.Notes {
					fmt.Fprintln(w, "  note:", n)
				}
			}
			for _, warn := range st.Warnings {
				fmt.Fprintln(w, "WARNING:", warn)
			}
			return nil
		},
	}
	t.flags(c)
	c.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return c
}

func newScanCmd() *cobra.Command {
	var t target
	c := &cobra.Command{Use: "scan", Short: "Control a site's bucket scanner"}
	t.flags(c)
	c.AddCommand(
		bucketAdminCmd(&t, "confirm-deletes", "scan.confirm", "the held bucket",
			"Let the next scan publish the deletes it held (only if the keys really were deleted)"),
		bucketAdminCmd(&t, "now", "scan.now", "the bucket to scan",
			"Scan a bucket at once and print what the scan found (JSON: listed, published, seconds, ...)"))
	return c
}

// bucketAdminCmd is a `--bucket B` command that sends one admin request to
// the target site's agent and prints its answer.
func bucketAdminCmd(t *target, use, verb, flagHelp, short string) *cobra.Command {
	var bucket string
	cmd := &cobra.Command{
		Use:   use + " --bucket B",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bucket == "" {
				return errors.New("--bucket is required")
			}
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			out, err := s.admin(verb, agent.AdminRequest{Bucket: bucket})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&bucket, "bucket", "", flagHelp)
	return cmd
}
