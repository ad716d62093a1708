package lifecycle

import (
	"testing"

	"github.com/s3mesh/s3mesh/schema"
)

func TestReceiveHoldsDeletes(t *testing.T) {
	mine := ver("a", schema.Clock{"a": 1}, 500, false)
	tomb := ver("b", schema.Clock{"a": 1, "b": 1}, 600, true)
	lateTomb := ver("b", schema.Clock{"b": 1}, 900, true)  // concurrent with mine, wins under lww
	earlyTomb := ver("b", schema.Clock{"b": 1}, 400, true) // concurrent with mine, loses under lww
	put := ver("b", schema.Clock{"a": 1, "b": 1}, 600, false)
	manual := BucketPolicy{Policy: schema.Policy{Mode: schema.ModeManual}}
	cases := []struct {
		name   string
		e      Entry
		v      schema.Version
		pol    BucketPolicy
		result Result
		first  string // the first effect, "" for none
	}{
		{"delete of a held object", holding(mine), tomb, BucketPolicy{}, Held, "hold"},
		{"delete winning a conflict", holding(mine), lateTomb, BucketPolicy{}, Held, "hold"},
		{"delete losing a conflict takes its course", holding(mine), earlyTomb, BucketPolicy{}, Unchanged, "log"},
		{"delete of an absent key takes its course", Entry{}, tomb, BucketPolicy{}, Unchanged, "check-absent"},
		// b's later put over its own earlier delete (another id: b's counter 2).
		{"stale delete is skipped", holding(ver("b", schema.Clock{"a": 1, "b": 2}, 600, false)), ver("b", schema.Clock{"b": 1}, 400, true), BucketPolicy{}, Skipped, ""},
		{"a put is never held", holding(mine), put, BucketPolicy{}, Unchanged, "put"},
		{"a parked delete stays parked", holding(mine), lateTomb, manual, Parked, "log"},
		{"an archive keeps the object: nothing to hold", holding(mine), tomb, BucketPolicy{SiteMode: ModeArchive}, Kept, "note"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := step(t, ma, c.e, Receive{Record: rec(c.v), Policy: c.pol, HoldDeletes: true})
			if st.Err != nil || st.Result != c.result {
				t.Fatalf("result %v err %v, want %v", st.Result, st.Err, c.result)
			}
			got := ""
			if len(st.Effects) > 0 {
				got = kinds(st.Effects)[0]
				if _, ok := st.Effects[0].(Hold); ok {
					got = "hold"
				}
			}
			if got != c.first {
				t.Fatalf("first effect %q (%v), want %q", got, kinds(st.Effects), c.first)
			}
			if c.result == Held {
				if st.Persist || st.Next != Done || len(st.Effects) != 1 {
					t.Fatalf("a held delete changes no entry and does nothing else: %+v", st)
				}
				if h := st.Effects[0].(Hold); h.Record.Version.ID != c.v.ID {
					t.Fatalf("held %s, want %s", h.Record.Version.ID, c.v.ID)
				}
			}
		})
	}
	// Without HoldDeletes the same delete applies.
	if st := step(t, ma, holding(mine), Receive{Record: rec(tomb)}); kinds(st.Effects)[0] != "delete" {
		t.Fatalf("delete not applied without the guard: %v", kinds(st.Effects))
	}
}

func TestSuperseded(t *testing.T) {
	del := ver("b", schema.Clock{"a": 1, "b": 2}, 600, true)
	cases := []struct {
		clock schema.Clock
		want  bool
	}{
		{schema.Clock{"a": 1, "b": 2}, true},         // the delete itself went through
		{schema.Clock{"a": 1, "b": 3}, true},         // a later write of the deleting site
		{schema.Clock{"a": 1, "b": 2, "c": 1}, true}, // a write made over the delete
		{schema.Clock{"a": 2, "b": 1}, false},        // concurrent: the delete still matters
		{schema.Clock{"a": 1}, false},                // before it
	}
	for _, c := range cases {
		if got := Superseded(c.clock, del); got != c.want {
			t.Errorf("Superseded(%v) = %v, want %v", c.clock, got, c.want)
		}
	}
}

func TestRefuse(t *testing.T) {
	mine := ver("a", schema.Clock{"a": 1}, 500, false)
	tomb := ver("b", schema.Clock{"a": 1, "b": 1}, 600, true)
	e := holding(mine)
	st := step(t, ma, e, Refuse{Object: obj(mine.ETag, mine.Size), Delete: tomb})
	if st.Err != nil || !st.Persist || st.Entry.Pending == nil || len(st.Effects) != 1 {
		t.Fatalf("refuse: want a pending publish, got %+v", st)
	}
	v := st.Entry.Pending.Version
	if v.Origin != "a" || v.Deleted || v.Clock.Compare(tomb.Clock) != schema.After || v.Clock["a"] != 2 || v.Clock["b"] != 1 {
		t.Fatalf("refuse published %+v: want a's next version of the object over the delete's clock %v", v, tomb.Clock)
	}
	if !tomb.Less(v) || !mine.Less(v) {
		t.Fatalf("refuse published %+v, which does not sort above the delete %+v and the held %+v", v, tomb, mine)
	}
	// A delete stamped by a clock running ahead: the new version still sorts above it.
	ahead := ver("b", schema.Clock{"a": 1, "b": 1}, now+60_000, true)
	if st := step(t, ma, e, Refuse{Object: obj(mine.ETag, mine.Size), Delete: ahead}); !ahead.Less(st.Entry.Pending.Version) {
		t.Fatalf("refuse over a delete from a clock ahead: %+v does not sort above %+v", st.Entry.Pending.Version, ahead)
	}
	// The delete, received after the refusal's version, is skipped everywhere.
	after := holding(v)
	if st := step(t, ma, after, Receive{Record: rec(tomb)}); st.Result != Skipped {
		t.Fatalf("the refused delete after the new version: %v, want skipped", st.Result)
	}
	// Nothing to do when the key moved past the delete, or the object is gone.
	later := holding(ver("c", schema.Clock{"a": 1, "b": 1, "c": 1}, 700, false))
	if st := step(t, ma, later, Refuse{Object: obj("x", 1), Delete: tomb}); st.Err != nil || st.Persist || st.Result != Unchanged {
		t.Fatalf("refuse of a superseded delete: %+v", st)
	}
	if st := step(t, ma, e, Refuse{Object: Object{}, Delete: tomb}); st.Err != nil || st.Persist || st.Result != Unchanged {
		t.Fatalf("refuse with the object gone: %+v", st)
	}
	if st := step(t, ma, e, Refuse{Object: obj(mine.ETag, mine.Size), Delete: mine}); st.Err == nil {
		t.Fatalf("refuse of a put: no error")
	}
}
