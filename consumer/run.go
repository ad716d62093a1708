package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/schema"
)

// ApplyConsumer is the durable consumer name on every peer mirror at site.
// It must differ between sites: the mirrors of one origin share its stream
// name and sequences, and acks travel on $JS.ACK.<stream>.<consumer>.…
// subjects that leaf-node links carry between sites, so two sites with the
// same consumer name would acknowledge each other's records.
func ApplyConsumer(site string) string { return "apply_" + site }

// maxAckPending is how many records of one peer may be delivered and not
// yet acknowledged. Each one in flight holds its message (headers, reply
// subject, body) and its decoded record, several KiB: at 1024 a 30,000-record
// catch-up held ~8 MiB of them live and peaked at 54 MiB anonymous memory;
// at 256 it peaked at 49 MiB and drained as fast (8 per applier is enough
// to keep 32 busy).
const maxAckPending = 256

// applier is what the runner needs of the Applier.
type applier interface {
	// Apply applies rec and returns the decision taken (see Applier.Apply).
	Apply(ctx context.Context, rec *schema.Record) (schema.Decision, error)
	// MarkDead records in the state that a version went to the DLQ.
	MarkDead(bucket, key, id string) error
	// Replicated reports whether bucket is replicated at this site.
	Replicated(bucket string) bool
	// AfterSync runs fn once the state writes made so far are durable
	// (state.Store.AfterSync).
	AfterSync(fn func())
	// KeyClock is the merged clock this site holds for bucket/key.
	KeyClock(bucket, key string) (schema.Clock, error)
}

var _ applier = (*Applier)(nil)

// Runner consumes every peer's CHANGES mirror and applies the records. Each
// message goes through a chain of small steps (see chain): decode, check
// origin, apply, retry or dead-letter, acknowledge.
type Runner struct {
	A          applier
	Site       string // this site; names the durable consumers (ApplyConsumer)
	Peers      []string
	Workers    int
	Budget     time.Duration // transient failures retry this long after the first before the DLQ
	MaxBackoff time.Duration
	DLQ        deadLetterQueue
	M          *metrics.Metrics
	Log        *slog.Logger
	Now        func() time.Time // nil: time.Now
	// FormerSites are sites no longer in the mesh whose entries may remain
	// in old keys' clocks (with Site and Peers, the sites a clock may name).
	FormerSites []string
	// MaxFuture is how far ahead of this site's clock a record's origin
	// time may be (0: schema.DefaultMaxFuture).
	MaxFuture time.Duration
	// SelfMax is the highest counter this site can have made (see
	// schema.Limits.SelfMax; 0: not checked).
	SelfMax uint64
	// Proven is what each peer's own records proved it made (nil: third-site
	// entries are not checked). A record whose entry for a third site is
	// above it waits, retried with backoff, up to ProofWait after its first
	// attempt (0: DefaultProofWait), then goes to the DLQ as bad-record.
	Proven    *Proven
	ProofWait time.Duration
	// Keys are the peers' public keys every record is verified against
	// (schema.Keyring.Open): a record not signed by a key of the peer whose
	// stream it came from goes to the DLQ as bad-signature.
	Keys schema.Keyring
	// Filters are this site's prefix filters per bucket (missing: every
	// key): a record outside is acknowledged, counted, not applied.
	Filters map[string]schema.Filter

	once     sync.Once
	failures *failures
	sites    map[string]bool
	digests  map[string]string // of Filters
}

// limits is what schema.ValidateFor checks records against now.
func (r *Runner) limits() schema.Limits {
	return schema.Limits{Sites: r.sites, Now: r.Now().UnixMilli(), MaxFuture: r.MaxFuture, Self: r.Site, SelfMax: r.SelfMax,
		Proven: r.Proven.Counters()}
}

func (r *Runner) init() {
	r.once.Do(func() {
		if r.Now == nil {
			r.Now = time.Now
		}
		// At most maxAckPending messages per peer are outstanding, so more
		// entries than twice that are for messages that will not come back.
		r.failures = newFailures(2 * maxAckPending * max(len(r.Peers), 1))
		r.digests = map[string]string{}
		for b, f := range r.Filters {
			r.digests[b] = f.Digest()
		}
		r.sites = map[string]bool{}
		for _, s := range append(append([]string{r.Site}, r.Peers...), r.FormerSites...) {
			if s != "" {
				r.sites[s] = true
			}
		}
	})
}

