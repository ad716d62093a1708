package schema

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// RecordSchema is the version of the change-record encoding this build
// writes for a record without a part layout: 2, a record signed by its
// origin (sign.go). PartsSchema, 3, is the same with the part layout of a
// multipart body (Record.Parts, parts.go), which the signature covers like
// every other field; a producer writes it only for a record that carries a
// layout, so an earlier build still reads every other record (it sends a
// schema 3 record to its DLQ as an unknown version, to be retried once it
// is upgraded). FilterSchema, 4, adds the digest of the origin's prefix
// filter of the bucket (Record.Filter, filter.go), with or without a part
// layout; a producer writes it only for a bucket with a filter, so records
// of unfiltered buckets stay schema 2 or 3. This build also reads UnsignedSchema, the unsigned records
// of earlier builds (accepted from a peer only with
// Keyring.AcceptUnsigned, during a rolling upgrade). A record with another
// schema version is not guessed at: it goes to the dead-letter queue.
const (
	FilterSchema   = 4
	PartsSchema    = 3
	RecordSchema   = 2
	UnsignedSchema = 1
)

// knownSchema reports whether this build reads records of schema v.
func knownSchema(v int) bool {
	return v == UnsignedSchema || SignedSchema(v)
}

// SignedSchema reports whether records of schema v are signed (travel in
// an envelope).
func SignedSchema(v int) bool { return v == RecordSchema || v == PartsSchema || v == FilterSchema }

// MaxSchema is the highest record schema this build reads.
const MaxSchema = FilterSchema

// Sentinel errors of Decode, matched with errors.Is.
var (
	ErrMalformed      = errors.New("malformed record")
	ErrUnknownVersion = errors.New("unknown record schema version")
)

// Attrs are the object attributes that replicate with its bytes.
type Attrs struct {
	ContentType        string            `msgpack:"ct,omitempty"`
	CacheControl       string            `msgpack:"cc,omitempty"`
	ContentEncoding    string            `msgpack:"ce,omitempty"`
	ContentDisposition string            `msgpack:"cd,omitempty"`
	Meta               map[string]string `msgpack:"meta,omitempty"` // user metadata, s3mesh's own removed
}

// Record is a change record: one new version (or tombstone) of one key,
// made at its origin site. It is the unit on the bus.
type Record struct {
	Schema  int     `msgpack:"v"`
	Bucket  string  `msgpack:"b"`
	Key     string  `msgpack:"k"`
	Version Version `msgpack:"ver"`
	Attrs   Attrs   `msgpack:"attrs"`
	Inline  bool    `msgpack:"inline"` // Body holds the whole object
	Body    []byte  `msgpack:"body,omitempty"`
	MadeAt  int64   `msgpack:"made"` // wall time the record was made, unix ms (for lag)
	// Parts is the part layout of a multipart body at the origin (schema
	// PartsSchema only): with it a receiver checks bytes from any site
	// against the signed ETag (parts.go).
	Parts *Parts `msgpack:"parts,omitempty"`
	// Filter is the digest (Filter.Digest) of the origin's prefix filter
	// of the bucket (schema FilterSchema only; "" for no filter): a
	// receiver with another filter reports the difference.
	Filter string `msgpack:"filter,omitempty"`
	// Signed is the signed envelope r was opened from (Keyring.Open; nil
	// otherwise). It is not part of the record's encoding: a site keeps it
	// (without a body) as the proof of the version it holds (ProofOf).
	Signed []byte `msgpack:"-"`
}

// MaxProof bounds the signed record a site keeps as the proof of the
// version it holds (a record's inline body is cut out of it, proof.go; the
// origin keeps a bodyless one of its own, SignProof).
const MaxProof = 16 << 10

// ProofOf is the signed record r was opened from, if it can serve as the
// proof of r's version (see Record.Signed and MaxProof; a cut proof when
// it carries its body inline, proof.go), else nil.
func ProofOf(r *Record) []byte {
	switch {
	case r == nil || len(r.Signed) == 0:
		return nil
	case r.Inline && len(r.Body) > 0:
		// A site keeps no copy of the bytes it holds: the proof is cut,
		// and completed by them (proof.go).
		return cutProof(r)
	case len(r.Signed) > MaxProof:
		return nil
	}
	return r.Signed
}

// SignProof is the proof of r's version its origin keeps: r signed with
// key, without its body (what a record for a fetched body says). nil when
// it would be over MaxProof.
func (r *Record) SignProof(key ed25519.PrivateKey) ([]byte, error) {
	bodyless := *r
	bodyless.Inline, bodyless.Body, bodyless.Signed = false, nil, nil
	b, err := bodyless.Sign(key)
	if err != nil || len(b) > MaxProof {
		return nil, err
	}
	return b, nil
}

// Encode serialises r with msgpack: the record's content, unsigned. What a
// producer publishes is Sign's envelope around it; a peer accepts a bare
// encoding only of an UnsignedSchema record, and only with
// Keyring.AcceptUnsigned.
func (r *Record) Encode() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return msgpack.Marshal(r)
}

