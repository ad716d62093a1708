package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/producer"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// Status is what `s3mesh status` shows of one site. It looks at each
// mirror's Active (time since the peer was last heard from), not only at
// its lag: a cut link reports lag 0 while nothing arrives.
type Status struct {
	Site        string                  `json:"site"`
	Time        time.Time               `json:"time"`
	Peers       []PeerStatus            `json:"peers"`
	Buckets     []producer.BucketStatus `json:"buckets"`
	DeadLetters uint64                  `json:"dead_letters"`
	Retention   string                  `json:"tombstone_retention"`
	// MaxFuture is this site's records.max_future, which must be the same
	// at every site (status --all warns when it is not).
	MaxFuture string                   `json:"max_future,omitempty"`
	Warnings  []string                 `json:"warnings,omitempty"`
	Backlog   map[string]ConsumerState `json:"backlog"` // per stream: records not yet applied
	// Sources are the site's event sources and the lag each implies for a
	// local change to become a record.
	Sources []SourceStatus `json:"sources"`
	// Store is what the agent's probe found the store to support (nil
	// until the probe has run).
	Store *s3io.Capabilities `json:"store,omitempty"`
	// PeerKeys is what the start-up probe found of each peer's S3 key on
	// each bucket (docs/deployment.md, "Peers' S3 keys: read-only"): read-only, or
	// writable only where peers[].s3.allow_writable_key allows it.
	PeerKeys []PeerKeyStatus `json:"peer_keys,omitempty"`
	// RebuiltAt is when `s3mesh rebuild` last restored this site (nil if
	// it never was). A rebuild runs while the agent is stopped and prints
	// its own progress; the agent refuses to start on an unfinished one.
	RebuiltAt *time.Time `json:"rebuilt_at,omitempty"`
	// Streams is how full each of the site's streams is against its limits
	// (nats.limits); a warning names each over StreamWarnFill.
	Streams []broker.StreamUsage `json:"streams,omitempty"`
	// Topology is each bucket's mode and prefix filters here, and what
	// they did (topology.go).
	Topology []BucketTopology `json:"topology,omitempty"`
	// HeldDeletes are the peers' deletes held here, by peer and bucket
	// (`s3mesh deletes list`).
	HeldDeletes []consumer.HeldSummary `json:"held_deletes,omitempty"`
	// Trash is each bucket's trash at this site (trash.go), as of its last scan.
	Trash []producer.TrashStatus `json:"trash,omitempty"`
}

// PeerStatus is the replication state from one peer.
type PeerStatus struct {
	Peer         string  `json:"peer"`
	LastSeq      uint64  `json:"last_seq"`
	Lag          uint64  `json:"lag"`
	SilentFor    float64 `json:"silent_for_seconds"` // -1: never heard since the broker started
	Stalled      bool    `json:"stalled"`
	Error        string  `json:"error,omitempty"`
	PendingApply uint64  `json:"pending_apply"`
	// NeedsRebuild: the peer has been silent for longer than its change
	// records and this site's tombstones are kept, so what this site missed
	// may be gone: rebuild it from its peers.
	NeedsRebuild bool `json:"needs_rebuild,omitempty"`
	// SkippedRecords: sequences of the peer's stream that this site's
	// mirror skipped (see broker.MirrorStatus.Skipped): changes that never
	// reached this site. Not 0 means a rebuild (or verify) is due.
	SkippedRecords uint64 `json:"skipped_records,omitempty"`
	// CaughtUp: every record of the peer that this site's mirror holds is
	// applied here, the mirror knew of none it lacked (lag 0) and it heard
	// from the peer recently (not Stalled).
	CaughtUp bool `json:"caught_up"`
	// Watermark: every record the peer made before this time is applied
	// here (see watermark). Zero if the peer was never heard from.
	Watermark time.Time `json:"watermark"`
	// WatermarkAgeSeconds is Time − Watermark; -1 if Watermark is zero.
	WatermarkAgeSeconds float64 `json:"watermark_age_seconds"`
}

