package lifecycle

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/schema"
)

var tk = Key{Bucket: "bkt", Key: "k"}

var ma = Machine{Site: "a", InlineThreshold: 100}

const now = int64(1_000_000)

// ver is a version of tk written at origin with clock c.
func ver(origin string, c schema.Clock, ts int64, del bool) schema.Version {
	v := schema.Version{ID: schema.VersionID(origin, tk.Bucket, tk.Key, c[origin]), Origin: origin, Clock: c, TS: ts, Deleted: del}
	if !del {
		v.Size, v.ETag = 10, "etag-"+v.ID
	}
	return v
}

func rec(v schema.Version) *schema.Record {
	return &schema.Record{Schema: schema.RecordSchema, Bucket: tk.Bucket, Key: tk.Key, Version: v}
}

// holding is the entry of a site that holds v as its local object.
func holding(v schema.Version) Entry {
	e := Entry{Clock: v.Clock.Clone(), Held: v, Attrs: schema.Attrs{}.Digest()}
	if !v.Deleted {
		e.LocalETag = v.ETag
	}
	return e
}

func obj(etag string, size int64) Object {
	return Object{Exists: true, ETag: etag, Size: size, LastModified: now - 5}
}

// step runs one Step and checks the properties every Step must have: the
// input entry is not modified, and every effect that changes the outside
// world is covered by a persisted intent (I5).
func step(t *testing.T, m Machine, e Entry, in Input) Step {
	t.Helper()
	before := e.clone()
	st := m.Step(tk, e, in, now)
	if !reflect.DeepEqual(before, e) {
		t.Fatalf("Step modified its input entry: %+v -> %+v", before, e)
	}
	checkIntents(t, st)
	return st
}

func checkIntents(t *testing.T, st Step) {
	t.Helper()
	for _, ef := range st.Effects {
		switch ef := ef.(type) {
		case Publish:
			if ef.Republish {
				continue // the intent is the entry's own Pending, already durable
			}
			if !st.Persist || st.Entry.Pending == nil || st.Entry.Pending.Version.ID != ef.Record.Version.ID {
				t.Fatalf("publish of %s without a persisted pending intent: %+v", ef.Record.Version.ID, st)
			}
		case Put, Delete, CopyLoser, Trash:
			if !st.Persist || st.Entry.Applying == nil {
				t.Fatalf("%T without a persisted apply intent: %+v", ef, st)
			}
		}
	}
}

