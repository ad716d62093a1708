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

// A tombstone that beats this site's own write copies the loser before it
// deletes it; after a crash, a key found absent with no copy was deleted by
// a user racing the apply, and that delete is this site's to publish.
func TestRecoverTombstoneApplyByItsLoserCopy(t *testing.T) {
	mine := ver("a", schema.Clock{"a": 1}, 500, false)
	tomb := ver("b", schema.Clock{"b": 1}, 900, true)
	pol := BucketPolicy{KeepLosers: true, LosersPrefix: ".losers/"}
	lg := step(t, ma, holding(mine), Logged{Record: rec(tomb), Policy: pol})
	copyKey := schema.LoserKey(pol.LosersPrefix, tk.Bucket, tk.Key, mine)
	if got := kinds(lg.Effects); len(got) != 2 || got[0] != "copy" || got[1] != "delete" || lg.Entry.LoserCopy != copyKey {
		t.Fatalf("apply of a winning tombstone: effects %v, intent's loser copy %q", got, lg.Entry.LoserCopy)
	}
	rc := step(t, ma, lg.Entry, Recover{})
	if in, ok := rc.Effects[0].(Inspect); !ok || in.Copy != copyKey {
		t.Fatalf("recover must look at the loser copy too: %+v", rc.Effects)
	}
	cases := []struct {
		name    string
		o, copy Object
		settled bool
	}{
		{"copied and deleted", Object{}, obj(mine.ETag, 10), true},
		{"deleted by a user before the copy", Object{}, Object{}, false},
		{"copied, not deleted yet", obj(mine.ETag, 10), obj(mine.ETag, 10), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := step(t, ma, lg.Entry, Inspected{Object: c.o, Copy: c.copy})
			if !st.Persist || st.Entry.Applying != nil || st.Entry.LoserCopy != "" || st.Result != Recovered {
				t.Fatalf("settle: %+v", st)
			}
			if got := st.Entry.Held.ID == tomb.ID; got != c.settled {
				t.Fatalf("took the tombstone %v, want %v", got, c.settled)
			}
			if c.settled {
				return
			}
			// The user's delete is published as this site's next version.
			ob := step(t, ma, st.Entry, Observe{Object: c.o})
			if !c.o.Exists && (ob.Entry.Pending == nil || !ob.Entry.Pending.Version.Deleted ||
				ob.Entry.Pending.Version.Clock.Compare(mine.Clock) != schema.After) {
				t.Fatalf("the user's delete must be published over %s: %+v", mine.ID, ob)
			}
		})
	}
	// Applied or refused, the intent's copy key goes with it.
	if w := step(t, ma, lg.Entry, Written{Record: rec(tomb)}); w.Entry.LoserCopy != "" {
		t.Fatalf("written: %+v", w.Entry)
	}
	if rf := step(t, ma, lg.Entry, Refused{}); rf.Entry.LoserCopy != "" {
		t.Fatalf("refused: %+v", rf.Entry)
	}
}

// The entry keeps the held version's proof (its record as the origin
// signed it): from the publish's outcome at the origin, from the applied
// record elsewhere; a version taken without its record keeps none.
func TestEntryKeepsTheProof(t *testing.T) {
	st := step(t, ma, Entry{}, Observe{Object: obj("e1", 500)})
	pub := st.Effects[0].(Publish)
	if acked := step(t, ma, st.Entry, PublishAcked{Publish: pub, Proof: []byte("signed")}); string(acked.Entry.Proof) != "signed" {
		t.Fatalf("published: proof %q", acked.Entry.Proof)
	}
	after := ver("b", schema.Clock{"b": 1}, 600, false)
	r := rec(after)
	r.Signed = []byte("envelope")
	ap := step(t, ma, Entry{}, Receive{Record: r})
	if w := step(t, ma, ap.Entry, Written{Record: r, ETag: after.ETag}); string(w.Entry.Proof) != "envelope" {
		t.Fatalf("written: proof %q", w.Entry.Proof)
	}
	held := holding(ver("a", schema.Clock{"a": 1}, 1, false))
	held.Proof = []byte("old")
	held.Applying = &after
	marked := obj(after.ETag, after.Size)
	marked.Meta = schema.ReplicaMeta(tk.Bucket, tk.Key, after)
	if s := step(t, ma, held, Inspected{Object: marked}); s.Entry.Held.ID != after.ID || s.Entry.Proof != nil {
		t.Fatalf("settled without the record: held %s, proof %q", s.Entry.Held.ID, s.Entry.Proof)
	}
}

// An origin that signs two versions under one id (equivocation) is caught
// by the site that holds one of them: the other is bad-record naming the
// field that differs, and changes nothing; the same version again is
// skipped as always.
func TestReceiveEquivocation(t *testing.T) {
	held := ver("b", schema.Clock{"b": 1}, 600, false)
	e := holding(held)
	other := held
	other.TS++
	st := step(t, ma, e, Receive{Record: rec(other)})
	var fe *schema.FieldError
	if !errors.As(st.Err, &fe) || fe.Field != "Version.TS" || st.Persist || len(st.Effects) != 0 {
		t.Fatalf("equivocated version: %+v", st)
	}
	tomb := held
	tomb.Deleted, tomb.Size, tomb.ETag = true, 0, ""
	if st := step(t, ma, e, Receive{Record: rec(tomb)}); !errors.As(st.Err, &fe) || fe.Field != "Version.Deleted" {
		t.Fatalf("a tombstone under a put's id: %+v", st)
	}
	if st := step(t, ma, e, Receive{Record: rec(held)}); st.Err != nil || st.Result != Skipped {
		t.Fatalf("the held version again: %+v", st)
	}
}
