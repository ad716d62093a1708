package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/internal/testenv"
)

// msgData is m's payload, for a failure message ("" without m).
func msgData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// TestHostileSite: with site b's own credentials from lab.json, every
// attack of issue 10 on site a fails (each refusal beside a positive
// control: what b may ask is answered within the same timeout) — purge or delete a's streams, delete
// or reset the consumers that replicate to a and from a, publish into a's
// CHANGES, EVENTS or DLQ, call a's admin service, forge acknowledgements —
// and replication between all sites goes on. (broker/links_test.go runs
// the same attacks from a rogue server in b's place.)
func TestHostileSite(t *testing.T) {
	e := labEnv(t)
	ctx := ctxT(t)
	a, b := e.sites["a"], e.sites["b"]
	stream := func(js jetstream.JetStream, name string) *jetstream.StreamInfo {
		t.Helper()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s at a: %v", name, err)
		}
		return s.CachedInfo()
	}
	e.put(t, "a", "hostile/before", object{body: []byte("before")})
	e.waitObject(t, "hostile/before", object{body: []byte("before")}, 30*time.Second)
	before := map[string]uint64{}
	for _, s := range []string{broker.ChangesStream("a"), broker.DLQStream("a")} {
		before[s] = stream(a.js, s).State.LastSeq
	}

	jsA, err := jetstream.NewWithDomain(b.nc, "a")
	if err != nil {
		t.Fatal(err)
	}
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }
	var got []string
	c, cancel := short()
	if err := jsA.DeleteStream(c, broker.ChangesStream("a")); err == nil {
		got = append(got, "delete CHANGES_a")
	}
	cancel()
	c, cancel = short()
	if err := jsA.DeleteConsumer(c, broker.ChangesStream("b"), consumer.ApplyConsumer("a")); err == nil {
		got = append(got, "delete a's apply consumer of b's records")
	}
	cancel()
	for _, subj := range []string{
		"$JS.a.API.STREAM.PURGE." + broker.ChangesStream("a"),
		"$JS.a.API.STREAM.UPDATE." + broker.ChangesStream("a"),
		"$JS.a.API.CONSUMER.DELETE." + broker.ChangesStream("a") + "." + broker.MirrorConsumer("c"),
		"$JS.a.API.CONSUMER.RESET." + broker.ChangesStream("a") + "." + broker.MirrorConsumer("c"),
		agent.AdminSubject("a", "status"),
		agent.AdminSubject("a", "dlq.retry"),
		agent.AdminSubject("a", "deletes.release"),
		agent.AdminSubject("a", "deletes.discard"),
	} {
		if _, err := b.nc.Request(subj, []byte(`{}`), time.Second); err == nil {
			got = append(got, subj)
		}
	}
	if len(got) > 0 {
		t.Errorf("answered for b at a: %v", got)
	}
	// Positive controls: what b may ask of a is answered within the same
	// one-second timeout, so the refusals above are refusals, not a slow
	// link: a reset of b's own mirror consumer at a, a page of a's state,
	// and what a's mirror holds of b's records.
	cfgB, err := config.Load(e.siteInfo(t, "b").Config)
	if err != nil {
		t.Fatal(err)
	}
	own := "$JS.a.API.CONSUMER.RESET." + broker.ChangesStream("a") + "." + agent.Topology(cfgB).MirrorConsumer("a", "b")
	if m, err := b.nc.Request(own, nil, time.Second); err != nil || testenv.JSRefusal(m.Data) {
		t.Errorf("b resetting its own mirror consumer at a: %v %s", err, msgData(m))
	}
	page, _ := json.Marshal(agent.AdminRequest{Bucket: bucket, Limit: 1})
	if m, err := b.nc.Request(broker.StatePageSubject("a"), page, time.Second); err != nil || !strings.Contains(string(m.Data), `"ok":true`) {
		t.Errorf("b asking a for a state page: %v %s", err, msgData(m))
	}
	c, cancel = short()
	if _, err := agent.AskPeerRecords(c, b.nc, "b", "a"); err != nil {
		t.Errorf("b asking a about its records: %v", err)
	}
	cancel()
	// Publishes: a record as a's own, an event, a dead letter, forged
	// acknowledgements for the consumer feeding c's mirror of a.
	for _, subj := range []string{
		broker.ChangesSubject("a", 0), broker.EventsSubject("a", "nats"), broker.DLQSubject("a", "apply"),
		"$JS.FC." + broker.ChangesStream("a") + "." + broker.MirrorConsumer("c") + ".x",
		"$JS.ACK." + broker.ChangesStream("b") + "." + consumer.ApplyConsumer("a") + ".1.1.1.1.1",
	} {
		if err := b.nc.Publish(subj, []byte("forged by b")); err != nil {
			t.Fatal(err)
		}
	}
	b.nc.Flush()
	// a's own admin service answers a.
	if _, err := a.nc.Request(agent.AdminSubject("a", "status"), []byte(`{}`), 5*time.Second); err != nil {
		t.Fatalf("a's admin service does not answer a: %v", err)
	}
	if m, err := a.nc.Request(agent.AdminSubject("a", "deletes.list"), []byte(`{}`), 5*time.Second); err != nil || !strings.Contains(string(m.Data), `"ok":true`) {
		t.Fatalf("a's held deletes verbs do not answer a: %v %s", err, msgData(m))
	}

	// Replication goes on in every direction; a write at b made after the
	// attacks crossed the same link, so once it is at a, so was everything.
	for _, from := range e.names {
		key := "hostile/after-" + from
		e.put(t, from, key, object{body: []byte(from)})
		e.waitObject(t, key, object{body: []byte(from)}, 30*time.Second)
	}
	if n := stream(a.js, broker.ChangesStream("a")).State.LastSeq; n != before[broker.ChangesStream("a")]+1 {
		t.Errorf("CHANGES_a moved from %d to %d for one write at a", before[broker.ChangesStream("a")], n)
	}
	if n := stream(a.js, broker.DLQStream("a")).State.LastSeq; n != before[broker.DLQStream("a")] {
		t.Errorf("DLQ_a moved from %d to %d", before[broker.DLQStream("a")], n)
	}
	if _, err := a.js.Consumer(ctx, broker.ChangesStream("b"), consumer.ApplyConsumer("a")); err != nil && !strings.Contains(err.Error(), "not a pull") {
		t.Errorf("a's apply consumer of b: %v", err)
	}
}
