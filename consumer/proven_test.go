package consumer

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/s3mesh/s3mesh/schema"
)

// memMeta is a state store's meta records in memory.
type memMeta map[string][]byte

func (m memMeta) GetMeta(name string, v any) (bool, error) {
	b, ok := m[name]
	if !ok {
		return false, nil
	}
	return true, msgpack.Unmarshal(b, v)
}

func (m memMeta) PutMetaLazy(name string, v any) error {
	b, err := msgpack.Marshal(v)
	m[name] = b
	return err
}

// A peer's record whose clock claims a third site's counter above what that
// site's own records proved here waits (nak with backoff, nothing applied,
// other records go on) until the third site's record proves it, then
// applies; a claim within the key's own clock here applies at once; one
// never proved goes to the DLQ as bad-record naming the field and the site
// once ProofWait has passed. What was proved is kept in the
// store and read back.
func TestUnprovenClaimWaitsForProof(t *testing.T) {
	store := memMeta{}
	tr := newTestRunner()
	tr.Peers = []string{"a", "c"}
	tr.Keys = schema.Keyring{Keys: map[string][]ed25519.PublicKey{"a": {sitePub("a")}, "c": {sitePub("c")}}}
	tr.ProofWait = 10 * time.Minute
	p, found, err := LoadProven(store, tr.Peers)
	if err != nil || found {
		t.Fatalf("empty store: found %v, %v", found, err)
	}
	tr.Proven = p
	var applied []string
	tr.a.apply = func(_ context.Context, rec *schema.Record) (schema.Decision, error) {
		applied = append(applied, rec.Version.ID)
		return schema.Decision{Outcome: schema.Apply}, nil
	}
	// a's record over k claims c's counter 5, which c has not shown b.
	claim := func(seq, n, cn uint64, key string) *fakeMsg {
		rec, _ := recordOf(t, "a", "bkt", key, n)
		rec.Version.Clock["c"] = cn
		data, err := rec.Sign(siteKey("a"))
		if err != nil {
			t.Fatal(err)
		}
		return msgOf("a", seq, 1, data)
	}
	t0 := tr.c.Now()
	m1 := claim(1, 1, 5, "k")
	tr.deliver("a", m1)
	if acks, naks := m1.settled(); acks != 0 || len(naks) != 1 || naks[0] != time.Second {
		t.Fatalf("unproven claim: acks %d naks %v, want a nak after 1s", acks, naks)
	}
	if len(applied) != 0 || len(tr.q.all()) != 0 {
		t.Fatalf("unproven claim applied %v or dead-lettered %v", applied, tr.q.all())
	}
	if !strings.Contains(tr.log.String(), "has not proved here yet") {
		t.Fatalf("the wait is not logged:\n%s", tr.log.String())
	}
	if n := counter(t, tr.M, "s3mesh_apply_errors_total", "peer", "a", "class", "unproven"); n != 1 {
		t.Fatalf("apply errors (unproven) = %v, want 1", n)
	}
	// a's record of another key without a claim on c applies meanwhile.
	other, otherData := recordOf(t, "a", "bkt", "other", 1)
	mo := msgOf("a", 2, 1, otherData)
	tr.deliver("a", mo)
	if acks, _ := mo.settled(); acks != 1 || len(applied) != 1 || applied[0] != other.Version.ID {
		t.Fatalf("a record without a claim: acks %d applied %v", acks, applied)
	}
	// c's own record with counter 5 proves it.
	_, cData := recordOf(t, "c", "bkt", "elsewhere", 5)
	mc := msgOf("c", 1, 1, cData)
	tr.deliver("c", mc)
	if acks, _ := mc.settled(); acks != 1 || p.Get("c") != 5 {
		t.Fatalf("c's record: acks %d, proven c = %d, want 5", acks, p.Get("c"))
	}
	tr.c.advance(time.Second)
	m1.meta.NumDelivered = 2
	tr.deliver("a", m1)
	if acks, _ := m1.settled(); acks != 1 || len(applied) != 3 {
		t.Fatalf("proved claim: acks %d applied %v, want it applied", acks, applied)
	}
	// A claim no higher than the key's own clock here lifts nothing: it
	// needs no proof again. One above it waits.
	tr.a.clocks = map[string]schema.Clock{"bkt/held": {"c": 50}}
	mh := claim(4, 3, 50, "held")
	tr.deliver("a", mh)
	if acks, naks := mh.settled(); acks != 1 || len(naks) != 0 || len(applied) != 4 {
		t.Fatalf("a claim within the key's clock: acks %d naks %v applied %v, want it applied", acks, naks, applied)
	}
	mh2 := claim(5, 4, 51, "held")
	tr.deliver("a", mh2)
	if acks, naks := mh2.settled(); acks != 0 || len(naks) != 1 || len(applied) != 4 {
		t.Fatalf("a claim above the key's clock and the proof: acks %d naks %v applied %v, want a nak", acks, naks, applied)
	}
	// A claim never proved waits ProofWait, then is dead-lettered.
	m2 := claim(3, 2, 6, "k")
	tr.deliver("a", m2)
	tr.c.t = t0.Add(time.Second + tr.ProofWait - time.Millisecond)
	tr.deliver("a", m2)
	if acks, naks := m2.settled(); acks != 0 || len(naks) != 2 {
		t.Fatalf("within ProofWait: acks %d naks %v, want two naks", acks, naks)
	}
	tr.c.t = t0.Add(time.Second + tr.ProofWait)
	tr.deliver("a", m2)
	dl := tr.q.all()
	if acks, _ := m2.settled(); acks != 1 || len(dl) != 1 || dl[0].Reason != ReasonBadRecord ||
		!strings.Contains(dl[0].Error, "Version.Clock") || !strings.Contains(dl[0].Error, "site c is 6") {
		t.Fatalf("after ProofWait: acks %d dead letters %+v, want one bad-record naming Version.Clock and site c", acks, dl)
	}
	if len(applied) != 4 {
		t.Fatalf("the unproven claim was applied: %v", applied)
	}
	// Kept: a restart reads it back; a site no longer a peer is dropped.
	p2, found, err := LoadProven(store, []string{"a", "c"})
	if err != nil || !found || p2.Get("c") != 5 || p2.Get("a") != 3 {
		t.Fatalf("reloaded: found %v c=%d a=%d %v; want c=5 a=3 (the records that waited prove nothing)", found, p2.Get("c"), p2.Get("a"), err)
	}
	p3, _, _ := LoadProven(store, []string{"a"})
	if _, ok := p3.Counters()["c"]; ok {
		t.Fatalf("a former peer is still checked: %v", p3.Counters())
	}
}
