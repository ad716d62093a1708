package schema

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base32"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// A record of schema 2, 3 or 4 travels as a signed envelope, a msgpack array
// of four:
//
//	[v, content (bin), signer's ed25519 public key (bin, 32), signature (bin, 64)]
//
// content is the record's own encoding (Encode: a msgpack map whose "v" is
// v, 2 to 4), and the signature covers exactly those bytes (Ed25519ctx, context
// SignatureContext). The envelope is an array and a bare record a map, so
// the first byte tells them apart. checkShape bounds the envelope, and then
// the content, before either is decoded.

// SignatureContext separates s3mesh's record signatures from anything else
// a site's key might sign (an nkeys seed also answers NATS login nonces,
// which are plain Ed25519): a signature made under another context never
// verifies as a record's.
const SignatureContext = "s3mesh change record"

// ErrBadSignature is the sentinel of a record that is not signed by a key
// configured for the site whose stream it came from: unsigned (while
// unsigned records are not accepted), signed by an unknown key, or signed
// wrongly. Such a record goes to the DLQ with reason bad-signature; its
// content is never decoded or trusted.
var ErrBadSignature = errors.New("bad signature")

const envelopeLen = 4

var sigOpts = &ed25519.Options{Context: SignatureContext}

// Sign encodes r (Encode) and seals it with key, the signing key of r's
// origin site: what a producer publishes.
func (r *Record) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if !SignedSchema(r.Schema) {
		return nil, fmt.Errorf("%w: only schema %d to %d records are signed, not %d", ErrUnknownVersion, RecordSchema, MaxSchema, r.Schema)
	}
	content, err := r.Encode()
	if err != nil {
		return nil, err
	}
	return sealSchema(content, key, r.Schema)
}

// Seal wraps content (a record's encoding, not checked) in a signed
// envelope of schema RecordSchema. Sign is the producer's way; Seal also
// lets tests sign content that is not a valid record.
func Seal(content []byte, key ed25519.PrivateKey) ([]byte, error) {
	return sealSchema(content, key, RecordSchema)
}

// SealSchema is Seal with the envelope's schema given (tests).
func SealSchema(content []byte, key ed25519.PrivateKey, schema int) ([]byte, error) {
	return sealSchema(content, key, schema)
}

