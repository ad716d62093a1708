package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// Bounds of one replay request. A replay of a longer range is several
// requests: the CLI asks again from NextSeq until Done, so no request comes
// near the admin deadline (2 minutes) however long the range is.
const (
	ReplayMaxRecords    = 1000             // records one request reads (at most)
	replayMaxDryRecords = 10_000           // the same for a dry run (no I/O but state reads)
	replayBudget        = 60 * time.Second // a request reads no record after this long
	replayFetchWait     = 5 * time.Second  // how long a fetch waits for records
)

// warnEarly is the warning of a replay that met early records.
const warnEarly = "early records (times past this site's clock plus records.max_future, by at most 5m) were not replayed: " +
	"the consumer applies them once this site's clock reaches them"

// replayRetryDelays are the pauses before a request tries its failed
// records again, once it has read its range; what still fails transiently
// goes to the DLQ (retry-budget or body-unavailable, as in the consumer).
var replayRetryDelays = []time.Duration{time.Second, 2 * time.Second}

// ReplayResult is the Outcome of the "replay" admin verb, as JSON: what one
// request did with records FromSeq..NextSeq-1 of the mirror Stream. The CLI
// sums the results of its requests into one of these.
type ReplayResult struct {
	Site     string       `json:"site"`
	Peer     string       `json:"peer"`
	Stream   string       `json:"stream"`
	DryRun   bool         `json:"dry_run"`
	FromSeq  uint64       `json:"from_seq"` // the first sequence read (0: none)
	LastSeq  uint64       `json:"last_seq"` // the end of the range: the stream's last sequence when the replay began
	NextSeq  uint64       `json:"next_seq"` // where the next request starts
	Done     bool         `json:"done"`     // the range is replayed
	Read     int          `json:"read"`     // records read
	Counts   ReplayCounts `json:"counts"`
	Warnings []string     `json:"warnings,omitempty"`
}

// ReplayCounts are the outcomes of the records read, from the decisions of
// the per-key state machine. Every record read counts in exactly one of
// Applied, Skipped, KeptLocal, DeadLettered, Early and OtherBucket. In a dry
// run they are what the replay would do.
type ReplayCounts struct {
	Applied      int            `json:"applied"`       // the site now holds the record's version (conflicts it won included)
	Skipped      int            `json:"skipped"`       // the site already held this version or a later one
	KeptLocal    int            `json:"kept_local"`    // a conflict the held version won: only the clock merged
	DeadLettered int            `json:"dead_lettered"` // could not be applied (Reasons says why)
	OtherBucket  int            `json:"other_bucket"`  // not of --bucket
	Early        int            `json:"early"`         // not replayed: early (schema.ErrEarly), the consumer applies it when this site's clock reaches it
	Conflicts    int            `json:"conflicts"`     // records decided as conflicts (among the above)
	Settled      int            `json:"dlq_settled"`   // DLQ entries of records that applied or were superseded, removed
	Reasons      map[string]int `json:"dead_letter_reasons,omitempty"`
}

// Add adds o to c.
func (c *ReplayCounts) Add(o ReplayCounts) {
	c.Applied += o.Applied
	c.Skipped += o.Skipped
	c.KeptLocal += o.KeptLocal
	c.DeadLettered += o.DeadLettered
	c.OtherBucket += o.OtherBucket
	c.Early += o.Early
	c.Conflicts += o.Conflicts
	c.Settled += o.Settled
	for r, n := range o.Reasons {
		if c.Reasons == nil {
			c.Reasons = map[string]int{}
		}
		c.Reasons[r] += n
	}
}

// replay re-applies records of this site's mirror of req.Peer's CHANGES
// stream through the consumer's Applier (so versions already held report
// skip), from req.FromSeq or req.Since up to req.ToSeq (0: the stream's
// last sequence now). It answers a ReplayResult as JSON.
func (a *Agent) replay(ctx context.Context, req AdminRequest) (string, error) {
	res, err := a.replayRange(ctx, req)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(res)
	return string(b), err
}

