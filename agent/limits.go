package agent

import (
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
)

// streamLimits is cfg's nats.limits as the broker takes them.
func streamLimits(cfg *config.Site) broker.Limits {
	conv := func(l config.StreamLimit) broker.StreamLimit {
		return broker.StreamLimit{MaxBytes: l.MaxBytes, MaxMsgs: l.MaxMsgs}
	}
	l := cfg.NATS.Limits
	return broker.Limits{Changes: conv(l.Changes), Events: conv(l.Events), Conflicts: conv(l.Conflicts), DLQ: conv(l.DLQ)}
}