// watermarkInput is what watermark needs to know of one peer.
type watermarkInput struct {
	Now     time.Time
	Active  time.Duration // since the mirror last heard from the peer; < 0: never
	Lag     uint64        // records the peer had that the mirror lacked, at the last contact
	Stalled bool
	Pending uint64 // records the mirror holds that are not applied here yet
	// Oldest is the origin time (MadeAt) of the oldest record not applied
	// yet (the apply consumer's ack floor + 1); zero if Pending is 0 or it
	// could not be read.
	Oldest time.Time
	// LastHeld is the origin time of the last record the mirror holds (zero
	// if none or unread); used only while the mirror knows it lacks records.
	LastHeld time.Time
}

// watermark is the time before which every record the peer made is applied
// here, and whether the site is caught up with the peer:
//
//   - records wait to be applied: the origin time of the oldest of them;
//   - none wait, but the mirror knew at its last contact that the peer had
//     records it lacked (lag > 0): the origin time of the last record held;
//   - none wait and none are known to be missing: the time the mirror last
//     heard from the peer (now − Active). A cut link leaves lag at 0 while
//     nothing arrives, so this stops advancing: the watermark tells what
//     the lag figure cannot.
//
// It is never later than the last contact (a record's origin time is the
// peer's clock; a peer clock running ahead must not move the watermark past
// what this site has heard). Zero (and not caught up) if the peer was never
// heard from and nothing waits.
func watermark(in watermarkInput) (wm time.Time, caughtUp bool) {
	var heard time.Time
	if in.Active >= 0 {
		heard = in.Now.Add(-in.Active)
	}
	switch {
	case in.Pending > 0:
		wm = in.Oldest
	case in.Lag > 0:
		wm = in.LastHeld
		if wm.IsZero() {
			wm = heard
		}
	default:
		wm = heard
	}
	if !heard.IsZero() && wm.After(heard) {
		wm = heard
	}
	caughtUp = in.Pending == 0 && in.Lag == 0 && !in.Stalled && !heard.IsZero()
	return wm, caughtUp
}

// ageSeconds is now − t in seconds, -1 for a zero t.
func ageSeconds(now, t time.Time) float64 {
	if t.IsZero() {
		return -1
	}
	return now.Sub(t).Seconds()
}

// needsRebuild reports whether a peer silent for silent may have dropped
// records this site never received: beyond the CHANGES retention (records
// trimmed) or the tombstone retention (deletes forgotten), only a rebuild
// from the peers' stores makes the site whole again.
func needsRebuild(silent, changesMaxAge, tombstones time.Duration) bool {
	limit := changesMaxAge
	if tombstones > 0 && tombstones < limit {
		limit = tombstones
	}
	return silent > limit
}

// ConsumerState is a durable consumer's backlog.
type ConsumerState struct {
	Pending    uint64 `json:"pending"`
	AckPending int    `json:"ack_pending"`
}

// SourceStatus is one event source of the site.
type SourceStatus struct {
	Name string `json:"name"`
	Type string `json:"type"` // nats, webhook or poll
	// Lag says how soon a local change becomes a record through it: "events"
	// (as soon as the store reports it) or, for poll, the interval plus one
	// listing of the bucket.
	Lag             string  `json:"lag"`
	IntervalSeconds float64 `json:"interval_seconds,omitempty"` // poll
	// LastPolls are the last poll of each bucket (poll).
	LastPolls map[string]producer.PollStatus `json:"last_polls,omitempty"`
}

// sourceStatus describes the configured event sources, and the full scan
// that backs them all.
func (a *Agent) sourceStatus() []SourceStatus {
	var out []SourceStatus
	for _, e := range a.cfg.Events {
		ss := SourceStatus{Name: e.Name, Type: e.Type, Lag: "as soon as the store sends the event (milliseconds)"}
		if e.Type == "poll" {
			ss.Lag = fmt.Sprintf("up to %s plus one listing of the bucket (the store sends no events)", e.Interval)
			ss.IntervalSeconds = e.Interval.Seconds()
			if a.Poller != nil {
				ss.LastPolls = a.Poller.Status()
			}
		}
		out = append(out, ss)
	}
	if iv := a.cfg.Scan.ScanInterval(); iv > 0 {
		out = append(out, SourceStatus{Name: "scan", Type: "scan", Lag: fmt.Sprintf("up to %s: the full scan repairs lost events", iv), IntervalSeconds: iv.Seconds()})
	}
	return out
}

