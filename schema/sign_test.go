package schema

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// testKey is a fixed signing key, made from a seed of n.
func testKey(n byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// ringFor trusts keys for site "a" (validRecord's origin).
func ringFor(keys ...ed25519.PrivateKey) Keyring {
	k := Keyring{Keys: map[string][]ed25519.PublicKey{}}
	for _, key := range keys {
		k.Keys["a"] = append(k.Keys["a"], pubOf(key))
	}
	return k
}

func TestSignOpenRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := recordGen().Draw(t, "record")
		key := testKey(rapid.Byte().Draw(t, "seed"))
		b, err := r.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		k := Keyring{Keys: map[string][]ed25519.PublicKey{r.Version.Origin: {pubOf(key)}}}
		got, err := k.Open(b, r.Version.Origin)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !reflect.DeepEqual(normRecord(*got), normRecord(r)) {
			t.Fatalf("Open differs:\n%#v\n%#v", *got, r)
		}
		// Decode reads the envelope too (without verifying).
		if got, err := Decode(b); err != nil || !reflect.DeepEqual(normRecord(*got), normRecord(r)) {
			t.Fatalf("Decode of a signed record: %v", err)
		}
	})
}

func TestOpenRefuses(t *testing.T) {
	a1, a2, b1 := testKey(1), testKey(2), testKey(3)
	r := validRecord()
	signed, err := r.Sign(a1)
	if err != nil {
		t.Fatal(err)
	}
	v1 := validRecord()
	v1.Schema = UnsignedSchema
	unsigned, err := v1.Encode()
	if err != nil {
		t.Fatal(err)
	}
	bare, err := r.Encode() // a schema 2 record without its envelope
	if err != nil {
		t.Fatal(err)
	}
	other := validRecord()
	other.Key = "another"
	other.Version.ID = VersionID("a", other.Bucket, other.Key, other.Version.Clock["a"])
	otherSigned, _ := other.Sign(a1)
	// The first record's content with the second one's signature.
	env1, _ := openEnvelope(signed)
	env2, _ := openEnvelope(otherSigned)
	spliced, _ := sealRaw(env1.content, env2.signer, env2.sig)
	// A plain Ed25519 signature of the content (no context), as a NATS
	// login nonce signature would be.
	plain, _ := sealRaw(env1.content, pubOf(a1), ed25519.Sign(a1, env1.content))

	cases := []struct {
		name string
		k    Keyring
		site string
		b    []byte
		want error
	}{
		{"unsigned v1, not accepted", ringFor(a1), "a", unsigned, ErrBadSignature},
		{"bare v2 content", ringFor(a1), "a", bare, ErrBadSignature},
		{"bare v2 content, unsigned accepted", Keyring{Keys: ringFor(a1).Keys, AcceptUnsigned: true}, "a", bare, ErrBadSignature},
		{"wrong key", ringFor(a2), "a", signed, ErrBadSignature},
		{"unknown origin", ringFor(a1), "b", signed, ErrBadSignature},
		{"site with another site's key", Keyring{Keys: map[string][]ed25519.PublicKey{"a": {pubOf(b1)}, "b": {pubOf(a1)}}}, "a", signed, ErrBadSignature},
		{"no keys at all", Keyring{}, "a", signed, ErrBadSignature},
		{"spliced signature", ringFor(a1), "a", spliced, ErrBadSignature},
		{"signature without the context", ringFor(a1), "a", plain, ErrBadSignature},
		{"envelope of schema 5", ringFor(a1), "a", mustMP([]any{5, env1.content, []byte(pubOf(a1)), env1.sig}), ErrUnknownVersion},
		{"envelope of 3 items", ringFor(a1), "a", mustMP([]any{2, env1.content, []byte(pubOf(a1))}), ErrMalformed},
		{"short signature", ringFor(a1), "a", mustMP([]any{2, env1.content, []byte(pubOf(a1)), env1.sig[:63]}), ErrMalformed},
		{"short key", ringFor(a1), "a", mustMP([]any{2, env1.content, []byte(pubOf(a1))[:31], env1.sig}), ErrMalformed},
		{"empty content", ringFor(a1), "a", mustMP([]any{2, []byte{}, []byte(pubOf(a1)), env1.sig}), ErrMalformed},
		{"content as a string", ringFor(a1), "a", mustMP([]any{2, "x", []byte(pubOf(a1)), env1.sig}), ErrBadSignature},
		{"envelope claiming 4G items", ringFor(a1), "a", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		{"bin32 content claiming 4 GiB", ringFor(a1), "a", []byte{0x94, 0x02, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00}, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.k.Open(tc.b, tc.site)
			if err == nil || got != nil {
				t.Fatalf("Open = %+v, %v; want an error", got, err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want errors.Is %v", err, tc.want)
			}
			if tc.want == ErrBadSignature && errors.Is(err, ErrMalformed) {
				t.Fatalf("Open: %v also wraps ErrMalformed", err)
			}
		})
	}
}

// sealRaw builds an envelope from its parts.
func sealRaw(content []byte, signer ed25519.PublicKey, sig []byte) ([]byte, error) {
	return msgpack.Marshal([]any{RecordSchema, content, []byte(signer), sig})
}

func mustMP(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Flipping any bit of a signed record's content, signer key or signature
// makes it fail, never decode to something else.
func TestOpenTampered(t *testing.T) {
	key := testKey(1)
	r := validRecord()
	b, err := r.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	k := ringFor(key)
	env, _ := openEnvelope(b)
	start := bytes.Index(b, env.content) // the content, key and signature follow the headers
	for i := start; i < len(b); i++ {
		for bit := 0; bit < 8; bit++ {
			t2 := bytes.Clone(b)
			t2[i] ^= 1 << bit
			got, err := k.Open(t2, "a")
			if err == nil {
				t.Fatalf("byte %d bit %d flipped: opened as %+v", i, bit, got)
			}
			if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("byte %d bit %d flipped: %v", i, bit, err)
			}
		}
	}
}

// During a rotation both keys of a site verify; once the old key is
// removed, records it signed are refused.
func TestOpenRotation(t *testing.T) {
	old, cur := testKey(1), testKey(2)
	r := validRecord()
	byOld, _ := r.Sign(old)
	byNew, _ := r.Sign(cur)
	overlap := ringFor(old, cur)
	for name, b := range map[string][]byte{"old": byOld, "new": byNew} {
		if _, err := overlap.Open(b, "a"); err != nil {
			t.Errorf("overlap, record signed by the %s key: %v", name, err)
		}
	}
	after := ringFor(cur)
	if _, err := after.Open(byNew, "a"); err != nil {
		t.Errorf("after the rotation, new key: %v", err)
	}
	if _, err := after.Open(byOld, "a"); !errors.Is(err, ErrBadSignature) {
		t.Errorf("after the rotation, old key: %v, want ErrBadSignature", err)
	}
}

// An unsigned record of an earlier build still decodes, and is opened only
// while unsigned records are accepted.
func TestUnsignedV1(t *testing.T) {
	r := validRecord()
	r.Schema = UnsignedSchema
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// What a schema 1 build wrote: the same map, "v": 1.
	if b[0]&0xf0 != 0x80 {
		t.Fatalf("a v1 record is a msgpack map, got %#x", b[0])
	}
	got, err := Decode(b)
	if err != nil || !reflect.DeepEqual(*got, r) {
		t.Fatalf("Decode v1: %+v, %v", got, err)
	}
	k := ringFor(testKey(1))
	if _, err := k.Open(b, "a"); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "unsigned") {
		t.Fatalf("Open v1, unsigned not accepted: %v", err)
	}
	k.AcceptUnsigned = true
	if got, err := k.Open(b, "a"); err != nil || !reflect.DeepEqual(*got, r) {
		t.Fatalf("Open v1, unsigned accepted: %+v, %v", got, err)
	}
	// Accepting unsigned records does not make a bad signature acceptable.
	wrong := validRecord()
	signed, _ := wrong.Sign(testKey(9))
	if _, err := k.Open(signed, "a"); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Open wrongly signed, unsigned accepted: %v", err)
	}
	// A v1 record is never sealed.
	if _, err := r.Sign(testKey(1)); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("Sign v1: %v", err)
	}
	// Nor is it valid inside an envelope.
	sealed, _ := Seal(b, testKey(1))
	if _, err := ringFor(testKey(1)).Open(sealed, "a"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Open of a sealed v1 record: %v", err)
	}
}

