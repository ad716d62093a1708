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
