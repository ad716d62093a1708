package broker

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// AckWait is the ack deadline of s3mesh's work consumers (events and apply).
// It is short so that what a crashed agent had in flight comes back quickly;
// long work keeps its message with KeepAlive.
const AckWait = 20 * time.Second

// KeepAlive tells JetStream every AckWait/3 that m is still being worked on,
// until stop is called or ctx ends.
func KeepAlive(ctx context.Context, m jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

// Retry calls f until it succeeds or ctx ends, backing off from 500 ms to
// 10 s and reporting each failure: a broker that is still electing leaders
// or recovering (a cluster node just lost) must not stop the agent.
func Retry(ctx context.Context, report func(attempt int, err error), f func(context.Context) error) error {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(cctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		report(attempt, err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}
