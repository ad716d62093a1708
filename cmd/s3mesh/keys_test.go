package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/config"
)

func runKeys(t *testing.T, args ...string) (string, error) {
	t.Helper()
	c := newKeysCmd()
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs(args)
	err := c.Execute()
	return out.String(), err
}

func TestKeysGen(t *testing.T) {
	f := filepath.Join(t.TempDir(), "a.nk")
	out, err := runKeys(t, "gen", "--out", f)
	if err != nil {
		t.Fatal(err)
	}
	pub := strings.TrimSpace(out)
	fi, err := os.Stat(f)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed file mode %v (%v), want 0600", fi.Mode(), err)
	}
	seed, _ := os.ReadFile(f)
	if strings.Contains(out, strings.TrimSpace(string(seed))) {
		t.Fatal("gen printed the seed")
	}
	k, err := config.ParseSeed(string(seed))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := config.PublicKeyString(k.Public().(ed25519.PublicKey)); got != pub {
		t.Fatalf("printed %s, seed's public key %s", pub, got)
	}
	if _, err := config.ParsePublicKey(pub); err != nil {
		t.Fatal(err)
	}
	if out, err := runKeys(t, "public", "--key", f); err != nil || strings.TrimSpace(out) != pub {
		t.Fatalf("public: %q %v", out, err)
	}
	if _, err := runKeys(t, "gen", "--out", f); err == nil {
		t.Fatal("gen overwrote an existing seed")
	}
	if again, _ := os.ReadFile(f); !bytes.Equal(again, seed) {
		t.Fatal("the seed changed")
	}
	if out, err := runKeys(t, "gen", "--out", f, "--force"); err != nil || strings.TrimSpace(out) == pub {
		t.Fatalf("gen --force: %q %v", out, err)
	}
	if _, err := runKeys(t, "gen"); err == nil {
		t.Fatal("gen without --out")
	}
}
