package lifecycle

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/s3mesh/s3mesh/schema"
)

// modeSite is one site of the property below: a state entry and the
// store's one object (etag "" for none), driven by Drive.
type modeSite struct {
	pol     BucketPolicy
	e       Entry
	etag    string
	deletes int // Delete effects carried out
}

func (s *modeSite) exec(t *rapid.T, rec *schema.Record) Executor {
	return Executor{
		Persist: func(e Entry, _ bool) error { s.e = e; return nil },
		Now:     func() int64 { return now },
		Execute: func(effs []Effect) (Input, error) {
			var etag string
			wrote := false
			for _, ef := range effs {
				switch ef := ef.(type) {
				case Put:
					if (ef.IfNoneMatch && s.etag != "") || (!ef.IfNoneMatch && s.etag != ef.IfMatch) {
						return Refused{}, nil
					}
					s.etag, etag, wrote = "local-"+rec.Version.ID, "local-"+rec.Version.ID, true
				case Delete:
					if s.etag == "" || s.etag != ef.IfMatch {
						return Refused{}, nil
					}
					s.etag, wrote = "", true
					s.deletes++
				case CheckAbsent:
					if s.etag != "" {
						return Refused{}, nil
					}
					wrote = true
				case Note:
				default:
					t.Fatalf("unexpected effect %T", ef)
				}
			}
			if !wrote {
				return nil, nil
			}
			return Written{Record: rec, ETag: etag}, nil
		},
	}
}

func (s *modeSite) receive(t *rapid.T, rec *schema.Record) Step {
	st, err := Drive(ma, tk, s.e, Receive{Record: rec, Policy: s.pol}, s.exec(t, rec))
	if err != nil || st.Err != nil || st.Next == Again {
		t.Fatalf("receive %s: %+v %v", rec.Version.ID, st, err)
	}
	return st
}

// Whatever order a key's records arrive in, any number of times: a replica
// ends where an active receiver ends; an archive decides every record as
// they do (same held version and clock), never deletes, holds the last
// put's bytes while the key lives and the object it had when it is
// deleted, and never publishes what it kept.
func TestModesProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 8).Draw(t, "versions")
		var recs []*schema.Record
		clock := schema.Clock{}
		lastPut := -1
		for i := range n {
			origin := rapid.SampledFrom([]string{"b", "c"}).Draw(t, fmt.Sprintf("origin%d", i))
			clock = clock.Bump(origin)
			del := i > 0 && rapid.Bool().Draw(t, fmt.Sprintf("delete%d", i))
			recs = append(recs, rec(ver(origin, clock.Clone(), int64(100+i), del)))
			if !del {
				lastPut = i
			}
		}
		order := rapid.SliceOfN(rapid.IntRange(0, n-1), n, 3*n).Draw(t, "deliveries")
		order = append(order, rapid.Permutation(func() []int {
			all := make([]int, n)
			for i := range all {
				all[i] = i
			}
			return all
		}()).Draw(t, "all once")...)
		active := &modeSite{}
		replica := &modeSite{pol: replicaPol}
		archive := &modeSite{pol: archivePol}
		for _, i := range recs {
			active.receive(t, i)
		}
		archiveHeld := false // the archive held a live object at some point
		for _, i := range order {
			replica.receive(t, recs[i])
			archive.receive(t, recs[i])
			archiveHeld = archiveHeld || archive.etag != ""
		}
		last := recs[n-1].Version
		for name, s := range map[string]*modeSite{"replica": replica, "archive": archive} {
			if s.e.Held.ID != last.ID || s.e.Clock.Compare(active.e.Clock) != schema.Equal {
				t.Fatalf("%s holds %s %s, the active receiver %s %s", name, s.e.Held.ID, s.e.Clock, last.ID, active.e.Clock)
			}
		}
		if replica.etag != active.etag {
			t.Fatalf("replica store %q, active %q", replica.etag, active.etag)
		}
		if archive.deletes != 0 {
			t.Fatalf("the archive deleted %d times", archive.deletes)
		}
		switch {
		case !last.Deleted && archive.etag != "local-"+last.ID:
			t.Fatalf("archive holds %q, want the last put %s", archive.etag, last.ID)
		case last.Deleted && archiveHeld && (archive.etag == "" || !archive.e.Kept):
			t.Fatalf("archive lost the object at the delete: etag %q entry %+v", archive.etag, archive.e)
		case last.Deleted && lastPut < 0 && archive.etag != "":
			t.Fatalf("archive holds %q though no put was made", archive.etag)
		}
		// Observed, in any mode, the archive's object is nothing new.
		o := Object{Exists: archive.etag != "", ETag: archive.etag, Size: 10}
		for _, mode := range []Mode{ModeArchive, ModeActive} {
			if st := ma.Step(tk, archive.e, Observe{Object: o, SiteMode: mode}, now); st.Result != Unchanged && st.Result != Replica {
				t.Fatalf("observing the archive's store in mode %s: %+v", mode, st)
			}
		}
	})
}
