package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

var errConnRefused = errors.New("dial tcp 127.0.0.1:9000: connect: connection refused") // transient

func TestAppliedOutcomes(t *testing.T) {
	cases := []struct {
		outcome  schema.Outcome
		conflict bool
		lag      bool // counted in the apply lag
	}{
		{outcome: schema.Skip},
		{outcome: schema.Apply, lag: true},
		{outcome: schema.ApplyWinner, conflict: true, lag: true},
		{outcome: schema.KeepLocal, conflict: true},
	}
	for _, tc := range cases {
		t.Run(tc.outcome.String(), func(t *testing.T) {
			tr := newTestRunner()
			tr.a.apply = func(context.Context, *schema.Record) (schema.Decision, error) {
				return schema.Decision{Outcome: tc.outcome, Conflict: tc.conflict}, nil
			}
			rec, data := recordOf(t, "a", "bkt", "k", 1)
			m := msgOf("a", 7, 1, data)
			tr.deliver("a", m)

			if acks, naks := m.settled(); acks != 1 || len(naks) != 0 {
				t.Fatalf("acks %d naks %v, want one ack", acks, naks)
			}
			if applied, dead := tr.a.calls(); len(applied) != 1 || applied[0] != rec.Version.ID || len(dead) != 0 {
				t.Fatalf("applied %v dead %v, want %s applied once", applied, dead, rec.Version.ID)
			}
			if n := counter(t, tr.M, "s3mesh_records_applied_total", "peer", "a", "outcome", tc.outcome.String()); n != 1 {
				t.Errorf("records applied (%s) = %v, want 1", tc.outcome, n)
			}
			if n, want := counter(t, tr.M, "s3mesh_conflicts_total"), b2f(tc.conflict); n != want {
				t.Errorf("conflicts = %v, want %v", n, want)
			}
			if n, want := counter(t, tr.M, "s3mesh_apply_lag_seconds"), b2f(tc.lag); n != want {
				t.Errorf("apply lag samples = %v, want %v", n, want)
			}
			if len(tr.q.all()) != 0 || len(tr.failures.m) != 0 {
				t.Errorf("dead letters %v, failure records %v; want none", tr.q.all(), tr.failures.m)
			}
		})
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Every dead-letter reason: which messages get it, after which attempts,
// and what the entry says.
func TestDeadLetterReasons(t *testing.T) {
	valid := func(t *testing.T) []byte { _, d := recordOf(t, "a", "bkt", "k", 3); return d }
	cases := []struct {
		name     string
		data     func(*testing.T) []byte
		errs     []error         // Apply's answer at each delivery
		at       []time.Duration // when each delivery happens, from the first (default: one at 0)
		reason   string
		applies  int  // Apply calls
		markDead bool // the version is marked dead in the state
	}{
		{name: "garbage", reason: ReasonBadSignature, // not a signed envelope
			data: func(*testing.T) []byte { return []byte("\xc1\xc1 not msgpack") }},
		{name: "garbage, signed", reason: ReasonDecode,
			data: func(t *testing.T) []byte { return seal(t, "a", []byte("\xc1\xc1 not msgpack")) }},
		{name: "truncated", reason: ReasonDecode,
			data: func(t *testing.T) []byte { d := valid(t); return d[:len(d)/2] }},
		{name: "invalid record", reason: ReasonDecode, data: func(t *testing.T) []byte {
			rec, _ := recordOf(t, "a", "bkt", "k", 3)
			rec.Version.ID = "forged"
			return seal(t, "a", mustMsgpack(t, rec))
		}},
		{name: "unknown version", reason: ReasonUnknownVersion, data: func(t *testing.T) []byte {
			_, d := recordOf(t, "a", "bkt", "k", 3)
			d[1] = 5 // the envelope's schema: [5, ...]
			return d
		}},
		{name: "unknown version inside the envelope", reason: ReasonUnknownVersion, data: func(t *testing.T) []byte {
			rec, _ := recordOf(t, "a", "bkt", "k", 3)
			rec.Schema = 5
			return seal(t, "a", mustMsgpack(t, rec))
		}},
		{name: "bad signature: unsigned v1", reason: ReasonBadSignature, data: func(t *testing.T) []byte {
			rec, _ := recordOf(t, "a", "bkt", "k", 3)
			rec.Schema = schema.UnsignedSchema
			return mustMsgpack(t, rec)
		}},
		{name: "bad signature: unsigned v2", reason: ReasonBadSignature, data: func(t *testing.T) []byte {
			rec, _ := recordOf(t, "a", "bkt", "k", 3)
			return mustMsgpack(t, rec)
		}},
		{name: "bad signature: signed by another site's key", reason: ReasonBadSignature, data: func(t *testing.T) []byte {
			rec, _ := recordOf(t, "a", "bkt", "k", 3)
			return seal(t, "c", mustMsgpack(t, rec))
		}},
		{name: "bad signature: signed by an unknown key", reason: ReasonBadSignature, data: func(t *testing.T) []byte {
			rec, _ := recordOf(t, "a", "bkt", "k", 3)
			return seal(t, "mallory", mustMsgpack(t, rec))
		}},
		{name: "bad signature: a byte of the content changed", reason: ReasonBadSignature, data: func(t *testing.T) []byte {
			_, d := recordOf(t, "a", "bkt", "k", 3)
			i := bytes.Index(d, []byte("bkt/k #3")) // the inline body
			d[i] = 'B'
			return d
		}},
		{name: "not replicated", reason: ReasonNotReplicated, applies: 1,
			data: func(t *testing.T) []byte { _, d := recordOf(t, "a", "other", "k", 3); return d }},
		{name: "unauthorized origin", reason: ReasonUnauthorized, // signed by a, claims c
			data: func(t *testing.T) []byte {
				rec, _ := recordOf(t, "c", "bkt", "k", 3)
				return seal(t, "a", mustMsgpack(t, rec))
			}},
		{name: "bad record: size over 5 TiB", reason: ReasonBadRecord, data: hostile(func(r *schema.Record) {
			r.Inline, r.Body, r.Version.Size = false, nil, 1<<62
		})},
		{name: "bad record: counter past the bound", reason: ReasonBadRecord, data: hostile(func(r *schema.Record) {
			r.Version.Clock["b"] = 1<<64 - 1
		})},
		{name: "bad record: unknown site in the clock", reason: ReasonBadRecord, data: hostile(func(r *schema.Record) {
			r.Version.Clock["mallory"] = 1
		})},
		{name: "bad record: origin time far ahead", reason: ReasonBadRecord, data: hostile(func(r *schema.Record) {
			r.Version.TS = 1 << 62
		})},
		{name: "bad record: origin time past the bound and the early window", reason: ReasonBadRecord, data: hostile(func(r *schema.Record) {
			r.Version.TS = newClock().Now().Add(schema.DefaultMaxFuture+schema.EarlyWindow).UnixMilli() + 1
		})},
		{name: "bad record: .. key", reason: ReasonBadRecord, data: hostile(func(r *schema.Record) {
			r.Key = "a/../../etc"
			r.Version.ID = schema.VersionID("a", r.Bucket, r.Key, 3)
		})},
		{name: "bad record: map header of 2^32 entries", reason: ReasonBadRecord,
			data: func(t *testing.T) []byte { return seal(t, "a", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 1}) }},
		{name: "rejected invalid key", reason: ReasonRejected, applies: 1, markDead: true, data: valid,
			errs: []error{fmt.Errorf("put bkt/k: %w", s3io.ErrInvalidKey)}},
		{name: "rejected no such bucket", reason: ReasonRejected, applies: 1, markDead: true, data: valid,
			errs: []error{fmt.Errorf("put bkt/k: %w", s3io.ErrNoSuchBucket)}},
		{name: "manual conflict", reason: ReasonManual, applies: 1, markDead: true, data: valid,
			errs: []error{fmt.Errorf("apply bkt/k: %w", ErrParked)}},
		{name: "retry budget", reason: ReasonRetryBudget, applies: 7, markDead: true, data: valid,
			errs: repeat(errConnRefused, 7),
			at:   []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 31 * time.Second, time.Minute}},
		{name: "local keeps changing", reason: ReasonRetryBudget, applies: 2, markDead: true, data: valid,
			errs: repeat(fmt.Errorf("apply bkt/k: %w", ErrLocalChanging), 2), at: []time.Duration{0, 2 * time.Minute}},
		{name: "body unavailable", reason: ReasonBodyUnavail, applies: 2, markDead: true, data: valid,
			errs: repeat(fmt.Errorf("body of bkt/k: %w", ErrBodyUnavailable), 2), at: []time.Duration{0, 61 * time.Second}},
		{name: "transient then permanent", reason: ReasonRejected, applies: 2, markDead: true, data: valid,
			errs: []error{errConnRefused, s3io.ErrInvalidKey}, at: []time.Duration{0, time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestRunner()
			i := 0
			tr.a.apply = func(context.Context, *schema.Record) (schema.Decision, error) {
				err := tc.errs[min(i, len(tc.errs)-1)]
				i++
				return schema.Decision{}, err
			}
			at := tc.at
			if at == nil {
				at = []time.Duration{0}
			}
			data := tc.data(t)
			m := msgOf("a", 7, 1, data)
			t0 := tr.c.Now()
			for n, off := range at {
				tr.c.t = t0.Add(off)
				m.meta.NumDelivered = uint64(n + 1)
				tr.deliver("a", m)
			}

			dls := tr.q.all()
			if len(dls) != 1 {
				t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
			}
			dl := dls[0]
			if dl.Reason != tc.reason || dl.Error == "" {
				t.Errorf("reason %q error %q, want reason %q and an error", dl.Reason, dl.Error, tc.reason)
			}
			if dl.ID != "CHANGES_a:7" || dl.Stream != "CHANGES_a" || dl.Seq != 7 || dl.Peer != "a" || !bytes.Equal(dl.Record, data) {
				t.Errorf("entry %+v: want CHANGES_a:7 from a with the message bytes", dl)
			}
			if dl.Attempts != uint64(len(at)) || !dl.FirstFailure.Equal(t0) || !dl.LastFailure.Equal(t0.Add(at[len(at)-1])) {
				t.Errorf("attempts %d first %v last %v, want %d, %v, %v", dl.Attempts, dl.FirstFailure, dl.LastFailure,
					len(at), t0, t0.Add(at[len(at)-1]))
			}
			if tc.reason == ReasonBadSignature { // an unverified record's content names nothing
				if dl.Bucket != "" || dl.Key != "" || dl.VersionID != "" {
					t.Errorf("bad-signature entry names %s/%s %s", dl.Bucket, dl.Key, dl.VersionID)
				}
			} else if rec, err := schema.Decode(data); err == nil && (dl.Bucket != rec.Bucket || dl.Key != rec.Key || dl.VersionID != rec.Version.ID) {
				t.Errorf("entry names %s/%s %s, want %s/%s %s", dl.Bucket, dl.Key, dl.VersionID, rec.Bucket, rec.Key, rec.Version.ID)
			}
			acks, naks := m.settled()
			if acks != 1 || len(naks) != len(at)-1 {
				t.Errorf("acks %d naks %v, want 1 ack after %d naks", acks, naks, len(at)-1)
			}
			applied, dead := tr.a.calls()
			if len(applied) != tc.applies {
				t.Errorf("Apply called %d times, want %d", len(applied), tc.applies)
			}
			if wantDead := tc.markDead; (len(dead) == 1) != wantDead || len(dead) > 1 {
				t.Errorf("MarkDead calls %v, want marked: %v", dead, wantDead)
			} else if wantDead && dead[0] != "bkt/k/"+schema.VersionID("a", "bkt", "k", 3) {
				t.Errorf("MarkDead %s, want bkt/k and the record's version", dead[0])
			}
			if n := counter(t, tr.M, "s3mesh_dead_lettered_total", "reason", tc.reason); n != 1 {
				t.Errorf("dead lettered (%s) = %v, want 1", tc.reason, n)
			}
			if len(tr.failures.m) != 0 {
				t.Errorf("failure records left after the dead letter: %v", tr.failures.m)
			}
		})
	}
}

