package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/metrics"
)

func TestTopologyAll(t *testing.T) {
	st := func(site string, ts ...agent.BucketTopology) siteStatus {
		return siteStatus{site: site, st: agent.Status{Site: site, Topology: ts}}
	}
	res := []siteStatus{
		st("a", agent.BucketTopology{Bucket: "demo", Mode: "active"}, agent.BucketTopology{Bucket: "photos", Mode: "active", Filter: "111111111111111111111111"}),
		st("b", agent.BucketTopology{Bucket: "demo", Mode: "replica"}, agent.BucketTopology{Bucket: "photos", Mode: "active", Filter: "111111111111111111111111"}),
		st("c", agent.BucketTopology{Bucket: "demo", Mode: "archive"}, agent.BucketTopology{Bucket: "photos", Mode: "active"}),
		{site: "d", err: errors.New("unreachable")},
	}
	got := strings.Join(topologyAll(res), "\n")
	for _, want := range []string{"bucket demo: b replica, c archive (the others active)", "WARNING: bucket photos: prefix filters differ between sites (a 111111111111111111111111, b 111111111111111111111111, c none)"} {
		if !strings.Contains(got, want) {
			t.Errorf("status --all says:\n%s\nwant %q", got, want)
		}
	}
	if strings.Contains(got, "WARNING: bucket demo") {
		t.Errorf("demo has the same filters everywhere:\n%s", got)
	}
	if lines := topologyAll(res[:2]); len(lines) != 1 {
		t.Errorf("a and b only: %q, want the one mode line", lines)
	}
}

func TestPrintTopology(t *testing.T) {
	var b bytes.Buffer
	printTopology(&b, []agent.BucketTopology{{Bucket: "demo", Mode: "active"}})
	if b.Len() != 0 {
		t.Errorf("a plain active bucket printed %q", b.String())
	}
	printTopology(&b, []agent.BucketTopology{{Bucket: "demo", Mode: "replica", TopologyCounts: metrics.TopologyCounts{Drift: 3, PeerFilters: map[string]string{"a": ""}}},
		{Bucket: "photos", Mode: "active", Include: []string{"img/"}, Filter: "0123456789abcdef01234567"}})
	out := b.String()
	for _, want := range []string{"replica", "include img/ (01234567)", "MODE", " 3 "} {
		if !strings.Contains(out, want) {
			t.Errorf("table:\n%s\nwant %q", out, want)
		}
	}
}