func (a *Agent) replayRange(ctx context.Context, req AdminRequest) (*ReplayResult, error) {
	site, peers := a.cfg.Site, a.cfg.PeerNames()
	if !slices.Contains(peers, req.Peer) {
		return nil, fmt.Errorf("site %s has no peer %q (its peers: %s)", site, req.Peer, strings.Join(peers, ", "))
	}
	if (req.FromSeq == 0) == req.Since.IsZero() {
		return nil, errors.New("replay: give a start sequence or a start time (one of them)")
	}
	if req.Bucket != "" && !a.Applier.Replicated(req.Bucket) {
		return nil, fmt.Errorf("bucket %s is not replicated at site %s: fix the configuration first (every record would be dead-lettered again)", req.Bucket, site)
	}
	stream := broker.ChangesStream(req.Peer)
	s, err := a.js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("site %s has no mirror %s of peer %s (`s3mesh streams ensure` creates it)", site, stream, req.Peer)
	}
	if err != nil {
		return nil, fmt.Errorf("mirror %s: %w", stream, err)
	}
	st := s.CachedInfo().State
	res := &ReplayResult{Site: site, Peer: req.Peer, Stream: stream, DryRun: req.DryRun, LastSeq: st.LastSeq, NextSeq: req.FromSeq}
	if req.ToSeq != 0 && req.ToSeq < st.LastSeq {
		res.LastSeq = req.ToSeq
	}
	if st.Msgs == 0 {
		if req.ToSeq != 0 { // a later request: the rest is gone (purged or aged out)
			res.Done, res.Warnings = true, []string{fmt.Sprintf("%s holds no records any more", stream)}
			return res, nil
		}
		return nil, fmt.Errorf("mirror %s at site %s holds no records", stream, site)
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: req.FromSeq}
	switch {
	case req.Since.IsZero() && req.FromSeq > res.LastSeq:
		if req.ToSeq != 0 {
			res.Done = true
			return res, nil
		}
		return nil, fmt.Errorf("--from-seq %d is beyond the end of %s at site %s (last sequence %d)", req.FromSeq, stream, site, st.LastSeq)
	case req.Since.IsZero() && req.FromSeq < st.FirstSeq:
		res.Warnings = append(res.Warnings, fmt.Sprintf("records %d..%d of %s are gone (retention %s): the replay starts at %d",
			req.FromSeq, st.FirstSeq-1, stream, broker.DefaultChangesMaxAge, st.FirstSeq))
	case !req.Since.IsZero() && req.Since.After(st.LastTime):
		res.Done, res.NextSeq = true, res.LastSeq+1
		res.Warnings = append(res.Warnings, fmt.Sprintf("no record of %s was stored after %s (the last one was at %s)",
			stream, req.Since.UTC().Format(time.RFC3339), st.LastTime.UTC().Format(time.RFC3339)))
		return res, nil
	case !req.Since.IsZero():
		since := req.Since
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since}
	}
	r := &replayer{a: a, req: req, stream: stream, res: res, sim: map[[2]string]state.Entry{}, keys: a.keyring(),
		dlq: &consumer.DLQ{Site: site, JS: a.js}}
	if err := r.loadDeadLetters(ctx); err != nil {
		return nil, err
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	defer func() { // an ordered consumer is ephemeral: do not leave it to time out
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if ci := c.CachedInfo(); ci != nil {
			_ = s.DeleteConsumer(dctx, ci.Name)
		}
	}()
	if err := r.read(ctx, c); err != nil {
		return nil, err
	}
	if err := r.retryFailed(ctx); err != nil {
		return nil, err
	}
	if res.NextSeq > res.LastSeq {
		res.Done = true
	}
	a.log.Info("replay", "peer", req.Peer, "from", res.FromSeq, "next", res.NextSeq, "last", res.LastSeq, "dry_run", req.DryRun,
		"read", res.Read, "applied", res.Counts.Applied, "skipped", res.Counts.Skipped, "dead_lettered", res.Counts.DeadLettered)
	return res, nil
}

