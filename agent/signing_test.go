package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/s3mesh/s3mesh/config"
)

// testSigning gives every site a signing seed in dir and returns each
// site's signing section and public key.
func testSigning(t *testing.T, dir string, sites ...string) (map[string]config.Signing, map[string]string) {
	t.Helper()
	signing, pubs := map[string]config.Signing{}, map[string]string{}
	for _, s := range sites {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		f := filepath.Join(dir, s+"-signing.nk")
		if err := os.WriteFile(f, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		signing[s] = config.Signing{Key: config.Secret{File: f}}
		pubs[s], _ = kp.PublicKey()
	}
	return signing, pubs
}
