package producer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/s3io"
)

// EventsConsumer is the durable consumer name the producer reads
// EVENTS_<site> with (unique per site, like every consumer name: acks
// travel on subjects named after stream and consumer across leaf links).
func EventsConsumer(site string) string { return "producer_" + site }

// Ingest reads storage events captured in EVENTS_<site> (from the store's
// NATS subject or from the webhook) and reconciles every key they name. An
// event is acknowledged only after every key it names is reconciled, so a
// crash redelivers it (I5); a malformed event is terminated with its reason
// and counted, and never blocks the events behind it (I7).
type Ingest struct {
	P       *Producer
	Sources map[string]KeyEncoding // source name (last subject token) → key encoding
	Kick    func(bucket string)    // asks the scanner for a prompt rescan
	Log     *slog.Logger
	Workers int
	// Drop acknowledges events without looking at them (test hook modelling
	// a store whose event pipeline loses events).
	Drop bool
}

// Run consumes events until ctx ends.
func (in *Ingest) Run(ctx context.Context, js jetstream.JetStream) error {
	site := in.P.cfg.Site
	var cons jetstream.Consumer
	err := broker.Retry(ctx, func(n int, err error) {
		in.Log.Warn("events consumer not ready yet, retrying", "attempt", n, "err", err)
	}, func(ctx context.Context) (err error) {
		cons, err = js.CreateOrUpdateConsumer(ctx, broker.EventsStream(site), jetstream.ConsumerConfig{
			Durable:       EventsConsumer(site),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       broker.AckWait, // kept alive while a slow store answers
			MaxAckPending: 512,
			FilterSubject: broker.EventsSubjectFilter(site),
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("events consumer: %w", err)
	}
	workers := in.Workers
	if workers < 1 {
		workers = 4
	}
	msgs := make(chan jetstream.Msg, workers)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(workers*4))
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
	}
	defer cc.Stop()
	done := make(chan struct{})
	for i := 0; i < workers; i++ {
		go func() {
			for {
				select {
				case m := <-msgs:
					in.handle(ctx, m)
				case <-ctx.Done():
					done <- struct{}{}
					return
				}
			}
		}()
	}
	<-ctx.Done()
	for i := 0; i < workers; i++ {
		<-done
	}
	return nil
}

func (in *Ingest) handle(ctx context.Context, m jetstream.Msg) {
	stop := broker.KeepAlive(ctx, m)
	defer stop()
	subj := m.Subject()
	source := subj[strings.LastIndexByte(subj, '.')+1:]
	in.P.m.EventsReceived.WithLabelValues(source).Inc()
	enc, ok := in.Sources[source]
	if !ok {
		in.reject(m, source, fmt.Errorf("event from unknown source %q (subject %s)", source, subj))
		return
	}
	hints, err := ParseEvent(m.Data(), enc)
	if err != nil {
		in.reject(m, source, err)
		return
	}
	if in.Drop {
		in.settled(m, "ack", m.Ack())
		return
	}
	for _, h := range hints {
		res, err := in.P.ReconcileEvent(ctx, h)
		if err != nil {
			if ctx.Err() != nil {
				return // shutting down: redelivered later
			}
			delay := backoff(m)
			in.Log.Warn("event: reconcile failed, will retry", "bucket", h.Bucket, "key", h.Key, "err", err, "class", s3io.Classify(err).String(), "retry_in", delay)
			in.settled(m, "nak", m.NakWithDelay(delay))
			return
		}
		if res == Unchanged && in.Kick != nil {
			// An event that changes nothing may stand for a lost or misnamed one.
			in.Kick(h.Bucket)
		}
	}
	// A publish's last state write may be lazy (lifecycle.Step.Lazy): the
	// event is acknowledged once it is durable.
	in.P.store.AfterSync(func() { in.settled(m, "ack", m.Ack()) })
}

// settled counts and logs an acknowledgement that could not be sent (the
// event is redelivered after the ack wait).
func (in *Ingest) settled(m jetstream.Msg, op string, err error) {
	if err == nil {
		return
	}
	in.P.m.AckFailures.WithLabelValues(op).Inc()
	in.Log.Warn("event acknowledgement failed; it will be redelivered", "op", op, "subject", m.Subject(), "err", err)
}

func (in *Ingest) reject(m jetstream.Msg, source string, err error) {
	in.P.m.EventsMalformed.WithLabelValues(source).Inc()
	in.Log.Warn("event rejected", "source", source, "err", err, "bytes", len(m.Data()))
	reason := err.Error()
	if len(reason) > 200 {
		reason = reason[:200]
	}
	in.settled(m, "term", m.TermWithReason(reason))
}

func backoff(m jetstream.Msg) time.Duration {
	n := uint64(1)
	if md, err := m.Metadata(); err == nil {
		n = md.NumDelivered
	}
	d := time.Second << min(n-1, 5)
	return min(d, 30*time.Second)
}
