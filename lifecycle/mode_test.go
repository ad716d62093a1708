package lifecycle

import (
	"errors"
	"testing"

	"github.com/s3mesh/s3mesh/schema"
)

var (
	archivePol = BucketPolicy{SiteMode: ModeArchive}
	replicaPol = BucketPolicy{SiteMode: ModeReplica}
)

// applied is the entry after rec's effects succeeded (etag: what the store
// answered).
func applied(t *testing.T, e Entry, in Receive, etag string) Entry {
	t.Helper()
	st := step(t, ma, e, in)
	if st.Next != Feed || st.Err != nil {
		t.Fatalf("receive %s: %+v", in.Record.Version.ID, st)
	}
	w := step(t, ma, st.Entry, Written{Record: in.Record, ETag: etag})
	if w.Result != Applied {
		t.Fatalf("written: %+v", w)
	}
	return w.Entry
}

// An archive site keeps the object a peer's delete removes elsewhere,
// decides later records against the tombstone as every site does, takes
// overwrites, and never publishes the kept object, in any mode.
func TestArchiveKeepsWhatPeersDelete(t *testing.T) {
	put := ver("b", schema.Clock{"b": 1}, 500, false)
	del := ver("b", schema.Clock{"b": 2}, 600, true)
	again := ver("c", schema.Clock{"b": 2, "c": 1}, 700, false)
	held := applied(t, Entry{}, Receive{Record: rec(put), Policy: archivePol}, "local-1")

	// The positive control: an active site deletes.
	if st := step(t, ma, held, Receive{Record: rec(del)}); kinds(st.Effects)[0] != "delete" {
		t.Fatalf("active site: %v, want a Delete", kinds(st.Effects))
	}
	st := step(t, ma, held, Receive{Record: rec(del), Policy: archivePol})
	if st.Result != Kept || !st.Persist || st.Next != Done {
		t.Fatalf("archive: %+v, want the delete kept", st)
	}
	for _, ef := range st.Effects {
		if Changes(ef) {
			t.Fatalf("archive: effect %T changes the store", ef)
		}
	}
	kept := st.Entry
	if kept.Held.ID != del.ID || !kept.Kept || kept.LocalETag != "local-1" || kept.Clock.Compare(del.Clock) != schema.Equal || !kept.Stored() {
		t.Fatalf("kept entry %+v", kept)
	}
	if s := step(t, ma, kept, Receive{Record: rec(del), Policy: archivePol}); s.Result != Skipped {
		t.Fatalf("the delete again: %v, want skipped (I3)", s.Result)
	}
	local := obj("local-1", 10)
	local.Meta = schema.ReplicaMeta(tk.Bucket, tk.Key, put)
	for _, mode := range []Mode{ModeArchive, ModeActive} {
		if s := step(t, ma, kept, Observe{Object: local, SiteMode: mode}); s.Result != Unchanged || s.Persist || len(s.Effects) > 0 {
			t.Fatalf("observing the kept object in mode %s: %+v, want unchanged", mode, s)
		}
	}
	if kept.Collectable(now+1e12, 1) {
		t.Fatal("the tombstone of a kept object is collectable: the entry would forget the object is not a local write")
	}
	// A put after the delete overwrites the kept object.
	st = step(t, ma, kept, Receive{Record: rec(again), Policy: archivePol})
	p, ok := st.Effects[len(st.Effects)-1].(Put)
	if !ok || p.IfMatch != "local-1" || p.IfNoneMatch {
		t.Fatalf("overwrite of the kept object: %+v", st.Effects)
	}
	after := step(t, ma, st.Entry, Written{Record: rec(again), ETag: "local-2"}).Entry
	if after.Kept || after.Held.ID != again.ID || after.LocalETag != "local-2" {
		t.Fatalf("after the overwrite: %+v", after)
	}
	// A delete of a key the archive never held is what it is anywhere.
	if s := step(t, ma, Entry{}, Receive{Record: rec(del), Policy: archivePol}); kinds(s.Effects)[0] != "check-absent" {
		t.Fatalf("delete of an absent key at an archive: %v", kinds(s.Effects))
	}
}