// replayer is one replay request under way.
type replayer struct {
	a         *Agent
	req       AdminRequest
	stream    string
	res       *ReplayResult
	dlq       *consumer.DLQ
	queued    map[uint64][]uint64 // stream sequence → its entries in DLQ_<site>
	dlqStream jetstream.Stream
	sim       map[[2]string]state.Entry // dry run: the entries as the records read so far would leave them
	failed    []*replayed               // transient failures, tried again once the range is read
	keys      schema.Keyring            // the peers' public keys (records are verified as the consumer does)
}

// replayed is one record read.
type replayed struct {
	seq  uint64
	data []byte
	rec  *schema.Record
	err  error // the last failure
	n    uint64
	at   time.Time // first failure
}

// loadDeadLetters indexes the DLQ entries of the stream's records: a
// record that applies now settles them; one that fails again gets no second
// entry.
func (r *replayer) loadDeadLetters(ctx context.Context) error {
	r.queued = map[uint64][]uint64{}
	name := broker.DLQStream(r.a.cfg.Site)
	var err error
	if r.dlqStream, err = r.a.js.Stream(ctx, name); err != nil {
		return fmt.Errorf("dead letters: %w", err)
	}
	return broker.ReadStream(ctx, r.a.js, name, time.Time{}, func(seq uint64, data []byte) error {
		var dl consumer.DeadLetter
		if json.Unmarshal(data, &dl) == nil && dl.Stream == r.stream && dl.Seq != 0 {
			r.queued[dl.Seq] = append(r.queued[dl.Seq], seq)
		}
		return nil
	})
}

