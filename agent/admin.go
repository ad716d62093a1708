package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// AdminSubject is where the agent of site answers operator requests (the
// `s3mesh dlq retry|resolve` commands): s3mesh.admin.<site>.<verb>.
func AdminSubject(site, verb string) string { return "s3mesh.admin." + site + "." + verb }

// AdminRequest is the body of an admin request.
type AdminRequest struct {
	Seq    uint64 `json:"seq"`              // DLQ_<site> sequence of the entry
	Pick   string `json:"pick,omitempty"`   // resolve: the site whose version wins
	Bucket string `json:"bucket,omitempty"` // scan.confirm, state.page
	After  string `json:"after,omitempty"`  // state.page: keys after this one
	Limit  int    `json:"limit,omitempty"`  // state.page: at most this many keys
	// replay (see ReplayResult, and Bucket): records of the mirror of Peer's
	// CHANGES stream from FromSeq, or from the first stored at or after
	// Since, up to ToSeq (0: the stream's last now); DryRun applies nothing.
	Peer    string    `json:"peer,omitempty"`
	FromSeq uint64    `json:"from_seq,omitempty"`
	ToSeq   uint64    `json:"to_seq,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	DryRun  bool      `json:"dry_run,omitempty"`
	Max     int       `json:"max,omitempty"` // replay: records this request reads at most (0: ReplayMaxRecords)
	// TrustEntry (dlq retry, resolve): when the mirror no longer holds the
	// entry's record (retention), apply the bytes the entry carries, if they
	// decode and validate. Without it such an entry is refused.
	TrustEntry bool `json:"trust_entry,omitempty"`
	// trash.restore (and Bucket): the key, the version (trash list's id;
	// in a versioned bucket the store's) and whether an object now at the
	// key may be replaced.
	Key     string `json:"key,omitempty"`
	Version string `json:"version,omitempty"`
	Force   bool   `json:"force,omitempty"`
}

// AdminReply is the answer to an admin request.
type AdminReply struct {
	OK      bool   `json:"ok"`
	Outcome string `json:"outcome,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (a *Agent) serveAdmin(ctx context.Context) ([]*nats.Subscription, error) {
	handlers := map[string]func(context.Context, AdminRequest) (string, error){
		"dlq.retry":    a.retryDead,
		"dlq.resolve":  a.resolveDead,
		"status":       a.status,
		"scan.confirm": a.confirmDeletes,
		"scan.now":     a.scanNow,
		"state.page":   a.statePage,
		"replay":       a.replay,
	}
	maps.Copy(handlers, a.deletesVerbs())
	maps.Copy(handlers, a.trashHandlers())
	var subs []*nats.Subscription
	for verb, h := range handlers {
		h := h
		sub, err := a.nc.Subscribe(AdminSubject(a.cfg.Site, verb), func(m *nats.Msg) {
			var req AdminRequest
			var rep AdminReply
			// A request that arrives while Run is returning is refused: Run
			// takes the gate's write lock after unsubscribing, so no handler
			// touches the state store once Close may close it.
			if !a.adminGate.TryRLock() {
				b, _ := json.Marshal(AdminReply{Error: "agent is shutting down"})
				_ = m.Respond(b)
				return
			}
			defer a.adminGate.RUnlock()
			if err := json.Unmarshal(m.Data, &req); err != nil {
				rep.Error = "bad request: " + err.Error()
			} else {
				rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				out, err := h(rctx, req)
				cancel()
				rep.OK, rep.Outcome = err == nil, out
				if err != nil {
					rep.Error = err.Error()
				}
			}
			b, _ := json.Marshal(rep)
			_ = m.Respond(b)
		})
		if err != nil {
			return subs, fmt.Errorf("admin %s: %w", verb, err)
		}
		subs = append(subs, sub)
	}
	rs, err := a.serveRecords(ctx)
	return append(subs, rs...), err
}

