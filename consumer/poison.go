package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// dlqRetryDelay is how soon a record comes back when its dead letter could
// not be stored.
const dlqRetryDelay = 5 * time.Second

// deadError asks for the delivery to go to the DLQ with reason.
type deadError struct {
	reason string
	err    error
}

func (e *deadError) Error() string { return e.err.Error() }
func (e *deadError) Unwrap() error { return e.err }

// poison dead-letters what the steps inside give up on: a permanent error
// (ReasonFor) or a spent retry budget (*deadError). Once the dead letter is
// stored the delivery is done, so it is acknowledged and the records behind
// it keep flowing (I7); if it cannot be stored the record is retried, never
// acknowledged without its dead letter (I5).
func (r *Runner) poison(next handler) handler {
	return func(ctx context.Context, d *delivery) error {
		err := next(ctx, d)
		reason := deadReason(err)
		if reason == "" {
			return err
		}
		return r.deadLetter(ctx, d, reason, err)
	}
}

// deadReason is the DLQ reason err calls for, or "" if it calls for none.
func deadReason(err error) string {
	var re *retryError
	var de *deadError
	switch {
	case err == nil, errors.Is(err, errShutdown), errors.As(err, &re):
		return ""
	case errors.As(err, &de):
		return de.reason
	}
	return ReasonFor(err)
}

// deadLetter marks the version dead in the state (when it is a replicated
// bucket's, from its own origin) and stores the dead letter.
func (r *Runner) deadLetter(ctx context.Context, d *delivery, reason string, cause error) error {
	dl := r.newDeadLetter(d, reason, cause)
	if rec := d.rec; rec != nil && reason != ReasonUnauthorized && reason != ReasonBadRecord && reason != ReasonBadSignature && r.A.Replicated(rec.Bucket) {
		if err := r.A.MarkDead(rec.Bucket, rec.Key, rec.Version.ID); err != nil {
			r.Log.Error("dead letter not marked in the state", append(d.logArgs(), "err", err)...)
		}
	}
	if err := r.DLQ.Put(ctx, dl); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", errShutdown, err)
		}
		r.Log.Error("dead letter not stored; will retry the record", append(d.logArgs(), "err", err)...)
		return &retryError{delay: dlqRetryDelay, err: err}
	}
	r.M.DeadLettered.WithLabelValues(reason).Inc()
	r.Log.Error("record sent to the dead-letter queue", append(d.logArgs(),
		"reason", reason, "attempts", dl.Attempts, "failing_for", dl.LastFailure.Sub(dl.FirstFailure), "err", cause)...)
	return nil
}

// newDeadLetter builds d's DLQ entry. Attempts and FirstFailure are the
// message's failure record as this agent process saw it.
func (r *Runner) newDeadLetter(d *delivery, reason string, cause error) DeadLetter {
	f := d.fail
	if f.attempts == 0 { // not through retry: this one failure
		now := r.Now()
		f = failure{first: now, last: now, attempts: 1}
	}
	dl := DeadLetter{Reason: reason, Error: cause.Error(), Peer: d.peer, Record: d.msg.Data(),
		Attempts: f.attempts, FirstFailure: f.first.UTC(), LastFailure: f.last.UTC()}
	if d.meta != nil {
		dl.ID, dl.Stream, dl.Seq = d.id, d.meta.Stream, d.meta.Sequence.Stream
	}
	if d.rec != nil {
		dl.Bucket, dl.Key, dl.VersionID = d.rec.Bucket, d.rec.Key, d.rec.Version.ID
	}
	return dl
}