// read handles the records of the range in stream order, within the
// request's bounds, and sets NextSeq after the last one handled.
func (r *replayer) read(ctx context.Context, c jetstream.Consumer) error {
	limit := ReplayMaxRecords
	if r.req.DryRun {
		limit = replayMaxDryRecords
	}
	if r.req.Max > 0 {
		limit = min(limit, r.req.Max)
	}
	deadline := time.Now().Add(replayBudget)
	for r.res.Read < limit && time.Now().Before(deadline) {
		batch, err := c.Fetch(min(256, limit-r.res.Read), jetstream.FetchMaxWait(replayFetchWait))
		if err != nil {
			return fmt.Errorf("read %s: %w", r.stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read %s: %w", r.stream, err)
			}
			seq := md.Sequence.Stream
			if seq > r.res.LastSeq {
				break
			}
			n++
			if r.res.FromSeq == 0 {
				r.res.FromSeq = seq
			}
			if err := r.one(ctx, seq, m.Data()); err != nil {
				return err
			}
			r.res.Read++
			r.res.NextSeq = seq + 1
			if seq >= r.res.LastSeq || md.NumPending == 0 {
				// The end: return without waiting for the rest of the
				// fetch (it would wait for records that do not come).
				r.res.NextSeq = r.res.LastSeq + 1
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("read %s: %w", r.stream, err)
		}
		if n == 0 {
			// Nothing came within the wait, or only records past the
			// range: nothing is left up to LastSeq (the rest was deleted).
			r.res.NextSeq = r.res.LastSeq + 1
			return nil
		}
	}
	return nil
}

// one handles the record at seq: decoded, checked, then applied (or, in a
// dry run, decided).
func (r *replayer) one(ctx context.Context, seq uint64, data []byte) error {
	if ctx.Err() != nil {
		return r.interrupted(seq, ctx.Err())
	}
	rec, err := r.keys.Open(data, r.req.Peer) // verified as the consumer verifies it
	if err != nil {
		reason := consumer.ReasonFor(err)
		if reason == "" {
			reason = consumer.ReasonDecode
		}
		return r.deadLetter(ctx, &replayed{seq: seq, data: data, err: fmt.Errorf("decode %s:%d: %w", r.stream, seq, err)}, reason, false)
	}
	if r.req.Bucket != "" && rec.Bucket != r.req.Bucket {
		r.res.Counts.OtherBucket++
		return nil
	}
	p := &replayed{seq: seq, data: data, rec: rec}
	if o := rec.Version.Origin; o != r.req.Peer {
		p.err = fmt.Errorf("record %s claims origin %q but came from %s: %w", rec.Version.ID, o, r.stream, consumer.ErrUnauthorized)
		return r.deadLetter(ctx, p, consumer.ReasonUnauthorized, false)
	}
	if err := r.a.validatePeerRecord(rec); err != nil {
		if errors.Is(err, schema.ErrEarly) {
			// Valid once this site's clock reaches it; the consumer, which
			// never acknowledges an early record unapplied, applies it then.
			r.res.Counts.Early++
			if !slices.Contains(r.res.Warnings, warnEarly) {
				r.res.Warnings = append(r.res.Warnings, warnEarly)
			}
			return nil
		}
		p.err = fmt.Errorf("record %s: %w", rec.Version.ID, err)
		return r.deadLetter(ctx, p, consumer.ReasonFor(err), false)
	}
	if err := r.a.proven.Raise(rec.Version.Origin, rec.Version.Clock[rec.Version.Origin]); err != nil {
		return err
	}
	if r.req.DryRun {
		return r.decide(ctx, p)
	}
	return r.apply(ctx, p, false)
}

// apply applies p through the consumer's Applier: the per-key state machine
// decides, and the applier carries the decision out. A transient failure is
// kept for retryFailed unless last.
func (r *replayer) apply(ctx context.Context, p *replayed, last bool) error {
	d, err := r.a.Applier.Apply(ctx, p.rec)
	if err == nil {
		r.decided(ctx, p, d)
		return nil
	}
	if ctx.Err() != nil {
		return r.interrupted(p.seq, err)
	}
	p.err, p.n = err, p.n+1
	if p.at.IsZero() {
		p.at = time.Now()
	}
	if reason := consumer.ReasonFor(err); reason != "" {
		return r.deadLetter(ctx, p, reason, d.Conflict)
	}
	if !last {
		r.failed = append(r.failed, p)
		return nil
	}
	reason := consumer.ReasonRetryBudget
	if errors.Is(err, consumer.ErrBodyUnavailable) {
		reason = consumer.ReasonBodyUnavail
	}
	return r.deadLetter(ctx, p, reason, d.Conflict)
}

// retryFailed tries the records that failed transiently again (a later
// record of the same key read meanwhile makes them a skip), after a pause
// each round; those that still fail go to the DLQ.
func (r *replayer) retryFailed(ctx context.Context) error {
	for i, delay := range replayRetryDelays {
		if len(r.failed) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return r.interrupted(r.failed[0].seq, ctx.Err())
		case <-time.After(delay):
		}
		ps := r.failed
		r.failed = nil
		for _, p := range ps {
			if err := r.apply(ctx, p, i == len(replayRetryDelays)-1); err != nil {
				return err
			}
		}
	}
	return nil
}

// decide is the dry run of apply: the pure decision (schema.Decide, as the
// state machine takes it) against the key's entry, as the records before it
// in this request would have left it. Nothing is written; bodies are not
// fetched, so a body no site holds any more is not foreseen.
func (r *replayer) decide(ctx context.Context, p *replayed) error {
	pol, ok := r.a.Applier.Buckets[p.rec.Bucket]
	if !ok {
		p.err = fmt.Errorf("apply %s/%s: %w", p.rec.Bucket, p.rec.Key, consumer.ErrNotReplicated)
		return r.deadLetter(ctx, p, consumer.ReasonNotReplicated, false)
	}
	k := [2]string{p.rec.Bucket, p.rec.Key}
	e, ok := r.sim[k]
	if !ok {
		var err error
		if e, _, err = r.a.Store.Get(k[0], k[1]); err != nil {
			return fmt.Errorf("state of %s/%s: %w", k[0], k[1], err)
		}
	}
	d := schema.Decide(e.HeldPtr(), e.Clock, p.rec.Version, pol.Policy)
	switch d.Outcome {
	case schema.Apply, schema.ApplyWinner:
		e.Held = p.rec.Version
		e.Clock = d.Merged
	case schema.KeepLocal:
		e.Clock = d.Merged
	case schema.Park:
		p.err = fmt.Errorf("apply %s/%s: %s concurrent with held %s: %w", k[0], k[1], p.rec.Version.ID, e.Held.ID, consumer.ErrParked)
		return r.deadLetter(ctx, p, consumer.ReasonManual, true)
	}
	r.sim[k] = e
	r.decided(ctx, p, d)
	return nil
}

