package consumer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/internal/brokertest"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// TestDeadLetterRefusedByFullDLQ: a DLQ at its limit (nats.limits.dlq)
// refuses a dead letter; the record is then not acknowledged but retried,
// the dead letters already stored stay as they were, and once the DLQ has
// room the record's dead letter is stored and the record acknowledged.
func TestDeadLetterRefusedByFullDLQ(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := brokertest.Start(t, "b")
	topo := broker.Topology{Site: "b", Limits: broker.Limits{DLQ: broker.StreamLimit{MaxMsgs: 2}}}
	if err := broker.EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	q := &DLQ{Site: "b", JS: js}
	for i := range 2 {
		if err := q.Put(ctx, DeadLetter{ID: fmt.Sprintf("CHANGES_a:%d", i+1), Reason: ReasonRejected, Record: []byte("earlier")}); err != nil {
			t.Fatal(err)
		}
	}
	dlq, err := js.Stream(ctx, broker.DLQStream("b"))
	if err != nil {
		t.Fatal(err)
	}
	before := dlq.CachedInfo().State

	tr := newTestRunner()
	tr.Runner.DLQ = q
	tr.a.apply = func(context.Context, *schema.Record) (schema.Decision, error) {
		return schema.Decision{}, s3io.ErrInvalidKey
	}
	_, data := recordOf(t, "a", "bkt", "k", 1)
	m := msgOf("a", 3, 1, data)
	tr.deliver("a", m)
	if acks, naks := m.settled(); acks != 0 || len(naks) != 1 || naks[0] != dlqRetryDelay {
		t.Fatalf("dead letter refused by the full DLQ: acks %d naks %v, want no ack and a nak of %v", acks, naks, dlqRetryDelay)
	}
	if !strings.Contains(tr.log.String(), "maximum messages exceeded") {
		t.Errorf("the refusal is not logged:\n%s", tr.log)
	}
	after, err := dlq.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.State.Msgs != 2 || after.State.FirstSeq != before.FirstSeq || after.State.LastSeq != before.LastSeq {
		t.Fatalf("DLQ after the refusal: %+v, before %+v", after.State, before)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		msg, err := dlq.GetMsg(ctx, seq)
		if err != nil || !strings.Contains(string(msg.Data), fmt.Sprintf(`"id":"CHANGES_a:%d"`, seq)) {
			t.Fatalf("stored dead letter %d: %v %s", seq, err, msg.Data)
		}
	}

	// Room again (the limit raised in place): the retry stores it.
	topo.Limits.DLQ.MaxMsgs = 10
	if err := broker.EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	tr.c.advance(dlqRetryDelay)
	tr.deliver("a", m)
	if acks, _ := m.settled(); acks != 1 {
		t.Fatalf("acks %d once the dead letter could be stored, want 1", acks)
	}
	msg, err := dlq.GetMsg(ctx, 3)
	if err != nil || !strings.Contains(string(msg.Data), `"id":"CHANGES_a:3"`) {
		t.Fatalf("the retried dead letter: %v %s", err, msg.Data)
	}
}
