package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/schema"
)

// fakeSource hands out consumers that deliver fixed messages per peer on
// one goroutine each, as jetstream's Consume does.
type fakeSource struct {
	msgs    map[string][]*fakeMsg
	openErr map[string]error

	mu       sync.Mutex
	handlers map[string]jetstream.MessageHandler
	ccs      map[string]*fakeConsumeContext
}

func (s *fakeSource) open(_ context.Context, peer string) (consumable, error) {
	if err := s.openErr[peer]; err != nil {
		return nil, err
	}
	return fakeConsumer{s, peer}, nil
}

type fakeConsumer struct {
	s    *fakeSource
	peer string
}

func (c fakeConsumer) Consume(h jetstream.MessageHandler, _ ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	cc := &fakeConsumeContext{stop: make(chan struct{}), closed: make(chan struct{})}
	c.s.mu.Lock()
	if c.s.handlers == nil {
		c.s.handlers, c.s.ccs = map[string]jetstream.MessageHandler{}, map[string]*fakeConsumeContext{}
	}
	c.s.handlers[c.peer], c.s.ccs[c.peer] = h, cc
	c.s.mu.Unlock()
	go func() {
		defer close(cc.closed)
		for _, m := range c.s.msgs[c.peer] {
			select {
			case <-cc.stop:
				return
			default:
			}
			h(m)
		}
	}()
	return cc, nil
}

func (s *fakeSource) handler(peer string) jetstream.MessageHandler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handlers[peer]
}

func (s *fakeSource) stopped(peer string) bool {
	s.mu.Lock()
	cc := s.ccs[peer]
	s.mu.Unlock()
	if cc == nil {
		return false
	}
	select {
	case <-cc.stop:
		return true
	default:
		return false
	}
}

type fakeConsumeContext struct {
	once         sync.Once
	stop, closed chan struct{}
}

func (c *fakeConsumeContext) Stop()                   { c.once.Do(func() { close(c.stop) }) }
func (c *fakeConsumeContext) Drain()                  { c.Stop() }
func (c *fakeConsumeContext) Closed() <-chan struct{} { return c.closed }

// startRun runs tr over src and returns a channel with Run's result.
func startRun(ctx context.Context, tr *testRunner, src *fakeSource) <-chan error {
	done := make(chan error, 1)
	go func() { done <- tr.run(ctx, src.open) }()
	return done
}

func returned(done <-chan error) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Records of one key apply in their stream order, records of all keys and
// peers are applied and acknowledged once, and Run ends when ctx does.
func TestRunAppliesEachKeyInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTestRunner()
		tr.Peers, tr.Workers = []string{"a", "c"}, 3
		src := &fakeSource{msgs: map[string][]*fakeMsg{}}
		type version struct {
			key string // origin/key
			n   uint64
		}
		versions := map[string]version{} // by id
		for _, peer := range tr.Peers {
			seq := uint64(0)
			for n := uint64(1); n <= 4; n++ {
				for k := range 5 {
					seq++
					rec, data := recordOf(t, peer, "bkt", fmt.Sprint("k", k), n)
					versions[rec.Version.ID] = version{peer + "/" + rec.Key, n}
					src.msgs[peer] = append(src.msgs[peer], msgOf(peer, seq, 1, data))
				}
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := startRun(ctx, tr, src)
		synctest.Wait()

		for peer, ms := range src.msgs {
			for _, m := range ms {
				if acks, naks := m.settled(); acks != 1 || len(naks) != 0 {
					t.Errorf("%s %v: acks %d naks %v, want one ack", peer, m.meta.Sequence, acks, naks)
				}
			}
		}
		applied, _ := tr.a.calls()
		if len(applied) != len(versions) {
			t.Errorf("%d applies, want %d", len(applied), len(versions))
		}
		last := map[string]uint64{} // by origin/key: the last n applied
		for _, id := range applied {
			v := versions[id]
			if v.n != last[v.key]+1 {
				t.Errorf("%s: version %d applied after %d", v.key, v.n, last[v.key])
			}
			last[v.key] = v.n
		}
		if returned(done) {
			t.Fatal("Run returned before ctx ended")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

// Run returns only after a worker in the middle of an apply has finished.
func TestRunJoinsWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTestRunner()
		applying, release := make(chan struct{}), make(chan struct{})
		var finished atomic.Bool
		tr.a.apply = func(ctx context.Context, _ *schema.Record) (schema.Decision, error) {
			close(applying)
			<-ctx.Done()
			<-release // still using the state store
			finished.Store(true)
			return schema.Decision{}, ctx.Err()
		}
		_, data := recordOf(t, "a", "bkt", "k", 1)
		m := msgOf("a", 1, 1, data)
		src := &fakeSource{msgs: map[string][]*fakeMsg{"a": {m}}}
		ctx, cancel := context.WithCancel(context.Background())
		done := startRun(ctx, tr, src)
		<-applying
		cancel()
		synctest.Wait() // everything that can move has moved
		if returned(done) {
			t.Fatal("Run returned while a worker was still applying")
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if !finished.Load() {
			t.Fatal("Run returned before the apply finished")
		}
		if acks, naks := m.settled(); acks != 0 || len(naks) != 0 {
			t.Errorf("acks %d naks %v of a record cut short by shutdown, want none", acks, naks)
		}
		if !src.stopped("a") {
			t.Error("a's consumer not stopped")
		}
	})
}

// Run returns only after a Consume callback in flight has returned, and
// turns away callbacks that come after.
func TestRunWaitsForCallbacks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTestRunner()
		_, data := recordOf(t, "a", "bkt", "k", 1)
		m := msgOf("a", 1, 1, data)
		m.release = make(chan struct{}) // the callback blocks reading the message
		src := &fakeSource{msgs: map[string][]*fakeMsg{"a": {m}}}
		ctx, cancel := context.WithCancel(context.Background())
		done := startRun(ctx, tr, src)
		synctest.Wait()
		cancel()
		synctest.Wait()
		if returned(done) {
			t.Fatal("Run returned while a Consume callback was running")
		}
		close(m.release)
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}

		late := msgOf("a", 2, 1, data)
		src.handler("a")(late) // a callback after Run returned
		if applied, _ := tr.a.calls(); len(applied) != 0 {
			t.Errorf("applied %v after shutdown began, want nothing", applied)
		}
		for _, m := range []*fakeMsg{m, late} {
			if acks, naks := m.settled(); acks != 0 || len(naks) != 0 {
				t.Errorf("%v: acks %d naks %v, want none", m.meta.Sequence, acks, naks)
			}
		}
	})
}

