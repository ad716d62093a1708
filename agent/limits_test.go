package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/brokertest"
	"github.com/s3mesh/s3mesh/metrics"
)

// nats.limits reach the broker field by field, and the configuration's
// defaults are the broker's.
func TestStreamLimitsFromConfig(t *testing.T) {
	cfg := &config.Site{}
	cfg.NATS.Limits = config.StreamLimits{Changes: config.DefaultChangesLimit, Events: config.DefaultEventsLimit,
		Conflicts: config.DefaultConflictsLimit, DLQ: config.DefaultDLQLimit}
	if got := streamLimits(cfg); got != broker.DefaultLimits {
		t.Fatalf("config defaults %+v, broker defaults %+v", got, broker.DefaultLimits)
	}
	cfg.NATS.Limits = config.StreamLimits{Changes: config.StreamLimit{MaxBytes: 1, MaxMsgs: 2}, Events: config.StreamLimit{MaxBytes: 3, MaxMsgs: 4},
		Conflicts: config.StreamLimit{MaxBytes: 5, MaxMsgs: 6}, DLQ: config.StreamLimit{MaxBytes: 7, MaxMsgs: 8}}
	want := broker.Limits{Changes: broker.StreamLimit{MaxBytes: 1, MaxMsgs: 2}, Events: broker.StreamLimit{MaxBytes: 3, MaxMsgs: 4},
		Conflicts: broker.StreamLimit{MaxBytes: 5, MaxMsgs: 6}, DLQ: broker.StreamLimit{MaxBytes: 7, MaxMsgs: 8}}
	if got := Topology(cfg).Limits; got != want {
		t.Fatalf("Topology limits %+v, want %+v", got, want)
	}
}

// A stream at 80% of a limit is named in the status warnings and shows in
// the gauges (s3mesh_stream_fill_ratio, which the S3meshStreamFilling
// alert watches); the others are exported too, without a warning.
func TestStreamUsageWarningsAndGauges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := brokertest.Start(t, "a")
	topo := broker.Topology{Site: "a", Peers: []string{"b"}, Limits: broker.Limits{DLQ: broker.StreamLimit{MaxMsgs: 5}}}
	if err := broker.EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	usage := func() []broker.StreamUsage {
		us, err := broker.Usage(ctx, js, topo)
		if err != nil {
			t.Fatal(err)
		}
		return us
	}
	if w := streamWarnings(usage()); len(w) != 0 {
		t.Fatalf("warnings for empty streams: %q", w)
	}
	for i := range 4 {
		if _, err := js.Publish(ctx, broker.DLQSubject("a", "apply"), fmt.Appendf(nil, "dead letter %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	us := usage()
	w := streamWarnings(us)
	if len(w) != 1 || !strings.Contains(w[0], "DLQ_a is 80% full") || !strings.Contains(w[0], "4 of 5 messages") || !strings.Contains(w[0], "s3mesh dlq") {
		t.Fatalf("warnings at 4 of 5 dead letters: %q", w)
	}
	a := &Agent{cfg: &config.Site{Site: "a"}, M: metrics.New()}
	a.setGauges(Status{Streams: us})
	got := gaugeValues(t, a.M) // label values in name order: kind, stream
	want := map[string]float64{
		"s3mesh_stream_fill_ratio|dlq|DLQ_a":         0.8,
		"s3mesh_stream_messages|dlq|DLQ_a":           4,
		"s3mesh_stream_max_messages|dlq|DLQ_a":       5,
		"s3mesh_stream_max_bytes|dlq|DLQ_a":          float64(broker.DefaultLimits.DLQ.MaxBytes),
		"s3mesh_stream_fill_ratio|changes|CHANGES_a": 0,
		"s3mesh_stream_max_bytes|mirror|CHANGES_b":   float64(broker.DefaultLimits.Changes.MaxBytes),
		"s3mesh_stream_max_messages|events|EVENTS_a": float64(broker.DefaultLimits.Events.MaxMsgs),
		"s3mesh_stream_bytes|conflicts|CONFLICTS_a":  0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (set %v), want %v", k, g, ok, v)
		}
	}
	if b := got["s3mesh_stream_bytes|dlq|DLQ_a"]; b <= 0 {
		t.Errorf("DLQ_a bytes %v", b)
	}
}
