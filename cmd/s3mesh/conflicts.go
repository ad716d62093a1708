package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/schema"
)

func newConflictsCmd() *cobra.Command {
	var t target
	c := &cobra.Command{Use: "conflicts", Short: "Read a site's conflict log"}
	t.flags(c)
	var bucket, since string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the conflicts a site decided (oldest first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var from time.Time
			if since != "" {
				var err error
				if from, err = parseSince(since); err != nil {
					return err
				}
			}
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			if !asJSON {
				fmt.Fprintln(tw, "DECIDED\tBUCKET\tKEY\tPOLICY\tOUTCOME\tWINNER\tLOSER\tLOSER KEPT AS")
			}
			err = s.readAll(cmd.Context(), broker.ConflictsStream(s.name), from, func(_ uint64, data []byte) error {
				var e schema.ConflictEntry
				if err := json.Unmarshal(data, &e); err != nil {
					return fmt.Errorf("conflict log entry: %w", err)
				}
				if bucket != "" && e.Bucket != bucket {
					return nil
				}
				if asJSON {
					b, _ := json.Marshal(e)
					_, err := fmt.Fprintln(out, string(b))
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\t%q\t%s\t%s\t%s\t%s\t%s\n", e.DecidedAt.Format(time.RFC3339), e.Bucket, e.Key, e.Policy, e.Outcome,
					describe(e.Winner), describe(e.Loser), e.LoserKeptAs)
				return nil
			})
			if err != nil {
				return err
			}
			if !asJSON {
				return tw.Flush()
			}
			return nil
		},
	}
	list.Flags().StringVar(&bucket, "bucket", "", "only this bucket")
	list.Flags().StringVar(&since, "since", "", "only conflicts decided after this time (RFC 3339) or this long ago (e.g. 1h)")
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	c.AddCommand(list)
	return c
}

func describe(v schema.VersionInfo) string {
	if v.Deleted {
		return fmt.Sprintf("%s:delete@%s", v.Origin, v.OriginTime.Format("15:04:05.000"))
	}
	return fmt.Sprintf("%s:%s(%dB)@%s", v.Origin, short(v.ETag), v.Size, v.OriginTime.Format("15:04:05.000"))
}

func short(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want RFC 3339 time or a duration like 1h", s)
	}
	return t, nil
}