// hostile is a record of a, changed by mut, encoded without validation
// and signed by a.
func hostile(mut func(*schema.Record)) func(*testing.T) []byte {
	return func(t *testing.T) []byte {
		rec, _ := recordOf(t, "a", "bkt", "k", 3)
		mut(rec)
		return seal(t, "a", mustMsgpack(t, rec))
	}
}

// seal signs content (any bytes) with site's test key.
func seal(t *testing.T, site string, content []byte) []byte {
	t.Helper()
	b, err := schema.Seal(content, siteKey(site))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustMsgpack(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func repeat(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// An early record (origin time a little past this site's clock plus
// max_future, as an honest write over a peer's version at the bound is at
// a site whose clock is behind) is nakked until the clock reaches it, then
// applied: never dead-lettered, however long past the retry budget that
// takes, and without a failure record that would shorten a later budget.
func TestEarlyRecordRetriedUntilValid(t *testing.T) {
	cases := []struct {
		name  string
		early time.Duration // past the bound
		naks  []time.Duration
	}{
		{"1 ms early", time.Millisecond, []time.Duration{minEarlyDelay}},
		{"2 s early", 2 * time.Second, []time.Duration{2 * time.Second}},
		// Past the retry budget (1m) and MaxBackoff (30s): nakked every 30 s.
		{"90 s early", 90 * time.Second, []time.Duration{30 * time.Second, 30 * time.Second, 30 * time.Second}},
		{"at the window", schema.EarlyWindow, repeatDelay(30*time.Second, 10)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestRunner()
			rec, _ := recordOf(t, "a", "bkt", "k", 3)
			rec.Version.TS = tr.c.Now().Add(schema.DefaultMaxFuture + tc.early).UnixMilli()
			data, err := rec.Sign(siteKey("a"))
			if err != nil {
				t.Fatal(err)
			}
			m := msgOf("a", 7, 1, data)
			for i := 0; i < 20; i++ {
				tr.deliver("a", m)
				acks, naks := m.settled()
				if acks > 0 {
					break
				}
				if len(tr.failures.m) != 0 {
					t.Fatalf("an early record has a failure record: %v", tr.failures.m)
				}
				tr.c.advance(naks[len(naks)-1])
				m.meta.NumDelivered++
			}
			acks, naks := m.settled()
			if acks != 1 || fmt.Sprint(naks) != fmt.Sprint(tc.naks) {
				t.Fatalf("acks %d naks %v, want naks %v then an ack", acks, naks, tc.naks)
			}
			if applied, _ := tr.a.calls(); len(applied) != 1 || applied[0] != rec.Version.ID {
				t.Fatalf("applied %v, want %s once (after the wait)", applied, rec.Version.ID)
			}
			if dls := tr.q.all(); len(dls) != 0 {
				t.Fatalf("dead letters %+v, want none", dls)
			}
			if n := counter(t, tr.M, "s3mesh_records_early_total", "peer", "a"); n != float64(len(tc.naks)) {
				t.Errorf("records early = %v, want %d", n, len(tc.naks))
			}
			if !strings.Contains(tr.log.String(), "record early") {
				t.Errorf("no early record logged:\n%s", tr.log)
			}
		})
	}
}

func repeatDelay(d time.Duration, n int) []time.Duration {
	ds := make([]time.Duration, n)
	for i := range ds {
		ds[i] = d
	}
	return ds
}

func TestBackoffDelay(t *testing.T) {
	cases := []struct {
		n    uint64
		max  time.Duration
		want time.Duration
	}{
		{0, 30 * time.Second, time.Second},
		{1, 30 * time.Second, time.Second},
		{2, 30 * time.Second, 2 * time.Second},
		{3, 30 * time.Second, 4 * time.Second},
		{5, 30 * time.Second, 16 * time.Second},
		{6, 30 * time.Second, 30 * time.Second},
		{1000, 30 * time.Second, 30 * time.Second},
		{20, time.Hour, time.Hour},
		{3, 500 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tc := range cases {
		if got := backoffDelay(tc.n, tc.max); got != tc.want {
			t.Errorf("backoffDelay(%d, %v) = %v, want %v", tc.n, tc.max, got, tc.want)
		}
	}
}

// A record that keeps failing is nakked with the capped exponential backoff
// of its failed attempts, each redelivery arriving when the delay is over.
func TestRetryNaksWithBackoff(t *testing.T) {
	tr := newTestRunner()
	tr.Budget = 10 * time.Minute
	tr.a.apply = func(context.Context, *schema.Record) (schema.Decision, error) {
		return schema.Decision{}, errConnRefused
	}
	_, data := recordOf(t, "a", "bkt", "k", 1)
	m := msgOf("a", 1, 1, data)
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i := range want {
		want[i] *= time.Second
		tr.deliver("a", m)
		_, naks := m.settled()
		tr.c.advance(naks[len(naks)-1])
		m.meta.NumDelivered++
	}
	if acks, naks := m.settled(); acks != 0 || fmt.Sprint(naks) != fmt.Sprint(want) {
		t.Fatalf("acks %d naks %v, want no ack and naks %v", acks, naks, want)
	}
	if n := counter(t, tr.M, "s3mesh_apply_errors_total", "peer", "a", "class", s3io.Classify(errConnRefused).String()); n != float64(len(want)) {
		t.Errorf("apply errors = %v, want %d", n, len(want))
	}
	if !strings.Contains(tr.log.String(), "apply failed, will retry") {
		t.Errorf("no retry logged:\n%s", tr.log)
	}
}

// The retry budget runs from a message's first failure, whatever its
// delivery count says.
func TestRetryBudgetIsElapsedTime(t *testing.T) {
	type step struct {
		at        time.Duration // from the start
		peer      string        // the message is peer's record at seq
		seq       uint64
		delivered uint64 // its delivery count (default 1)
		err       error  // Apply's answer
		restart   bool   // a new runner (agent restart) before this step
		want      string // "ack", "nak <delay>" or "dlq"
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"redelivered after waiting in a queue", []step{
			// delivered 40 times, tried once: no backoff spent
			{at: 0, peer: "a", seq: 7, delivered: 40, err: errConnRefused, want: "nak 1s"},
			{at: time.Second, peer: "a", seq: 7, delivered: 41, err: errConnRefused, want: "nak 2s"},
		}},
		{"just under the budget", []step{
			{at: 0, peer: "a", seq: 7, err: errConnRefused, want: "nak 1s"},
			{at: time.Minute - time.Millisecond, peer: "a", seq: 7, err: errConnRefused, want: "nak 2s"},
			{at: time.Minute, peer: "a", seq: 7, err: errConnRefused, want: "dlq"},
		}},
		{"a success forgets the failures", []step{
			{at: 0, peer: "a", seq: 7, err: errConnRefused, want: "nak 1s"},
			{at: time.Second, peer: "a", seq: 7, want: "ack"},
			{at: 2 * time.Minute, peer: "a", seq: 7, err: errConnRefused, want: "nak 1s"},
		}},
		{"a restart starts the budget again", []step{
			{at: 0, peer: "a", seq: 7, err: errConnRefused, want: "nak 1s"},
			{at: 2 * time.Minute, peer: "a", seq: 7, err: errConnRefused, restart: true, want: "nak 1s"},
			{at: 3*time.Minute - time.Millisecond, peer: "a", seq: 7, err: errConnRefused, want: "nak 2s"},
			{at: 3 * time.Minute, peer: "a", seq: 7, err: errConnRefused, want: "dlq"},
		}},
		{"each message has its own budget", []step{
			{at: 0, peer: "a", seq: 7, err: errConnRefused, want: "nak 1s"},
			{at: time.Minute, peer: "a", seq: 8, err: errConnRefused, want: "nak 1s"},
			{at: time.Minute, peer: "c", seq: 7, err: errConnRefused, want: "nak 1s"},
			{at: time.Minute, peer: "a", seq: 7, err: errConnRefused, want: "dlq"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs := map[string]*fakeMsg{}
			tr := newTestRunner()
			tr.Peers = []string{"a", "c"}
			t0 := tr.c.Now()
			for i, s := range tc.steps {
				if s.restart {
					c := tr.c
					tr = newTestRunner()
					tr.c, tr.Now = c, c.Now
				}
				tr.c.t = t0.Add(s.at)
				tr.a.apply = func(context.Context, *schema.Record) (schema.Decision, error) {
					return schema.Decision{Outcome: schema.Apply}, s.err
				}
				name := fmt.Sprintf("%s:%d", s.peer, s.seq)
				m := msgs[name]
				if m == nil {
					_, data := recordOf(t, s.peer, "bkt", name, 1)
					m = msgOf(s.peer, s.seq, 1, data)
					msgs[name] = m
				}
				m.meta.NumDelivered = max(s.delivered, 1)
				acks0, naks0 := m.settled()
				dl0 := len(tr.q.all())
				tr.deliver(s.peer, m)
				acks, naks := m.settled()
				var got string
				switch {
				case len(tr.q.all()) > dl0 && acks == acks0+1:
					got = "dlq"
				case acks == acks0+1:
					got = "ack"
				case len(naks) == len(naks0)+1:
					got = "nak " + naks[len(naks)-1].String()
				}
				if got != s.want {
					t.Fatalf("step %d (%s at %v): %q, want %q", i, name, s.at, got, s.want)
				}
			}
		})
	}
}

func TestAckFailuresCounted(t *testing.T) {
	errClosed := errors.New("nats: connection closed")
	cases := []struct {
		name      string
		data      func(*testing.T) []byte
		applyErr  error
		dlqErr    error
		ackErr    error
		nakErr    error
		op        string
		wantDelay time.Duration // of the nak, if one is sent
	}{
		{name: "ack of an applied record", ackErr: errClosed, op: "ack"},
		{name: "ack of a dead letter", applyErr: s3io.ErrInvalidKey, ackErr: errClosed, op: "ack"},
		{name: "ack of an undecodable record", data: func(*testing.T) []byte { return []byte("junk") }, ackErr: errClosed, op: "ack"},
		{name: "nak of a retry", applyErr: errConnRefused, nakErr: errClosed, op: "nak", wantDelay: time.Second},
		{name: "nak of an unstored dead letter", applyErr: s3io.ErrInvalidKey, dlqErr: errors.New("timeout"), nakErr: errClosed,
			op: "nak", wantDelay: dlqRetryDelay},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestRunner()
			tr.q.err = tc.dlqErr
			tr.a.apply = func(context.Context, *schema.Record) (schema.Decision, error) {
				return schema.Decision{Outcome: schema.Apply}, tc.applyErr
			}
			_, data := recordOf(t, "a", "bkt", "k", 1)
			if tc.data != nil {
				data = tc.data(t)
			}
			m := msgOf("a", 9, 1, data)
			m.ackErr, m.nakErr = tc.ackErr, tc.nakErr
			tr.deliver("a", m)

			for _, op := range []string{"ack", "nak", "in_progress"} {
				want := b2f(op == tc.op)
				if n := counter(t, tr.M, "s3mesh_ack_failures_total", "op", op); n != want {
					t.Errorf("ack failures (%s) = %v, want %v", op, n, want)
				}
			}
			if !strings.Contains(tr.log.String(), "acknowledgement not sent") || !strings.Contains(tr.log.String(), "op="+tc.op) {
				t.Errorf("failed %s not logged:\n%s", tc.op, tr.log)
			}
			if _, naks := m.settled(); tc.op == "nak" && (len(naks) != 1 || naks[0] != tc.wantDelay) {
				t.Errorf("naks %v, want one of %v", naks, tc.wantDelay)
			}
		})
	}
}

func TestInProgressFailuresCounted(t *testing.T) {
	tr := newTestRunner()
	tr.init()
	_, data := recordOf(t, "a", "bkt", "k", 1)
	m := msgOf("a", 1, 1, data)
	pm := progressMsg{Msg: m, r: tr.Runner, d: newDelivery("a", m)}
	if err := pm.InProgress(); err != nil {
		t.Fatal(err)
	}
	m.progressErr = errors.New("nats: connection closed")
	if err := pm.InProgress(); err == nil {
		t.Fatal("InProgress hid the failure")
	}
	if n := counter(t, tr.M, "s3mesh_ack_failures_total", "op", "in_progress"); n != 1 {
		t.Errorf("ack failures (in_progress) = %v, want 1", n)
	}
}

// A dead letter that cannot be stored is not acknowledged: the record comes
// back, and the entry finally stored has the true first failure and count.
func TestDeadLetterNotStoredIsRetried(t *testing.T) {
	tr := newTestRunner()
	tr.q.err = errors.New("nats: timeout")
	tr.a.apply = func(context.Context, *schema.Record) (schema.Decision, error) {
		return schema.Decision{}, s3io.ErrInvalidKey
	}
	_, data := recordOf(t, "a", "bkt", "k", 1)
	m := msgOf("a", 3, 1, data)
	t0 := tr.c.Now()
	tr.deliver("a", m)
	if acks, naks := m.settled(); acks != 0 || len(naks) != 1 || naks[0] != dlqRetryDelay {
		t.Fatalf("acks %d naks %v, want no ack and a nak of %v", acks, naks, dlqRetryDelay)
	}
	if n := counter(t, tr.M, "s3mesh_dead_lettered_total", "reason", ReasonRejected); n != 0 {
		t.Errorf("dead lettered = %v although nothing was stored", n)
	}
	if !strings.Contains(tr.log.String(), "dead letter not stored") {
		t.Errorf("unstored dead letter not logged:\n%s", tr.log)
	}
	tr.q.err = nil
	tr.c.advance(dlqRetryDelay)
	tr.deliver("a", m)
	dls := tr.q.all()
	if len(dls) != 1 || dls[0].Attempts != 2 || !dls[0].FirstFailure.Equal(t0) || !dls[0].LastFailure.Equal(t0.Add(dlqRetryDelay)) {
		t.Fatalf("dead letters %+v, want one with 2 attempts from %v", dls, t0)
	}
	if acks, _ := m.settled(); acks != 1 {
		t.Errorf("acks %d after the dead letter was stored, want 1", acks)
	}
}

// The state not recording the dead version is logged; the dead letter is
// stored and the record acknowledged all the same.
func TestMarkDeadFailureStillDeadLetters(t *testing.T) {
	tr := newTestRunner()
	tr.a.markErr = errors.New("pebble: closed")
	tr.a.apply = func(context.Context, *schema.Record) (schema.Decision, error) {
		return schema.Decision{}, ErrParked
	}
	_, data := recordOf(t, "a", "bkt", "k", 1)
	m := msgOf("a", 3, 1, data)
	tr.deliver("a", m)
	if acks, _ := m.settled(); acks != 1 || len(tr.q.all()) != 1 {
		t.Fatalf("acks %d dead letters %d, want 1 and 1", acks, len(tr.q.all()))
	}
	if !strings.Contains(tr.log.String(), "dead letter not marked in the state") {
		t.Errorf("MarkDead failure not logged:\n%s", tr.log)
	}
}

// A failure caused by the agent stopping is neither retried, nor
// dead-lettered, nor counted: the record is left for redelivery.
func TestShutdownLeavesRecordUnsettled(t *testing.T) {
	for _, in := range []string{"apply", "dead letter"} {
		t.Run(in, func(t *testing.T) {
			tr := newTestRunner()
			ctx, cancel := context.WithCancel(context.Background())
			tr.a.apply = func(context.Context, *schema.Record) (schema.Decision, error) {
				if in == "apply" {
					cancel()
					return schema.Decision{}, context.Canceled
				}
				return schema.Decision{}, s3io.ErrInvalidKey
			}
			tr.q.onPut = func() error { cancel(); return context.Canceled }
			_, data := recordOf(t, "a", "bkt", "k", 1)
			m := msgOf("a", 3, 1, data)
			tr.chain()(ctx, newDelivery("a", m))
			if acks, naks := m.settled(); acks != 0 || len(naks) != 0 {
				t.Errorf("acks %d naks %v, want the record left alone", acks, naks)
			}
			if len(tr.q.all()) != 0 || counter(t, tr.M, "s3mesh_dead_lettered_total") != 0 {
				t.Errorf("dead letters %v on shutdown", tr.q.all())
			}
			if in == "apply" && counter(t, tr.M, "s3mesh_apply_errors_total") != 0 {
				t.Errorf("a shutdown counted as an apply error")
			}
			if strings.Contains(tr.log.String(), "level=ERROR") || strings.Contains(tr.log.String(), "level=WARN") {
				t.Errorf("a shutdown logged as a failure:\n%s", tr.log)
			}
		})
	}
}

// An error no step turned into an outcome is retried, not dropped.
func TestUnhandledErrorIsRetried(t *testing.T) {
	tr := newTestRunner()
	tr.init()
	m := msgOf("a", 1, 1, nil)
	tr.acknowledge(func(context.Context, *delivery) error { return errors.New("surprise") })(context.Background(), newDelivery("a", m))
	if acks, naks := m.settled(); acks != 0 || len(naks) != 1 || naks[0] != tr.MaxBackoff {
		t.Fatalf("acks %d naks %v, want a nak of %v", acks, naks, tr.MaxBackoff)
	}
}

// The failure table stays bounded: the entry that failed longest ago goes.
func TestFailuresBounded(t *testing.T) {
	f := newFailures(2)
	t0 := time.Unix(0, 0)
	f.record("s:1", t0)
	f.record("s:2", t0.Add(time.Second))
	f.record("s:1", t0.Add(2*time.Second)) // s:2 is now the oldest
	f.record("s:3", t0.Add(3*time.Second))
	if len(f.m) != 2 {
		t.Fatalf("%d entries, want 2", len(f.m))
	}
	if _, ok := f.m["s:2"]; ok {
		t.Errorf("s:2 kept, want it evicted: %v", f.m)
	}
	if e := f.m["s:1"]; e.attempts != 2 || !e.first.Equal(t0) {
		t.Errorf("s:1 = %+v, want 2 attempts from %v", e, t0)
	}
	if e := f.record("", t0); e.attempts != 1 || len(f.m) != 2 {
		t.Errorf("a message without id: %+v, %d entries; want one untracked attempt", e, len(f.m))
	}
	f.forget("s:1")
	if _, ok := f.m["s:1"]; ok || len(f.m) != 1 {
		t.Errorf("forget left %v", f.m)
	}
}
