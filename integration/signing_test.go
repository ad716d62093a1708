package integration

import (
	"crypto/ed25519"
	"os"
	"testing"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/schema"
)

// signingKey is site's record signing key, read from the lab (lab.json's
// signing_key names the seed file).
func (e *env) signingKey(t *testing.T, site string) ed25519.PrivateKey {
	t.Helper()
	for _, s := range e.info.Sites {
		if s.Name != site {
			continue
		}
		b, err := os.ReadFile(s.SigningKey)
		if err != nil {
			t.Fatal(err)
		}
		k, err := config.ParseSeed(string(b))
		if err != nil {
			t.Fatalf("site %s's signing key: %v", site, err)
		}
		return k
	}
	t.Fatalf("no site %s in the lab", site)
	return nil
}

// sealAs signs content (any bytes, not checked) as site does its records.
func (e *env) sealAs(t *testing.T, site string, content []byte) []byte {
	t.Helper()
	b, err := schema.Seal(content, e.signingKey(t, site))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signAs signs a valid record as site.
func (e *env) signAs(t *testing.T, site string, r *schema.Record) []byte {
	t.Helper()
	b, err := r.Sign(e.signingKey(t, site))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