// deadLetter loads DLQ entry seq and its record. Anyone who may publish
// into DLQ_<site> could plant an entry, so the record is read again from
// the mirror the entry names (its Stream and Seq, at this site) and must be
// the entry's (consumer.DeadLetter.Verify); the entry's own bytes are used
// only when the mirror no longer holds the record and the operator said to
// trust them (trust), and only if they verify, decode and validate.
func (a *Agent) deadLetter(ctx context.Context, seq uint64, trust bool) (jetstream.Stream, consumer.DeadLetter, *schema.Record, error) {
	var dl consumer.DeadLetter
	s, err := a.js.Stream(ctx, broker.DLQStream(a.cfg.Site))
	if err != nil {
		return nil, dl, nil, err
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return nil, dl, nil, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	if err := json.Unmarshal(m.Data, &dl); err != nil {
		return nil, dl, nil, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	data, err := a.deadRecord(ctx, seq, dl, trust)
	if err != nil {
		return s, dl, nil, err
	}
	// Verified as the consumer verifies it: signed by a key configured for
	// the peer whose mirror holds it (deadRecord checked the peer).
	rec, err := a.keyring().Open(data, dl.Peer)
	if err != nil {
		return s, dl, nil, fmt.Errorf("dead letter %d cannot be applied: %w", seq, err)
	}
	if rec.Version.Origin != dl.Peer {
		return s, dl, nil, fmt.Errorf("dead letter %d: %w", seq, consumer.ErrUnauthorized)
	}
	if (dl.Bucket != "" && dl.Bucket != rec.Bucket) || (dl.Key != "" && dl.Key != rec.Key) || (dl.VersionID != "" && dl.VersionID != rec.Version.ID) {
		return s, dl, nil, fmt.Errorf("dead letter %d names %s/%s version %s, its record is %s/%s version %s: %w",
			seq, dl.Bucket, dl.Key, dl.VersionID, rec.Bucket, rec.Key, rec.Version.ID, consumer.ErrDeadLetterMismatch)
	}
	if err := a.validatePeerRecord(rec); err != nil {
		return s, dl, nil, fmt.Errorf("dead letter %d cannot be applied: %w", seq, err)
	}
	return s, dl, rec, nil
}

// validatePeerRecord checks a peer's record as the consumer does
// (schema.ValidateFor with recordLimits; a third-site entry within the
// key's own clock here needs no proof).
func (a *Agent) validatePeerRecord(rec *schema.Record) error {
	err := rec.ValidateFor(a.recordLimits())
	if !errors.Is(err, schema.ErrUnproven) {
		return err
	}
	clock, err := a.Applier.KeyClock(rec.Bucket, rec.Key)
	if err != nil {
		return err
	}
	return rec.ValidateFor(a.recordLimits().OverKey(clock))
}

// deadRecord returns the bytes of dead letter seq's record: the record of
// the peer's mirror at this site that the entry names, verified against the
// entry; or, with trust, the entry's own copy when the mirror lost it.
func (a *Agent) deadRecord(ctx context.Context, seq uint64, dl consumer.DeadLetter, trust bool) ([]byte, error) {
	ref := fmt.Sprintf("%s:%d", dl.Stream, dl.Seq)
	if !slices.Contains(a.cfg.PeerNames(), dl.Peer) || dl.Stream != broker.ChangesStream(dl.Peer) || dl.Seq == 0 {
		return nil, fmt.Errorf("dead letter %d names no record of a peer's mirror (peer %q, %s): refused; drop it", seq, dl.Peer, ref)
	}
	mirror, err := a.js.Stream(ctx, dl.Stream)
	var m *jetstream.RawStreamMsg
	if err == nil {
		m, err = mirror.GetMsg(ctx, dl.Seq)
	}
	switch {
	case err == nil:
		if err := dl.Verify(m.Data); err != nil {
			return nil, fmt.Errorf("dead letter %d refused (forged, or not made from that record): %w", seq, err)
		}
		return m.Data, nil
	case !errors.Is(err, jetstream.ErrMsgNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("dead letter %d: read its record %s: %w", seq, ref, err)
	case !trust:
		return nil, fmt.Errorf("dead letter %d: its record %s is gone from the mirror (retention): the entry's own bytes are unverified; "+
			"retry with --trust-entry to apply them if they decode and validate, or drop it", seq, ref)
	case dl.Truncated:
		return nil, fmt.Errorf("dead letter %d: its record %s is gone from the mirror and the entry holds only the start of it (%d of %d bytes): drop it",
			seq, ref, len(dl.Record), dl.RecordSize)
	}
	a.log.Warn("dead letter's record gone from the mirror: applying the entry's own bytes (--trust-entry)", "seq", seq, "record", ref)
	return dl.Record, nil
}

// recordLimits is what a record from a peer is validated against now (the
// consumer's limits: this site, its peers, former sites, the future window).
func (a *Agent) recordLimits() schema.Limits {
	sites := append(append([]string{a.cfg.Site}, a.cfg.PeerNames()...), a.cfg.Records.FormerSites...)
	l := schema.NewLimits(sites, a.hooks.recordClock(), a.cfg.Records.MaxFuture)
	l.Self, l.SelfMax = a.cfg.Site, a.selfMax()
	l.Proven = a.proven.Counters()
	return l
}

// retryDead applies a dead letter again; on success the entry is removed
// (also when the record turns out to be superseded: outcome "skip"), on
// failure it stays.
func (a *Agent) retryDead(ctx context.Context, req AdminRequest) (string, error) {
	s, dl, rec, err := a.deadLetter(ctx, req.Seq, req.TrustEntry)
	if err != nil {
		return "", err
	}
	d, err := a.Applier.Apply(ctx, rec)
	if err != nil {
		return "", fmt.Errorf("retry %d (%s/%s, was %s): %w", req.Seq, dl.Bucket, dl.Key, dl.Reason, err)
	}
	if err := s.DeleteMsg(ctx, req.Seq); err != nil {
		return d.Outcome.String(), fmt.Errorf("applied, but the entry was not removed: %w", err)
	}
	a.log.Info("dead letter retried", "seq", req.Seq, "bucket", rec.Bucket, "key", rec.Key, "outcome", d.Outcome.String())
	return d.Outcome.String(), nil
}

// resolveDead settles a parked (manual) conflict: the picked site's version
// is written here as a new local version whose clock dominates both, so every
// site converges on the picked content.
func (a *Agent) resolveDead(ctx context.Context, req AdminRequest) (string, error) {
	s, dl, rec, err := a.deadLetter(ctx, req.Seq, req.TrustEntry)
	if err != nil {
		return "", err
	}
	if dl.Reason != consumer.ReasonManual {
		return "", fmt.Errorf("entry %d is not a parked conflict (reason %s): use retry or drop", req.Seq, dl.Reason)
	}
	var write func(context.Context, *state.Entry) error
	switch req.Pick {
	case a.cfg.Site: // keep what this site holds
	case rec.Version.Origin:
		write = func(ctx context.Context, e *state.Entry) error { return a.writeAsLocal(ctx, rec, e) }
	default:
		return "", fmt.Errorf("--pick %q: the conflict is between %s (held here) and %s (parked)", req.Pick, a.cfg.Site, rec.Version.Origin)
	}
	v, err := a.Producer.Resolve(ctx, rec.Bucket, rec.Key, rec.Version.Clock, write)
	if err != nil {
		return "", err
	}
	if err := s.DeleteMsg(ctx, req.Seq); err != nil {
		return v.ID, fmt.Errorf("resolved as %s, but the entry was not removed: %w", v.ID, err)
	}
	a.log.Info("conflict resolved", "seq", req.Seq, "bucket", rec.Bucket, "key", rec.Key, "pick", req.Pick, "version", v.ID)
	return "resolved as " + v.ID, nil
}

// writeAsLocal puts rec's content into the local store as a plain local
// write (no replica marker): it becomes the resolving site's new version.
func (a *Agent) writeAsLocal(ctx context.Context, rec *schema.Record, e *state.Entry) error {
	local, ok := a.Applier.S3.(*s3io.Client)
	if !ok {
		return errors.New("local store does not support puts")
	}
	ifMatch := ""
	if e.Present() {
		ifMatch = e.LocalETag
	}
	if rec.Version.Deleted {
		if !e.Present() {
			return nil
		}
		return local.Delete(ctx, rec.Bucket, rec.Key, ifMatch)
	}
	body, err := a.Applier.OpenBody(ctx, rec, false) // rare: the applier checks the bytes itself
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = local.Put(ctx, s3io.PutInput{Bucket: rec.Bucket, Key: rec.Key, Body: io.Reader(body), Size: rec.Version.Size,
		PartSize: a.cfg.PartSize, IfMatch: ifMatch, IfNoneMatch: ifMatch == "",
		Attrs: s3io.Attrs{ContentType: rec.Attrs.ContentType, CacheControl: rec.Attrs.CacheControl,
			ContentEncoding: rec.Attrs.ContentEncoding, ContentDisposition: rec.Attrs.ContentDisposition, Meta: rec.Attrs.Meta}})
	return err
}