// A local write at a site whose bucket publishes nothing is drift: recorded
// once, never published; a peer's record replaces it.
func TestReplicaDrift(t *testing.T) {
	put := ver("b", schema.Clock{"b": 1}, 500, false)
	held := applied(t, Entry{}, Receive{Record: rec(put), Policy: replicaPol}, "local-1")
	echo := obj("local-1", 10)
	echo.Meta = schema.ReplicaMeta(tk.Bucket, tk.Key, put)
	if s := step(t, ma, held, Observe{Object: echo, SiteMode: ModeReplica}); s.Result != Replica || s.Persist {
		t.Fatalf("the replica write's echo: %+v", s)
	}
	// The positive control: an active site publishes the same write.
	if s := step(t, ma, held, Observe{Object: obj("user", 10)}); len(s.Effects) != 1 {
		t.Fatalf("active site: %+v, want a publish", s)
	} else if _, ok := s.Effects[0].(Publish); !ok {
		t.Fatalf("active site: %T, want a publish", s.Effects[0])
	}
	for _, mode := range []Mode{ModeReplica, ModeArchive} {
		st := step(t, ma, held, Observe{Object: obj("user", 10), SiteMode: mode})
		if st.Result != Drift || !st.Persist || st.Entry.Pending != nil || !st.Entry.Drift || st.Entry.LocalETag != "user" {
			t.Fatalf("%s: %+v, want drift recorded", mode, st)
		}
		for _, ef := range st.Effects {
			if Changes(ef) {
				t.Fatalf("%s: effect %T", mode, ef)
			}
		}
		if st.Entry.Clock.Compare(held.Clock) != schema.Equal || st.Entry.Held.ID != put.ID {
			t.Fatalf("%s: drift moved the clock or the held version: %+v", mode, st.Entry)
		}
	}
	drift := step(t, ma, held, Observe{Object: obj("user", 10), SiteMode: ModeReplica}).Entry
	if s := step(t, ma, drift, Observe{Object: obj("user", 10), SiteMode: ModeReplica}); s.Result != Unchanged || s.Persist {
		t.Fatalf("the same drift again: %+v", s)
	}
	// Resolving a conflict publishes; a replica refuses.
	if s := step(t, ma, drift, Observe{Object: obj("user", 10), SiteMode: ModeReplica, Force: true}); !errors.Is(s.Err, ErrNotPublishing) {
		t.Fatalf("forced publish at a replica: %+v", s)
	}
	// A peer's overwrite replaces the drifted object, a peer's delete
	// removes it.
	next := ver("c", schema.Clock{"b": 1, "c": 1}, 600, false)
	st := step(t, ma, drift, Receive{Record: rec(next), Policy: replicaPol})
	if p, ok := st.Effects[0].(Put); !ok || p.IfMatch != "user" {
		t.Fatalf("overwrite over drift: %+v", st.Effects)
	}
	if w := step(t, ma, st.Entry, Written{Record: rec(next), ETag: "local-2"}); w.Entry.Drift {
		t.Fatalf("drift stays after the overwrite: %+v", w.Entry)
	}
	del := ver("c", schema.Clock{"b": 1, "c": 1}, 600, true)
	if st := step(t, ma, drift, Receive{Record: rec(del), Policy: replicaPol}); kinds(st.Effects)[0] != "delete" || st.Effects[0].(Delete).IfMatch != "user" {
		t.Fatalf("delete over drift: %+v", st.Effects)
	}
	// A local delete of the held object is drift too; the peer's next
	// put then creates the object again.
	gone := step(t, ma, held, Observe{SiteMode: ModeReplica}).Entry
	if !gone.Drift || gone.Stored() {
		t.Fatalf("local delete at a replica: %+v", gone)
	}
	if st := step(t, ma, gone, Receive{Record: rec(next), Policy: replicaPol}); !st.Effects[0].(Put).IfNoneMatch {
		t.Fatalf("put over a locally deleted object: %+v", st.Effects)
	}
	// A new key written at the replica and deleted again: no drift left.
	created := step(t, ma, Entry{}, Observe{Object: obj("new", 3), SiteMode: ModeReplica}).Entry
	if !created.Drift {
		t.Fatalf("new local key: %+v", created)
	}
	if s := step(t, ma, created, Observe{SiteMode: ModeReplica}); s.Entry.Drift || s.Entry.Stored() {
		t.Fatalf("new local key deleted again: %+v", s.Entry)
	}
}

// After a replica becomes active, its drift is not published by itself; a
// new local write is, and the entry then describes the published version.
func TestDriftAfterModeChange(t *testing.T) {
	put := ver("b", schema.Clock{"b": 1}, 500, false)
	held := applied(t, Entry{}, Receive{Record: rec(put), Policy: replicaPol}, "local-1")
	drift := step(t, ma, held, Observe{Object: obj("user", 10), SiteMode: ModeReplica}).Entry
	if s := step(t, ma, drift, Observe{Object: obj("user", 10)}); s.Result != Unchanged || s.Persist {
		t.Fatalf("drift observed in active mode: %+v", s)
	}
	st := step(t, ma, drift, Observe{Object: obj("user-2", 10)})
	pub, ok := st.Effects[0].(Publish)
	if !ok {
		t.Fatalf("a new write in active mode: %+v", st)
	}
	e := step(t, ma, st.Entry, PublishAcked{Publish: pub}).Entry
	if e.Drift || e.Kept || e.LocalETag != "user-2" || e.Held.ID != pub.Record.Version.ID {
		t.Fatalf("after the publish: %+v", e)
	}
}
