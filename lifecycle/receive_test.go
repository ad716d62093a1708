package lifecycle

import (
	"errors"
	"fmt"
	"testing"

	"github.com/s3mesh/s3mesh/schema"
)

// kinds names the effects of a step, in order.
func kinds(effs []Effect) []string {
	var out []string
	for _, ef := range effs {
		switch ef.(type) {
		case LogConflict:
			out = append(out, "log")
		case CopyLoser:
			out = append(out, "copy")
		case Trash:
			out = append(out, "trash")
		case Put:
			out = append(out, "put")
		case Delete:
			out = append(out, "delete")
		case CheckAbsent:
			out = append(out, "check-absent")
		case Park:
			out = append(out, "park")
		case Note:
			out = append(out, "note")
		default:
			out = append(out, "other")
		}
	}
	return out
}

func TestReceive(t *testing.T) {
	mine := ver("a", schema.Clock{"a": 1}, 500, false)
	after := ver("b", schema.Clock{"a": 1, "b": 1}, 600, false)
	older := ver("b", schema.Clock{"b": 1}, 400, false) // concurrent with mine, loses under lww
	newer := ver("b", schema.Clock{"b": 1}, 900, false) // concurrent with mine, wins under lww
	tomb := ver("b", schema.Clock{"a": 1, "b": 1}, 600, true)
	fresh := ver("b", schema.Clock{"b": 1}, 600, false)
	keep := BucketPolicy{KeepLosers: true, LosersPrefix: ".losers/"}
	manual := BucketPolicy{Policy: schema.Policy{Mode: schema.ModeManual}}
	cases := []struct {
		name    string
		e       Entry
		v       schema.Version
		pol     BucketPolicy
		outcome schema.Outcome
		effects []string
		persist bool
		next    Next
		result  Result
	}{
		{"new key", Entry{}, fresh, BucketPolicy{}, schema.Apply, []string{"put"}, true, Feed, Unchanged},
		{"causal overwrite", holding(mine), after, BucketPolicy{}, schema.Apply, []string{"put"}, true, Feed, Unchanged},
		{"duplicate", holding(after), after, BucketPolicy{}, schema.Skip, nil, false, Done, Skipped},
		{"stale", holding(after), mine, BucketPolicy{}, schema.Skip, nil, false, Done, Skipped},
		{"delete of a held object", holding(mine), tomb, BucketPolicy{}, schema.Apply, []string{"delete"}, true, Feed, Unchanged},
		{"delete of an absent key", Entry{}, tomb, BucketPolicy{}, schema.Apply, []string{"check-absent"}, false, Feed, Unchanged},
		{"conflict won by the record", holding(mine), newer, BucketPolicy{}, schema.ApplyWinner, []string{"log"}, false, Feed, Unchanged},
		{"conflict won by the held version", holding(mine), older, BucketPolicy{}, schema.KeepLocal, []string{"log"}, false, Feed, Unchanged},
		{"conflict won, loser kept at its origin", holding(mine), newer, keep, schema.ApplyWinner, []string{"log"}, false, Feed, Unchanged},
		{"conflict parked", holding(mine), newer, manual, schema.Park, []string{"log", "park"}, false, Done, Parked},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := step(t, ma, c.e, Receive{Record: rec(c.v), Policy: c.pol})
			got := kinds(st.Effects)
			if st.Err != nil || st.Decision.Outcome != c.outcome || st.Persist != c.persist || st.Next != c.next || st.Result != c.result || len(got) != len(c.effects) {
				t.Fatalf("got outcome %v effects %v persist %v next %v result %v err %v, want %v %v %v %v %v",
					st.Decision.Outcome, got, st.Persist, st.Next, st.Result, st.Err, c.outcome, c.effects, c.persist, c.next, c.result)
			}
			for i := range got {
				if got[i] != c.effects[i] {
					t.Fatalf("effects %v, want %v", got, c.effects)
				}
			}
			if c.outcome == schema.KeepLocal {
				// The clock merges only once the conflict is logged: merged
				// first, a redelivery would be skipped and never logged.
				lg := step(t, ma, st.Entry, Logged{Record: rec(c.v), Policy: c.pol})
				if !lg.Persist || lg.Result != KeptLocal || lg.Entry.Clock.Compare(c.e.Clock.Merge(c.v.Clock)) != schema.Equal || lg.Entry.Held.ID != c.e.Held.ID {
					t.Fatalf("after the conflict is logged: %+v", lg)
				}
				if again := step(t, ma, lg.Entry, Logged{Record: rec(c.v), Policy: c.pol}); !errors.Is(again.Err, ErrUnexpected) || again.Persist {
					t.Fatalf("a second Logged for a covered record: %+v", again)
				}
			}
			if c.outcome == schema.ApplyWinner {
				// The winner is written only once the conflict is logged, so
				// no intent can be settled with the conflict unlogged.
				lg := step(t, ma, st.Entry, Logged{Record: rec(c.v), Policy: c.pol})
				want := []string{"put"}
				if c.pol.KeepLosers {
					want = []string{"copy", "put"}
				}
				if got := kinds(lg.Effects); fmt.Sprint(got) != fmt.Sprint(want) || !lg.Persist || lg.Next != Feed {
					t.Fatalf("after the conflict is logged: effects %v, want %v (%+v)", got, want, lg)
				}
				st = lg
			}
			for _, ef := range st.Effects {
				switch ef := ef.(type) {
				case Put:
					if ef.IfNoneMatch == c.e.Present() || (c.e.Present() && ef.IfMatch != c.e.LocalETag) {
						t.Fatalf("put condition %+v over entry %+v", ef, c.e)
					}
					if got, ok := schema.Replica(tk.Bucket, tk.Key, ef.Meta, c.v.Size); !ok || got.ID != c.v.ID {
						t.Fatalf("put metadata %v does not mark the replica %s", ef.Meta, c.v.ID)
					}
				case Delete:
					if ef.IfMatch != c.e.LocalETag {
						t.Fatalf("delete If-Match %q, want %q", ef.IfMatch, c.e.LocalETag)
					}
				case CopyLoser:
					if ef.IfMatch != mine.ETag || ef.To != schema.LoserKey(keep.LosersPrefix, tk.Bucket, tk.Key, mine) {
						t.Fatalf("copy %+v", ef)
					}
				case LogConflict:
					if ef.Entry.Winner.ID == ef.Entry.Loser.ID || ef.Entry.Site != "a" {
						t.Fatalf("conflict entry %+v", ef.Entry)
					}
				}
			}
		})
	}
}

