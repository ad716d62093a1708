package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/metrics"
)

func TestTopologyWarnings(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ws := topologyWarnings([]BucketTopology{
		{Bucket: "demo", Mode: "active"},
		{Bucket: "dr", Mode: "replica", TopologyCounts: metrics.TopologyCounts{Drift: 2, LastDrift: "x/y", LastDriftAt: at}},
		{Bucket: "photos", Mode: "active", Filter: "0123456789abcdef01234567", TopologyCounts: metrics.TopologyCounts{PeerFilters: map[string]string{"c": "", "b": "fedcba9876543210fedcba98"}}},
	})
	if len(ws) != 2 {
		t.Fatalf("warnings %q, want one for the drift and one for the filters", ws)
	}
	if !strings.Contains(ws[0], `bucket dr (mode replica): 2 local writes here are not replicated (drift), the last "x/y" at 2026-01-02T03:04:05Z`) {
		t.Errorf("drift warning %q", ws[0])
	}
	if !strings.Contains(ws[1], "bucket photos") || !strings.Contains(ws[1], "b (filter fedcba9876543210fedcba98), c (no filter)") {
		t.Errorf("filter warning %q", ws[1])
	}
}

func TestSiteModes(t *testing.T) {
	cfg := &config.Site{Buckets: []config.Bucket{{Name: "a", Topology: config.Topology{Mode: "archive", Include: []string{"p/"}}}, {Name: "r", Topology: config.Topology{Mode: "replica"}}, {Name: "x"}}}
	m := siteModes(cfg)
	if m["a"] != lifecycle.ModeArchive || m["r"] != lifecycle.ModeReplica || m["x"] != lifecycle.ModeActive {
		t.Errorf("modes %v", m)
	}
	if f := filters(cfg); !f["x"].Empty() || f["a"].Match("q") || !f["a"].Match("p/1") {
		t.Errorf("filters %+v", f)
	}
}
