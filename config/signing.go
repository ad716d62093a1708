package config

import (
	"crypto/ed25519"
	"fmt"
	"strings"

	"github.com/nats-io/nkeys"
)

// Signing is the key this site signs its change records with. Its peers
// verify every record against the public keys they list for this site
// (Peer.PublicKeys), so a record made anywhere else is refused.
type Signing struct {
	// Key is an nkeys user seed ("SU…", `s3mesh keys gen --out FILE`
	// writes one), a secret: {file: PATH} (mode 0600) or {env: NAME}.
	Key Secret `yaml:"key"`
	// FormerPublicKeys are the public keys ("U…") of seeds this site
	// signed with before a key rotation. The agent's start-up check reads
	// the incarnation of the site's own last record (in its own stream,
	// or in a peer's mirror of it) only from a record it can verify as its
	// own: with Key, or with one of these.
	FormerPublicKeys []string `yaml:"former_public_keys"`
}

// OwnKeys returns the public keys this site's own records verify with:
// signing.key's and signing.former_public_keys (Validate has checked them).
func (s *Site) OwnKeys() []ed25519.PublicKey {
	var out []ed25519.PublicKey
	if key, err := s.SigningKey(); err == nil {
		out = append(out, key.Public().(ed25519.PublicKey))
	}
	for _, k := range s.Signing.FormerPublicKeys {
		if pub, err := ParsePublicKey(k); err == nil {
			out = append(out, pub)
		}
	}
	return out
}

// SigningKey reads and parses the site's signing key (Validate has checked
// it; the seed itself never appears in an error).
func (s *Site) SigningKey() (ed25519.PrivateKey, error) {
	v, err := s.Signing.Key.Value()
	if err != nil {
		return nil, fieldErr("signing.key", "%v", err)
	}
	k, err := ParseSeed(v)
	if err != nil {
		return nil, fieldErr("signing.key", "%v", err)
	}
	return k, nil
}

// ParseSeed parses an nkeys user seed into an ed25519 signing key. Its
// errors never hold the seed.
func ParseSeed(seed string) (ed25519.PrivateKey, error) {
	seed = strings.TrimSpace(seed)
	if !strings.HasPrefix(seed, "S") {
		return nil, fmt.Errorf("not an nkeys seed (want a user seed, SU…)")
	}
	prefix, raw, err := nkeys.DecodeSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("not a valid nkeys seed (bad encoding or checksum)")
	}
	if prefix != nkeys.PrefixByteUser {
		return nil, fmt.Errorf("an nkeys seed of type %s, want a user seed (SU…)", prefix)
	}
	return ed25519.NewKeyFromSeed(raw), nil
}

// ParsePublicKey parses an nkeys user public key ("U…", 56 characters).
func ParsePublicKey(pub string) (ed25519.PublicKey, error) {
	if strings.HasPrefix(pub, "S") {
		return nil, fmt.Errorf("this is a seed, a secret: give the public key (U…) instead, and treat the seed as leaked")
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("%q is not an nkeys user public key (U…, 56 characters)", pub)
	}
	raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(pub))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%q is not an nkeys user public key (U…, 56 characters)", pub)
	}
	return ed25519.PublicKey(raw), nil
}

// PublicKeyString is pub as an nkeys user public key (what Peer.PublicKeys
// lists).
func PublicKeyString(pub ed25519.PublicKey) (string, error) {
	b, err := nkeys.Encode(nkeys.PrefixByteUser, pub)
	return string(b), err
}

// PeerKeys returns every peer's public keys by peer name (Validate has
// checked them).
func (s *Site) PeerKeys() map[string][]ed25519.PublicKey {
	out := make(map[string][]ed25519.PublicKey, len(s.Peers))
	for _, p := range s.Peers {
		for _, k := range p.PublicKeys {
			if pub, err := ParsePublicKey(k); err == nil {
				out[p.Name] = append(out[p.Name], pub)
			}
		}
	}
	return out
}

// validateSigning checks the site's key and every peer's public keys: a
// parsable seed, at least one public key per peer, none listed twice and
// none this site's own.
func (s *Site) validateSigning() error {
	if s.Signing.Key.IsZero() {
		return fieldErr("signing.key", "required: the nkeys user seed (SU…) this site signs its records with, "+
			"as {file: PATH} or {env: NAME} (`s3mesh keys gen --out FILE` makes one)")
	}
	key, err := s.SigningKey()
	if err != nil {
		return err
	}
	own := key.Public().(ed25519.PublicKey)
	seen := map[string]string{}
	for i, k := range s.Signing.FormerPublicKeys {
		f := fmt.Sprintf("signing.former_public_keys[%d]", i)
		if _, err := ParsePublicKey(k); err != nil {
			return fieldErr(f, "%v", err)
		}
		seen[k] = s.Site
	}
	for i, p := range s.Peers {
		f := fmt.Sprintf("peers[%d].public_keys", i)
		if len(p.PublicKeys) == 0 {
			return fieldErr(f, "required: the public key(s) (U…) peer %s signs its records with (two during a key rotation)", p.Name)
		}
		for j, k := range p.PublicKeys {
			fj := fmt.Sprintf("%s[%d]", f, j)
			pub, err := ParsePublicKey(k)
			if err != nil {
				return fieldErr(fj, "%v", err)
			}
			if pub.Equal(own) {
				return fieldErr(fj, "is this site's own public key (signing.key), not peer %s's", p.Name)
			}
			if other, dup := seen[k]; dup {
				return fieldErr(fj, "%s is listed already (for %s): every site has keys of its own", k, other)
			}
			seen[k] = p.Name
		}
	}
	return nil
}
