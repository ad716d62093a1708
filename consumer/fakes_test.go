package consumer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/schema"
)

// The runner's logic is pure with respect to the message and the applier,
// so these fakes stand in for them; integration/dlq_cli_test.go runs the
// real thing.

// fakeMsg is a JetStream message that records how it was settled.
type fakeMsg struct {
	data    []byte
	meta    *jetstream.MsgMetadata // nil: Metadata fails
	release chan struct{}          // if set, Data blocks until it is closed

	ackErr, nakErr, progressErr error

	mu        sync.Mutex
	acks      int
	nakDelays []time.Duration
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	if m.meta == nil {
		return nil, errors.New("no metadata")
	}
	return m.meta, nil
}

func (m *fakeMsg) Data() []byte {
	if m.release != nil {
		<-m.release
	}
	return m.data
}

func (m *fakeMsg) Headers() nats.Header { return nil }
func (m *fakeMsg) Subject() string      { return "s3mesh.changes.a.0" }
func (m *fakeMsg) Reply() string        { return "$JS.ACK.fake" }

func (m *fakeMsg) Ack() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks++
	return m.ackErr
}

func (m *fakeMsg) DoubleAck(context.Context) error { return m.Ack() }
func (m *fakeMsg) Nak() error                      { return m.NakWithDelay(0) }

func (m *fakeMsg) NakWithDelay(d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nakDelays = append(m.nakDelays, d)
	return m.nakErr
}

func (m *fakeMsg) InProgress() error { return m.progressErr }

func (m *fakeMsg) Term() error                 { panic("the runner never terminates a record") }
func (m *fakeMsg) TermWithReason(string) error { panic("the runner never terminates a record") }

func (m *fakeMsg) settled() (acks int, naks []time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acks, append([]time.Duration(nil), m.nakDelays...)
}

// msgOf is a message of stream CHANGES_<peer> at seq, delivered delivered
// times.
func msgOf(peer string, seq, delivered uint64, data []byte) *fakeMsg {
	return &fakeMsg{data: data, meta: &jetstream.MsgMetadata{
		Stream: "CHANGES_" + peer, Sequence: jetstream.SequencePair{Stream: seq, Consumer: seq},
		NumDelivered: delivered,
	}}
}

// recordOf is a valid record of bucket/key at origin's n-th write.
func recordOf(t *testing.T, origin, bucket, key string, n uint64) (*schema.Record, []byte) {
	t.Helper()
	body := []byte(fmt.Sprintf("%s/%s #%d", bucket, key, n))
	rec := &schema.Record{
		Schema: schema.RecordSchema, Bucket: bucket, Key: key,
		Version: schema.Version{ID: schema.VersionID(origin, bucket, key, n), Origin: origin,
			Clock: schema.Clock{origin: n}, TS: 1_700_000_000_000, Size: int64(len(body)), ETag: "etag"},
		Inline: true, Body: body, MadeAt: 1_700_000_000_000,
	}
	data, err := rec.Sign(siteKey(origin))
	if err != nil {
		t.Fatal(err)
	}
	return rec, data
}

// siteKey is site's fixed test signing key.
func siteKey(site string) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed([]byte(fmt.Sprintf("%-32s", "test signing key of "+site)))
}

func sitePub(site string) ed25519.PublicKey { return siteKey(site).Public().(ed25519.PublicKey) }

// fakeApplier answers Apply with the function it is given.
type fakeApplier struct {
	buckets map[string]bool
	apply   func(ctx context.Context, rec *schema.Record) (schema.Decision, error)
	markErr error

	mu      sync.Mutex
	applied []string                // version ids, in the order Apply was called
	dead    []string                // bucket/key/id of MarkDead calls
	clocks  map[string]schema.Clock // bucket/key → the key's clock (KeyClock)
}

func (a *fakeApplier) Apply(ctx context.Context, rec *schema.Record) (schema.Decision, error) {
	a.mu.Lock()
	a.applied = append(a.applied, rec.Version.ID)
	a.mu.Unlock()
	if !a.buckets[rec.Bucket] {
		return schema.Decision{}, fmt.Errorf("apply %s/%s: %w", rec.Bucket, rec.Key, ErrNotReplicated)
	}
	if a.apply == nil {
		return schema.Decision{Outcome: schema.Apply}, nil
	}
	return a.apply(ctx, rec)
}

func (a *fakeApplier) MarkDead(bucket, key, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dead = append(a.dead, bucket+"/"+key+"/"+id)
	return a.markErr
}

func (a *fakeApplier) AfterSync(fn func()) { fn() }

func (a *fakeApplier) Replicated(bucket string) bool { return a.buckets[bucket] }

func (a *fakeApplier) KeyClock(bucket, key string) (schema.Clock, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.clocks[bucket+"/"+key].Clone(), nil
}

func (a *fakeApplier) calls() (applied, dead []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.applied...), append([]string(nil), a.dead...)
}

// fakeDLQ keeps the dead letters it is given.
type fakeDLQ struct {
	err     error
	onPut   func() error // if set, Put answers what it returns
	mu      sync.Mutex
	entries []DeadLetter
}

func (q *fakeDLQ) Put(_ context.Context, dl DeadLetter) error {
	if q.onPut != nil {
		if err := q.onPut(); err != nil {
			return err
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.entries = append(q.entries, dl)
	return nil
}

func (q *fakeDLQ) all() []DeadLetter {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]DeadLetter(nil), q.entries...)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testRunner is a runner at site b consuming peer a's records of bucket
// "bkt", with a one-minute retry budget.
type testRunner struct {
	*Runner
	a   *fakeApplier
	q   *fakeDLQ
	c   *fakeClock
	log *syncBuffer
}

func newTestRunner() *testRunner {
	a := &fakeApplier{buckets: map[string]bool{"bkt": true}}
	q, c, log := &fakeDLQ{}, newClock(), &syncBuffer{}
	r := &Runner{A: a, Site: "b", Peers: []string{"a"}, Workers: 2, Budget: time.Minute, MaxBackoff: 30 * time.Second,
		DLQ: q, M: metrics.New(), Log: slog.New(slog.NewTextHandler(log, nil)), Now: c.Now,
		Keys: schema.Keyring{Keys: map[string][]ed25519.PublicKey{"a": {sitePub("a")}, "c": {sitePub("c")}}}}
	return &testRunner{Runner: r, a: a, q: q, c: c, log: log}
}

// deliver runs m from peer through the chain, as a worker does.
func (tr *testRunner) deliver(peer string, m *fakeMsg) {
	tr.chain()(context.Background(), newDelivery(peer, m))
}

// counter is the value of the counter name with labels in m's registry
// (for a histogram, its sample count).
func counter(t *testing.T, m *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, mt := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range mt.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			if h := mt.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return mt.GetCounter().GetValue()
		}
	}
	return 0
}
