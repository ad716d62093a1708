package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/s3mesh/s3mesh/schema"
)

// minEarlyDelay is the shortest wait before an early record comes back.
const minEarlyDelay = 100 * time.Millisecond

// retryError asks for the delivery to come back after delay.
type retryError struct {
	delay time.Duration
	err   error
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// retry counts every failed attempt in the message's failure record and
// decides what a transient failure leads to: another attempt after a capped
// exponential backoff, or, once the retry budget is spent, the DLQ.
// Permanent failures pass on unchanged (poison dead-letters them).
//
// An early record (schema.ErrEarly: its times a little past this site's
// bound) is no failure: it comes back when this site's clock has caught up
// with it (at most schema.EarlyWindow), or after MaxBackoff if that is
// sooner, never dead-lettered and without spending the retry budget.
// Only its own message waits: the records behind it, of its key too, keep
// flowing (a later record of the key supersedes it by its clock).
//
// The budget is the time since the message's first failure, not a figure
// derived from how often it was delivered: a message redelivered because it
// waited in a queue past the ack wait has spent no backoff.
func (r *Runner) retry(next handler) handler {
	return func(ctx context.Context, d *delivery) error {
		err := next(ctx, d)
		if err == nil || errors.Is(err, errShutdown) {
			return err
		}
		var early *schema.EarlyError
		if errors.As(err, &early) {
			delay := max(early.Wait, minEarlyDelay)
			if r.MaxBackoff > 0 {
				delay = min(delay, r.MaxBackoff)
			}
			r.M.RecordsEarly.WithLabelValues(d.peer).Inc()
			r.Log.Warn("record early (its times are past this site's clock plus records.max_future), will retry", append(d.logArgs(),
				"field", early.Field, "early_by", early.Wait, "retry_in", delay)...)
			return &retryError{delay: delay, err: err}
		}
		now := r.Now()
		d.fail = r.failures.record(d.id, now)
		if errors.Is(err, schema.ErrUnproven) {
			return r.awaitProof(d, now, err)
		}
		if ReasonFor(err) != "" {
			return err
		}
		if spent := now.Sub(d.fail.first); spent >= r.Budget {
			reason := ReasonRetryBudget
			if errors.Is(err, ErrBodyUnavailable) {
				reason = ReasonBodyUnavail
			}
			return &deadError{reason: reason, err: err}
		}
		delay := backoffDelay(d.fail.attempts, r.MaxBackoff)
		r.Log.Warn("apply failed, will retry", append(d.logArgs(),
			"attempt", d.fail.attempts, "failing_for", now.Sub(d.fail.first), "retry_in", delay, "err", err)...)
		return &retryError{delay: delay, err: err}
	}
}

// awaitProof holds back a record whose clock claims a counter of a third
// site W above what W's own records proved here (schema.ErrUnproven): it
// is forged, or W made that counter and its record has not arrived yet
// (the W→here link lags or is cut while the record's origin hears W). The
// record is retried with backoff, holding only its own delivery (other
// keys and other peers go on), until W's records prove it or proofWait has
// passed since its first attempt; then it goes to the DLQ as bad-record,
// where `s3mesh dlq retry` applies it once the proof has arrived.
func (r *Runner) awaitProof(d *delivery, now time.Time, err error) error {
	wait := r.ProofWait
	if wait <= 0 {
		wait = DefaultProofWait
	}
	if now.Sub(d.fail.first) >= wait {
		return err // poison: bad-record
	}
	r.M.ApplyErrors.WithLabelValues(d.peer, "unproven").Inc()
	delay := backoffDelay(d.fail.attempts, r.MaxBackoff)
	r.Log.Warn("record claims a counter its site has not proved here yet; waiting for that site's records", append(d.logArgs(),
		"attempt", d.fail.attempts, "waiting_for", now.Sub(d.fail.first), "retry_in", delay, "err", err)...)
	return &retryError{delay: delay, err: err}
}

// backoffDelay is the wait after the n-th failed attempt: 1 s, 2 s, 4 s, …
// up to maxBackoff.
func backoffDelay(n uint64, maxBackoff time.Duration) time.Duration {
	d := time.Second << min(max(n, 1)-1, 16)
	return min(d, maxBackoff)
}
