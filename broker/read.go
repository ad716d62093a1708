package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ReadStream calls fn with every message of stream in order — from the
// start, or from since if it is not zero — and returns once it has read up
// to the stream's last message as it was when reading began. Operators'
// commands (conflict log, dead letters) and the tests' checker read streams
// with it.
func ReadStream(ctx context.Context, js jetstream.JetStream, stream string, since time.Time, fn func(seq uint64, data []byte) error) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", stream, err)
	}
	for first := true; ; first = false {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("fetch %s: %w", stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if err := fn(md.Sequence.Stream, m.Data()); err != nil {
				return err
			}
			if md.Sequence.Stream >= st.LastSeq || md.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("fetch %s: %w", stream, err)
		}
		if n == 0 {
			if first && !since.IsZero() {
				return nil // nothing after since
			}
			return fmt.Errorf("stream %s: no message after waiting (last seq %d)", stream, st.LastSeq)
		}
	}
}
