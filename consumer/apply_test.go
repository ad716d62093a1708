package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// These tests check the applier as the executor of the per-key state
// machine: which S3 calls each decision becomes, and how each answer of the
// store is fed back. The store is a scripted map (the executor's logic is
// under test, not S3); replication against real versitygw is tested in
// integration/.

type memObject struct {
	etag string
	body string
	meta map[string]string
}

type memStore struct {
	objs     map[string]memObject
	calls    []string
	n        int
	fail     map[string]error // method → error returned once
	onPut    func()           // runs before a put is checked (a racing local write)
	onCopy   func()           // runs after a copy's source condition is checked, before it is read
	puts     int
	refusals int
}

func newMemStore() *memStore {
	return &memStore{objs: map[string]memObject{}, fail: map[string]error{}}
}

func (s *memStore) failing(m string) error {
	if err, ok := s.fail[m]; ok {
		delete(s.fail, m)
		return err
	}
	return nil
}

func (s *memStore) Head(_ context.Context, _, key string) (s3io.ObjectInfo, error) {
	s.calls = append(s.calls, "head")
	if err := s.failing("head"); err != nil {
		return s3io.ObjectInfo{}, err
	}
	o, ok := s.objs[key]
	if !ok {
		return s3io.ObjectInfo{Key: key}, nil
	}
	return s3io.ObjectInfo{Key: key, Exists: true, ETag: o.etag, Size: int64(len(o.body)), Attrs: s3io.Attrs{Meta: o.meta}}, nil
}

func (s *memStore) Put(_ context.Context, in s3io.PutInput) (string, error) {
	s.calls = append(s.calls, fmt.Sprintf("put(match=%q,none=%v)", in.IfMatch, in.IfNoneMatch))
	if s.onPut != nil {
		s.onPut()
	}
	if err := s.failing("put"); err != nil {
		return "", err
	}
	cur, ok := s.objs[in.Key]
	if (in.IfNoneMatch && ok) || (in.IfMatch != "" && (!ok || cur.etag != in.IfMatch)) {
		s.refusals++
		return "", s3io.ErrPreconditionFailed
	}
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return "", err
	}
	s.n++
	etag := fmt.Sprintf("local-%d", s.n)
	s.objs[in.Key] = memObject{etag: etag, body: string(b), meta: maps.Clone(in.Attrs.Meta)}
	s.puts++
	return etag, nil
}

func (s *memStore) Delete(_ context.Context, _, key, ifMatch string) error {
	s.calls = append(s.calls, "delete")
	if cur, ok := s.objs[key]; !ok || cur.etag != ifMatch {
		return s3io.ErrPreconditionFailed
	}
	delete(s.objs, key)
	return nil
}

func (s *memStore) CopyIfMatch(_ context.Context, _, src, dst, etag string) error {
	s.calls = append(s.calls, "copy")
	cur, ok := s.objs[src]
	if !ok || cur.etag != etag {
		return s3io.ErrPreconditionFailed
	}
	if s.onCopy != nil {
		s.onCopy()
		cur = s.objs[src]
	}
	s.objs[dst] = memObject{etag: cur.etag, body: cur.body}
	return nil
}

// memLocal stands in for the producer: Reconcile records the local object
// as a version of this site (like a publish would), RecoverLocked counts.
type memLocal struct {
	store      *state.Store
	s3         *memStore
	site       string
	reconciles int
	recovers   int
}

func (l *memLocal) Reconcile(_ context.Context, bucket, key string) error {
	l.reconciles++
	unlock := l.store.Lock(bucket, key)
	defer unlock()
	e, _, _ := l.store.Get(bucket, key)
	o, ok := l.s3.objs[key]
	if ok && o.etag == e.LocalETag {
		return nil
	}
	c := e.Clock.Bump(l.site)
	e.Clock = c
	e.Held = schema.Version{ID: schema.VersionID(l.site, bucket, key, c[l.site]), Origin: l.site, Clock: c, TS: 5000, Deleted: !ok}
	e.LocalETag = o.etag
	return l.store.Put(bucket, key, e)
}

func (l *memLocal) ExpectEcho(bucket, key, etag string) {}

func (l *memLocal) RecoverLocked(context.Context, string, string, *state.Entry) error {
	l.recovers++
	return nil
}

type memConflicts struct {
	entries []schema.ConflictEntry
	fail    error // returned once
}

func (c *memConflicts) Conflict(_ context.Context, e schema.ConflictEntry) error {
	if err := c.fail; err != nil {
		c.fail = nil
		return err
	}
	c.entries = append(c.entries, e)
	return nil
}

