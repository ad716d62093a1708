package config

// StreamLimits (nats.limits) bound the site's streams, each by bytes and
// by messages: nothing a peer or the store sends can fill the broker's
// disk. At its limit a stream refuses new messages and keeps every one it
// acknowledged, except a mirror of a peer's records, which drops its
// oldest (docs/design.md, "Broker": nats-server mirrors lose records at a refusing
// limit). The broker reserves the sum of the byte limits of its streams
// against its disk (75% of what is free when it starts) and refuses to
// create streams beyond that.
type StreamLimits struct {
	// Changes bounds CHANGES_<site> (the site's own records) and each
	// mirror of a peer's CHANGES. Keep it the same at every site: an honest
	// peer's own stream then refuses its records before this site's mirror
	// of it is full. Size it for a week of records (their max age): about
	// 1 KiB a record, plus the body of each inline one.
	Changes StreamLimit `yaml:"changes"`
	// Events bounds EVENTS_<site>, the storage events the producer has not
	// handled yet.
	Events StreamLimit `yaml:"events"`
	// Conflicts bounds CONFLICTS_<site>, the conflict log (kept without age
	// limit).
	Conflicts StreamLimit `yaml:"conflicts"`
	// DLQ bounds DLQ_<site>, the dead letters (kept until retried or
	// removed).
	DLQ StreamLimit `yaml:"dlq"`
}

// StreamLimit bounds one stream.
type StreamLimit struct {
	MaxBytes int64 `yaml:"max_bytes"` // bytes stored (record bytes plus ~30 per message)
	MaxMsgs  int64 `yaml:"max_msgs"`  // messages stored
}

// Default stream limits (nats.limits), sized for a small site: a few GiB of
// broker disk (1 GiB per site of the mesh plus 768 MiB).
var (
	DefaultChangesLimit   = StreamLimit{MaxBytes: 1 << 30, MaxMsgs: 1_000_000}
	DefaultEventsLimit    = StreamLimit{MaxBytes: 256 << 20, MaxMsgs: 1_000_000}
	DefaultConflictsLimit = StreamLimit{MaxBytes: 256 << 20, MaxMsgs: 1_000_000}
	DefaultDLQLimit       = StreamLimit{MaxBytes: 256 << 20, MaxMsgs: 100_000}
)

// Bounds of a stream limit: a stream must hold many of the largest
// messages (a record with a 512 KiB inline body, a 1 MiB webhook batch, a
// dead letter of up to the broker's 1 MiB payload limit).
const (
	MinStreamBytes = 16 << 20
	MaxStreamBytes = 1 << 50 // 1 PiB
	MinStreamMsgs  = 1000
	MaxStreamMsgs  = 1_000_000_000_000
)

func (l *StreamLimit) applyDefaults(d StreamLimit) {
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxMsgs == 0 {
		l.MaxMsgs = d.MaxMsgs
	}
}

func (l *StreamLimits) applyDefaults() {
	l.Changes.applyDefaults(DefaultChangesLimit)
	l.Events.applyDefaults(DefaultEventsLimit)
	l.Conflicts.applyDefaults(DefaultConflictsLimit)
	l.DLQ.applyDefaults(DefaultDLQLimit)
}

func (l StreamLimit) validate(f string) error {
	if l.MaxBytes < MinStreamBytes || l.MaxBytes > MaxStreamBytes {
		return fieldErr(f+".max_bytes", "%d: want %d (16 MiB) .. %d (1 PiB)", l.MaxBytes, MinStreamBytes, int64(MaxStreamBytes))
	}
	if l.MaxMsgs < MinStreamMsgs || l.MaxMsgs > MaxStreamMsgs {
		return fieldErr(f+".max_msgs", "%d: want %d .. %d", l.MaxMsgs, MinStreamMsgs, int64(MaxStreamMsgs))
	}
	return nil
}

func (l StreamLimits) validate() error {
	for _, s := range []struct {
		name string
		l    StreamLimit
	}{{"changes", l.Changes}, {"events", l.Events}, {"conflicts", l.Conflicts}, {"dlq", l.DLQ}} {
		if err := s.l.validate("nats.limits." + s.name); err != nil {
			return err
		}
	}
	return nil
}
