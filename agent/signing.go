package agent

import (
	"crypto/ed25519"
	"log/slog"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/schema"
)

// signingKey reads the site's record signing key and logs its public key
// (never the seed), and warns while unsigned records are accepted.
func signingKey(cfg *config.Site, log *slog.Logger) (ed25519.PrivateKey, error) {
	if cfg.Signing.Key.IsZero() {
		return nil, nil
	}
	key, err := cfg.SigningKey()
	if err != nil {
		return nil, err
	}
	pub, _ := config.PublicKeyString(key.Public().(ed25519.PublicKey))
	log.Info("records are signed", "public_key", pub, "peers_with_keys", len(cfg.PeerKeys()))
	if cfg.Records.AcceptUnsigned {
		log.Warn("records.accept_unsigned is on: unsigned records from peers (schema 1, earlier builds) are applied unverified; " +
			"remove it once every site runs a build that signs")
	}
	return key, nil
}

// keyring is what a peer's record is verified against: the public keys the
// configuration lists for each peer.
func (a *Agent) keyring() schema.Keyring {
	return schema.Keyring{Keys: a.cfg.PeerKeys(), AcceptUnsigned: a.cfg.Records.AcceptUnsigned}
}
