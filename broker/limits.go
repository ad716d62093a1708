package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamLimit bounds one stream: at most MaxBytes bytes and MaxMsgs
// messages. A zero field takes the default of the stream's kind
// (DefaultLimits).
type StreamLimit struct {
	MaxBytes int64
	MaxMsgs  int64
}

// Limits are the bounds of a site's streams: every stream a peer (or the
// site's own store) can make grow has both a byte and a message limit, so
// no stream can fill the broker's disk and stop the site's own
// replication.
//
// What happens at a limit depends on the stream (measured with nats-server
// 2.15.3; see TestStreamLimits*):
//
//   - EVENTS, CHANGES (the site's own), CONFLICTS and DLQ refuse new
//     messages (DiscardNew): the publish fails and nothing stored is
//     dropped. Every publisher handles that refusal without losing what it
//     was about to store: the webhook answers 503 (the store retries), the
//     producer and the scanner retry the change record, the applier does
//     not acknowledge a record whose dead letter or conflict entry was
//     refused (it comes back later). A store's NATS event sink gets the
//     refusal too (its events are then lost, and the scanner finds the
//     changes).
//   - A mirror of a peer's CHANGES drops its oldest records (DiscardOld).
//     DiscardNew is not safe on a mirror: nats-server's mirror advances its
//     position before it stores a record and counts a refused record as a
//     failed sequence (clfs); measured on a durable-sourced mirror at its
//     limit, a record arriving alone was refused, then acknowledged to the
//     origin's consumer by the next flow-control reply (lost for good), and
//     once space was freed the next records were stored under the wrong
//     sequence numbers (origin 8 as mirror 6), reported as healthy (lag 0);
//     a burst instead wedged the mirror until the broker restarted, even
//     after the limit was raised. With DiscardOld the mirror never refuses:
//     sequences stay the origin's and only the oldest records go. A mirror
//     has the limits of the site's own CHANGES (Changes), so with the same
//     setting at every site an honest peer's own stream refuses its records
//     before any mirror of it is full: only a peer that exceeds this site's
//     limit (compromised, or configured larger) loses records, its own
//     oldest ones, at this site.
type Limits struct {
	// Changes bounds CHANGES_<site> and each mirror of a peer's CHANGES.
	// Keep it the same at every site.
	Changes StreamLimit
	// Events bounds EVENTS_<site>, the storage events not yet handled by
	// the producer (a work queue: it only holds a backlog).
	Events StreamLimit
	// Conflicts bounds CONFLICTS_<site>, the conflict log (no age limit).
	Conflicts StreamLimit
	// DLQ bounds DLQ_<site>, the dead letters (no age limit: they stay
	// until an operator retries or removes them).
	DLQ StreamLimit
}

// DefaultLimits are sized for a small site (a few GiB of disk for the
// broker): change records are about 1 KiB each without an inline body (an
// inline body, up to inline_threshold, adds its size), so CHANGES holds a
// week of about 1.6 records a second; storage events are 1-2 KiB; a dead
// letter holds its record. nats-server reserves each stream's MaxBytes
// against its max store (75% of the free disk when the broker starts), and
// refuses to create streams beyond it.
var DefaultLimits = Limits{
	Changes:   StreamLimit{MaxBytes: 1 << 30, MaxMsgs: 1_000_000},
	Events:    StreamLimit{MaxBytes: 256 << 20, MaxMsgs: 1_000_000},
	Conflicts: StreamLimit{MaxBytes: 256 << 20, MaxMsgs: 1_000_000},
	DLQ:       StreamLimit{MaxBytes: 256 << 20, MaxMsgs: 100_000},
}

func (l StreamLimit) orDefault(d StreamLimit) StreamLimit {
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxMsgs == 0 {
		l.MaxMsgs = d.MaxMsgs
	}
	return l
}

func (l StreamLimit) validate(what string) error {
	if l.MaxBytes < 0 || l.MaxMsgs < 0 {
		return fmt.Errorf("broker: %s limits must not be negative (max_bytes %d, max_msgs %d)", what, l.MaxBytes, l.MaxMsgs)
	}
	return nil
}

// withDefaults fills every zero field from DefaultLimits.
func (l Limits) withDefaults() Limits {
	return Limits{
		Changes:   l.Changes.orDefault(DefaultLimits.Changes),
		Events:    l.Events.orDefault(DefaultLimits.Events),
		Conflicts: l.Conflicts.orDefault(DefaultLimits.Conflicts),
		DLQ:       l.DLQ.orDefault(DefaultLimits.DLQ),
	}
}

func (l Limits) validate() error {
	return errors.Join(l.Changes.validate("changes"), l.Events.validate("events"),
		l.Conflicts.validate("conflicts"), l.DLQ.validate("dlq"))
}

