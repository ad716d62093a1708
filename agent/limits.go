package agent

import (
	"fmt"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/metrics"
)

// StreamWarnFill is how full a stream may get (broker.StreamUsage.Fill)
// before status warns; the S3meshStreamFilling alert
// (deploy/prometheus/alerts.yml) fires at the same level.
const StreamWarnFill = 0.8

// streamLimits is cfg's nats.limits as the broker takes them.
func streamLimits(cfg *config.Site) broker.Limits {
	conv := func(l config.StreamLimit) broker.StreamLimit {
		return broker.StreamLimit{MaxBytes: l.MaxBytes, MaxMsgs: l.MaxMsgs}
	}
	l := cfg.NATS.Limits
	return broker.Limits{Changes: conv(l.Changes), Events: conv(l.Events), Conflicts: conv(l.Conflicts), DLQ: conv(l.DLQ)}
}

// atLimit says what a stream of kind does at its limit, and what to do.
var atLimit = map[string]string{
	broker.KindEvents: "at its limit new storage events are refused (the webhook answers 503 and the store retries; " +
		"a NATS sink's events are lost and the scanner finds their changes): the producer is behind or stopped",
	broker.KindChanges: "at its limit this site's own changes are not published (they wait, and replication out stops) " +
		"until old records age out: raise nats.limits.changes (at every site)",
	broker.KindMirror: "at its limit it drops the peer's oldest records (those not applied here yet are lost here): " +
		"the peer writes more than nats.limits.changes allows here; raise it (the same at every site)",
	broker.KindConflicts: "at its limit a record whose conflict cannot be logged is retried, then dead-lettered: " +
		"raise nats.limits.conflicts",
	broker.KindDLQ: "at its limit a record whose dead letter cannot be stored is retried without end (never acknowledged): " +
		"retry or remove dead letters (`s3mesh dlq`) or raise nats.limits.dlq",
}

// streamWarnings names every stream at least StreamWarnFill full, or that
// could not be read.
func streamWarnings(us []broker.StreamUsage) []string {
	var out []string
	for _, u := range us {
		switch {
		case u.Error != "":
			out = append(out, fmt.Sprintf("stream %s cannot be read: %s", u.Stream, u.Error))
		case u.Fill() >= StreamWarnFill:
			out = append(out, fmt.Sprintf("stream %s is %.0f%% full (%d of %d bytes, %d of %d messages); %s",
				u.Stream, 100*u.Fill(), u.Bytes, u.MaxBytes, u.Msgs, u.MaxMsgs, atLimit[u.Kind]))
		}
	}
	return out
}

// setStreamGauges publishes how full each stream is.
func setStreamGauges(m *metrics.Metrics, us []broker.StreamUsage) {
	for _, u := range us {
		if u.Error != "" {
			continue
		}
		m.StreamBytes.WithLabelValues(u.Stream, u.Kind).Set(float64(u.Bytes))
		m.StreamMaxBytes.WithLabelValues(u.Stream, u.Kind).Set(float64(max(u.MaxBytes, 0)))
		m.StreamMsgs.WithLabelValues(u.Stream, u.Kind).Set(float64(u.Msgs))
		m.StreamMaxMsgs.WithLabelValues(u.Stream, u.Kind).Set(float64(max(u.MaxMsgs, 0)))
		m.StreamFill.WithLabelValues(u.Stream, u.Kind).Set(u.Fill())
	}
}