func TestObserve(t *testing.T) {
	held := ver("a", schema.Clock{"a": 1}, 500, false)
	replica := ver("b", schema.Clock{"a": 1, "b": 1}, 600, false)
	replicaObj := obj("etag-local", 10)
	replicaObj.Meta = schema.ReplicaMeta(tk.Bucket, tk.Key, replica)
	forged := obj("etag-forged", 20) // a user's PUT with the replica's marker copied
	forged.Meta = schema.ReplicaMeta(tk.Bucket, tk.Key, replica)
	otherMarker := obj("etag-local", 10) // a marker of a version the site never held, on its bytes
	otherMarker.Meta = schema.ReplicaMeta(tk.Bucket, tk.Key, ver("b", schema.Clock{"a": 1, "b": 2}, 700, false))
	metaChanged := obj(held.ETag, 10)
	metaChanged.Attrs = schema.Attrs{Meta: map[string]string{"color": "red"}}
	cases := []struct {
		name    string
		e       Entry
		in      Observe
		persist bool
		publish bool // a new record is pending and published
		deleted bool // ... as a tombstone
		result  Result
		err     error
	}{
		{name: "absent and never held", in: Observe{}, result: Unchanged},
		{name: "new object", in: Observe{Object: obj("e1", 10)}, persist: true, publish: true},
		{name: "same object", e: holding(held), in: Observe{Object: obj(held.ETag, 10)}, result: Unchanged},
		{name: "metadata-only overwrite", e: holding(held), in: Observe{Object: metaChanged}, persist: true, publish: true},
		{name: "overwrite", e: holding(held), in: Observe{Object: obj("e2", 10)}, persist: true, publish: true},
		{name: "deleted", e: holding(held), in: Observe{}, persist: true, publish: true, deleted: true},
		{name: "deleted but bucket gone", e: holding(held), in: Observe{BucketGone: true}, err: ErrNoBucket},
		{name: "deleted while deletes held", e: holding(held), in: Observe{DeletesHeld: true}, result: Held},
		{name: "delete event while deletes held", e: holding(held), in: Observe{DeletesHeld: true, DeleteEvent: true}, result: Held},
		// A marker is trusted only on the object the state recorded for the
		// version it names: any other marked object is a local write (a user
		// copied a marker), published like any other, its clock not merged.
		{name: "replica the state lost", e: holding(held), in: Observe{Object: replicaObj}, persist: true, publish: true},
		{name: "replica the state knows", e: Entry{Clock: replica.Clock, Held: replica, LocalETag: "etag-local"}, in: Observe{Object: replicaObj}, result: Replica},
		{name: "copied marker of the held version, new bytes", e: Entry{Clock: replica.Clock, Held: replica, LocalETag: "etag-local"}, in: Observe{Object: forged}, persist: true, publish: true},
		{name: "copied marker of the held version, never recorded", e: Entry{Clock: replica.Clock, Held: replica}, in: Observe{Object: replicaObj}, persist: true, publish: true},
		{name: "copied marker of a version not held", e: Entry{Clock: replica.Clock, Held: replica, LocalETag: "etag-local"}, in: Observe{Object: otherMarker}, persist: true, publish: true},
		{name: "replica being applied", e: Entry{Clock: held.Clock, Held: held, LocalETag: held.ETag, Applying: &replica}, in: Observe{Object: replicaObj}, err: ErrOutstanding},
		{name: "intent outstanding", e: Entry{Pending: rec(held)}, in: Observe{Object: obj("e1", 10)}, err: ErrOutstanding},
		{name: "forced over a clock", e: holding(held), in: Observe{Object: obj(held.ETag, 10), Force: true, Over: schema.Clock{"b": 4}}, persist: true, publish: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := step(t, ma, c.e, c.in)
			if st.Persist != c.persist || !errors.Is(st.Err, c.err) {
				t.Fatalf("persist %v err %v, want %v %v", st.Persist, st.Err, c.persist, c.err)
			}
			if !c.publish {
				if st.Next != Done || st.Result != c.result || (c.err == nil && st.Entry.Pending != nil) {
					t.Fatalf("got next %v result %v pending %v, want done %v", st.Next, st.Result, st.Entry.Pending, c.result)
				}
				return
			}
			if st.Next != Feed || len(st.Effects) != 1 {
				t.Fatalf("want one publish and feed, got %+v", st)
			}
			pub := st.Effects[0].(Publish)
			v := pub.Record.Version
			want := c.e.Clock.Merge(c.in.Over).Bump("a")
			if v.Deleted != c.deleted || v.Clock.Compare(want) != schema.Equal || v.ID != schema.VersionID("a", tk.Bucket, tk.Key, want["a"]) {
				t.Fatalf("record %+v, want deleted=%v clock %s", v, c.deleted, want)
			}
			if v.TS <= c.e.Held.TS {
				t.Fatalf("origin time %d does not follow the replaced version's %d", v.TS, c.e.Held.TS)
			}
			if !c.deleted && (v.ETag != c.in.Object.ETag || v.Size != c.in.Object.Size) {
				t.Fatalf("record %+v is not of the observed object %+v", v, c.in.Object)
			}
			if pub.ReadInline != !c.deleted {
				t.Fatalf("ReadInline %v for a 10-byte object under a 100-byte threshold", pub.ReadInline)
			}
		})
	}
}