// Decode parses and validates a record: a signed envelope (sign.go) or a
// bare encoding. It does NOT verify the signature: a peer's record is read
// with Keyring.Open, which does; Decode is for a site's own records and for
// showing what an entry holds. Errors wrap ErrMalformed or
// ErrUnknownVersion; a record that breaks a bound (see limits.go) wraps
// ErrBadRecord too. Map and array lengths are bounded before anything is
// decoded (checkShape). A receiving site checks ValidateFor as well.
func Decode(b []byte) (*Record, error) {
	if isEnvelope(b) {
		env, err := openEnvelope(b)
		if err != nil {
			return nil, err
		}
		return decodeContent(env.content, env.schema)
	}
	return decodeContent(b, 0)
}

// decodeContent decodes a record's msgpack map. want is the schema it must
// have (0: any this build reads).
func decodeContent(b []byte, want int) (*Record, error) {
	if err := checkShape(b); err != nil {
		return nil, err
	}
	var probe struct {
		Schema int `msgpack:"v"`
	}
	if err := msgpack.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !knownSchema(probe.Schema) {
		return nil, fmt.Errorf("%w: %d (this build reads %d to %d)", ErrUnknownVersion, probe.Schema, UnsignedSchema, MaxSchema)
	}
	if want != 0 && probe.Schema != want {
		return nil, fmt.Errorf("%w: a signed envelope holds a schema %d record, want %d", ErrMalformed, probe.Schema, want)
	}
	var r Record
	if err := msgpack.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks the invariants every record must hold, the bounds of
// limits.go among them (Encode checks them too, so a producer refuses to
// publish what its peers would refuse to apply).
func (r *Record) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	v := r.Version
	switch {
	case !knownSchema(r.Schema):
		return fmt.Errorf("%w: %d", ErrUnknownVersion, r.Schema)
	case r.Bucket == "":
		return bad("empty bucket")
	case r.Key == "" || len(r.Key) > 1024:
		return bad("key length %d not in 1..1024", len(r.Key))
	case v.Origin == "":
		return bad("empty origin")
	case v.Clock[v.Origin] == 0:
		return bad("clock %s lacks origin %s", v.Clock, v.Origin)
	case v.ID != VersionID(v.Origin, r.Bucket, r.Key, v.Clock[v.Origin]):
		return bad("id %q does not match origin, key and clock", v.ID)
	case v.Size < 0:
		return bad("negative size")
	case v.Deleted && (r.Inline || len(r.Body) > 0):
		return bad("tombstone with a body")
	case r.Inline && int64(len(r.Body)) != v.Size:
		return bad("inline body of %d bytes, size says %d", len(r.Body), v.Size)
	case r.Parts != nil && r.Schema != PartsSchema && r.Schema != FilterSchema:
		return badField("Parts", "a part layout in a schema %d record (only schemas %d and %d carry one)", r.Schema, PartsSchema, FilterSchema)
	case r.Schema == FilterSchema && !validFilterDigest(r.Filter):
		return badField("Filter", "a schema %d record needs a filter digest of %d hex digits, not %q", FilterSchema, FilterDigestLen, r.Filter)
	case r.Filter != "" && r.Schema != FilterSchema:
		return badField("Filter", "a filter digest in a schema %d record (only schema %d carries one)", r.Schema, FilterSchema)
	case r.Parts != nil && v.Deleted:
		return badField("Parts", "a part layout on a tombstone")
	}
	if r.Parts != nil {
		if err := r.Parts.Check(v.Size, v.ETag); err != nil {
			return err
		}
	}
	for k := range r.Attrs.Meta {
		if IsOwnMeta(k) {
			return bad("user metadata carries s3mesh's own key %q", k)
		}
	}
	return r.checkBounds()
}

// Metadata keys s3mesh writes on replica objects (lower-case, without the
// x-amz-meta- prefix). They mark a replica write so it is never re-published
// (no echo), and carry enough to rebuild a site's state from its bucket.
const (
	MetaPrefix = "s3mesh-"
	MetaVID    = "s3mesh-vid"   // version id
	MetaKey    = "s3mesh-key"   // KeyTag of bucket/key: a user's copy to another key is a new local write
	MetaClock  = "s3mesh-clock" // Clock.String of the version
	MetaTS     = "s3mesh-ts"    // origin time, unix ms
	MetaOrigin = "s3mesh-origin"
	MetaETag   = "s3mesh-etag" // ETag at the origin
	MetaRank   = "s3mesh-rank"
)

// IsOwnMeta reports whether a metadata key belongs to s3mesh.
func IsOwnMeta(k string) bool { return strings.HasPrefix(strings.ToLower(k), MetaPrefix) }

// UserMeta returns meta without s3mesh's own keys (nil if none remain).
func UserMeta(meta map[string]string) map[string]string {
	var out map[string]string
	for k, v := range meta {
		if IsOwnMeta(k) {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(meta))
		}
		out[strings.ToLower(k)] = v
	}
	return out
}

// Digest is a short digest of the attributes (user metadata sorted), so a
// site can tell a metadata-only overwrite (same bytes, same ETag) from no
// change.
func (a Attrs) Digest() string {
	keys := make([]string, 0, len(a.Meta))
	for k := range a.Meta {
		if !IsOwnMeta(k) {
			keys = append(keys, strings.ToLower(k))
		}
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, f := range []string{a.ContentType, a.CacheControl, a.ContentEncoding, a.ContentDisposition} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(a.Meta[k]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