// status answers the admin request `status`: the Snapshot, as JSON.
func (a *Agent) status(ctx context.Context, _ AdminRequest) (string, error) {
	st, err := a.Snapshot(ctx)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(st)
	return string(b), err
}

// Snapshot is what `s3mesh status` shows of this site, read now from the
// broker (mirrors, consumers, the DLQ) and the scanner.
func (a *Agent) Snapshot(ctx context.Context) (Status, error) {
	now := time.Now().UTC()
	st := Status{Site: a.cfg.Site, Time: now, Buckets: a.Scanner.Status(),
		Retention: a.cfg.Tombstones.Retention.String(), MaxFuture: a.cfg.Records.MaxFuture.String(), Backlog: map[string]ConsumerState{}, Sources: a.sourceStatus(), Store: a.caps.Load()}
	if st.Store == nil {
		st.Warnings = append(st.Warnings, "the store has not been probed yet (unreachable?): nothing is applied until it is")
	}
	st.Topology = a.topologyStatus()
	st.Warnings = append(st.Warnings, topologyWarnings(st.Topology)...)
	st.HeldDeletes = a.Applier.Guard.Summary()
	st.Warnings = append(st.Warnings, heldDeleteWarnings(st.HeldDeletes)...)
	st.PeerKeys = a.peerKeys.list()
	st.Trash = a.trash.Status()
	st.Warnings = append(st.Warnings, peerKeyWarnings(st.PeerKeys)...)
	if meta, ok, err := a.Store.SiteMeta(); err == nil && ok && meta.RebuiltAt > 0 {
		t := time.UnixMilli(meta.RebuiltAt).UTC()
		st.RebuiltAt = &t
	}
	ms, err := broker.Mirrors(ctx, a.js, Topology(a.cfg))
	if err != nil {
		return Status{}, err
	}
	for _, m := range ms {
		ps := PeerStatus{Peer: m.Peer, LastSeq: m.LastSeq, Lag: m.Lag, SilentFor: m.Active.Seconds(), Stalled: m.Stalled, Error: m.Error, SkippedRecords: m.Skipped}
		if m.Skipped > 0 {
			st.Warnings = append(st.Warnings, fmt.Sprintf("this site's mirror of %s's records skipped %d of them (a hole between its first and last record): "+
				"those changes never reached this site; `s3mesh verify` shows what differs, and `s3mesh rebuild --site %s` (agent stopped) repairs it",
				m.Peer, m.Skipped, a.cfg.Site))
		}
		if m.Active < 0 {
			ps.SilentFor = -1
		}
		in := watermarkInput{Now: now, Active: m.Active, Lag: m.Lag, Stalled: m.Stalled}
		if c, err := a.js.Consumer(ctx, broker.ChangesStream(m.Peer), consumer.ApplyConsumer(a.cfg.Site)); err == nil {
			if ci, err := c.Info(ctx); err == nil {
				ps.PendingApply = ci.NumPending + uint64(ci.NumAckPending)
				in.Pending = ps.PendingApply
				if in.Pending > 0 {
					in.Oldest = a.originTime(ctx, m.Peer, ci.AckFloor.Stream+1)
				}
			}
		}
		if in.Pending == 0 && m.Lag > 0 && m.LastSeq > 0 {
			in.LastHeld = a.originTime(ctx, m.Peer, m.LastSeq)
		}
		ps.Watermark, ps.CaughtUp = watermark(in)
		ps.WatermarkAgeSeconds = ageSeconds(now, ps.Watermark)
		if m.Stalled {
			st.Warnings = append(st.Warnings, fmt.Sprintf("nothing heard from %s for %s: link cut, peer down or mirror stuck", m.Peer, m.Active.Round(time.Second)))
		}
		if needsRebuild(m.Active, broker.DefaultChangesMaxAge, a.cfg.Tombstones.Retention) {
			ps.NeedsRebuild = true
			st.Warnings = append(st.Warnings, fmt.Sprintf("cut off from %s for %s, longer than change records (%s) and tombstones (%s) are kept: "+
				"records this site missed may be gone; once the link is back, stop this agent and run `s3mesh rebuild --site %s` (docs/operations.md: Disaster recovery)",
				m.Peer, m.Active.Round(time.Second), broker.DefaultChangesMaxAge, a.cfg.Tombstones.Retention, a.cfg.Site))
		}
		st.Peers = append(st.Peers, ps)
	}
	for _, b := range st.Buckets {
		if b.Held != nil {
			st.Warnings = append(st.Warnings, fmt.Sprintf("bucket %s: deletes held since %s (%d of %d keys missing); `s3mesh scan confirm-deletes --bucket %s` to publish them",
				b.Bucket, b.Held.Since.Format(time.RFC3339), b.Held.Missing, b.Held.Known, b.Bucket))
		}
	}
	if s, err := a.js.Stream(ctx, broker.DLQStream(a.cfg.Site)); err == nil {
		st.DeadLetters = s.CachedInfo().State.Msgs
		if st.DeadLetters > 0 {
			st.Warnings = append(st.Warnings, fmt.Sprintf("%d dead letters: `s3mesh dlq list`", st.DeadLetters))
		}
	}
	if c, err := a.js.Consumer(ctx, broker.EventsStream(a.cfg.Site), producer.EventsConsumer(a.cfg.Site)); err == nil {
		if ci, err := c.Info(ctx); err == nil {
			st.Backlog[broker.EventsStream(a.cfg.Site)] = ConsumerState{Pending: ci.NumPending, AckPending: ci.NumAckPending}
		}
	}
	if us, err := broker.Usage(ctx, a.js, Topology(a.cfg)); err == nil {
		st.Streams = us
		st.Warnings = append(st.Warnings, streamWarnings(us)...)
	}
	return st, nil
}