// Stream kinds, as StreamUsage.Kind and the "kind" label of the stream
// gauges.
const (
	KindEvents    = "events"
	KindChanges   = "changes"
	KindMirror    = "mirror"
	KindConflicts = "conflicts"
	KindDLQ       = "dlq"
)

// StreamUsage is how full one of a site's streams is.
type StreamUsage struct {
	Stream   string `json:"stream"`
	Kind     string `json:"kind"` // KindEvents, KindChanges, ...
	Bytes    uint64 `json:"bytes"`
	MaxBytes int64  `json:"max_bytes"` // <= 0: none
	Msgs     uint64 `json:"msgs"`
	MaxMsgs  int64  `json:"max_msgs"` // <= 0: none
	// DiscardOld: at its limit the stream drops its oldest messages (the
	// mirrors); otherwise it refuses new ones.
	DiscardOld bool   `json:"discard_old,omitempty"`
	Error      string `json:"error,omitempty"` // why the stream could not be read
}

// Fill is the larger of Bytes/MaxBytes and Msgs/MaxMsgs (0 without
// limits): 1 means the stream is at a limit.
func (u StreamUsage) Fill() float64 {
	f := 0.0
	if u.MaxBytes > 0 {
		f = max(f, float64(u.Bytes)/float64(u.MaxBytes))
	}
	if u.MaxMsgs > 0 {
		f = max(f, float64(u.Msgs)/float64(u.MaxMsgs))
	}
	return f
}

func (u StreamUsage) String() string {
	s := fmt.Sprintf("%s: %.0f%% full (%d of %d bytes, %d of %d messages)", u.Stream, 100*u.Fill(), u.Bytes, u.MaxBytes, u.Msgs, u.MaxMsgs)
	if u.Error != "" {
		s = u.Stream + ": error=" + u.Error
	}
	return s
}

// streamKinds are the names and kinds of the streams of t, in the order of
// streamConfigs.
func streamKinds(t Topology) []StreamUsage {
	out := []StreamUsage{
		{Stream: EventsStream(t.Site), Kind: KindEvents},
		{Stream: ChangesStream(t.Site), Kind: KindChanges},
		{Stream: ConflictsStream(t.Site), Kind: KindConflicts},
		{Stream: DLQStream(t.Site), Kind: KindDLQ},
	}
	for _, p := range t.Peers {
		out = append(out, StreamUsage{Stream: ChangesStream(p), Kind: KindMirror})
	}
	return out
}

// Usage reports how full each stream of t is (its own streams, then the
// mirrors in the order of t.Peers), with the limits the streams have on
// the server (not those of t). A stream that cannot be read gets an Error
// rather than failing the call; the error return is for a failing context
// or an invalid topology.
func Usage(ctx context.Context, js jetstream.JetStream, t Topology) ([]StreamUsage, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	out := streamKinds(t)
	for i := range out {
		u := &out[i]
		s, err := js.Stream(ctx, u.Stream)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			u.Error = err.Error()
			continue
		}
		info := s.CachedInfo()
		u.Bytes, u.Msgs = info.State.Bytes, info.State.Msgs
		u.MaxBytes, u.MaxMsgs = info.Config.MaxBytes, info.Config.MaxMsgs
		u.DiscardOld = info.Config.Discard == jetstream.DiscardOld
	}
	return out, nil
}

// overLimit returns a *ConfigError when a stream holding state would hold
// more than want's limits allow: a mirror (DiscardOld) would drop its
// oldest records at once, any other stream would refuse every new message
// until it shrank. Lowering a limit below what a stream holds is left to
// an operator.
func overLimit(want jetstream.StreamConfig, state jetstream.StreamState) error {
	hint := "it would refuse every new message"
	if want.Discard == jetstream.DiscardOld {
		hint = "it would drop its oldest records at once"
	}
	hint += "; raise the limit (nats.limits in the site's configuration) or remove messages first"
	if want.MaxBytes > 0 && state.Bytes > uint64(want.MaxBytes) {
		return &ConfigError{Stream: want.Name, Field: "max_bytes", Have: fmt.Sprintf("%d bytes held", state.Bytes),
			Want: fmt.Sprintf("at most %d", want.MaxBytes), Hint: hint}
	}
	if want.MaxMsgs > 0 && state.Msgs > uint64(want.MaxMsgs) {
		return &ConfigError{Stream: want.Name, Field: "max_msgs", Have: fmt.Sprintf("%d messages held", state.Msgs),
			Want: fmt.Sprintf("at most %d", want.MaxMsgs), Hint: hint}
	}
	return nil
}