// A consumer that cannot be opened ends Run with its error, after the
// consumers already running are stopped and the workers joined.
func TestRunOpenErrorStopsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTestRunner()
		tr.Peers = []string{"a", "c"}
		errBroker := errors.New("consumer on CHANGES_c: context canceled")
		src := &fakeSource{openErr: map[string]error{"c": errBroker}}
		err := tr.run(context.Background(), src.open)
		if !errors.Is(err, errBroker) {
			t.Fatalf("Run: %v, want %v", err, errBroker)
		}
		if !src.stopped("a") {
			t.Error("a's consumer left running")
		}
	})
}

func TestRunNeedsSite(t *testing.T) {
	tr := newTestRunner()
	tr.Site = ""
	if err := tr.Run(context.Background(), nil); err == nil {
		t.Fatal("Run without a site: no error")
	}
}

// One peer's records that take long (a body its store serves slowly, on
// purpose or not) hold only that peer's workers: every other peer's
// records keep applying meanwhile, also on keys that would share a worker.
func TestRunOnePeerCannotHoldTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTestRunner()
		tr.Peers, tr.Workers = []string{"a", "c"}, 1
		release := make(chan struct{})
		tr.a.apply = func(ctx context.Context, rec *schema.Record) (schema.Decision, error) {
			if rec.Version.Origin == "a" {
				select { // a's body never comes
				case <-release:
				case <-ctx.Done():
					return schema.Decision{}, ctx.Err()
				}
			}
			return schema.Decision{Outcome: schema.Apply}, nil
		}
		src := &fakeSource{msgs: map[string][]*fakeMsg{}}
		for i := uint64(1); i <= 3; i++ {
			_, data := recordOf(t, "a", "bkt", fmt.Sprintf("slow%d", i), i)
			src.msgs["a"] = append(src.msgs["a"], msgOf("a", i, 1, data))
		}
		var fromC []*fakeMsg
		for i := uint64(1); i <= 20; i++ {
			_, data := recordOf(t, "c", "bkt", fmt.Sprintf("k%d", i), i)
			fromC = append(fromC, msgOf("c", i, 1, data))
		}
		src.msgs["c"] = fromC
		ctx, cancel := context.WithCancel(context.Background())
		done := startRun(ctx, tr, src)
		synctest.Wait() // everything that can move has moved: a's first apply waits
		for i, m := range fromC {
			if acks, _ := m.settled(); acks != 1 {
				t.Fatalf("c's record %d not applied while a's records wait (acks %d)", i+1, acks)
			}
		}
		close(release)
		synctest.Wait()
		for _, m := range src.msgs["a"] {
			if acks, _ := m.settled(); acks != 1 {
				t.Fatalf("a's record not applied once its body came (acks %d)", acks)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}
