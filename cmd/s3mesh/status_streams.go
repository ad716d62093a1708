package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/s3mesh/s3mesh/broker"
)

// printStreams is the table of how full the site's streams are against
// their limits (nats.limits).
func printStreams(w io.Writer, us []broker.StreamUsage) {
	if len(us) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tKIND\tMESSAGES\tBYTES\tFULL\tAT ITS LIMIT")
	for _, u := range us {
		if u.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\terror: %s\n", u.Stream, u.Kind, u.Error)
			continue
		}
		at := "refuses new messages"
		if u.DiscardOld {
			at = "drops its oldest"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d of %d\t%s of %s\t%.0f%%\t%s\n", u.Stream, u.Kind, u.Msgs, u.MaxMsgs,
			fmtBytes(int64(u.Bytes)), fmtBytes(u.MaxBytes), 100*u.Fill(), at)
	}
	tw.Flush()
}