// originTime is the origin time (MadeAt) of the first record at or after
// seq in this site's mirror of peer's CHANGES; zero if there is none or it
// cannot be read or decoded. The record is only looked at, not acted on, so
// its signature is not verified here (the applier does that).
func (a *Agent) originTime(ctx context.Context, peer string, seq uint64) time.Time {
	s, err := a.js.Stream(ctx, broker.ChangesStream(peer))
	if err != nil {
		return time.Time{}
	}
	// next_by_subj: the first message at or after seq (one may have been
	// removed from the stream by its limits).
	m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
	if err != nil {
		return time.Time{}
	}
	rec, err := schema.Decode(m.Data)
	if err != nil {
		return time.Time{}
	}
	if rec.MadeAt != 0 {
		return time.UnixMilli(rec.MadeAt).UTC()
	}
	return time.UnixMilli(rec.Version.TS).UTC()
}

func (a *Agent) confirmDeletes(_ context.Context, req AdminRequest) (string, error) {
	if err := a.Scanner.ConfirmDeletes(req.Bucket); err != nil {
		return "", err
	}
	return "confirmed: the next scan of " + req.Bucket + " publishes its deletes", nil
}

// scanNow scans one bucket at once (the scanner's own loop runs it) and
// answers with what the scan found and how long it took.
func (a *Agent) scanNow(ctx context.Context, req AdminRequest) (string, error) {
	st, took, err := a.Scanner.ScanNow(ctx, req.Bucket)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(struct {
		Bucket  string  `json:"bucket"`
		Seconds float64 `json:"seconds"`
		producer.ScanStats
	}{req.Bucket, took.Seconds(), st})
	return string(b), err
}