func TestPublicKeyString(t *testing.T) {
	s := PublicKeyString(pubOf(testKey(1)))
	if len(s) != 56 || s[0] != 'U' {
		t.Fatalf("PublicKeyString = %q, want U and 55 more", s)
	}
	if PublicKeyString(pubOf(testKey(2))) == s {
		t.Fatal("two keys, one string")
	}
}

func TestSealBadKey(t *testing.T) {
	if _, err := Seal([]byte{0x80}, ed25519.PrivateKey{1, 2}); err == nil {
		t.Fatal("Seal with a 2-byte key")
	}
}

// FuzzOpen: whatever the bytes, Open (and Decode) returns a record or an
// error wrapping one of the sentinels, never panics; a record it opens is
// valid and opens again the same once re-signed.
func FuzzOpen(f *testing.F) {
	key := testKey(1)
	k := ringFor(key)
	r := validRecord()
	b, err := r.Sign(key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	tomb := validRecord()
	tomb.Version.Deleted, tomb.Inline, tomb.Body, tomb.Version.Size = true, false, nil, 0
	tomb.Attrs = Attrs{}
	if b, err := tomb.Sign(key); err == nil {
		f.Add(b)
	}
	v1 := validRecord()
	v1.Schema = UnsignedSchema
	if b, err := v1.Encode(); err == nil {
		f.Add(b)
	}
	if b, err := v1.Sign(testKey(2)); err == nil {
		f.Add(b)
	}
	for _, junk := range [][]byte{
		nil, {0x90}, {0x94}, {0x94, 0x02}, {0x94, 0x02, 0xc4, 0x00, 0xc4, 0x00, 0xc4, 0x00},
		{0xdd, 0xff, 0xff, 0xff, 0xff}, b[:len(b)/2], append(bytes.Clone(b), 0x00),
	} {
		f.Add(junk)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, accept := range []bool{false, true} {
			k.AcceptUnsigned = accept
			r, err := k.Open(data, "a")
			if err != nil {
				if r != nil {
					t.Fatal("record returned with an error")
				}
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) && !errors.Is(err, ErrBadSignature) {
					t.Fatalf("error %v wraps no sentinel", err)
				}
				continue
			}
			if err := r.Validate(); err != nil {
				t.Fatalf("opened record fails Validate: %v", err)
			}
			if r.Schema == UnsignedSchema {
				if !accept {
					t.Fatal("an unsigned record opened while not accepted")
				}
				continue
			}
			b, err := r.Sign(key)
			if err != nil {
				t.Fatalf("opened record does not re-sign: %v", err)
			}
			r2, err := k.Open(b, "a")
			if err != nil {
				t.Fatalf("re-signed record does not open: %v", err)
			}
			if !reflect.DeepEqual(normRecord(*r), normRecord(*r2)) {
				t.Fatalf("re-open differs:\n%#v\n%#v", *r, *r2)
			}
		}
		if r, err := Decode(data); err != nil && r != nil {
			t.Fatal("Decode returned a record with an error")
		}
	})
}