type rig struct {
	a     *Applier
	s3    *memStore
	local *memLocal
	log   *memConflicts
	st    *state.Store
}

func newRig(t *testing.T, pol BucketPolicy) *rig {
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s3 := newMemStore()
	local := &memLocal{store: st, s3: s3, site: "a"}
	log := &memConflicts{}
	a := &Applier{Site: "a", Buckets: map[string]BucketPolicy{"bkt": pol}, Store: st, S3: s3, Local: local, Conflict: log,
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return time.UnixMilli(1_000_000) }}
	return &rig{a: a, s3: s3, local: local, log: log, st: st}
}

// rec is an inline record of key k from origin with clock c.
func inline(origin string, c schema.Clock, ts int64, body string) *schema.Record {
	v := schema.Version{ID: schema.VersionID(origin, "bkt", "k", c[origin]), Origin: origin, Clock: c, TS: ts,
		Size: int64(len(body)), ETag: "origin-" + body}
	return &schema.Record{Schema: schema.RecordSchema, Bucket: "bkt", Key: "k", Version: v, Inline: true, Body: []byte(body)}
}

func tombstone(origin string, c schema.Clock, ts int64) *schema.Record {
	v := schema.Version{ID: schema.VersionID(origin, "bkt", "k", c[origin]), Origin: origin, Clock: c, TS: ts, Deleted: true}
	return &schema.Record{Schema: schema.RecordSchema, Bucket: "bkt", Key: "k", Version: v}
}

func (r *rig) entry(t *testing.T) state.Entry {
	e, _, err := r.st.Get("bkt", "k")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestApplyOutcomes(t *testing.T) {
	b1 := inline("b", schema.Clock{"b": 1}, 100, "one")
	b2 := inline("b", schema.Clock{"b": 2}, 200, "two")
	cases := []struct {
		name    string
		setup   func(r *rig)
		rec     *schema.Record
		outcome schema.Outcome
		err     error
		calls   []string
		holds   string // version id held afterwards ("" = none)
		body    string // local body afterwards ("" = absent)
	}{
		{name: "new key", rec: b1, outcome: schema.Apply, calls: []string{`put(match="",none=true)`}, holds: b1.Version.ID, body: "one"},
		{name: "duplicate", setup: func(r *rig) { r.apply(t, b1) }, rec: b1, outcome: schema.Skip, holds: b1.Version.ID, body: "one"},
		{name: "stale", setup: func(r *rig) { r.apply(t, b2) }, rec: b1, outcome: schema.Skip, holds: b2.Version.ID, body: "two"},
		{name: "overwrite", setup: func(r *rig) { r.apply(t, b1) }, rec: b2, outcome: schema.Apply,
			calls: []string{`put(match="local-1",none=false)`}, holds: b2.Version.ID, body: "two"},
		{name: "delete", setup: func(r *rig) { r.apply(t, b1) }, rec: tombstone("b", schema.Clock{"b": 2}, 300), outcome: schema.Apply,
			calls: []string{"head", "delete"}, holds: schema.VersionID("b", "bkt", "k", 2)},
		{name: "delete of an absent key", rec: tombstone("b", schema.Clock{"b": 1}, 300), outcome: schema.Apply,
			calls: []string{"head"}, holds: schema.VersionID("b", "bkt", "k", 1)},
		{name: "transient store failure keeps the intent", setup: func(r *rig) { r.s3.fail["put"] = errors.New("connection reset") },
			rec: b1, calls: []string{`put(match="",none=true)`}, err: errAny},
		{name: "not replicated", rec: &schema.Record{Bucket: "other", Key: "k"}, err: ErrNotReplicated},
		{name: "body unavailable", rec: &schema.Record{Schema: schema.RecordSchema, Bucket: "bkt", Key: "k",
			Version: schema.Version{ID: schema.VersionID("b", "bkt", "k", 1), Origin: "b", Clock: schema.Clock{"b": 1}, Size: 5, ETag: "x"}},
			calls: nil, err: ErrBodyUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, BucketPolicy{})
			if c.setup != nil {
				c.setup(r)
			}
			r.s3.calls = nil
			d, err := r.a.Apply(context.Background(), c.rec)
			if (c.err == nil) != (err == nil) || (c.err != nil && c.err != errAny && !errors.Is(err, c.err)) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if fmt.Sprint(r.s3.calls) != fmt.Sprint(c.calls) {
				t.Fatalf("store calls %v, want %v", r.s3.calls, c.calls)
			}
			if err != nil {
				if c.err == errAny && r.entry(t).Applying == nil {
					t.Fatal("a failed write must leave its apply intent for recovery")
				}
				return
			}
			e := r.entry(t)
			if d.Outcome != c.outcome || e.Held.ID != c.holds || e.Applying != nil {
				t.Fatalf("outcome %v holds %q applying %v, want %v %q", d.Outcome, e.Held.ID, e.Applying, c.outcome, c.holds)
			}
			if got := r.s3.objs["k"].body; got != c.body {
				t.Fatalf("local body %q, want %q", got, c.body)
			}
			if c.body != "" {
				if v, ok := schema.Replica("bkt", "k", r.s3.objs["k"].meta, int64(len(c.body))); !ok || v.ID != c.holds {
					t.Fatalf("the replica write carries no marker of %s: %v", c.holds, r.s3.objs["k"].meta)
				}
			}
		})
	}
}

