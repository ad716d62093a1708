package schema

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// A multipart object's ETag (S3, and the stores tested here: versitygw) is
// the MD5 of the concatenated binary MD5s of its parts, then "-" and the
// number of parts. It depends on where the parts begin, which the bytes
// alone do not tell. Parts is that layout as the origin's store holds it,
// signed with the record (schema PartsSchema): with it any receiver
// recomputes the ETag from the bytes as they stream, wherever they come
// from, and refuses other bytes, without the origin ever reading its body.
// A record with a multipart ETag and no layout (an earlier schema, or a
// store that could not tell) can only be checked by size, so such a body
// is fetched only from its origin, whose bytes are the version by
// definition (consumer.OpenBody).
//
// Two forms, exactly one set: Size when every part but the last has Size
// bytes and the last at most that (what fixed-part-size uploaders make:
// the AWS CLI and SDKs, rclone, s3mesh itself), else Sizes, every part's
// size in order. The number of parts is always the ETag's "-N".
type Parts struct {
	Size  int64   `msgpack:"size,omitempty"`
	Sizes []int64 `msgpack:"sizes,omitempty"`
}

// S3's limits on parts (a larger part or count is never believed).
const (
	MaxPartSize  int64 = 5 << 30 // 5 GiB
	MaxPartCount       = 10000
	// MaxListedParts bounds Parts.Sizes (the msgpack array bound of
	// checkShape): a layout of unequal parts with more parts is not
	// published (its body is then fetched from the origin only).
	MaxListedParts = MaxEntries
)