func TestReceiveLoserCopiedOnlyAtItsOrigin(t *testing.T) {
	theirs := ver("c", schema.Clock{"c": 1}, 500, false)
	newer := ver("b", schema.Clock{"b": 1}, 900, false)
	pol := BucketPolicy{KeepLosers: true}
	st := step(t, ma, holding(theirs), Receive{Record: rec(newer), Policy: pol})
	if le := st.Effects[0].(LogConflict).Entry; le.LoserKeptAs == "" {
		t.Fatalf("the conflict log must name where the loser is kept: %+v", le)
	}
	lg := step(t, ma, st.Entry, Logged{Record: rec(newer), Policy: pol})
	if got := kinds(lg.Effects); len(got) != 1 || got[0] != "put" {
		t.Fatalf("a site that is not the loser's origin must not copy it: %v", got)
	}
}

func TestApplyOutcomes(t *testing.T) {
	mine := ver("a", schema.Clock{"a": 1}, 500, false)
	after := ver("b", schema.Clock{"a": 1, "b": 1}, 600, false)
	tomb := ver("b", schema.Clock{"b": 2}, 600, true)
	e := holding(mine)
	e.Dead = []string{"b.x.1"}
	r := rec(after)
	r.Attrs = schema.Attrs{ContentType: "text/plain"}
	st := step(t, ma, e, Receive{Record: r})
	if st.Entry.Applying == nil || st.Entry.Applying.ID != after.ID {
		t.Fatalf("no apply intent: %+v", st.Entry)
	}
	t.Run("written", func(t *testing.T) {
		w := step(t, ma, st.Entry, Written{Record: r, ETag: "new-local"})
		got := w.Entry
		if !w.Persist || w.Result != Applied || got.Applying != nil || got.Held.ID != after.ID || got.LocalETag != "new-local" ||
			got.Attrs != r.Attrs.Digest() || got.Dead != nil || got.Clock.Compare(after.Clock) != schema.Equal {
			t.Fatalf("after the write: %+v", w)
		}
		if k := kinds(w.Effects); len(k) != 1 || k[0] != "note" {
			t.Fatalf("superseding a dead letter must be noted: %v", k)
		}
	})
	t.Run("refused", func(t *testing.T) {
		rf := step(t, ma, st.Entry, Refused{})
		if !rf.Persist || rf.Next != Again || rf.Result != LocalChanged || rf.Entry.Applying != nil || rf.Entry.Held.ID != mine.ID {
			t.Fatalf("after a refusal: %+v", rf)
		}
	})
	t.Run("written for another version", func(t *testing.T) {
		if w := step(t, ma, st.Entry, Written{Record: rec(tomb)}); !errors.Is(w.Err, ErrUnexpected) || w.Persist {
			t.Fatalf("a write of another version must be refused as an executor bug: %+v", w)
		}
	})
	t.Run("tombstone over an absent key", func(t *testing.T) {
		w := step(t, ma, Entry{}, Written{Record: rec(tomb)})
		if !w.Persist || w.Result != Applied || !w.Entry.Held.Deleted || w.Entry.LocalETag != "" {
			t.Fatalf("tombstone commit: %+v", w)
		}
	})
	t.Run("record received with an intent outstanding", func(t *testing.T) {
		if s := step(t, ma, st.Entry, Receive{Record: r}); !errors.Is(s.Err, ErrOutstanding) || len(s.Effects) != 0 {
			t.Fatalf("%+v", s)
		}
	})
}

func TestDeadLettered(t *testing.T) {
	st := step(t, ma, Entry{}, DeadLettered{ID: "b.x.1"})
	if !st.Persist || len(st.Entry.Dead) != 1 {
		t.Fatalf("%+v", st)
	}
	if again := step(t, ma, st.Entry, DeadLettered{ID: "b.x.1"}); again.Persist || len(again.Entry.Dead) != 1 {
		t.Fatalf("marking twice must change nothing: %+v", again)
	}
}

func TestCollectable(t *testing.T) {
	tomb := holding(ver("a", schema.Clock{"a": 1}, 1, true))
	tomb.Updated = now - 10_000
	if !tomb.Collectable(now, 5_000) || tomb.Collectable(now, 20_000) || tomb.Collectable(now, 0) {
		t.Fatal("a tombstone is collectable only past a non-zero retention")
	}
	live := holding(ver("a", schema.Clock{"a": 1}, 1, false))
	if live.Collectable(now, 1) {
		t.Fatal("a live object is never collectable")
	}
}
