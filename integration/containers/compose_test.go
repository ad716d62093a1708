package containers

import (
	"context"
	"testing"
	"time"
)

// TestPartitionSiteC writes at every site, disconnects site c's three
// containers from the inter-site network while the writes go on (c keeps
// taking writes), reconnects them, and checks that every site converges to
// the same content with every acknowledged write present.
func TestPartitionSiteC(t *testing.T) {
	l := getLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g := newLedger()
	stopWriters := l.writers(ctx, g, "part")
	time.Sleep(3 * time.Second)

	if err := l.cut(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	t.Log("site c cut off the mesh network")
	// The cut is real: a write at a does not reach c while it lasts.
	ca, err := l.s3(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.put(ctx, ca, "part/while-cut", []byte("written at a while c is cut off")); err != nil {
		t.Fatal(err)
	}
	// Cut off the mesh, c still works as a site: a write at c is seen by
	// c's agent and published to c's own stream (its agent, store and
	// broker talk over c's own network only).
	cc, err := l.s3(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.put(ctx, cc, "part/at-c-while-cut", []byte("written at c while c is cut off")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		ok, err := l.publishedAt(ctx, "c", "part/at-c-while-cut")
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a write at c while c was cut off the mesh was not published at c within 30s (%v): the site's own traffic depends on the mesh network", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(4 * time.Second)
	if m, err := l.listing(ctx, "c"); err != nil {
		t.Fatal(err)
	} else if _, ok := m["part/while-cut"]; ok {
		t.Fatal("a write at a reached c while c was cut off: the partition does not work")
	}
	time.Sleep(6 * time.Second)
	if err := l.heal(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	t.Log("site c reconnected")
	time.Sleep(2 * time.Second)
	stopWriters()
	l.converge(ctx, t, g, 90*time.Second)
}

// TestRestartAgentAndNATSB kills agent-b, then nats-b, while every site
// takes writes, starts them again (and versitygw b, whose event sink was
// the killed broker), and checks convergence and no loss.
func TestRestartAgentAndNATSB(t *testing.T) {
	l := getLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := l.sites["b"]
	g := newLedger()
	stopWriters := l.writers(ctx, g, "restart")
	time.Sleep(2 * time.Second)

	kill := time.Duration(0) // docker stop -t 0: SIGKILL at once
	if err := b.agent.Stop(ctx, &kill); err != nil {
		t.Fatal(err)
	}
	t.Log("agent-b killed")
	time.Sleep(3 * time.Second)
	if err := b.nats.Stop(ctx, &kill); err != nil {
		t.Fatal(err)
	}
	t.Log("nats-b killed")
	time.Sleep(3 * time.Second)

	if err := b.nats.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// versitygw's event sink does not survive its broker's restart (the
	// process lab restarts it too); the scanner repairs events lost meanwhile.
	if err := b.s3.Stop(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.s3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.agent.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Log("nats-b, s3-b and agent-b started again")
	time.Sleep(3 * time.Second)
	stopWriters()
	l.converge(ctx, t, g, 90*time.Second)
}
