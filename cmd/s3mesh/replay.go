package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
)

func newReplayCmd() *cobra.Command {
	var t target
	var peer, since, bucket string
	var fromSeq uint64
	var dryRun, asJSON bool
	var batch int
	c := &cobra.Command{
		Use:   "replay --site X --peer P (--from-seq N | --since TIME)",
		Short: "Apply again the records of a peer's change stream as mirrored at a site (idempotent)",
		Long: `replay re-applies records of site X's mirror of peer P's change stream (CHANGES_P in
X's JetStream domain) through X's running agent, as its consumer applies them: a version X
already holds, or one its clock has overtaken, is skipped; a record that cannot be applied
goes to X's dead-letter queue with its reason (once: a record with an entry there already
gets no second one), and the dead letters of records that apply now, or that are
superseded, are removed. Use it after a configuration error sent records to the DLQ, or
after X's store was restored from an old backup. --dry-run decides every record against
X's state without writing anything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := agent.AdminRequest{Peer: peer, Bucket: bucket, DryRun: dryRun, Max: batch}
			switch {
			case peer == "":
				return errors.New("--peer P is required: the site whose change stream is replayed")
			case cmd.Flags().Changed("from-seq") == (since != ""):
				return errors.New("give --from-seq N or --since TIME (one of them)")
			case since != "":
				from, err := parseSince(since)
				if err != nil {
					return err
				}
				if from.After(time.Now()) {
					return fmt.Errorf("--since %s is in the future", from.Format(time.RFC3339))
				}
				req.Since = from
			case fromSeq == 0:
				return errors.New("--from-seq 0: stream sequences start at 1")
			default:
				req.FromSeq = fromSeq
			}
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			var total *agent.ReplayResult
			for requests := 1; ; requests++ {
				out, err := s.admin("replay", req)
				if err != nil {
					if total != nil {
						printReplay(cmd.ErrOrStderr(), total)
					}
					return fmt.Errorf("replay: %w", err)
				}
				var r agent.ReplayResult
				if err := json.Unmarshal([]byte(out), &r); err != nil {
					return fmt.Errorf("replay: the agent's answer: %w", err)
				}
				if total == nil {
					total = &agent.ReplayResult{Site: r.Site, Peer: r.Peer, Stream: r.Stream, DryRun: r.DryRun, LastSeq: r.LastSeq}
				}
				total.Counts.Add(r.Counts)
				total.Read += r.Read
				total.NextSeq, total.Done = r.NextSeq, r.Done
				if total.FromSeq == 0 {
					total.FromSeq = r.FromSeq
				}
				for _, w := range r.Warnings {
					if !slices.Contains(total.Warnings, w) {
						total.Warnings = append(total.Warnings, w)
					}
				}
				if r.Done {
					break
				}
				if r.NextSeq <= req.FromSeq {
					return fmt.Errorf("replay: the agent made no progress at %s:%d", r.Stream, req.FromSeq)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "replay: %s at %s: %d records, up to seq %d of %d\n", r.Stream, r.Site, total.Read, r.NextSeq-1, r.LastSeq)
				// The range stays what the first request found, however
				// long the stream grows meanwhile (the consumer applies
				// what comes later).
				req = agent.AdminRequest{Peer: peer, Bucket: bucket, DryRun: dryRun, Max: batch, FromSeq: r.NextSeq, ToSeq: r.LastSeq}
			}
			if asJSON {
				b, _ := json.Marshal(total)
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return nil
			}
			printReplay(cmd.OutOrStdout(), total)
			return nil
		},
	}
	t.flags(c)
	f := c.Flags()
	f.StringVar(&peer, "peer", "", "the peer whose change stream (as mirrored at --site) is replayed")
	f.Uint64Var(&fromSeq, "from-seq", 0, "first sequence of the stream to replay (the SEQ of a dead letter in `dlq list` is one)")
	f.StringVar(&since, "since", "", "replay the records stored after this time (RFC 3339) or this long ago (e.g. 2h)")
	f.StringVar(&bucket, "bucket", "", "only this bucket's records")
	f.BoolVar(&dryRun, "dry-run", false, "decide every record against the site's state, write nothing")
	f.BoolVar(&asJSON, "json", false, "JSON output (one object)")
	f.IntVar(&batch, "batch", 0, "records per request to the agent (default and maximum 1000; the CLI asks again until done)")
	return c
}

// printReplay writes the counts of a replay as a table.
func printReplay(w io.Writer, r *agent.ReplayResult) {
	what := "replay"
	if r.DryRun {
		what = "dry run (nothing written)"
	}
	if r.Read == 0 {
		fmt.Fprintf(w, "site %s, %s of %s: no records\n", r.Site, what, r.Stream)
	} else {
		fmt.Fprintf(w, "site %s, %s of %s seq %d..%d: %d records\n", r.Site, what, r.Stream, r.FromSeq, min(r.NextSeq-1, r.LastSeq), r.Read)
	}
	c := r.Counts
	dead := fmt.Sprint(c.DeadLettered)
	if len(c.Reasons) > 0 {
		var rs []string
		for reason, n := range c.Reasons {
			rs = append(rs, fmt.Sprintf("%s %d", reason, n))
		}
		sort.Strings(rs)
		dead += " (" + strings.Join(rs, ", ") + ")"
	}
	rows := [][2]string{
		{"applied", fmt.Sprint(c.Applied)},
		{"skipped", fmt.Sprint(c.Skipped)},
		{"kept-local", fmt.Sprint(c.KeptLocal)},
		{"dead-lettered", dead},
		{"other-bucket", fmt.Sprint(c.OtherBucket)},
		{"conflicts", fmt.Sprintf("%d (among the above)", c.Conflicts)},
		{"dlq-settled", fmt.Sprintf("%d (dead letters of these records %s)", c.Settled, map[bool]string{false: "removed", true: "that would be removed"}[r.DryRun])},
	}
	if c.Early > 0 {
		rows = append(rows, [2]string{"early", fmt.Sprintf("%d (not replayed: the consumer applies them once this site's clock reaches them)", c.Early)})
	}
	for _, row := range rows {
		fmt.Fprintf(w, "  %-14s %s\n", row[0], row[1])
	}
	for _, warn := range r.Warnings {
		fmt.Fprintln(w, "warning:", warn)
	}
}