// decided counts a record the site handled (or would handle) without
// failure, and settles its dead letters.
func (r *replayer) decided(ctx context.Context, p *replayed, d schema.Decision) {
	c := &r.res.Counts
	switch d.Outcome {
	case schema.Apply, schema.ApplyWinner:
		c.Applied++
	case schema.KeepLocal:
		c.KeptLocal++
	default:
		c.Skipped++
	}
	if d.Conflict {
		c.Conflicts++
	}
	for _, q := range r.queued[p.seq] {
		if !r.req.DryRun {
			if err := r.dlqStream.DeleteMsg(ctx, q); err != nil {
				r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("dead letter %d (%s:%d) not removed: %v", q, r.stream, p.seq, err))
				continue
			}
		}
		c.Settled++
	}
	if !r.req.DryRun {
		delete(r.queued, p.seq)
	}
}

// deadLetter counts p as dead-lettered with reason and, unless this is a dry
// run or the DLQ holds an entry of p's record already (the consumer's, from
// its first delivery), stores it as the consumer does (consumer/poison.go):
// the version is marked dead in the state, then the entry is published. A
// dead letter that cannot be stored stops the request: the record stays in
// the mirror and a replay from its sequence takes it again.
func (r *replayer) deadLetter(ctx context.Context, p *replayed, reason string, conflict bool) error {
	c := &r.res.Counts
	c.DeadLettered++
	if conflict {
		c.Conflicts++
	}
	if c.Reasons == nil {
		c.Reasons = map[string]int{}
	}
	c.Reasons[reason]++
	if r.req.DryRun || len(r.queued[p.seq]) > 0 {
		return nil
	}
	if rec := p.rec; rec != nil && reason != consumer.ReasonUnauthorized && r.a.Applier.Replicated(rec.Bucket) {
		if err := r.a.Applier.MarkDead(rec.Bucket, rec.Key, rec.Version.ID); err != nil {
			r.a.log.Error("dead letter not marked in the state", "stream", r.stream, "seq", p.seq, "err", err)
		}
	}
	now := time.Now().UTC()
	first, n := p.at.UTC(), p.n
	if n == 0 {
		first, n = now, 1
	}
	dl := consumer.DeadLetter{ID: fmt.Sprintf("%s:%d", r.stream, p.seq), Reason: reason, Error: p.err.Error(),
		Attempts: n, FirstFailure: first, LastFailure: now, Peer: r.req.Peer, Stream: r.stream, Seq: p.seq, Record: p.data}
	if p.rec != nil {
		dl.Bucket, dl.Key, dl.VersionID = p.rec.Bucket, p.rec.Key, p.rec.Version.ID
	}
	if err := r.dlq.Put(ctx, dl); err != nil {
		return fmt.Errorf("replay stopped at %s: %w", dl.ID, err)
	}
	r.a.log.Error("replayed record sent to the dead-letter queue", "id", dl.ID, "bucket", dl.Bucket, "key", dl.Key,
		"version", dl.VersionID, "reason", reason, "err", p.err)
	return nil
}

// interrupted is the error of a request cut short (the agent stopping, or
// the admin deadline) at seq: it names the first record not handled.
func (r *replayer) interrupted(seq uint64, err error) error {
	if len(r.failed) > 0 { // records read before seq wait for their retry
		seq = min(seq, r.failed[0].seq)
	}
	return fmt.Errorf("replay interrupted at %s:%d (%w): the records before it are handled; run again with --from-seq %d", r.stream, seq, err, seq)
}