func TestPublishLifecycle(t *testing.T) {
	st := step(t, ma, Entry{}, Observe{Object: obj("e1", 500)})
	pub := st.Effects[0].(Publish)
	if pub.ReadInline {
		t.Fatal("a 500-byte body must not travel inline under a 100-byte threshold")
	}
	t.Run("acked", func(t *testing.T) {
		acked := step(t, ma, st.Entry, PublishAcked{Publish: pub})
		e := acked.Entry
		if !acked.Persist || acked.Result != Published || e.Pending != nil || e.Held.ID != pub.Record.Version.ID || e.LocalETag != "e1" {
			t.Fatalf("after the ack: %+v", acked)
		}
		again := step(t, ma, e, Observe{Object: obj("e1", 500)})
		if again.Result != Unchanged || again.Persist {
			t.Fatalf("observing the published object again: %+v", again)
		}
	})
	t.Run("object changed before the read", func(t *testing.T) {
		ch := step(t, ma, st.Entry, PublishChanged{})
		if !ch.Persist || ch.Next != Again || ch.Entry.Pending != nil || ch.Entry.Held.ID != "" {
			t.Fatalf("after PublishChanged: %+v", ch)
		}
	})
	t.Run("crash after the intent", func(t *testing.T) {
		rc := step(t, ma, st.Entry, Recover{})
		re, ok := rc.Effects[0].(Publish)
		if !ok || !re.Republish || re.Record.Version.ID != pub.Record.Version.ID || rc.Next != Feed {
			t.Fatalf("recover of a pending publish: %+v", rc)
		}
		acked := step(t, ma, rc.Entry, PublishAcked{Publish: re})
		if acked.Result != Recovered || acked.Entry.Pending != nil || acked.Entry.Held.ID != pub.Record.Version.ID {
			t.Fatalf("after the republish: %+v", acked)
		}
	})
	t.Run("crash after the intent of a small body", func(t *testing.T) {
		// The body is not in the intent: the republish reads it again, or
		// the record would depend on this site serving it later.
		for _, o := range []Object{obj("e2", 10), {}} {
			held := holding(ver("b", schema.Clock{"b": 1}, 1, false))
			small := step(t, ma, held, Observe{Object: o})
			rc := step(t, ma, small.Entry, Recover{})
			if re := rc.Effects[0].(Publish); !re.Republish || re.ReadInline != o.Exists {
				t.Fatalf("republish of a %d-byte body (exists %v): %+v", o.Size, o.Exists, re)
			}
		}
	})
	t.Run("stale ack", func(t *testing.T) {
		if s := step(t, ma, Entry{}, PublishAcked{Publish: pub}); !errors.Is(s.Err, ErrUnexpected) || s.Persist {
			t.Fatalf("an ack without a pending record: %+v", s)
		}
	})
}

func TestRecoverApplyIntent(t *testing.T) {
	put := ver("b", schema.Clock{"b": 1}, 700, false)
	del := ver("b", schema.Clock{"b": 2}, 800, true)
	marked := obj("local-etag", 10)
	marked.Meta = schema.ReplicaMeta(tk.Bucket, tk.Key, put)
	copiedMarker := obj("0123456789abcdef0123456789abcdef", 12) // other bytes, the marker copied
	copiedMarker.Meta = marked.Meta
	// A replica write of bytes with MD5 md5 (a single-part origin ETag),
	// seen before the store attached its metadata (rclone serve s3).
	const md5 = "00112233445566778899aabbccddeeff"
	putMD5 := put
	putMD5.ETag = md5
	multi := put
	multi.ETag = "00112233445566778899aabbccddeeff-2"
	cases := []struct {
		name     string
		applying schema.Version
		o        Object
		settled  bool
	}{
		{"put landed", put, marked, true},
		{"put never landed", put, Object{}, false},
		{"put overtaken by a local write", put, obj("other", 3), false},
		{"put overtaken by a user write carrying its marker", put, copiedMarker, false},
		{"put landed, its marker not attached yet", putMD5, obj(md5, 10), true},
		{"put landed, its marker not attached yet (ETag case)", putMD5, obj(strings.ToUpper(md5), 10), true},
		{"unmarked object of other bytes", putMD5, obj("ffeeddccbbaa99887766554433221100", 10), false},
		{"unmarked object of the ETag, another size", putMD5, obj(md5, 11), false},
		{"unmarked object, a multipart ETag", multi, obj(multi.ETag, 10), false},
		{"delete landed", del, Object{}, true},
		{"delete never landed", del, marked, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.applying
			e := Entry{Applying: &a}
			rc := step(t, ma, e, Recover{})
			if _, ok := rc.Effects[0].(Inspect); !ok || rc.Next != Feed {
				t.Fatalf("recover of an apply intent: %+v", rc)
			}
			st := step(t, ma, e, Inspected{Object: c.o})
			if !st.Persist || st.Entry.Applying != nil || st.Result != Recovered {
				t.Fatalf("settle: %+v", st)
			}
			if got := st.Entry.Held.ID == a.ID; got != c.settled {
				t.Fatalf("settled %v, want %v (%+v)", got, c.settled, st.Entry)
			}
		})
	}
	if st := step(t, ma, Entry{}, Recover{}); st.Next != Done || st.Persist || len(st.Effects) != 0 {
		t.Fatalf("recover with nothing outstanding: %+v", st)
	}
	// Settled from the unmarked object, the key is not a local change
	// while the marker is still missing, nor once the store attaches it.
	a := putMD5
	st := step(t, ma, Entry{Applying: &a}, Inspected{Object: obj(md5, 10)})
	withMarker := obj(md5, 10)
	withMarker.Meta = schema.ReplicaMeta(tk.Bucket, tk.Key, putMD5)
	for _, o := range []Object{obj(md5, 10), withMarker} {
		if ob := step(t, ma, st.Entry, Observe{Object: o}); ob.Result == Published || len(ob.Effects) != 0 {
			t.Fatalf("observe after settling from the unmarked object (meta %v): %+v", o.Meta, ob)
		}
	}
}

