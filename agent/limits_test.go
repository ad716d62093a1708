package agent

import (
	"testing"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
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
