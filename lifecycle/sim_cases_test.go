package lifecycle_test

import (
	"testing"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
)

// Two schedules that show why the simulation checks I2 as "final, or
// dominated by some published version, or logged as a loser" and conflict
// agreement per pair of versions, not in the narrower forms "dominated by
// the final version" and "same loser, same winner" (moved here from
// schema/converge_test.go, now on the core's Steps instead of Decide).

var simCaseKey = lifecycle.Key{Bucket: simBucket, Key: "k"}

func simCaseVersion(origin string, c schema.Clock, ts int64) schema.Version {
	v := schema.Version{ID: schema.VersionID(origin, simCaseKey.Bucket, simCaseKey.Key, c[origin]), Origin: origin, Clock: c, TS: ts, Size: 1}
	v.ETag = simETag([]byte(v.ID))
	return v
}

func simCaseHolding(v schema.Version) lifecycle.Entry {
	return lifecycle.Entry{Clock: v.Clock.Clone(), Held: v, LocalETag: v.ETag, Attrs: schema.Attrs{}.Digest()}
}

func simCaseRecord(v schema.Version) *schema.Record {
	return &schema.Record{Schema: schema.RecordSchema, Bucket: simCaseKey.Bucket, Key: simCaseKey.Key, Version: v}
}

// simCaseReceive receives v at m holding e, feeding Logged after a
// conflict log, and returns the conflict logged (if any) and the final Step.
func simCaseReceive(t *testing.T, m lifecycle.Machine, e lifecycle.Entry, v schema.Version) (*schema.ConflictEntry, lifecycle.Step) {
	t.Helper()
	rec := simCaseRecord(v)
	st := m.Step(simCaseKey, e, lifecycle.Receive{Record: rec}, 1)
	var logged *schema.ConflictEntry
	for _, ef := range st.Effects {
		switch ef := ef.(type) {
		case lifecycle.LogConflict:
			logged = &ef.Entry
		default:
			t.Fatalf("receive %s: unexpected effect %T", v.ID, ef)
		}
	}
	if st.Next == lifecycle.Feed {
		if logged == nil {
			t.Fatalf("receive %s: Feed without a conflict to log", v.ID)
		}
		st = m.Step(simCaseKey, st.Entry, lifecycle.Logged{Record: rec}, 1)
	}
	if st.Next != lifecycle.Done || st.Err != nil {
		t.Fatalf("receive %s: next %v err %v", v.ID, st.Next, st.Err)
	}
	return logged, st
}

func TestSimulationCounterexamples(t *testing.T) {
	// b writes b1 then b2 (b2 causally follows b1); a writes a1, concurrent
	// with both and later in the order. Site a receives b2 first (conflict,
	// b2 logged as loser), then b1, which its merged clock already covers:
	// skipped, logged nowhere. b1 is neither final, nor dominated by a1, nor
	// a logged loser; it is accounted for by b2, which causally follows it.
	t.Run("I2: overwritten, then the successor loses", func(t *testing.T) {
		b1 := simCaseVersion("b", schema.Clock{"b": 1}, 1)
		b2 := simCaseVersion("b", schema.Clock{"b": 2}, 2)
		a1 := simCaseVersion("a", schema.Clock{"a": 1}, 9)
		a := lifecycle.Machine{Site: "a"}
		logged, st := simCaseReceive(t, a, simCaseHolding(a1), b2)
		if logged == nil || logged.Loser.ID != b2.ID || st.Result != lifecycle.KeptLocal {
			t.Fatalf("b2 at a: %v, logged %+v", st.Result, logged)
		}
		logged, st = simCaseReceive(t, a, st.Entry, b1)
		if logged != nil || st.Result != lifecycle.Skipped || st.Persist {
			t.Fatalf("b1 after b2 at a: %v persist=%v, logged %+v", st.Result, st.Persist, logged)
		}
		if a1.Clock.Compare(b1.Clock) != schema.Concurrent || b2.Clock.Compare(b1.Clock) != schema.After {
			t.Fatal("schedule no longer shows the case")
		}
	})
	// With three concurrent writes l < x < y, site b (holding x) logs
	// "x beat l" and site c (holding y) logs "y beat l": the same loser has
	// different winners, though every pair is decided the same everywhere.
	t.Run("same loser, different winners", func(t *testing.T) {
		l := simCaseVersion("a", schema.Clock{"a": 1}, 1)
		x := simCaseVersion("b", schema.Clock{"b": 1}, 2)
		y := simCaseVersion("c", schema.Clock{"c": 1}, 3)
		atB, _ := simCaseReceive(t, lifecycle.Machine{Site: "b"}, simCaseHolding(x), l)
		atC, _ := simCaseReceive(t, lifecycle.Machine{Site: "c"}, simCaseHolding(y), l)
		if atB == nil || atC == nil || atB.Loser.ID != l.ID || atC.Loser.ID != l.ID || atB.Winner.ID != x.ID || atC.Winner.ID != y.ID {
			t.Fatalf("b logged %+v; c logged %+v", atB, atC)
		}
	})
}
