package consumer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// ApplyConsumer is the durable consumer name on every peer mirror at site.
// It must differ between sites: the mirrors of one origin share its stream
// name and sequences, and acks travel on $JS.ACK.<stream>.<consumer>.…
// subjects that leaf-node links carry between sites, so two sites with the
// same consumer name would acknowledge each other's records.
func ApplyConsumer(site string) string { return "apply_" + site }

// Runner consumes every peer's CHANGES mirror and applies the records.
type Runner struct {
	A          *Applier
	Peers      []string
	Workers    int
	Budget     time.Duration // transient failures retry this long before the DLQ
	MaxBackoff time.Duration
	DLQ        *DLQ
	M          *metrics.Metrics
	Log        *slog.Logger
}

type job struct {
	peer string
	msg  jetstream.Msg
	rec  *schema.Record
}

// Run consumes until ctx ends.
func (r *Runner) Run(ctx context.Context, js jetstream.JetStream) error {
	workers := make([]chan job, max(r.Workers, 1))
	for i := range workers {
		workers[i] = make(chan job, 32)
		go r.work(ctx, workers[i])
	}
	for _, peer := range r.Peers {
		var cons jetstream.Consumer
		err := broker.Retry(ctx, func(n int, err error) {
			r.Log.Warn("apply consumer not ready yet, retrying", "stream", broker.ChangesStream(peer), "attempt", n, "err", err)
		}, func(ctx context.Context) (err error) {
			cons, err = js.CreateOrUpdateConsumer(ctx, broker.ChangesStream(peer), jetstream.ConsumerConfig{
				Durable:       ApplyConsumer(r.A.Site),
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       broker.AckWait, // kept alive with InProgress during long applies
				MaxAckPending: 1024,
				MaxDeliver:    -1,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("consumer on %s: %w", broker.ChangesStream(peer), err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { r.dispatch(ctx, peer, m, workers) },
			jetstream.PullMaxMessages(256))
		if err != nil {
			return fmt.Errorf("consume %s: %w", broker.ChangesStream(peer), err)
		}
		defer cc.Stop()
	}
	<-ctx.Done()
	return nil
}

func (r *Runner) dispatch(ctx context.Context, peer string, m jetstream.Msg, workers []chan job) {
	rec, err := schema.Decode(m.Data())
	if err != nil {
		r.deadLetter(ctx, peer, m, nil, ReasonFor(err), err)
		return
	}
	if rec.Version.Origin != peer {
		err := fmt.Errorf("record %s claims origin %q but came from %s: %w", rec.Version.ID, rec.Version.Origin, broker.ChangesStream(peer), ErrUnauthorized)
		r.deadLetter(ctx, peer, m, rec, ReasonUnauthorized, err)
		return
	}
	h := fnv.New32a()
	h.Write([]byte(rec.Bucket))
	h.Write([]byte{0})
	h.Write([]byte(rec.Key))
	select {
	case workers[h.Sum32()%uint32(len(workers))] <- job{peer, m, rec}:
	case <-ctx.Done():
	}
}

func (r *Runner) work(ctx context.Context, jobs chan job) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-jobs:
			r.handle(ctx, j)
		}
	}
}

func (r *Runner) handle(ctx context.Context, j job) {
	stop := broker.KeepAlive(ctx, j.msg)
	d, err := r.A.Apply(ctx, j.rec)
	stop()
	if err == nil {
		_ = j.msg.Ack()
		r.M.RecordsApplied.WithLabelValues(j.peer, d.Outcome.String()).Inc()
		if d.Outcome == schema.Apply || d.Outcome == schema.ApplyWinner {
			r.M.ApplyLag.Observe(time.Since(time.UnixMilli(j.rec.MadeAt)).Seconds())
		}
		if d.Conflict {
			r.M.Conflicts.Inc()
		}
		return
	}
	if ctx.Err() != nil {
		return // shutting down: redelivered later
	}
	class := s3io.Classify(err)
	r.M.ApplyErrors.WithLabelValues(j.peer, class.String()).Inc()
	if reason := ReasonFor(err); reason != "" {
		r.deadLetter(ctx, j.peer, j.msg, j.rec, reason, err)
		return
	}
	n, spent := attempts(j.msg, r.MaxBackoff)
	if spent >= r.Budget {
		reason := ReasonRetryBudget
		if errors.Is(err, ErrBodyUnavailable) {
			reason = ReasonBodyUnavail
		}
		r.deadLetter(ctx, j.peer, j.msg, j.rec, reason, err)
		return
	}
	delay := backoffDelay(n, r.MaxBackoff)
	r.Log.Warn("apply failed, will retry", "peer", j.peer, "bucket", j.rec.Bucket, "key", j.rec.Key,
		"version", j.rec.Version.ID, "attempt", n, "retry_in", delay, "err", err)
	_ = j.msg.NakWithDelay(delay)
}

func (r *Runner) deadLetter(ctx context.Context, peer string, m jetstream.Msg, rec *schema.Record, reason string, cause error) {
	md, _ := m.Metadata()
	dl := DeadLetter{Reason: reason, Error: cause.Error(), Peer: peer, Record: m.Data(), LastFailure: time.Now().UTC()}
	if md != nil {
		dl.Stream, dl.Seq, dl.Attempts = md.Stream, md.Sequence.Stream, md.NumDelivered
		dl.ID = fmt.Sprintf("%s:%d", md.Stream, md.Sequence.Stream)
		_, spent := attempts(m, r.MaxBackoff)
		dl.FirstFailure = dl.LastFailure.Add(-spent)
	}
	if rec != nil {
		dl.Bucket, dl.Key, dl.VersionID = rec.Bucket, rec.Key, rec.Version.ID
		if _, ok := r.A.Buckets[rec.Bucket]; ok && reason != ReasonUnauthorized {
			if err := r.A.MarkDead(rec.Bucket, rec.Key, rec.Version.ID); err != nil {
				r.Log.Error("dead letter not marked in the state", "err", err)
			}
		}
	}
	if err := r.DLQ.Put(ctx, dl); err != nil {
		r.Log.Error("dead letter not stored; will retry the record", "id", dl.ID, "err", err)
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	r.M.DeadLettered.WithLabelValues(reason).Inc()
	r.Log.Error("record sent to the dead-letter queue", "id", dl.ID, "reason", reason, "bucket", dl.Bucket, "key", dl.Key, "err", cause)
	_ = m.Ack()
}

// attempts returns how many times the message was delivered and the total
// backoff already spent on it.
func attempts(m jetstream.Msg, maxBackoff time.Duration) (uint64, time.Duration) {
	n := uint64(1)
	if md, err := m.Metadata(); err == nil {
		n = md.NumDelivered
	}
	var spent time.Duration
	for i := uint64(1); i < n; i++ {
		spent += backoffDelay(i, maxBackoff)
	}
	return n, spent
}

func backoffDelay(n uint64, maxBackoff time.Duration) time.Duration {
	d := time.Second << min(n-1, 16)
	return min(d, maxBackoff)
}
