package rebuild

import (
	"bytes"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// A rebuild trusts only what the versions' origins signed. Peer b answers
// as a compromised site would (its state page and its store), c honestly:
// c's version of the key is restored every time, b's claims are refused
// and counted, and b's bytes never reach the site. The first case is the
// positive control: b honest too.
func TestHostilePeerPages(t *testing.T) {
	m := newMesh(t, "b", "c")
	b, cc := m.peer("b"), m.peer("c")
	t0 := now() - time.Hour.Milliseconds()
	// forge makes b's state hold e for bucket/key (and nothing else).
	forge := func(t *testing.T, bucket, key string, e state.Entry) {
		t.Helper()
		unlock := b.st.Lock(bucket, key)
		defer unlock()
		if err := b.st.Put(bucket, key, e); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		// attack makes b answer for bucket/key, where c holds honest.
		attack     func(t *testing.T, bucket, key string, honest schema.Version)
		unverified int64
		refused    int64
	}{
		{"honest b (positive control)", func(t *testing.T, bucket, key string, honest schema.Version) {
			b.hold(t, bucket, key, honest)
		}, 0, 0},
		{"a later version of c's, unsigned", func(t *testing.T, bucket, key string, honest schema.Version) {
			v := version("c", bucket, key, c("c", 2), t0+10)
			b.putReplica(t, bucket, key, v)
			forge(t, bucket, key, state.Entry{Held: v, Clock: v.Clock, LocalETag: v.ETag})
		}, 1, 0},
		{"c's version with b's edits under c's proof", func(t *testing.T, bucket, key string, honest schema.Version) {
			v := honest
			v.TS, v.Clock = t0+20, c("b", 7, "c", 1)
			forge(t, bucket, key, state.Entry{Held: v, Clock: v.Clock, LocalETag: v.ETag, Proof: proofOf(t, bucket, key, honest)})
		}, 1, 0},
		{"a version of c's signed with b's key", func(t *testing.T, bucket, key string, honest schema.Version) {
			v := version("c", bucket, key, c("c", 3), t0+30)
			r := schema.Record{Schema: schema.RecordSchema, Bucket: bucket, Key: key, Version: v, MadeAt: v.TS}
			proof, err := r.SignProof(siteKey("b"))
			if err != nil {
				t.Fatal(err)
			}
			b.putReplica(t, bucket, key, v)
			forge(t, bucket, key, state.Entry{Held: v, Clock: v.Clock, LocalETag: v.ETag, Proof: proof})
		}, 1, 0},
		{"b's own version claiming c's counter 2^55", func(t *testing.T, bucket, key string, honest schema.Version) {
			v := version("b", bucket, key, c("b", 1, "c", 1<<55), t0+40)
			b.putOrigin(t, bucket, key, v)
			forge(t, bucket, key, state.Entry{Held: v, Clock: v.Clock, LocalETag: v.ETag, Proof: proofOf(t, bucket, key, v)})
		}, 1, 0},
		{"c's signed version, other bytes", func(t *testing.T, bucket, key string, honest schema.Version) {
			at := attrsOfVersion(honest)
			for mk, mv := range schema.ReplicaMeta(bucket, key, honest) {
				at.Meta[mk] = mv
			}
			other := []byte("other bytes than c's version " + honest.ID + "\n")[:len(bodyOf(honest))]
			etag := b.put(t, bucket, key, other, at)
			forge(t, bucket, key, state.Entry{Held: honest, Clock: honest.Clock, LocalETag: etag, Proof: proofOf(t, bucket, key, honest)})
		}, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bucket := m.bucket(t, false)
			const key = "k"
			honest := version("c", bucket, key, c("c", 1), t0)
			cc.hold(t, bucket, key, honest)
			tc.attack(t, bucket, key, honest)
			st := freshState(t)
			stats := run(t, m.options(st, bucket))
			wantStats(t, stats, Stats{Keys: 1, Copied: 1, Bytes: honest.Size, Buckets: 1, Unverified: tc.unverified, Refused: tc.refused})
			etag := m.site.wantReplica(t, bucket, key, honest)
			wantEntry(t, st, bucket, key, honest, honest.Clock, etag, digestOf(attrsOfVersion(honest)))
			if e, _, _ := st.Get(bucket, key); len(e.Proof) == 0 {
				t.Error("the rebuilt entry keeps no proof of its version")
			}
		})
	}
}

// A version whose body travelled inline and makes its record larger than
// schema.MaxProof is proved by a cut proof, which only its own bytes
// complete: the site's own version, held by its peers as replicas of the
// inline record, is restored (the peers hold no bodyless record of it),
// and a peer's other bytes of the same size are refused.
func TestCutProofs(t *testing.T) {
	m := newMesh(t, "b", "c")
	b, cc := m.peer("b"), m.peer("c")
	keys := testKeys()
	for _, tc := range []struct {
		name    string
		bBytes  bool // b serves other bytes
		refused int64
	}{{"positive control", false, 0}, {"b serves other bytes", true, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			bucket := m.bucket(t, false)
			const key = "inline.bin"
			body := bytes.Repeat([]byte("the site's own inline version "), 1500) // 45 KB
			v := schema.Version{ID: schema.VersionID(siteName, bucket, key, 1), Origin: siteName, Clock: c(siteName, 1),
				TS: now() - 1000, Size: int64(len(body)), ETag: md5hex(body)}
			data, err := (&schema.Record{Schema: schema.RecordSchema, Bucket: bucket, Key: key, Version: v, Inline: true, Body: body, MadeAt: v.TS}).Sign(siteKey(siteName))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := keys.Open(data, siteName)
			if err != nil {
				t.Fatal(err)
			}
			proof := schema.ProofOf(rec)
			if !schema.IsCutProof(proof) {
				t.Fatal("a 45 KB inline record must be kept as a cut proof")
			}
			for _, n := range []*node{b, cc} {
				at := attrsOfVersion(v)
				for mk, mv := range schema.ReplicaMeta(bucket, key, v) {
					at.Meta[mk] = mv
				}
				served := body
				if n == b && tc.bBytes {
					served = bytes.Repeat([]byte("x"), len(body))
				}
				etag := n.put(t, bucket, key, served, at)
				unlock := n.st.Lock(bucket, key)
				err := n.st.Put(bucket, key, state.Entry{Held: v, Clock: v.Clock, LocalETag: etag, Attrs: digestOf(attrsOfVersion(v)), Proof: proof, Updated: now()})
				unlock()
				if err != nil {
					t.Fatal(err)
				}
			}
			st := freshState(t)
			stats := run(t, m.options(st, bucket))
			wantStats(t, stats, Stats{Keys: 1, Copied: 1, Bytes: v.Size, Buckets: 1, Refused: tc.refused})
			m.site.wantBody(t, bucket, key, body)
		})
	}
}
