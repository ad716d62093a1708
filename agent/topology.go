package agent

import (
	"fmt"
	"sort"
	"strings"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/schema"
)

// siteMode is the lifecycle's mode of bucket b at this site.
func siteMode(b config.Bucket) lifecycle.Mode {
	switch b.Mode {
	case config.ModeReplica:
		return lifecycle.ModeReplica
	case config.ModeArchive:
		return lifecycle.ModeArchive
	}
	return lifecycle.ModeActive
}

// siteModes are the modes of cfg's buckets.
func siteModes(cfg *config.Site) map[string]lifecycle.Mode {
	out := map[string]lifecycle.Mode{}
	for _, b := range cfg.Buckets {
		out[b.Name] = siteMode(b)
	}
	return out
}

// filters are the prefix filters of cfg's buckets.
func filters(cfg *config.Site) map[string]schema.Filter {
	out := map[string]schema.Filter{}
	for _, b := range cfg.Buckets {
		out[b.Name] = schema.Filter{Include: b.Include, Exclude: b.Exclude}
	}
	return out
}

// BucketTopology is one bucket's mode and filters at this site and what
// they did since the agent started.
type BucketTopology struct {
	Bucket  string   `json:"bucket"`
	Mode    string   `json:"mode"` // active, replica or archive
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
	// Filter is the digest of the filters ("" for none), which every
	// record of the bucket carries; it must be the same at every site.
	Filter string `json:"filter,omitempty"`
	metrics.TopologyCounts
}

func (a *Agent) topologyStatus() []BucketTopology {
	var out []BucketTopology
	for _, b := range a.cfg.Buckets {
		f := schema.Filter{Include: b.Include, Exclude: b.Exclude}
		out = append(out, BucketTopology{Bucket: b.Name, Mode: b.Mode, Include: b.Include, Exclude: b.Exclude,
			Filter: f.Digest(), TopologyCounts: a.M.Topo.Counts(b.Name)})
	}
	return out
}

// topologyWarnings are the status warnings of the buckets' modes and
// filters: drift at a replica or archive, and peers whose filters differ.
func topologyWarnings(ts []BucketTopology) []string {
	var out []string
	for _, t := range ts {
		if t.Drift > 0 {
			out = append(out, fmt.Sprintf("bucket %s (mode %s): %d local writes here are not replicated (drift), the last %q at %s; "+
				"a peer's next write of such a key replaces it", t.Bucket, t.Mode, t.Drift, t.LastDrift, t.LastDriftAt.Format("2006-01-02T15:04:05Z")))
		}
		if len(t.PeerFilters) > 0 {
			var peers []string
			for p, d := range t.PeerFilters {
				peers = append(peers, p+" ("+digestName(d)+")")
			}
			sort.Strings(peers)
			out = append(out, fmt.Sprintf("bucket %s: the prefix filters differ from this site's (%s) at %s: the sites replicate different keys; "+
				"make buckets[].include and exclude the same everywhere", t.Bucket, digestName(t.Filter), strings.Join(peers, ", ")))
		}
	}
	return out
}

func digestName(d string) string {
	if d == "" {
		return "no filter"
	}
	return "filter " + d
}
