package lifecycle

import (
	"fmt"
	"testing"

	"github.com/s3mesh/s3mesh/schema"
)

// TestReceiveTrash: which replica writes copy the held object to the trash
// first, under each mode.
func TestReceiveTrash(t *testing.T) {
	mine := ver("a", schema.Clock{"a": 1}, 500, false)
	over := ver("b", schema.Clock{"a": 1, "b": 1}, 600, false)
	tomb := ver("b", schema.Clock{"a": 1, "b": 1}, 600, true)
	fresh := ver("b", schema.Clock{"b": 1}, 600, false)
	newer := ver("b", schema.Clock{"b": 1}, 900, false) // concurrent with mine, wins under lww
	cases := []struct {
		name      string
		e         Entry
		v         schema.Version
		mode      TrashMode
		versioned bool
		effects   []string
	}{
		{"delete, deletes", holding(mine), tomb, TrashDeletes, false, []string{"trash", "delete"}},
		{"delete, all", holding(mine), tomb, TrashAll, false, []string{"trash", "delete"}},
		{"delete, none", holding(mine), tomb, TrashNone, false, []string{"delete"}},
		{"delete, versioned store", holding(mine), tomb, TrashDeletes, true, []string{"delete"}},
		{"overwrite, deletes", holding(mine), over, TrashDeletes, false, []string{"put"}},
		{"overwrite, all", holding(mine), over, TrashAll, false, []string{"trash", "put"}},
		{"overwrite, all, versioned store", holding(mine), over, TrashAll, true, []string{"put"}},
		{"new key, all", Entry{}, fresh, TrashAll, false, []string{"put"}},
		{"delete of an absent key, all", Entry{}, tomb, TrashAll, false, []string{"check-absent"}},
		{"delete over a tombstone, all", holding(ver("a", schema.Clock{"a": 1}, 500, true)), tomb, TrashAll, false, []string{"check-absent"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := step(t, ma, c.e, Receive{Record: rec(c.v), Policy: BucketPolicy{Trash: c.mode, Versioned: c.versioned}})
			if got := kinds(st.Effects); fmt.Sprint(got) != fmt.Sprint(c.effects) || st.Err != nil {
				t.Fatalf("effects %v (err %v), want %v", got, st.Err, c.effects)
			}
			for _, ef := range st.Effects {
				tr, ok := ef.(Trash)
				if !ok {
					continue
				}
				if tr.IfMatch != c.e.LocalETag || tr.Replaced.ID != c.e.Held.ID || tr.By.ID != c.v.ID || tr.At != now {
					t.Fatalf("trash %+v over entry %+v for %s", tr, c.e, c.v.ID)
				}
				if want := map[bool]string{true: schema.TrashOpDelete, false: schema.TrashOpOverwrite}[c.v.Deleted]; tr.Op() != want {
					t.Fatalf("op %q, want %q", tr.Op(), want)
				}
			}
		})
	}
	// A conflict's winner replaces the held loser: the copy comes once the
	// conflict is logged, with the write.
	pol := BucketPolicy{Trash: TrashAll}
	st := step(t, ma, holding(mine), Receive{Record: rec(newer), Policy: pol})
	lg := step(t, ma, st.Entry, Logged{Record: rec(newer), Policy: pol})
	if got := kinds(lg.Effects); fmt.Sprint(got) != "[trash put]" {
		t.Fatalf("winner over a held loser: effects %v, want [trash put]", got)
	}
}

// TestTrashCrashBetweenCopyAndWrite: the copy is covered by the apply
// intent; if the agent dies after the copy and before the write, recovery
// finds the held object still there, drops the intent, and the record
// received again copies again and writes: the copy is never missing and
// the write is never lost.
func TestTrashCrashBetweenCopyAndWrite(t *testing.T) {
	mine := ver("a", schema.Clock{"a": 1}, 500, false)
	tomb := ver("b", schema.Clock{"a": 1, "b": 1}, 600, true)
	pol := BucketPolicy{Trash: TrashDeletes}
	st := step(t, ma, holding(mine), Receive{Record: rec(tomb), Policy: pol})
	if !st.Persist || st.Entry.Applying == nil {
		t.Fatalf("no durable intent before the copy: %+v", st)
	}
	// Crash: the copy was made, the delete was not.
	r := step(t, ma, st.Entry, Recover{})
	if fmt.Sprint(kinds(r.Effects)) != "[other]" { // Inspect
		t.Fatalf("recover: %v", kinds(r.Effects))
	}
	in := step(t, ma, r.Entry, Inspected{Object: obj(mine.ETag, mine.Size)})
	if in.Entry.Applying != nil || in.Entry.Held.ID != mine.ID || in.Result != Recovered {
		t.Fatalf("settle after the crash: %+v", in)
	}
	again := step(t, ma, in.Entry, Receive{Record: rec(tomb), Policy: pol})
	if got := kinds(again.Effects); fmt.Sprint(got) != "[trash delete]" {
		t.Fatalf("redelivery after the crash: effects %v, want [trash delete]", got)
	}
	w := step(t, ma, again.Entry, Written{Record: rec(tomb)})
	if w.Result != Applied || !w.Entry.Held.Deleted {
		t.Fatalf("written: %+v", w)
	}
	// Redelivered once more after the apply: skipped, no second copy.
	if dup := step(t, ma, w.Entry, Receive{Record: rec(tomb), Policy: pol}); len(dup.Effects) != 0 || dup.Result != Skipped {
		t.Fatalf("duplicate after the apply: %+v", dup)
	}
}

func TestTrashModeString(t *testing.T) {
	for m, want := range map[TrashMode]string{TrashNone: "none", TrashDeletes: "deletes", TrashAll: "all"} {
		if m.String() != want {
			t.Errorf("%d: %q, want %q", m, m.String(), want)
		}
	}
}