// MultipartETag splits a multipart ETag "<32 hex>-N" into its MD5 part and
// N; false for anything else (a plain MD5 among them).
func MultipartETag(etag string) (sum string, n int, ok bool) {
	i := strings.IndexByte(etag, '-')
	if i != 32 || !PlainMD5(etag[:32]) {
		return "", 0, false
	}
	digits := etag[33:]
	if digits == "" || len(digits) > 5 || digits[0] == '0' || strings.Trim(digits, "0123456789") != "" {
		return "", 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 || n > MaxPartCount {
		return "", 0, false
	}
	return strings.ToLower(etag[:32]), n, true
}

// PartsOf is the compact layout of the given part sizes: Size when every
// part but the last has the first one's size and the last no more, else
// Sizes (nil when there are more unequal parts than MaxListedParts, or
// none).
func PartsOf(sizes []int64) *Parts {
	if len(sizes) == 0 {
		return nil
	}
	uniform := sizes[len(sizes)-1] <= sizes[0]
	for _, s := range sizes[:len(sizes)-1] {
		if s != sizes[0] {
			uniform = false
			break
		}
	}
	if uniform && sizes[0] > 0 {
		return &Parts{Size: sizes[0]}
	}
	if len(sizes) > MaxListedParts {
		return nil
	}
	return &Parts{Sizes: append([]int64(nil), sizes...)}
}

// Check reports whether p is a layout of an object of total bytes with
// ETag etag: n parts as the ETag's "-N" says, each of at most MaxPartSize
// bytes, summing to total. It allocates nothing.
func (p *Parts) Check(total int64, etag string) error {
	_, n, ok := MultipartETag(etag)
	switch {
	case !ok:
		return badField("Parts", "a part layout for ETag %q, which is not a multipart ETag (<32 hex>-N, N at most %d)", trunc(etag), MaxPartCount)
	case (p.Size != 0) == (len(p.Sizes) != 0):
		return badField("Parts", "exactly one of size and sizes must be set")
	case p.Size != 0:
		if p.Size < 0 || p.Size > MaxPartSize {
			return badField("Parts.Size", "%d bytes, not in 1..%d (S3's largest part)", p.Size, MaxPartSize)
		}
		// No overflow: n ≤ 10^4 and Size ≤ 5 GiB.
		if last := total - int64(n-1)*p.Size; last < 0 || last > p.Size {
			return badField("Parts.Size", "%d parts of %d bytes do not make %d bytes (the last part would have %d)", n, p.Size, total, last)
		}
	default:
		if len(p.Sizes) != n {
			return badField("Parts.Sizes", "%d sizes for an ETag of %d parts", len(p.Sizes), n)
		}
		var sum int64
		for i, s := range p.Sizes {
			if s < 0 || s > MaxPartSize {
				return badField("Parts.Sizes", "part %d of %d bytes, not in 0..%d (S3's largest part)", i+1, s, MaxPartSize)
			}
			sum += s
		}
		if sum != total {
			return badField("Parts.Sizes", "parts sum to %d bytes, the object has %d", sum, total)
		}
	}
	return nil
}

// partSize is the size of part i (0-based) of an object of total bytes in
// n parts (p checked).
func (p *Parts) partSize(i, n int, total int64) int64 {
	if p.Size == 0 {
		return p.Sizes[i]
	}
	if i < n-1 {
		return p.Size
	}
	return total - int64(n-1)*p.Size
}

// ETagHash recomputes an object's ETag from its bytes as they stream
// (Write), in constant memory: the MD5 of the bytes for a plain ETag, the
// MD5 of the parts' MD5s and "-N" for a multipart one.
type ETagHash struct {
	want  string // the ETag to match, lower case
	parts *Parts
	n     int   // parts in all (multipart)
	total int64 // object size
	i     int   // current part
	left  int64 // bytes left in the current part
	part  hash.Hash
	outer hash.Hash // MD5 of the part MD5s (multipart), or of the bytes
	over  bool      // more bytes than the layout holds
	sum   *string   // Sum's answer, once asked (the hashes are then spent)
}

// NewETagHash returns a hash that recomputes etag for an object of total
// bytes: a plain MD5 ETag needs no layout, a multipart one needs parts
// (checked). False when etag cannot be recomputed (a multipart ETag without
// a layout, or an ETag of another form).
func NewETagHash(etag string, total int64, parts *Parts) (*ETagHash, bool) {
	if PlainMD5(etag) {
		return &ETagHash{want: strings.ToLower(etag), outer: md5.New()}, true
	}
	_, n, ok := MultipartETag(etag)
	if !ok || parts == nil || parts.Check(total, etag) != nil {
		return nil, false
	}
	h := &ETagHash{want: strings.ToLower(etag), parts: parts, n: n, total: total, part: md5.New(), outer: md5.New()}
	h.left = parts.partSize(0, n, total)
	return h, true
}

// Write hashes p; it never fails.
func (h *ETagHash) Write(p []byte) (int, error) {
	if h.sum != nil {
		return len(p), nil
	}
	if h.parts == nil {
		return h.outer.Write(p)
	}
	written := len(p)
	for len(p) > 0 {
		for h.left == 0 && h.i < h.n-1 {
			h.nextPart()
		}
		if h.left == 0 {
			h.over = true // past the last part: the ETag cannot match
			return written, nil
		}
		k := int64(len(p))
		if k > h.left {
			k = h.left
		}
		h.part.Write(p[:k])
		h.left -= k
		p = p[k:]
	}
	return written, nil
}

// nextPart closes the current part.
func (h *ETagHash) nextPart() {
	h.outer.Write(h.part.Sum(nil))
	h.part.Reset()
	h.i++
	h.left = h.parts.partSize(h.i, h.n, h.total)
}

// Sum is the ETag of the bytes written, once they are all written: the
// first call ends the hash (later Writes are ignored, later calls give the
// same answer). For a multipart ETag, bytes short of or past the layout
// give "".
func (h *ETagHash) Sum() string {
	if h.sum == nil {
		s := h.final()
		h.sum = &s
	}
	return *h.sum
}

func (h *ETagHash) final() string {
	if h.parts == nil {
		return hex.EncodeToString(h.outer.Sum(nil))
	}
	for h.left == 0 && h.i < h.n-1 {
		h.nextPart() // parts of 0 bytes at the end
	}
	if h.over || h.left != 0 {
		return ""
	}
	h.outer.Write(h.part.Sum(nil))
	return hex.EncodeToString(h.outer.Sum(nil)) + "-" + strconv.Itoa(h.n)
}

// Matches reports whether the bytes written have the ETag (ends the hash,
// like Sum).
func (h *ETagHash) Matches() bool { return h.Sum() == h.want }

// Want is the ETag being recomputed.
func (h *ETagHash) Want() string { return h.want }

// String shows what the hash checks, for messages.
func (h *ETagHash) String() string {
	if h.parts == nil {
		return fmt.Sprintf("MD5 %s", h.want)
	}
	return fmt.Sprintf("ETag %s over %d parts", h.want, h.n)
}
