package consumer

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/s3mesh/s3mesh/schema"
)

// Through a running consumer, a record of peer a's stream that is unsigned,
// signed by another key, or from a peer no key is configured for goes to
// the DLQ as bad-signature, is acknowledged, and the record of the same key
// behind it applies.
func TestBadSignatureDoesNotBlock(t *testing.T) {
	unsigned := func(t *testing.T, rec *schema.Record) []byte {
		rec.Schema = schema.UnsignedSchema
		return mustMsgpack(t, rec)
	}
	cases := []struct {
		name string
		peer string
		bad  func(*testing.T, *schema.Record) []byte
	}{
		{"unsigned", "a", unsigned},
		{"wrongly signed", "a", func(t *testing.T, rec *schema.Record) []byte { return seal(t, "mallory", mustMsgpack(t, rec)) }},
		{"signed by another peer", "a", func(t *testing.T, rec *schema.Record) []byte { return seal(t, "c", mustMsgpack(t, rec)) }},
		{"unknown origin", "d", func(t *testing.T, rec *schema.Record) []byte { return seal(t, "d", mustMsgpack(t, rec)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := newTestRunner()
				tr.Peers = []string{"a", "d"} // d: a peer without a configured key
				first, _ := recordOf(t, tc.peer, "bkt", "k", 1)
				next, nextData := recordOf(t, tc.peer, "bkt", "k", 2)
				if tc.peer == "d" {
					nextData = seal(t, "d", mustMsgpack(t, next)) // still unknown: d has no key
				}
				bad := msgOf(tc.peer, 1, 1, tc.bad(t, first))
				good := msgOf(tc.peer, 2, 1, nextData)
				// And a's next record, after the bad one, on a's stream.
				_, aData := recordOf(t, "a", "bkt", "k2", 1)
				aMsg := msgOf("a", 3, 1, aData)
				src := &fakeSource{msgs: map[string][]*fakeMsg{tc.peer: {bad, good}}}
				src.msgs["a"] = append(src.msgs["a"], aMsg)
				ctx, cancel := context.WithCancel(context.Background())
				done := startRun(ctx, tr, src)
				synctest.Wait()
				cancel()
				<-done

				dls := tr.q.all()
				wantDL := 1
				if tc.peer == "d" {
					wantDL = 2 // both of d's records: d has no key
				}
				if len(dls) != wantDL {
					t.Fatalf("%d dead letters, want %d: %+v", len(dls), wantDL, dls)
				}
				for _, dl := range dls {
					if dl.Reason != ReasonBadSignature || dl.Peer != tc.peer || dl.Bucket != "" {
						t.Errorf("dead letter %+v: want bad-signature from %s naming nothing", dl, tc.peer)
					}
				}
				for _, m := range []*fakeMsg{bad, good, aMsg} {
					if acks, naks := m.settled(); acks != 1 || len(naks) != 0 {
						t.Errorf("%s: acks %d naks %v, want one ack", m.meta.Stream, acks, naks)
					}
				}
				applied, dead := tr.a.calls()
				want := []string{next.Version.ID}
				if tc.peer == "d" {
					want = nil
				}
				want = append(want, schema.VersionID("a", "bkt", "k2", 1))
				if fmt.Sprint(sorted(applied)) != fmt.Sprint(sorted(want)) || len(dead) != 0 {
					t.Errorf("applied %v dead %v, want %v applied and nothing marked dead", applied, dead, want)
				}
				if n := counter(t, tr.M, "s3mesh_dead_lettered_total", "reason", ReasonBadSignature); n != float64(wantDL) {
					t.Errorf("dead lettered (bad-signature) = %v, want %d", n, wantDL)
				}
			})
		})
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// A key rotation: while a's old and new keys are both configured, records
// signed by either apply; once the old key is removed, a record it signed
// goes to the DLQ as bad-signature.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := siteKey("a"), siteKey("a, rotated")
	signed := func(key ed25519.PrivateKey, n uint64) *fakeMsg {
		rec, _ := recordOf(t, "a", "bkt", "k", n)
		b, err := rec.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		return msgOf("a", n, 1, b)
	}
	tr := newTestRunner()
	tr.Keys.Keys["a"] = []ed25519.PublicKey{oldKey.Public().(ed25519.PublicKey), newKey.Public().(ed25519.PublicKey)}
	tr.deliver("a", signed(oldKey, 1))
	tr.deliver("a", signed(newKey, 2))
	if applied, _ := tr.a.calls(); len(applied) != 2 || len(tr.q.all()) != 0 {
		t.Fatalf("overlap: applied %v, dead letters %+v; want both applied", applied, tr.q.all())
	}

	tr = newTestRunner()
	tr.Keys.Keys["a"] = []ed25519.PublicKey{newKey.Public().(ed25519.PublicKey)}
	late := signed(oldKey, 3) // signed before the switch, delivered after the old key went
	tr.deliver("a", late)
	tr.deliver("a", signed(newKey, 4))
	applied, _ := tr.a.calls()
	dls := tr.q.all()
	if len(applied) != 1 || applied[0] != schema.VersionID("a", "bkt", "k", 4) || len(dls) != 1 || dls[0].Reason != ReasonBadSignature {
		t.Fatalf("after: applied %v, dead letters %+v; want the new key's record applied and the old one's dead-lettered", applied, dls)
	}
	if acks, _ := late.settled(); acks != 1 {
		t.Fatalf("old-key record acked %d times", acks)
	}
}

// With accept_unsigned (a rolling upgrade), an unsigned schema 1 record of
// an earlier build applies; signed records are still verified.
func TestAcceptUnsigned(t *testing.T) {
	tr := newTestRunner()
	tr.Keys.AcceptUnsigned = true
	rec, _ := recordOf(t, "a", "bkt", "k", 1)
	rec.Schema = schema.UnsignedSchema
	v1, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tr.deliver("a", msgOf("a", 1, 1, v1))
	wrong, _ := recordOf(t, "a", "bkt", "k", 2)
	tr.deliver("a", msgOf("a", 2, 1, seal(t, "mallory", mustMsgpack(t, wrong))))
	applied, _ := tr.a.calls()
	dls := tr.q.all()
	if len(applied) != 1 || applied[0] != rec.Version.ID {
		t.Fatalf("applied %v, want the v1 record", applied)
	}
	if len(dls) != 1 || dls[0].Reason != ReasonBadSignature {
		t.Fatalf("dead letters %+v, want the wrongly signed record as bad-signature", dls)
	}
}
