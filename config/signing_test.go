package config

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/s3mesh/s3mesh/schema"
)

type keySet struct {
	a          string // site a's seed
	aPub       string
	b, c, b2   string // public keys of b, c, and b's next key
	account    string // an account seed (SA…), the wrong type
	accountPub string
}

var (
	keysOnce sync.Once
	keys     keySet
)

// testKeys makes the test keys once per run.
func testKeys(t *testing.T) keySet {
	t.Helper()
	keysOnce.Do(func() {
		seed := func(kp nkeys.KeyPair, err error) (string, string) {
			if err != nil {
				panic(err)
			}
			s, _ := kp.Seed()
			p, _ := kp.PublicKey()
			return string(s), p
		}
		keys.a, keys.aPub = seed(nkeys.CreateUser())
		_, keys.b = seed(nkeys.CreateUser())
		_, keys.c = seed(nkeys.CreateUser())
		_, keys.b2 = seed(nkeys.CreateUser())
		keys.account, keys.accountPub = seed(nkeys.CreateAccount())
	})
	return keys
}

// writeSeed writes seed to a 0600 file and returns its path.
func writeSeed(t *testing.T, seed string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "signing.nk")
	if err := os.WriteFile(p, []byte(seed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSigningKeys(t *testing.T) {
	k := testKeys(t)
	s, err := Parse([]byte(setup(t)))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := s.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := nkeys.FromSeed([]byte(k.a))
	msg := []byte("hello")
	if sig, _ := kp.Sign(msg); !ed25519.Verify(priv.Public().(ed25519.PublicKey), msg, sig) {
		t.Fatal("the signing key is not the seed's key")
	}
	own, _ := PublicKeyString(priv.Public().(ed25519.PublicKey))
	if own != k.aPub {
		t.Fatalf("PublicKeyString = %s, want %s", own, k.aPub)
	}
	// schema names keys the way nkeys does (without importing it).
	if got := schema.PublicKeyString(priv.Public().(ed25519.PublicKey)); got != k.aPub {
		t.Fatalf("schema.PublicKeyString = %s, want %s", got, k.aPub)
	}
	pk := s.PeerKeys()
	if len(pk["b"]) != 1 || len(pk["c"]) != 1 {
		t.Fatalf("PeerKeys = %v", pk)
	}
	if got, _ := PublicKeyString(pk["b"][0]); got != k.b {
		t.Fatalf("peer b's key %s, want %s", got, k.b)
	}
	if s.Records.AcceptUnsigned {
		t.Fatal("accept_unsigned defaults to true")
	}
}

// A peer rotating its key lists two; accept_unsigned parses.
func TestSigningRotationAndUpgrade(t *testing.T) {
	k := testKeys(t)
	y := strings.Replace(setup(t), "public_keys: ["+k.b+"]", "public_keys: ["+k.b+", "+k.b2+"]", 1)
	y = strings.Replace(y, "state_dir:", "records: {accept_unsigned: true}\nstate_dir:", 1)
	s, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.PeerKeys()["b"]) != 2 || !s.Records.AcceptUnsigned {
		t.Fatalf("keys %v, accept_unsigned %v", s.PeerKeys(), s.Records.AcceptUnsigned)
	}
}

func TestSigningErrors(t *testing.T) {
	k := testKeys(t)
	base := setup(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	seedLine := func(y string) string { // the signing line of base
		i := strings.Index(y, "signing: ")
		return y[i : i+strings.Index(y[i:], "\n")+1]
	}(base)
	garbled := []byte(k.a)
	garbled[10] ^= 1
	tests := []struct {
		name    string
		edits   []edit
		field   string
		want    string // a substring of the message
		notWant string // never in the message
	}{
		{"no signing key", []edit{{seedLine, ""}}, "signing.key", "required", ""},
		{"key file missing", []edit{{seedLine, "signing: {key: {file: " + missing + "}}\n"}}, "signing.key", "no such file", ""},
		{"key env unset", []edit{{seedLine, "signing: {key: {env: S3MESH_TEST_UNSET}}\n"}}, "signing.key", "S3MESH_TEST_UNSET", ""},
		{"key not a seed", []edit{{seedLine, "signing: {key: {file: " + writeSeed(t, "hello-not-a-seed") + "}}\n"}}, "signing.key", "not an nkeys seed", "hello"},
		{"key a public key", []edit{{seedLine, "signing: {key: {file: " + writeSeed(t, k.aPub) + "}}\n"}}, "signing.key", "not an nkeys seed", ""},
		{"key garbled", []edit{{seedLine, "signing: {key: {file: " + writeSeed(t, string(garbled)) + "}}\n"}}, "signing.key", "checksum", string(garbled[:20])},
		{"key an account seed", []edit{{seedLine, "signing: {key: {file: " + writeSeed(t, k.account) + "}}\n"}}, "signing.key", "want a user seed", k.account[:20]},
		{"peer without public keys", []edit{{"    public_keys: [" + k.b + "]\n", ""}}, "peers[0].public_keys", "required", ""},
		{"peer with an empty list", []edit{{"public_keys: [" + k.c + "]", "public_keys: []"}}, "peers[1].public_keys", "required", ""},
		{"peer key garbage", []edit{{"public_keys: [" + k.c + "]", "public_keys: [" + k.c + ", UNOPE]"}}, "peers[1].public_keys[1]", "not an nkeys user public key", ""},
		{"peer key of an account", []edit{{"public_keys: [" + k.b + "]", "public_keys: [" + k.accountPub + "]"}}, "peers[0].public_keys[0]", "not an nkeys user public key", ""},
		{"peer key is a seed", []edit{{"public_keys: [" + k.b + "]", "public_keys: [" + k.a + "]"}}, "peers[0].public_keys[0]", "seed", k.a[:20]},
		{"peer key is this site's", []edit{{"public_keys: [" + k.b + "]", "public_keys: [" + k.aPub + "]"}}, "peers[0].public_keys[0]", "own public key", ""},
		{"two peers, one key", []edit{{"public_keys: [" + k.c + "]", "public_keys: [" + k.b + "]"}}, "peers[1].public_keys[0]", "listed already", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := base
			for _, e := range tc.edits {
				if n := strings.Count(y, e.old); n != 1 {
					t.Fatalf("test bug: %q occurs %d times", e.old, n)
				}
				y = strings.Replace(y, e.old, e.new, 1)
			}
			_, err := Parse([]byte(y))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *config.Error", err)
			}
			if ce.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want field %s and %q", err, tc.field, tc.want)
			}
			if tc.notWant != "" && strings.Contains(err.Error(), tc.notWant) {
				t.Fatalf("message %q leaks %q", err, tc.notWant)
			}
			if strings.Contains(err.Error(), k.a[:20]) {
				t.Fatalf("message %q leaks the seed", err)
			}
		})
	}
}