func sealSchema(content []byte, key ed25519.PrivateKey, schema int) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing key: %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	sig, err := key.Sign(nil, content, sigOpts)
	if err != nil {
		return nil, fmt.Errorf("sign record: %w", err)
	}
	var buf bytes.Buffer
	buf.Grow(len(content) + 110)
	enc := msgpack.NewEncoder(&buf)
	for _, err := range []error{
		enc.EncodeArrayLen(envelopeLen),
		enc.EncodeInt(int64(schema)),
		enc.EncodeBytes(content),
		enc.EncodeBytes(key.Public().(ed25519.PublicKey)),
		enc.EncodeBytes(sig),
	} {
		if err != nil {
			return nil, fmt.Errorf("seal record: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// envelope is a decoded, not yet verified, envelope.
type envelope struct {
	schema  int // of the content, which must say the same
	content []byte
	signer  ed25519.PublicKey
	sig     []byte
}

// Unsigned reports whether b is a bare (unsigned, schema 1) record rather
// than a signed envelope. It says nothing about whether b is a valid record.
func Unsigned(b []byte) bool { return len(b) > 0 && !isEnvelope(b) }

// isEnvelope reports whether b starts with a msgpack array (a bare record
// is a map).
func isEnvelope(b []byte) bool {
	return len(b) > 0 && (b[0]&0xf0 == 0x90 || b[0] == 0xdc || b[0] == 0xdd)
}

// openEnvelope decodes the envelope b (isEnvelope) after bounding it, and
// checks its form; the signature is not verified.
func openEnvelope(b []byte) (*envelope, error) {
	if err := checkShape(b); err != nil {
		return nil, err
	}
	malformed := func(format string, a ...any) error {
		return fmt.Errorf("%w: signed envelope: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, malformed("%v", err)
	}
	if n < 1 {
		return nil, malformed("empty")
	}
	v, err := dec.DecodeInt()
	if err != nil {
		return nil, malformed("schema: %v", err)
	}
	switch {
	case v > MaxSchema:
		return nil, fmt.Errorf("%w: signed envelope of schema %d (this build reads %d to %d)", ErrUnknownVersion, v, RecordSchema, MaxSchema)
	case !SignedSchema(int(v)):
		return nil, malformed("schema %d is never an envelope", v)
	}
	if n != envelopeLen {
		return nil, malformed("%d items, want %d", n, envelopeLen)
	}
	env := envelope{schema: int(v)}
	if env.content, err = dec.DecodeBytes(); err != nil {
		return nil, malformed("content: %v", err)
	}
	key, err := dec.DecodeBytes()
	if err != nil {
		return nil, malformed("signer: %v", err)
	}
	if env.sig, err = dec.DecodeBytes(); err != nil {
		return nil, malformed("signature: %v", err)
	}
	switch {
	case len(env.content) == 0:
		return nil, malformed("no content")
	case len(key) != ed25519.PublicKeySize:
		return nil, malformed("signer key of %d bytes, want %d", len(key), ed25519.PublicKeySize)
	case len(env.sig) != ed25519.SignatureSize:
		return nil, malformed("signature of %d bytes, want %d", len(env.sig), ed25519.SignatureSize)
	}
	env.signer = key
	return &env, nil
}

// Keyring is what a site trusts: per site, the public keys that site's
// records may be signed with (two during a key rotation's overlap).
type Keyring struct {
	Keys map[string][]ed25519.PublicKey
	// AcceptUnsigned accepts unsigned records of UnsignedSchema (earlier
	// builds), unverified: only for a rolling upgrade.
	AcceptUnsigned bool
}

// Open reads a record that came from site's stream: it must be signed by a
// key configured for site (or be an accepted unsigned record), and is then
// decoded as Decode does. A record that is not so signed fails with
// ErrBadSignature before its content is decoded. Open does not check the
// record's origin against site (the consumer does, separately: a record
// signed by site that claims another origin is unauthorized).
func (k Keyring) Open(b []byte, site string) (*Record, error) {
	if !isEnvelope(b) {
		if !k.AcceptUnsigned {
			return nil, fmt.Errorf("%w: unsigned record from %s (unsigned records are not accepted)", ErrBadSignature, site)
		}
		r, err := decodeContent(b, 0)
		if err != nil {
			return nil, err
		}
		if r.Schema != UnsignedSchema {
			return nil, fmt.Errorf("%w: unsigned schema %d record from %s: that schema is always signed", ErrBadSignature, r.Schema, site)
		}
		return r, nil
	}
	env, err := openEnvelope(b)
	if err != nil {
		return nil, err
	}
	if err := k.verify(env, site); err != nil {
		return nil, err
	}
	r, err := decodeContent(env.content, env.schema)
	if err != nil {
		return nil, err
	}
	r.Signed = b
	return r, nil
}

// OpenProof reads a version's proof (ProofOf): a record signed by a key of
// origin (never an unsigned one) that claims to be of origin, of bucket and
// key, and of exactly version v. Anything else is ErrBadSignature or
// ErrBadRecord: the version is not what its origin signed.
func (k Keyring) OpenProof(b []byte, bucket, key string, v Version) (*Record, error) {
	if IsCutProof(b) {
		return nil, fmt.Errorf("proof of %s: %w", trunc(v.ID), ErrNeedsBody)
	}
	if !isEnvelope(b) {
		return nil, fmt.Errorf("%w: the proof of %s is not a signed record", ErrBadSignature, trunc(v.ID))
	}
	r, err := Keyring{Keys: k.Keys}.Open(b, v.Origin)
	if err != nil {
		return nil, err
	}
	w := r.Version
	if r.Bucket != bucket || r.Key != key || w.ID != v.ID || w.Origin != v.Origin || w.Clock.Compare(v.Clock) != Equal ||
		w.TS != v.TS || w.Rank != v.Rank || w.Deleted != v.Deleted || w.Size != v.Size || w.ETag != v.ETag {
		return nil, badField("Version", "differs from the version %s of %s/%s its origin signed", trunc(v.ID), trunc(bucket), trunc(key))
	}
	return r, nil
}

func (k Keyring) verify(env *envelope, site string) error {
	keys := k.Keys[site]
	if len(keys) == 0 {
		return fmt.Errorf("%w: record from %s, which has no public key configured", ErrBadSignature, site)
	}
	for _, pub := range keys {
		if !pub.Equal(env.signer) {
			continue
		}
		if err := ed25519.VerifyWithOptions(pub, env.content, env.sig, sigOpts); err != nil {
			return fmt.Errorf("%w: record from %s does not verify with its key %s", ErrBadSignature, site, PublicKeyString(pub))
		}
		return nil
	}
	return fmt.Errorf("%w: record from %s is signed by key %s, not one configured for %s", ErrBadSignature, site, PublicKeyString(env.signer), site)
}

// PublicKeyString names a public key in messages as the configuration writes it:
// its nkeys user public key ("U" and 55 more characters; encoded here, as
// nkeys does, so that schema imports no NATS package).
func PublicKeyString(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Sprintf("(a key of %d bytes)", len(pub))
	}
	raw := make([]byte, 0, 1+ed25519.PublicKeySize+2)
	raw = append(raw, nkeyUserPrefix)
	raw = append(raw, pub...)
	c := crc16(raw)
	raw = append(raw, byte(c), byte(c>>8))
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)
}

// nkeyUserPrefix is nkeys' PrefixByteUser ('U' once base32-encoded).
const nkeyUserPrefix = 20 << 3

// crc16 is CRC-16/XMODEM, nkeys' checksum.
func crc16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c ^= uint16(x) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
	}
	return c
}
