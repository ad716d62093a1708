package schema

// Outcome is what a consumer must do with an incoming version.
type Outcome int

// Outcomes of Decide.
const (
	// Skip: the site already holds this version or a later one (duplicate or
	// stale delivery). Nothing changes.
	Skip Outcome = iota
	// Apply: the incoming version causally follows what the site holds.
	Apply
	// ApplyWinner: a conflict that the incoming version wins.
	ApplyWinner
	// KeepLocal: a conflict that the held version wins; only the clock merges.
	KeepLocal
	// Park: a conflict under the manual policy. Nothing changes (not even the
	// clock) until an operator picks a version; the record goes to the DLQ.
	Park
)

func (o Outcome) String() string {
	return [...]string{"skip", "apply", "apply-winner", "keep-local", "park"}[o]
}

// Decision is the result of comparing an incoming version with the held one.
type Decision struct {
	Outcome  Outcome
	Conflict bool     // the two versions were concurrent
	Winner   *Version // set on conflicts
	Loser    *Version // set on conflicts
	Merged   Clock    // the clock the site holds afterwards
	// Held: the receiver held this delete instead of carrying the decision
	// out (its guard against a peer's mass deletes); nothing changed.
	Held bool
}

// Decide compares an incoming version with the version a site holds (nil if
// it has never seen the key) whose merged clock is heldClock. It is a pure
// function of its inputs: every site reaches the same decision for the same
// two versions in any delivery order. The order of versions carries the
// policy (see Policy.Rank); p only says whether conflicts are parked.
func Decide(held *Version, heldClock Clock, in Version, p Policy) Decision {
	if held == nil {
		return Decision{Outcome: Apply, Merged: in.Clock.Clone()}
	}
	merged := heldClock.Merge(in.Clock)
	switch in.Clock.Compare(heldClock) {
	case Equal, Before:
		return Decision{Outcome: Skip, Merged: merged}
	case After:
		return Decision{Outcome: Apply, Merged: merged}
	}
	// Concurrent with the merged clock, which also holds versions this site
	// already decided against. If in follows the held version itself, it is
	// an overwrite of it, not a new conflict (and it sorts above it).
	if in.Clock.Compare(held.Clock) == After {
		return Decision{Outcome: Apply, Merged: merged}
	}
	h, i := *held, in
	if p.Mode == ModeManual {
		return Decision{Outcome: Park, Conflict: true, Winner: &h, Loser: &i, Merged: heldClock.Clone()}
	}
	if h.Less(i) {
		return Decision{Outcome: ApplyWinner, Conflict: true, Winner: &i, Loser: &h, Merged: merged}
	}
	return Decision{Outcome: KeepLocal, Conflict: true, Winner: &h, Loser: &i, Merged: merged}
}
