package lifecycle

import "github.com/s3mesh/s3mesh/schema"

// Input is one thing that happens to a key: an observation, a record, or the
// outcome of an effect an executor carried out.
type Input interface{ input() }

// Observe is a local observation of the key: a storage event, a scan row or
// an operator's resolve, confirmed by a HEAD of the local store (Object).
type Observe struct {
	Object Object
	Policy schema.Policy // the bucket's policy (for the rank of a new version)
	// BucketGone: the HEAD found nothing and the bucket itself is missing (a
	// wiped store must not delete the other sites' data). Executors check it
	// when the object is absent and the entry is present.
	BucketGone  bool
	DeletesHeld bool // the scanner holds the bucket's deletes
	DeleteEvent bool // the hint was a delete made through the S3 API
	// Force publishes what the store holds as a new version even if the
	// state already knows it, with Over merged into the clock first: an
	// operator's resolve of a parked conflict, whose new version must
	// dominate both sides.
	Force bool
	Over  schema.Clock
	// Mode is the bucket's mode at this site: a bucket that is not Active
	// publishes nothing, a local write is drift.
	SiteMode Mode
}

// Receive is a change record from a peer. Executors validate it (decode,
// origin, replicated bucket) before it gets here.
type Receive struct {
	Record *schema.Record
	Policy BucketPolicy
	// HoldDeletes: the receiver's guard holds this peer's deletes in the
	// bucket (see Hold). A tombstone that would delete the object this
	// site holds is then not applied but held.
	HoldDeletes bool
}

// Recover settles an intent left outstanding by a crash (or by an effect
// that failed): executors feed it before any other input whenever
// Entry.Outstanding.
type Recover struct{}

// PublishAcked is the outcome of a Publish effect: the broker stored it.
// Proof is the record as this site signed it without a body
// (Entry.Proof), if the executor made one.
type PublishAcked struct {
	Publish Publish
	Proof   []byte
}

// PublishChanged is the outcome of a Publish effect with ReadInline whose
// object changed before its body could be read: nothing was published.
type PublishChanged struct{}

// Inspected is the outcome of an Inspect effect: the key's object, and the
// one at Inspect.Copy (when it was set).
type Inspected struct{ Object, Copy Object }

// Written is the outcome of an apply's effects when all of them succeeded:
// the local store now holds Record (ETag "" for a tombstone). The entry
// keeps schema.ProofOf(Record) as the version's proof.
type Written struct {
	Record *schema.Record
	ETag   string
}

// Refused is the outcome of an apply's effects when the store refused a
// conditional one (412, 404, or an object other than the entry says): a
// local write got there first.
type Refused struct{}

// Logged is the outcome of a step whose only changing effect was
// LogConflict: the conflict of Record (received under Policy) is durable.
type Logged struct {
	Record *schema.Record
	Policy BucketPolicy
}

// DeadLettered says the record of version ID went to the dead-letter queue.
type DeadLettered struct{ ID string }

func (Refuse) input()         {}
func (Observe) input()        {}
func (Receive) input()        {}
func (Recover) input()        {}
func (PublishAcked) input()   {}
func (PublishChanged) input() {}
func (Inspected) input()      {}
func (Written) input()        {}
func (Refused) input()        {}
func (Logged) input()         {}
func (DeadLettered) input()   {}

// Effect is one thing an executor must do, in the order given.
type Effect interface{ effect() }

// Publish: publish Record durably on the site's CHANGES stream (msg id =
// version id). With ReadInline the executor first reads the object's body
// (If-Match the record's ETag) and sends it inline; if the object changed,
// the outcome is PublishChanged instead, except for a Republish, which is
// sent without its body (the first attempt may have left the site: the
// record must go out as it was). Otherwise the outcome is PublishAcked.
type Publish struct {
	Record     *schema.Record
	ReadInline bool
	Republish  bool // finishing a publish a crash interrupted
}

// Inspect: HEAD the local object, and the object at key Copy when it is
// set; the outcome is Inspected.
type Inspect struct{ Copy string }

// LogConflict: write Entry to the site's conflict log.
type LogConflict struct{ Entry schema.ConflictEntry }

// CopyLoser: copy the local object to key To, If-Match IfMatch (keep a
// conflict loser's bytes). A refused copy makes the apply's outcome Refused.
type CopyLoser struct {
	To      string
	IfMatch string
	Loser   string // the loser's version id
}

// Put: write Record's body (inline, or fetched from a site holding that
// version) with metadata Meta, conditionally: If-Match IfMatch, or
// If-None-Match: * when IfNoneMatch.
type Put struct {
	Record      *schema.Record
	Meta        map[string]string
	IfMatch     string
	IfNoneMatch bool
}

// Delete: delete the local object If-Match IfMatch. The executor confirms
// the object is there with that ETag first (some stores answer a
// conditional DELETE of an absent key with success).
type Delete struct{ IfMatch string }

// CheckAbsent: confirm the local store holds no object for the key (a
// tombstone applied over an absent key writes nothing); an object found
// makes the outcome Refused.
type CheckAbsent struct{}

// Park: the record is a conflict parked for an operator (policy manual); the
// executor dead-letters it.
type Park struct {
	Held, Parked schema.Version
}

// Hold: keep Record (a peer's tombstone) durably among the held deletes
// instead of applying it; the key's entry does not change. The executor
// acknowledges the record only once it is kept.
type Hold struct{ Record *schema.Record }

// Note is something an executor may log (the core itself never logs).
type Note struct {
	Warn bool
	Msg  string
	Args []any
}

func (Hold) effect()        {}
func (Publish) effect()     {}
func (Inspect) effect()     {}
func (LogConflict) effect() {}
func (CopyLoser) effect()   {}
func (Put) effect()         {}
func (Delete) effect()      {}
func (CheckAbsent) effect() {}
func (Park) effect()        {}
func (Note) effect()        {}

// Changes reports whether e changes the outside world (a write, a publish, a
// log entry), as opposed to reading it (Inspect, CheckAbsent) or noting.
func Changes(e Effect) bool {
	switch e.(type) {
	case Inspect, CheckAbsent, Note:
		return false
	}
	return true
}
