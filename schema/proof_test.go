package schema

import (
	"bytes"
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
	if err != nil || !bytes.Equal(opened.Signed, b) || !bytes.Equal(ProofOf(opened), b) {
		t.Fatalf("Open must keep the envelope as the proof: %v", err)
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
