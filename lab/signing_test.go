package lab

import (
	"crypto/ed25519"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/config"
)

// Every lab site gets a signing seed of its own (0600, kept across
// restarts), and every site's configuration lists its peers' public keys.
func TestLabSigningKeys(t *testing.T) {
	dir := t.TempDir()
	sites, pf := preparedSites(t, dir, noStorePorts, nil)
	leaf := func(x, y *site) string { return loopback(pf.Links[linkName(x.name, y.name)]) }
	pubs := map[string]string{}
	for _, s := range sites {
		if err := writeConfig(s, sites, Options{Buckets: []string{"demo"}, ScanInterval: 15 * time.Second}, leaf); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(s.signingKeyPath())
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v (%v), want mode 0600", s.signingKeyPath(), fi.Mode(), err)
		}
		pubs[s.name] = s.signingPub
	}
	if pubs["a"] == pubs["b"] || pubs["b"] == pubs["c"] || pubs["a"] == "" {
		t.Fatalf("public keys not one per site: %v", pubs)
	}
	for _, s := range sites {
		c, err := config.Load(s.configPath())
		if err != nil {
			t.Fatal(err)
		}
		key, err := c.SigningKey()
		if err != nil {
			t.Fatal(err)
		}
		if own, _ := config.PublicKeyString(key.Public().(ed25519.PublicKey)); own != pubs[s.name] {
			t.Errorf("%s signs with %s, its peers expect %s", s.name, own, pubs[s.name])
		}
		for _, p := range c.Peers {
			if len(p.PublicKeys) != 1 || p.PublicKeys[0] != pubs[p.Name] {
				t.Errorf("%s lists %v for %s, want %s", s.name, p.PublicKeys, p.Name, pubs[p.Name])
			}
		}
		y, _ := os.ReadFile(s.configPath())
		seed, _ := os.ReadFile(s.signingKeyPath())
		if len(seed) < 20 || contains(y, seed[:20]) {
			t.Errorf("%s: site.yaml holds the seed", s.name)
		}
	}
	again := newSite(dir, "a", pf.Sites["a"])
	if err := again.prepare(); err != nil {
		t.Fatal(err)
	}
	if again.signingPub != pubs["a"] {
		t.Fatal("the signing key changed on a second prepare")
	}
}

func contains(b, sub []byte) bool { return strings.Contains(string(b), string(sub)) }