// consumable is the part of jetstream.Consumer the runner uses.
type consumable interface {
	Consume(handler jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error)
}

// Run consumes until ctx ends. It returns only after every Consume callback
// and every worker has finished, so nothing it started uses the state store
// once it returned.
func (r *Runner) Run(ctx context.Context, js jetstream.JetStream) error {
	if r.Site == "" {
		return errors.New("consumer runner: no site")
	}
	return r.run(ctx, func(ctx context.Context, peer string) (consumable, error) {
		return r.ensureConsumer(ctx, js, peer)
	})
}

// run starts the workers, then consumes each peer's stream from the
// consumer open returns, and joins everything before it returns.
func (r *Runner) run(ctx context.Context, open func(context.Context, string) (consumable, error)) error {
	r.init()
	ctx, cancel := context.WithCancel(ctx)
	// A pool of workers per peer: one peer's records that take long (a
	// body its store serves slowly, on purpose or not) hold only that
	// peer's workers, and every other peer's records keep applying. Two
	// records of one key from two peers meet at the key's lock.
	pools := map[string]*pool{}
	var g gate
	var stops []func()
	defer func() {
		cancel() // releases callbacks waiting for a worker's queue, and the workers
		for _, stop := range stops {
			stop()
		}
		g.close() // waits for callbacks in flight; later ones return at once
		for _, p := range pools {
			p.wait()
		}
	}()
	for _, peer := range r.Peers {
		p := r.startPool(ctx)
		pools[peer] = p
		cons, err := open(ctx, peer)
		if err != nil {
			return err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if g.enter() {
				defer g.leave()
				r.receive(ctx, peer, m, p)
			}
		}, jetstream.PullMaxMessages(128))
		if err != nil {
			return fmt.Errorf("consume %s: %w", broker.ChangesStream(peer), err)
		}
		stops = append(stops, cc.Stop)
	}
	<-ctx.Done()
	return nil
}

// ensureConsumer creates (or updates) the durable consumer on peer's
// stream, retrying until the broker answers or ctx ends.
func (r *Runner) ensureConsumer(ctx context.Context, js jetstream.JetStream, peer string) (jetstream.Consumer, error) {
	stream := broker.ChangesStream(peer)
	var cons jetstream.Consumer
	err := broker.Retry(ctx, func(n int, err error) {
		r.Log.Warn("apply consumer not ready yet, retrying", "stream", stream, "attempt", n, "err", err)
	}, func(ctx context.Context) (err error) {
		cons, err = js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable:       ApplyConsumer(r.Site),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       broker.AckWait, // kept alive with InProgress during long applies
			MaxAckPending: maxAckPending,
			MaxDeliver:    -1,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("consumer on %s: %w", stream, err)
	}
	return cons, nil
}

// receive decodes m (to find its key) and queues it on its key's worker.
func (r *Runner) receive(ctx context.Context, peer string, m jetstream.Msg, p *pool) {
	d := newDelivery(peer, m)
	d.parse(r.Keys) // a failure is kept in d; the chain's decode step reports it
	p.submit(ctx, d)
}

// pool is the set of workers of one peer; its records of one key go to one
// worker, so they apply in order, and different keys apply in parallel.
type pool struct {
	queues []chan *delivery
	wg     sync.WaitGroup
}

func (r *Runner) startPool(ctx context.Context) *pool {
	h := r.chain()
	p := &pool{queues: make([]chan *delivery, max(r.Workers, 1))}
	for i := range p.queues {
		q := make(chan *delivery, 8) // with PullMaxMessages: what waits in memory stays small
		p.queues[i] = q
		p.wg.Go(func() { work(ctx, q, h) })
	}
	return p
}

// submit queues d on its worker, or gives up when ctx ends (d is left
// unacknowledged and comes back after the ack wait).
func (p *pool) submit(ctx context.Context, d *delivery) {
	select {
	case p.queues[d.shard(len(p.queues))] <- d:
	case <-ctx.Done():
	}
}

// wait returns once every worker has returned.
func (p *pool) wait() { p.wg.Wait() }

func work(ctx context.Context, q <-chan *delivery, h func(context.Context, *delivery)) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-q:
			if ctx.Err() != nil {
				return // d is left unacknowledged: redelivered after the ack wait
			}
			h(ctx, d)
		}
	}
}

// gate counts the Consume callbacks in flight so that shutdown can wait for
// them; once closed it turns later callbacks away.
type gate struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *gate) leave() { g.wg.Done() }

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}
