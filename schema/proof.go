package schema

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// A proof (ProofOf) is one of two forms: a signed envelope of a record
// without its body, or, for a record whose body travelled inline, a cut
// proof: that envelope with the body's bytes taken out, which the body's
// bytes complete again (OpenProofBody). A cut proof starts with cutProofTag, a byte no
// msgpack value starts with; then the msgpack array [offset, length, the
// envelope without the body].
const cutProofTag = 0xc1

// ErrNeedsBody: the proof is a cut proof; only the version's bytes
// complete it (OpenProofBody).
var ErrNeedsBody = errors.New("the proof needs the version's bytes")

// cutProof is r.Signed with r's inline body cut out, or nil.
func cutProof(r *Record) []byte {
	if !r.Inline || len(r.Body) == 0 {
		return nil
	}
	var hdr bytes.Buffer
	if err := msgpack.NewEncoder(&hdr).EncodeBytesLen(len(r.Body)); err != nil {
		return nil
	}
	needle := append(append([]byte("\xa4body"), hdr.Bytes()...), r.Body...)
	i := bytes.Index(r.Signed, needle)
	if i < 0 {
		return nil
	}
	off := i + len(needle) - len(r.Body)
	rest := append(append([]byte{}, r.Signed[:off]...), r.Signed[off+len(r.Body):]...)
	enc, err := msgpack.Marshal([]any{off, len(r.Body), rest})
	if err != nil || 1+len(enc) > MaxProof {
		return nil
	}
	return append([]byte{cutProofTag}, enc...)
}

// IsCutProof reports whether b is a cut proof (it needs the body).
func IsCutProof(b []byte) bool { return len(b) > 0 && b[0] == cutProofTag }

// OpenProofBody is OpenProof for a proof that may be a cut proof: body,
// the bytes of version v as some site serves them, completes it, and the
// origin's signature then covers them too. Bytes other than the version's
// fail (ErrBadSignature, or ErrBadRecord).
func (k Keyring) OpenProofBody(b, body []byte, bucket, key string, v Version) (*Record, error) {
	if !IsCutProof(b) {
		return k.OpenProof(b, bucket, key, v)
	}
	var cut struct {
		_msgpack struct{} `msgpack:",as_array"`
		Off, N   int
		Rest     []byte
	}
	if err := msgpack.Unmarshal(b[1:], &cut); err != nil {
		return nil, fmt.Errorf("%w: cut proof: %v", ErrMalformed, err)
	}
	if cut.N != len(body) || cut.Off < 0 || cut.Off > len(cut.Rest) {
		return nil, badField("Version", "cut proof of %s: %d bytes at %d, the body has %d", trunc(v.ID), cut.N, cut.Off, len(body))
	}
	env := make([]byte, 0, len(cut.Rest)+len(body))
	env = append(append(append(env, cut.Rest[:cut.Off]...), body...), cut.Rest[cut.Off:]...)
	r, err := k.OpenProof(env, bucket, key, v)
	if err != nil {
		return nil, err
	}
	if !r.Inline || !bytes.Equal(r.Body, body) {
		return nil, badField("Body", "the bytes of %s are not those its origin signed", trunc(v.ID))
	}
	return r, nil
}
