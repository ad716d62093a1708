package lifecycle

import (
	"errors"
	"fmt"

	"github.com/s3mesh/s3mesh/schema"
)

// Machine is the per-key state machine of one site. It holds only
// configuration; all state is in the Entry passed to Step.
type Machine struct {
	Site            string
	InlineThreshold int64 // bodies up to this size travel inside the record
	SkewMillis      int64 // shifts every origin time the site stamps (test hook)
	// Floor is the lowest counter a new local write may take, minus one:
	// IncarnationFloor of the site's current incarnation. A write over a
	// clock whose entry for the site is below it jumps above it, so a site
	// that lost its state never reuses a counter its peers may have seen.
	Floor uint64
}

// IncarnationShift places the incarnation in a site's clock counters
// (schema.IncarnationShift).
const IncarnationShift = schema.IncarnationShift

// IncarnationFloor is the Machine.Floor of incarnation i.
func IncarnationFloor(i uint64) uint64 { return i << IncarnationShift }

// IncarnationOf is the incarnation a counter was made in.
func IncarnationOf(counter uint64) uint64 { return schema.IncarnationOf(counter) }

// Next says what an executor does after carrying out a Step's effects.
type Next int

// The three continuations of a Step.
const (
	// Done: the input is handled.
	Done Next = iota
	// Feed: feed the outcome of the effects (see each Effect) as the next input.
	Feed
	// Again: start over with a fresh input of the same kind — observe the
	// key again, or (Result LocalChanged) record the local change first and
	// then receive the record again.
	Again
)

// Result says what a finished input did.
type Result int

// Results of Step.
const (
	Unchanged     Result = iota // the site holds what the state says
	Published                   // a new change record was published
	Replica                     // the object is a replica write of s3mesh (no echo)
	NotReplicated               // the bucket or key is not replicated (executors' verdict)
	Held                        // a delete was not published (or, received, not applied): deletes are held
	Recovered                   // an outstanding intent was settled
	Skipped                     // the record is already applied or stale
	Applied                     // the record's version is now held
	KeptLocal                   // a conflict the held version won: only the clock merged
	Parked                      // a conflict parked for an operator
	LocalChanged                // an unrecorded local write got there first (Next is Again)
	Drift                       // a local write at a site whose bucket publishes nothing: recorded, not published
	Kept                        // a peer's delete not carried out at an archive site: the object stays
)

func (r Result) String() string {
	return [...]string{"unchanged", "published", "replica", "not-replicated", "held", "recovered",
		"skipped", "applied", "kept-local", "parked", "local-changed", "drift", "kept"}[r]
}

// Step is what Machine.Step returns: persist Entry (when Persist), carry out
// Effects in order, then continue as Next says.
type Step struct {
	Entry   Entry
	Persist bool // Entry differs from the input entry and must be durable before any effect
	// Lazy: Entry may become durable later than Persist returns (with the
	// next durable write). Only a step that settles an intent the input
	// entry holds durably is lazy: if a crash loses Entry, the intent is
	// still there and recovering it leads to the same entry (the written
	// replica, the refused write, the acknowledged publish), so waiting
	// for a disk flush buys nothing.
	Lazy     bool
	Effects  []Effect
	Next     Next
	Result   Result          // with Done (and Again)
	Decision schema.Decision // for a Receive: the decision taken
	Err      error           // with Done: why the input could not be handled
}

// Errors of Step, matched with errors.Is.
var (
	// ErrNoBucket: the bucket itself is gone from the local store; nothing
	// in it is treated as deleted.
	ErrNoBucket = errors.New("bucket does not exist in the local store")
	// ErrOutstanding: an intent is outstanding; feed Recover first.
	ErrOutstanding = errors.New("an intent is outstanding: recover first")
	// ErrUnexpected: an outcome that does not fit the entry (an executor bug).
	ErrUnexpected = errors.New("outcome does not fit the entry")
	// ErrNotPublishing: a forced publish (an operator's resolve) of a
	// bucket whose mode at this site publishes nothing.
	ErrNotPublishing = errors.New("the bucket publishes nothing at this site (mode replica or archive)")
)

// Step takes the key's current entry and one input at time now (unix ms)
// and returns the next entry and the effects to carry out. It is a pure
// function: e is not modified, and nothing outside is read or written.
func (m Machine) Step(k Key, e Entry, in Input, now int64) Step {
	e = e.clone()
	switch in := in.(type) {
	case Recover:
		return m.recover(e)
	case Inspected:
		return m.settle(e, in.Object, in.Copy, now)
	case Observe:
		return m.observe(k, e, in, now)
	case PublishAcked:
		return m.published(e, in, now)
	case PublishChanged:
		return m.publishChanged(e, now)
	case Receive:
		return m.receive(k, e, in, now)
	case Refuse:
		return m.refuse(k, e, in, now)
	case Written:
		return m.written(e, in, now)
	case Refused:
		return m.refused(e, now)
	case Logged:
		return m.logged(k, e, in, now)
	case DeadLettered:
		return m.deadLettered(e, in.ID, now)
	}
	return done(e, Unchanged, fmt.Errorf("%w: input %T", ErrUnexpected, in))
}

func done(e Entry, r Result, err error) Step { return Step{Entry: e, Next: Done, Result: r, Err: err} }

// saved is a Step that persists e (stamped at now).
func saved(e Entry, now int64, next Next, r Result, effects ...Effect) Step {
	e.Updated = now
	return Step{Entry: e, Persist: true, Effects: effects, Next: next, Result: r}
}

// settled is saved for a step that settles the intent of its input entry
// (see Step.Lazy).
func settled(e Entry, now int64, next Next, r Result, effects ...Effect) Step {
	st := saved(e, now, next, r, effects...)
	st.Lazy = true
	return st
}
