package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/config"
)

// printTopology shows each bucket's mode and prefix filters, and what they
// did, when any bucket is not plainly active and unfiltered.
func printTopology(w io.Writer, ts []agent.BucketTopology) {
	show := false
	for _, t := range ts {
		show = show || t.Mode != "active" || t.Filter != "" || t.Drift > 0 || t.Filtered > 0 || len(t.PeerFilters) > 0
	}
	if !show {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET\tMODE\tFILTER\tDRIFT\tDELETES KEPT\tFILTERED\tPEERS WITH OTHER FILTERS")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", t.Bucket, t.Mode, filterText(t), t.Drift, t.DeletesKept, t.Filtered, peerFiltersText(t))
	}
	tw.Flush()
}

func filterText(t agent.BucketTopology) string {
	if t.Filter == "" {
		return "-"
	}
	var parts []string
	if len(t.Include) > 0 {
		parts = append(parts, "include "+strings.Join(t.Include, ","))
	}
	if len(t.Exclude) > 0 {
		parts = append(parts, "exclude "+strings.Join(t.Exclude, ","))
	}
	return strings.Join(parts, "; ") + " (" + t.Filter[:8] + ")"
}

func peerFiltersText(t agent.BucketTopology) string {
	if len(t.PeerFilters) == 0 {
		return "-"
	}
	var out []string
	for p := range t.PeerFilters {
		out = append(out, p)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// topologyAll is status --all's summary of the buckets' modes and
// filters: one line per bucket not active everywhere, and a warning per
// bucket whose filters differ between the sites that answered.
func topologyAll(res []siteStatus) []string {
	modes := map[string][]string{}   // bucket → "site mode" of sites not active
	digests := map[string][]string{} // bucket → "site filter"
	seen := map[string]map[string]bool{}
	var buckets []string
	for _, r := range res {
		if r.err != nil {
			continue
		}
		for _, t := range r.st.Topology {
			if seen[t.Bucket] == nil {
				seen[t.Bucket] = map[string]bool{}
				buckets = append(buckets, t.Bucket)
			}
			if t.Mode != "active" {
				modes[t.Bucket] = append(modes[t.Bucket], r.site+" "+t.Mode)
			}
			f := t.Filter
			if f == "" {
				f = "none"
			}
			seen[t.Bucket][f] = true
			digests[t.Bucket] = append(digests[t.Bucket], r.site+" "+f)
		}
	}
	sort.Strings(buckets)
	var out []string
	for _, b := range buckets {
		if len(modes[b]) > 0 {
			out = append(out, fmt.Sprintf("bucket %s: %s (the others active)", b, strings.Join(modes[b], ", ")))
		}
		if len(seen[b]) > 1 {
			out = append(out, fmt.Sprintf("WARNING: bucket %s: prefix filters differ between sites (%s): they replicate different keys", b, strings.Join(digests[b], ", ")))
		}
	}
	return out
}

// archiveBuckets are the buckets cfg's site archives (rebuild keeps what
// their peers deleted).
func archiveBuckets(cfg *config.Site) map[string]bool {
	out := map[string]bool{}
	for _, b := range cfg.Buckets {
		if b.Mode == config.ModeArchive {
			out[b.Name] = true
		}
	}
	return out
}