func TestIncarnationFloor(t *testing.T) {
	m := ma
	m.Floor = IncarnationFloor(7)
	old := holding(ver("a", schema.Clock{"a": 5, "b": 2}, 500, false))
	st := step(t, m, old, Observe{Object: obj("e2", 10)})
	v := st.Effects[0].(Publish).Record.Version
	if v.Clock["a"] != m.Floor+1 || IncarnationOf(v.Clock["a"]) != 7 || v.Clock["b"] != 2 {
		t.Fatalf("a write over a clock of an older incarnation: clock %s, want a:%d", v.Clock, m.Floor+1)
	}
	if v.Clock.Compare(old.Clock) != schema.After {
		t.Fatalf("the new version must follow the held one: %s vs %s", v.Clock, old.Clock)
	}
	cur := holding(ver("a", schema.Clock{"a": m.Floor + 3}, 500, false))
	st = step(t, m, cur, Observe{Object: obj("e3", 10)})
	if got := st.Effects[0].(Publish).Record.Version.Clock["a"]; got != m.Floor+4 {
		t.Fatalf("within an incarnation counters grow by one: got %d, want %d", got, m.Floor+4)
	}
}

// TestPublishOverFarFutureVersion: no origin time a peer gave the held
// version makes this site's own next write of the key unpublishable. The
// write follows it (held + 1 ms, saturating at the largest time), its record
// encodes, and a receiver whose clock is a little behind this site's finds
// it early (retried), not bad.
func TestPublishOverFarFutureVersion(t *testing.T) {
	maxFuture := schema.DefaultMaxFuture.Milliseconds()
	for _, tc := range []struct {
		name   string
		heldTS int64
		wantTS int64
	}{
		{"held just inside this site's bound", now + maxFuture - 1, now + maxFuture},
		{"held at this site's bound", now + maxFuture, now + maxFuture + 1},
		{"held at the largest time", math.MaxInt64, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := ver("b", schema.Clock{"b": 1}, tc.heldTS, false)
			st := step(t, ma, holding(held), Observe{Object: obj("e2", 10)})
			if st.Err != nil || len(st.Effects) != 1 {
				t.Fatalf("no publish over b's version: %+v", st)
			}
			r := st.Effects[0].(Publish).Record
			if r.Version.TS != tc.wantTS {
				t.Fatalf("origin time %d, want %d", r.Version.TS, tc.wantTS)
			}
			if _, err := r.Encode(); err != nil {
				t.Fatalf("this site's own write does not encode: %v", err)
			}
			if tc.heldTS == math.MaxInt64 {
				return
			}
			// A receiver 2 s behind this site's clock.
			l := schema.NewLimits([]string{"a", "b"}, time.UnixMilli(now-2000), 0)
			if err := r.ValidateFor(l); !errors.Is(err, schema.ErrEarly) || errors.Is(err, schema.ErrBadRecord) {
				t.Fatalf("at a receiver 2 s behind: %v, want early (not bad)", err)
			}
		})
	}
}
