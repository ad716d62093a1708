package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// Reason codes of dead letters.
const (
	ReasonDecode         = "decode"          // bytes are not a record
	ReasonUnknownVersion = "unknown-version" // a record schema this build does not read
	ReasonNotReplicated  = "not-replicated"  // bucket not replicated here
	ReasonBodyUnavail    = "body-unavailable"
	ReasonRejected       = "rejected"     // the local S3 refused it permanently
	ReasonRetryBudget    = "retry-budget" // transient failures outlasted the budget
	ReasonManual         = "manual-conflict"
	ReasonUnauthorized   = "unauthorized"  // a record claiming another origin than its stream's
	ReasonBadRecord      = "bad-record"    // a record that breaks a bound (schema.ErrBadRecord: size, clock, rank, time, key)
	ReasonBadSignature   = "bad-signature" // not signed by a key configured for its stream's site (schema.ErrBadSignature)
	// ReasonUnrepresentable: this site's store cannot hold the record's key
	// under its exact name (the store probe found it renames, drops or
	// refuses such keys): a local fault of this site, never applied under
	// another name.
	ReasonUnrepresentable = "unrepresentable-key"
)

// DeadLetter is one entry of DLQ_<site>: the original record bytes, why it
// could not be applied, and where it came from. Attempts, FirstFailure and
// LastFailure are the failed apply attempts of the agent process that
// dead-lettered it (a restart starts them again; see failures).
type DeadLetter struct {
	ID           string    `json:"id"` // <stream>:<seq>
	Reason       string    `json:"reason"`
	Error        string    `json:"error"`
	Attempts     uint64    `json:"attempts"`
	FirstFailure time.Time `json:"first_failure"`
	LastFailure  time.Time `json:"last_failure"`
	Peer         string    `json:"peer"`
	Stream       string    `json:"stream"`
	Seq          uint64    `json:"seq"`
	Bucket       string    `json:"bucket,omitempty"`
	Key          string    `json:"key,omitempty"`
	VersionID    string    `json:"version_id,omitempty"`
	Record       []byte    `json:"record"` // raw message, base64 in JSON
	// Truncated marks an entry too large for the broker's payload limit:
	// Record holds only the start of the record, RecordSize and
	// RecordSHA256 describe all of it, and retry reads it from the mirror
	// (Stream, Seq). See encodeDeadLetter.
	Truncated    bool   `json:"truncated,omitempty"`
	RecordSize   int    `json:"record_size,omitempty"`
	RecordSHA256 string `json:"record_sha256,omitempty"`
}

// ReasonFor maps an apply or decode error to a dead-letter reason, or ""
// when the error is transient (retry).
func ReasonFor(err error) string {
	switch {
	case errors.Is(err, schema.ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, schema.ErrUnknownVersion):
		return ReasonUnknownVersion
	case errors.Is(err, schema.ErrBadRecord): // before ErrMalformed, which it wraps
		return ReasonBadRecord
	case errors.Is(err, schema.ErrMalformed):
		return ReasonDecode
	case errors.Is(err, ErrNotReplicated):
		return ReasonNotReplicated
	case errors.Is(err, ErrParked):
		return ReasonManual
	case errors.Is(err, ErrUnauthorized):
		return ReasonUnauthorized
	case errors.Is(err, ErrUnrepresentable):
		return ReasonUnrepresentable
	case errors.Is(err, ErrBodyUnavailable):
		return "" // a later record usually supersedes it; retried until the budget
	case s3io.Classify(err) == s3io.Permanent:
		return ReasonRejected
	}
	return ""
}

// deadLetterQueue stores dead letters durably.
type deadLetterQueue interface {
	Put(ctx context.Context, dl DeadLetter) error
}

var _ deadLetterQueue = (*DLQ)(nil)

// DLQ publishes dead letters to DLQ_<site>.
type DLQ struct {
	Site string
	JS   jetstream.JetStream
}

// Put stores a dead letter durably (deduplicated by stream and sequence),
// truncated if it does not fit the broker's payload limit.
func (q *DLQ) Put(ctx context.Context, dl DeadLetter) error {
	limit := DefaultMaxPayload
	if nc := q.JS.Conn(); nc != nil && nc.MaxPayload() > 0 {
		limit = int(nc.MaxPayload())
	}
	data, dl, err := encodeDeadLetter(dl, limit)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	_, err = q.JS.Publish(ctx, broker.DLQSubject(q.Site, dl.Reason), data, jetstream.WithMsgID("dlq:"+dl.ID))
	if err != nil {
		return fmt.Errorf("dead letter %s: %w", dl.ID, err)
	}
	return nil
}
