package producer

import (
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// A publish a crash interrupted goes out again with its body inline while
// the store still holds that version (the intent keeps no body), and
// without it, but still goes out, once the object changed: the first
// attempt may have left the site.
func TestRepublishReadsTheBodyAgain(t *testing.T) {
	f := newVersityFixture(t, 11)
	p, pub := f.producer()
	for _, tc := range []struct {
		name    string
		changed bool
	}{{"object unchanged", false}, {"object overwritten since", true}} {
		t.Run(tc.name, func(t *testing.T) {
			k := "republish/" + strings.ReplaceAll(tc.name, " ", "-")
			etag := f.put(t, k, "first bytes")
			v := schema.Version{ID: schema.VersionID("a", "demo", k, 1), Origin: "a", Clock: schema.Clock{"a": 1},
				TS: 1_700_000_000_000, Size: int64(len("first bytes")), ETag: etag}
			pending := schema.Record{Schema: schema.RecordSchema, Bucket: "demo", Key: k, Version: v, MadeAt: v.TS}
			if tc.changed {
				f.put(t, k, "other bytes, longer")
			}
			e := state.Entry{Pending: &pending}
			before := len(pub.recs)
			if err := p.RecoverLocked(f.ctx, "demo", k, &e); err != nil {
				t.Fatal(err)
			}
			if e.Pending != nil || e.Held.ID != v.ID {
				t.Fatalf("after the republish: pending %v, held %s (want %s)", e.Pending, e.Held.ID, v.ID)
			}
			if got := len(pub.recs) - before; got != 1 {
				t.Fatalf("%d records republished, want 1", got)
			}
			rec, err := f.ring.Open(pub.recs[len(pub.recs)-1], "a")
			if err != nil {
				t.Fatal(err)
			}
			if rec.Version.ID != v.ID || rec.Inline == tc.changed || (!tc.changed && string(rec.Body) != "first bytes") {
				t.Fatalf("republished %s inline=%v body %q; want %s with its body inline=%v", rec.Version.ID, rec.Inline, rec.Body, v.ID, !tc.changed)
			}
		})
	}
}

// A tombstone's apply copies this site's losing version before it deletes
// it; after a crash, the producer looks at the copy too: none there means a
// user deleted the key before the apply could, and that delete is this
// site's own (the intent is dropped, not taken for the replica delete).
func TestRecoverTombstoneApplyLooksAtTheLoserCopy(t *testing.T) {
	f := newVersityFixture(t, 12)
	p, _ := f.producer()
	for _, copied := range []bool{false, true} {
		k := map[bool]string{false: "tomb/deleted-by-a-user", true: "tomb/copied-then-deleted"}[copied]
		mine := schema.Version{ID: schema.VersionID("a", "demo", k, 1), Origin: "a", Clock: schema.Clock{"a": 1}, TS: 1, Size: 4, ETag: "x"}
		tomb := schema.Version{ID: schema.VersionID("b", "demo", k, 1), Origin: "b", Clock: schema.Clock{"b": 1}, TS: 2, Deleted: true}
		lk := schema.LoserKey(".losers/", "demo", k, mine)
		if copied {
			f.put(t, lk, "mine")
		}
		e := state.Entry{Clock: mine.Clock, Held: mine, LocalETag: "x", Applying: &tomb, LoserCopy: lk}
		if err := p.RecoverLocked(f.ctx, "demo", k, &e); err != nil {
			t.Fatal(err)
		}
		if e.Outstanding() || e.LoserCopy != "" || (e.Held.ID == tomb.ID) != copied {
			t.Fatalf("copy made %v: held %s, outstanding %v; want the tombstone taken only when the copy is there", copied, e.Held.ID, e.Outstanding())
		}
	}
}

func (f *versityFixture) put(t *testing.T, key, data string) string {
	t.Helper()
	etag, err := f.s3.Put(f.ctx, s3io.PutInput{Bucket: "demo", Key: key, Body: strings.NewReader(data), Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	return etag
}
