package producer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// versityFixture is what the producer tests against a real versitygw
// share: a client of a fresh versitygw with bucket "demo", a state store
// of its own, site a's signing key (from seed) and the keyring that opens
// its records, and a context of a minute.
type versityFixture struct {
	ctx  context.Context
	s3   *s3io.Client
	st   *state.Store
	key  ed25519.PrivateKey
	ring schema.Keyring
}

func newVersityFixture(t *testing.T, seed byte, opts ...s3io.Option) *versityFixture {
	t.Helper()
	v := testenv.StartVersity(t)
	client, err := s3io.New(s3io.Endpoint{URL: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: v.SecretKey}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	if err := client.EnsureBucket(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	ring := schema.Keyring{Keys: map[string][]ed25519.PublicKey{"a": {key.Public().(ed25519.PublicKey)}}}
	return &versityFixture{ctx: ctx, s3: client, st: st, key: key, ring: ring}
}

// producer is site a's producer of bucket "demo" over the fixture's store
// and state, with the records it publishes captured.
func (f *versityFixture) producer() (*Producer, *capture) {
	pub := &capture{}
	return New(Config{Site: "a", Buckets: []string{"demo"}, InlineThreshold: 1024, SigningKey: f.key},
		f.st, f.s3, pub, nil, slog.New(slog.NewTextHandler(io.Discard, nil))), pub
}
