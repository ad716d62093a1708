package consumer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// handler is one step of the chain a delivery goes through. It returns nil
// when the delivery is done with (applied, or stored in the DLQ), a
// *retryError to have it redelivered later, a *deadError or a permanent
// error (ReasonFor) to dead-letter it, or errShutdown.
type handler func(ctx context.Context, d *delivery) error

// errShutdown marks a failure caused by the agent stopping: the delivery is
// neither retried nor dead-lettered, only left unacknowledged.
var errShutdown = errors.New("shutting down")

// chain builds the path of every delivery, outermost step first:
//
//	acknowledge → poison → retry → decode (verifying the signature) → checkOrigin → validate → filter → apply
//
// Each step is a small function in its own file; an outer step sees what
// the inner ones returned and decides one thing about it.
func (r *Runner) chain() func(context.Context, *delivery) {
	r.init()
	return r.acknowledge(r.poison(r.retry(r.decode(checkOrigin(r.validate(r.filter(r.apply)))))))
}

// delivery is one message on its way through the chain.
type delivery struct {
	peer string
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata // nil if the message carries none
	id   string                 // <stream>:<stream seq>; "" without metadata

	parsed bool
	rec    *schema.Record // the decoded record, once parsed without error
	decErr error

	fail failure // the message's failures so far (set by retry)
}

func newDelivery(peer string, m jetstream.Msg) *delivery {
	d := &delivery{peer: peer, msg: m}
	if md, err := m.Metadata(); err == nil {
		d.meta = md
		d.id = fmt.Sprintf("%s:%d", md.Stream, md.Sequence.Stream)
	}
	return d
}

// parse opens the record once (its signature verified against the keys of
// the peer whose stream it came from, then decoded) and keeps the result or
// the error.
func (d *delivery) parse(keys schema.Keyring) {
	if !d.parsed {
		d.rec, d.decErr = keys.Open(d.msg.Data(), d.peer)
		d.parsed = true
	}
}

// shard picks one of n workers by the record's key, so records of one key
// apply in order; a message that is not a record may go to any.
func (d *delivery) shard(n int) int {
	h := fnv.New32a()
	if d.rec != nil {
		h.Write([]byte(d.rec.Bucket))
		h.Write([]byte{0})
		h.Write([]byte(d.rec.Key))
	} else {
		h.Write([]byte(d.id))
	}
	return int(h.Sum32() % uint32(n))
}

// logArgs names the delivery in log lines.
func (d *delivery) logArgs() []any {
	args := []any{"peer", d.peer, "id", d.id}
	if d.rec != nil {
		args = append(args, "bucket", d.rec.Bucket, "key", d.rec.Key, "version", d.rec.Version.ID)
	}
	return args
}

// decode fails a message that is not a record this build reads, or not
// signed by a key configured for its peer (schema.ErrBadSignature:
// dead-lettered at once as bad-signature, its content never decoded).
func (r *Runner) decode(next handler) handler {
	return func(ctx context.Context, d *delivery) error {
		if d.parse(r.Keys); d.decErr != nil {
			return fmt.Errorf("decode %s: %w", d.id, d.decErr)
		}
		return next(ctx, d)
	}
}

// checkOrigin fails a record that claims another origin than the peer whose
// stream it came from.
func checkOrigin(next handler) handler {
	return func(ctx context.Context, d *delivery) error {
		if o := d.rec.Version.Origin; o != d.peer {
			return fmt.Errorf("record %s claims origin %q but came from %s: %w",
				d.rec.Version.ID, o, broker.ChangesStream(d.peer), ErrUnauthorized)
		}
		return next(ctx, d)
	}
}

// validate fails a record this site must not act on (schema.ValidateFor):
// a clock naming a site that is not this site, a peer or a former site, an
// origin time or MadeAt too far ahead of this site's clock, or a key the
// store cannot hold safely. (Decode already refused sizes, counters, ranks
// and msgpack lengths out of bounds.) The error wraps schema.ErrBadRecord:
// dead-lettered at once as bad-record, never retried; but for an entry of
// a third site that site has not proved yet (schema.ErrUnproven), which
// retry holds back for a while (proofWait). A record whose times are only
// a little past the bound (schema.ErrEarly) is no failure: retry brings it
// back once this site's clock has caught up. A record that passes proves
// its origin's own entry (Proven.Raise).
func (r *Runner) validate(next handler) handler {
	return func(ctx context.Context, d *delivery) error {
		// Before the bounds: a record refused for an origin time too far
		// ahead is a sample of the peer's clock too.
		r.M.ObserveOrigin(d.peer, time.UnixMilli(d.rec.MadeAt), r.Now())
		err := d.rec.ValidateFor(r.limits())
		if errors.Is(err, schema.ErrUnproven) {
			err = r.validateOverKey(d)
		}
		if err != nil {
			return fmt.Errorf("record %s from %s: %w", d.id, d.peer, err)
		}
		if err := r.Proven.Raise(d.peer, d.rec.Version.Clock[d.peer]); err != nil {
			return err // the state store failed: retried
		}
		return next(ctx, d)
	}
}

// validateOverKey validates a record with an unproven third-site entry
// again, counting as proved what the key's own clock here already holds:
// an entry no higher lifts nothing here (it is what this site merged from
// records it checked before, such as the third site's own record of the
// key after the site's later records left the stream, or a claim proved
// then), so it needs no proof again.
func (r *Runner) validateOverKey(d *delivery) error {
	clock, err := r.A.KeyClock(d.rec.Bucket, d.rec.Key)
	if err != nil {
		return fmt.Errorf("state of %s/%s: %w", d.rec.Bucket, d.rec.Key, err) // transient: retried
	}
	return d.rec.ValidateFor(r.limits().OverKey(clock))
}

// apply applies the record, keeping the message alive meanwhile, and
// counts the outcome.
func (r *Runner) apply(ctx context.Context, d *delivery) error {
	stop := broker.KeepAlive(ctx, progressMsg{Msg: d.msg, r: r, d: d})
	dec, err := r.A.Apply(ctx, d.rec)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", errShutdown, err)
		}
		r.M.ApplyErrors.WithLabelValues(d.peer, s3io.Classify(err).String()).Inc()
		return err
	}
	outcome := dec.Outcome.String()
	if dec.Held {
		outcome = "held"
	}
	r.M.RecordsApplied.WithLabelValues(d.peer, outcome).Inc()
	if dec.Held {
		return nil
	}
	if dec.Outcome == schema.Apply || dec.Outcome == schema.ApplyWinner {
		r.M.ApplyLag.Observe(r.Now().Sub(time.UnixMilli(d.rec.MadeAt)).Seconds())
	}
	if dec.Conflict {
		r.M.Conflicts.Inc()
	}
	return nil
}
