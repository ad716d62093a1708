package lab

import (
	"fmt"
	"path/filepath"

	"github.com/nats-io/nkeys"
)

// Record signing keys: every lab site signs its change records with an
// nkeys user seed of its own, generated once per lab directory
// (<site>/signing.nk, 0600, kept across restarts), and every site's
// configuration lists its peers' public keys (docs/security.md, "Signed change
// records").

// signingKeyPath is the site's seed file.
func (s *site) signingKeyPath() string { return filepath.Join(s.dir, "signing.nk") }

// prepareSigning makes sure the site has a seed and sets s.signingPub.
func (s *site) prepareSigning() error {
	var genErr error
	seed, err := ensureFile(s.signingKeyPath(), 0o600, func() string {
		kp, err := nkeys.CreateUser()
		if err != nil {
			genErr = err
			return ""
		}
		b, err := kp.Seed()
		genErr = err
		return string(b)
	})
	if err == nil {
		err = genErr
	}
	if err != nil {
		return fmt.Errorf("lab: site %s: signing key: %w", s.name, err)
	}
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return fmt.Errorf("lab: site %s: %s is not an nkeys seed: %v (delete it to have a new one made)", s.name, s.signingKeyPath(), err)
	}
	if s.signingPub, err = kp.PublicKey(); err != nil {
		return fmt.Errorf("lab: site %s: signing key: %w", s.name, err)
	}
	return nil
}

// ySigning is the signing section of a lab site's site.yaml.
type ySigning struct {
	Key ySecret `yaml:"key"`
}

func (s *site) ySigning() *ySigning { return &ySigning{Key: ySecret{File: s.signingKeyPath()}} }
