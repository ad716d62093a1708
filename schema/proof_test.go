package schema

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

// A version's proof is its record as the origin signed it: Open keeps the
// envelope (Record.Signed), the origin signs a bodyless one (SignProof),
// and OpenProof accepts it only for exactly that version, with the
// origin's keys.
func TestVersionProof(t *testing.T) {
	r := validRecord()
	r.Inline, r.Body = true, []byte("hello")
	key := testKey(1)
	b, err := r.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := ringFor(key).Open(b, "a")
	if err != nil || !bytes.Equal(opened.Signed, b) || !IsCutProof(ProofOf(opened)) {
		t.Fatalf("Open must keep the envelope, and its proof cut the inline body out: %v", err)
	}
	bodyless := r
	bodyless.Inline, bodyless.Body = false, nil
	fetched, err := ringFor(key).Open(mustSign(t, bodyless, key), "a")
	if err != nil || !bytes.Equal(ProofOf(fetched), fetched.Signed) {
		t.Fatalf("a record without its body is its own proof: %v", err)
	}
	if ProofOf(&Record{Signed: make([]byte, MaxProof+1)}) != nil {
		t.Fatal("a proof over MaxProof is not kept")
	}
	proof, err := r.SignProof(key)
	if err != nil || proof == nil {
		t.Fatalf("SignProof: %v", err)
	}
	got, err := ringFor(key).OpenProof(proof, r.Bucket, r.Key, r.Version)
	if err != nil || got.Inline || len(got.Body) != 0 {
		t.Fatalf("the origin's bodyless proof: %+v, %v", got, err)
	}
	if _, err := ringFor(key).OpenProof(b, r.Bucket, r.Key, r.Version); err != nil {
		t.Fatalf("a received record is a proof too: %v", err)
	}
	other := r.Version
	other.TS++
	cases := []struct {
		name        string
		keys        Keyring
		proof       []byte
		bucket, key string
		v           Version
		want        error
	}{
		{"another version's fields", ringFor(key), proof, r.Bucket, r.Key, other, ErrBadRecord},
		{"another key", ringFor(key), proof, r.Bucket, r.Key + "x", r.Version, ErrBadRecord},
		{"another bucket", ringFor(key), proof, r.Bucket + "x", r.Key, r.Version, ErrBadRecord},
		{"signed by another key", ringFor(testKey(2)), proof, r.Bucket, r.Key, r.Version, ErrBadSignature},
		{"unsigned", Keyring{Keys: ringFor(key).Keys, AcceptUnsigned: true}, mustEncode(t, r), r.Bucket, r.Key, r.Version, ErrBadSignature},
	}
	for _, c := range cases {
		if _, err := c.keys.OpenProof(c.proof, c.bucket, c.key, c.v); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func mustEncode(t *testing.T, r Record) []byte {
	t.Helper()
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A record with its body inline is kept as a cut proof: only the
// version's own bytes complete it.
func TestCutProof(t *testing.T) {
	r := validRecord()
	r.Body = bytes.Repeat([]byte("0123456789abcdef"), 3<<10) // 48 KiB
	r.Version.Size = int64(len(r.Body))
	key := testKey(1)
	b, err := r.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := ringFor(key).Open(b, "a")
	if err != nil {
		t.Fatal(err)
	}
	proof := ProofOf(opened)
	if !IsCutProof(proof) || len(proof) > MaxProof {
		t.Fatalf("proof of a %d-byte inline record: cut %v, %d bytes", len(b), IsCutProof(proof), len(proof))
	}
	if _, err := ringFor(key).OpenProof(proof, r.Bucket, r.Key, r.Version); !errors.Is(err, ErrNeedsBody) {
		t.Fatalf("a cut proof without the body: %v", err)
	}
	got, err := ringFor(key).OpenProofBody(proof, r.Body, r.Bucket, r.Key, r.Version)
	if err != nil || !bytes.Equal(got.Body, r.Body) {
		t.Fatalf("the cut proof with the version's bytes: %v", err)
	}
	other := bytes.Clone(r.Body)
	other[len(other)/2] ^= 1
	if _, err := ringFor(key).OpenProofBody(proof, other, r.Bucket, r.Key, r.Version); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other bytes of the same size: %v, want %v", err, ErrBadSignature)
	}
	if _, err := ringFor(key).OpenProofBody(proof, r.Body[1:], r.Bucket, r.Key, r.Version); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("bytes of another size: %v, want %v", err, ErrBadRecord)
	}
	small, _ := ringFor(key).Open(mustSign(t, validRecord(), key), "a")
	if p := ProofOf(small); !IsCutProof(p) {
		t.Fatal("a small inline record's proof is cut too: a site keeps no second copy of the bytes")
	}
}

func mustSign(t *testing.T, r Record, key ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := r.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A proof comes from a peer's state page: whatever its bytes, opening it
// fails cleanly or yields exactly the version asked for.
func FuzzOpenProofBody(f *testing.F) {
	key := testKey(1)
	r := validRecord()
	b, err := r.Sign(key)
	if err != nil {
		f.Fatal(err)
	}
	opened, err := ringFor(key).Open(b, "a")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ProofOf(opened), r.Body)
	f.Add(b, []byte(nil))
	f.Add([]byte{cutProofTag, 0x93, 0x00, 0x05, 0xc4, 0x00}, r.Body)
	f.Fuzz(func(t *testing.T, proof, body []byte) {
		got, err := ringFor(key).OpenProofBody(proof, body, r.Bucket, r.Key, r.Version)
		if err == nil && got.Version.CheckSame(r.Version) != nil {
			t.Fatalf("opened another version: %+v", got.Version)
		}
	})
}
