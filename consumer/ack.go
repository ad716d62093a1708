package consumer

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// acknowledge settles each delivery after the steps inside: ack when it is
// done with (applied, or stored in the DLQ), nak with the delay asked for
// when it is to come back, nothing when the agent is stopping (JetStream
// redelivers it after the ack wait). A failed ack or nak is counted and
// logged; the record then comes back after the ack wait, which the clock
// check makes harmless (I3).
func (r *Runner) acknowledge(next handler) func(context.Context, *delivery) {
	return func(ctx context.Context, d *delivery) {
		err := next(ctx, d)
		var re *retryError
		switch {
		case err == nil:
			r.failures.forget(d.id)
			// The apply's last state write may be lazy (lifecycle.Step.Lazy):
			// the record is acknowledged once it is durable, so a crash
			// before that brings the record back. The worker goes on.
			r.A.AfterSync(func() { r.settled(d, "ack", d.msg.Ack()) })
		case errors.As(err, &re):
			r.settled(d, "nak", d.msg.NakWithDelay(re.delay))
		case errors.Is(err, errShutdown):
		default: // retry and poison turn every error into one of the above
			r.Log.Error("unhandled apply error, will retry", append(d.logArgs(), "err", err)...)
			r.settled(d, "nak", d.msg.NakWithDelay(r.MaxBackoff))
		}
	}
}

// settled counts and logs a failed acknowledgement op of d.
func (r *Runner) settled(d *delivery, op string, err error) {
	if err == nil {
		return
	}
	r.M.AckFailures.WithLabelValues(op).Inc()
	r.Log.Warn("acknowledgement not sent; the record comes back after the ack wait",
		append(d.logArgs(), "op", op, "err", err)...)
}

// progressMsg is d's message with its InProgress failures counted, for
// broker.KeepAlive.
type progressMsg struct {
	jetstream.Msg
	r *Runner
	d *delivery
}

func (m progressMsg) InProgress() error {
	err := m.Msg.InProgress()
	m.r.settled(m.d, "in_progress", err)
	return err
}