var errAny = errors.New("any error")

func (r *rig) apply(t *testing.T, rec *schema.Record) {
	t.Helper()
	if _, err := r.a.Apply(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

func TestApplyRacingLocalWriteIsRecordedThenDecided(t *testing.T) {
	r := newRig(t, BucketPolicy{})
	b1 := inline("b", schema.Clock{"b": 1}, 100, "one")
	r.s3.onPut = func() { // a user writes the key at this site just before the replica lands
		r.s3.objs["k"] = memObject{etag: "user", body: "user"}
		r.s3.onPut = nil
	}
	d, err := r.a.Apply(context.Background(), b1)
	if err != nil {
		t.Fatal(err)
	}
	e := r.entry(t)
	if r.local.reconciles != 1 || !d.Conflict {
		t.Fatalf("the racing local write must be recorded (reconciles %d) and decided as a conflict (%+v)", r.local.reconciles, d)
	}
	if len(r.log.entries) != 1 || e.Clock["a"] != 1 || e.Clock["b"] != 1 {
		t.Fatalf("conflict log %v, clock %s", r.log.entries, e.Clock)
	}
}

func TestApplyGivesUpOnALocalObjectThatKeepsChanging(t *testing.T) {
	r := newRig(t, BucketPolicy{})
	n := 0
	r.s3.onPut = func() { n++; r.s3.objs["k"] = memObject{etag: fmt.Sprintf("user-%d", n), body: "user"} }
	_, err := r.a.Apply(context.Background(), inline("b", schema.Clock{"b": 1}, 9000, "one"))
	if !errors.Is(err, ErrLocalChanging) || r.local.reconciles != 5 {
		t.Fatalf("err %v after %d reconciles, want ErrLocalChanging after 5", err, r.local.reconciles)
	}
}

func TestApplyConflictsByPolicy(t *testing.T) {
	mine := func(r *rig) {
		r.s3.objs["k"] = memObject{etag: "mine", body: "mine"}
		if err := r.local.Reconcile(context.Background(), "bkt", "k"); err != nil {
			t.Fatal(err)
		}
	}
	newer := inline("b", schema.Clock{"b": 1}, 9000, "theirs") // concurrent with a's version (TS 5000)
	older := inline("b", schema.Clock{"b": 1}, 10, "theirs")
	cases := []struct {
		name    string
		pol     BucketPolicy
		rec     *schema.Record
		outcome schema.Outcome
		err     error
		body    string
		kept    bool
	}{
		{"record wins", BucketPolicy{}, newer, schema.ApplyWinner, nil, "theirs", false},
		{"held wins", BucketPolicy{}, older, schema.KeepLocal, nil, "mine", false},
		{"loser kept", BucketPolicy{KeepLosers: true, LosersPrefix: "losers/"}, newer, schema.ApplyWinner, nil, "theirs", true},
		{"parked", BucketPolicy{Policy: schema.Policy{Mode: schema.ModeManual}}, newer, schema.Park, ErrParked, "mine", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, c.pol)
			mine(r)
			before := r.entry(t)
			d, err := r.a.Apply(context.Background(), c.rec)
			if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if d.Outcome != c.outcome && c.err == nil {
				t.Fatalf("outcome %v, want %v", d.Outcome, c.outcome)
			}
			if got := r.s3.objs["k"].body; got != c.body || len(r.log.entries) != 1 {
				t.Fatalf("body %q (want %q), %d conflict entries", got, c.body, len(r.log.entries))
			}
			loser := r.log.entries[0].LoserKeptAs
			if _, ok := r.s3.objs[loser]; ok != c.kept {
				t.Fatalf("loser copy at %q present %v, want %v", loser, ok, c.kept)
			}
			if c.err != nil && r.entry(t).Clock.Compare(before.Clock) != schema.Equal {
				t.Fatal("a parked record must change nothing, not even the clock")
			}
		})
	}
}

