package agent

import (
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// The seed of a peer's proven counter from the last record of this site's
// mirror of its stream counts only a record that verifies with the peer's
// keys, is of the peer's origin and keeps the bounds; the seed from the
// state is each site's own entry in the versions of it the state holds.
func TestProvenSeeds(t *testing.T) {
	now := time.Now()
	seedB := ed25519.NewKeyFromSeed(make([]byte, 32))
	other := ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))
	keys := schema.Keyring{Keys: map[string][]ed25519.PublicKey{"b": {seedB.Public().(ed25519.PublicKey)}, "c": {other.Public().(ed25519.PublicKey)}}}
	floor := lifecycle.IncarnationFloor(uint64(now.Unix()))
	record := func(origin string, n uint64, key ed25519.PrivateKey) []byte {
		rec := &schema.Record{Schema: schema.RecordSchema, Bucket: "demo", Key: "k", Inline: true, MadeAt: now.UnixMilli(),
			Version: schema.Version{ID: schema.VersionID(origin, "demo", "k", n), Origin: origin, Clock: schema.Clock{origin: n}, TS: now.UnixMilli()}}
		data, err := rec.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if n, err := provenBy(keys, "b", record("b", floor+7, seedB), now, 0); err != nil || n != floor+7 {
		t.Fatalf("b's own record: %d %v, want %d", n, err, floor+7)
	}
	for name, data := range map[string][]byte{
		"signed with another site's key":           record("b", floor+7, other),
		"of another origin":                        record("c", floor+7, other),
		"from an incarnation that has not started": record("b", lifecycle.IncarnationFloor(uint64(now.Add(72*time.Hour).Unix())), seedB),
		"not a record":                             []byte("garbage"),
	} {
		if n, err := provenBy(keys, "b", data, now, 0); err == nil {
			t.Errorf("%s: used as proof of %d", name, n)
		}
	}

	st, err := state.Open(filepath.Join(t.TempDir(), "state"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	held := func(origin string, c schema.Clock) state.Entry {
		return state.Entry{Clock: schema.Clock{"b": 1 << 40, "c": 1 << 40}, Held: schema.Version{ID: "x", Origin: origin, Clock: c}}
	}
	for key, e := range map[string]state.Entry{
		"k1": held("b", schema.Clock{"b": 5, "c": 9}), // c's 9 is b's claim, not c's
		"k2": held("b", schema.Clock{"b": 8}),
		"k3": held("c", schema.Clock{"b": 50, "c": 3}),
		"k4": {Clock: schema.Clock{"a": 2}},
	} {
		if err := st.Put("demo", key, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put("other", "k", held("b", schema.Clock{"b": 100})); err != nil {
		t.Fatal(err)
	}
	got, err := heldProven(st, []string{"demo"})
	if err != nil || len(got) != 2 || got["b"] != 8 || got["c"] != 3 {
		t.Fatalf("proven by the held versions of demo: %v %v, want b:8 c:3 (each site's own entry of its own versions; not the merged clocks)", got, err)
	}
}