func TestApplyRecoversFirstAndSupersedesDeadLetters(t *testing.T) {
	r := newRig(t, BucketPolicy{})
	if err := r.a.MarkDead("bkt", "k", "b.x.1"); err != nil {
		t.Fatal(err)
	}
	if err := r.a.MarkDead("bkt", "k", "b.x.1"); err != nil || len(r.entry(t).Dead) != 1 {
		t.Fatalf("a dead letter is marked once: %v %v", err, r.entry(t).Dead)
	}
	wrote := 0
	r.a.Hooks.AfterWrite = func(string, string) {
		wrote++
		if r.entry(t).Applying == nil {
			t.Fatal("between the S3 write and the commit the apply intent must be durable")
		}
	}
	r.apply(t, inline("b", schema.Clock{"b": 2}, 100, "two"))
	if r.local.recovers != 1 || wrote != 1 || r.entry(t).Dead != nil {
		t.Fatalf("recovers %d, AfterWrite %d, dead %v", r.local.recovers, wrote, r.entry(t).Dead)
	}
}

func TestKeptLocalConflictIsLoggedEvenIfTheFirstLogFails(t *testing.T) {
	r := newRig(t, BucketPolicy{})
	r.s3.objs["k"] = memObject{etag: "mine", body: "mine"}
	if err := r.local.Reconcile(context.Background(), "bkt", "k"); err != nil {
		t.Fatal(err)
	}
	older := inline("b", schema.Clock{"b": 1}, 10, "theirs")
	r.log.fail = errors.New("broker unavailable")
	if _, err := r.a.Apply(context.Background(), older); err == nil {
		t.Fatal("a conflict log failure must fail the apply (it is retried)")
	}
	if r.entry(t).Clock["b"] != 0 {
		t.Fatal("the clock merged before the conflict was logged: a retry would skip the record and the conflict would never be logged")
	}
	d, err := r.a.Apply(context.Background(), older)
	if err != nil || d.Outcome != schema.KeepLocal || len(r.log.entries) != 1 || r.entry(t).Clock["b"] != 1 {
		t.Fatalf("retry: %v %v, %d conflict entries, clock %s", d.Outcome, err, len(r.log.entries), r.entry(t).Clock)
	}
}

// A store that checks a copy's source condition and then reads the source
// again (rclone serve s3) copies a local overwrite landing in between: the
// loser's copy then holds the overwrite's bytes, and was published as a
// kept loser no conflict made (the mixed lab's agent-crash workload). The
// copy is removed again and the apply starts over: the overwrite is
// recorded, decided, and kept as the loser it is.
func TestLoserCopyRacedByALocalWriteIsRemoved(t *testing.T) {
	const mineETag, userETag = "11111111111111111111111111111111", "22222222222222222222222222222222"
	r := newRig(t, BucketPolicy{KeepLosers: true, LosersPrefix: "losers/"})
	r.s3.objs["k"] = memObject{etag: mineETag, body: "mine"}
	if err := r.local.Reconcile(context.Background(), "bkt", "k"); err != nil {
		t.Fatal(err)
	}
	var badCopy string
	r.s3.onCopy = func() {
		r.s3.onCopy = nil
		r.s3.objs["k"] = memObject{etag: userETag, body: "user"}
		badCopy = r.log.entries[0].LoserKeptAs
	}
	if _, err := r.a.Apply(context.Background(), inline("b", schema.Clock{"b": 1}, 9000, "theirs")); err != nil {
		t.Fatal(err)
	}
	if badCopy == "" {
		t.Fatal("the test raced no copy")
	}
	if got := r.s3.objs["k"].body; got != "theirs" {
		t.Fatalf("final body %q, want theirs", got)
	}
	// The copy of "user" made as the first loser's was removed before the
	// apply went on: a delete follows the first copy, before any put.
	i := slices.Index(r.s3.calls, "copy")
	rest := r.s3.calls[i+1:]
	if d, p := slices.Index(rest, "delete"), slices.IndexFunc(rest, func(c string) bool { return strings.HasPrefix(c, "put") }); d < 0 || (p >= 0 && p < d) {
		t.Fatalf("calls %v: the copy of other bytes was not removed before the apply went on", r.s3.calls)
	}
	if len(r.log.entries) != 2 || r.local.reconciles < 2 {
		t.Fatalf("%d conflict entries, %d reconciles: the overwrite was not recorded and decided", len(r.log.entries), r.local.reconciles)
	}
	if kept := r.s3.objs[r.log.entries[1].LoserKeptAs]; kept.body != "user" {
		t.Fatalf("the overwrite's loser copy holds %q, want user", kept.body)
	}
}
