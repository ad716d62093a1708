package schema

import (
	"bytes"
	"crypto/ed25519"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// refETag is the multipart ETag of body cut into parts of the given sizes,
// computed the plain way (all part digests first).
func refETag(body []byte, sizes []int64) string {
	var digests []byte
	for _, n := range sizes {
		sum := md5.Sum(body[:n])
		digests = append(digests, sum[:]...)
		body = body[n:]
	}
	sum := md5.Sum(digests)
	return hex.EncodeToString(sum[:]) + "-" + strconv.Itoa(len(sizes))
}

// feed writes body to h in chunks of the given sizes (cycled), then the rest.
func feed(h *ETagHash, body []byte, chunks []int) {
	for i := 0; len(body) > 0; i++ {
		n := len(body)
		if len(chunks) > 0 {
			n = min(max(chunks[i%len(chunks)], 1), len(body))
		}
		h.Write(body[:n])
		body = body[n:]
	}
}

// TestETagHashVersitygw: the multipart ETags versitygw v1.8.0 gave for two
// uploads (three parts of 'a', 'b', 'c' bytes: 5+5+1 MiB and 6+5+1 MiB,
// read from a real gateway while designing this), recomputed from the
// bytes streamed in odd chunks; a layout with one boundary moved, or one
// byte changed, gives another ETag.
func TestETagHashVersitygw(t *testing.T) {
	for _, c := range []struct {
		sizes []int64
		etag  string
		parts Parts
	}{
		{[]int64{5 << 20, 5 << 20, 1 << 20}, "7f636b2c1182136c010c5860a051b3e8-3", Parts{Size: 5 << 20}},
		{[]int64{6 << 20, 5 << 20, 1 << 20}, "b2d2ef7a6fb3adea2ccc10a14558c550-3", Parts{Sizes: []int64{6 << 20, 5 << 20, 1 << 20}}},
	} {
		var body []byte
		for i, n := range c.sizes {
			body = append(body, bytes.Repeat([]byte{byte('a' + i)}, int(n))...)
		}
		total := int64(len(body))
		if got := PartsOf(c.sizes); !reflect.DeepEqual(*got, c.parts) {
			t.Errorf("PartsOf(%v) = %+v, want %+v", c.sizes, *got, c.parts)
		}
		if err := c.parts.Check(total, c.etag); err != nil {
			t.Fatalf("layout %+v refused: %v", c.parts, err)
		}
		h, ok := NewETagHash(c.etag, total, &c.parts)
		if !ok {
			t.Fatalf("no hash for %s", c.etag)
		}
		feed(h, body, []int{1, 65536, 333333, 7})
		if !h.Matches() {
			t.Errorf("%v: recomputed ETag differs from versitygw's %s", c.sizes, c.etag)
		}
		// The same bytes under another layout of the same count and total.
		moved := Parts{Sizes: []int64{c.sizes[0] - 1, c.sizes[1] + 1, c.sizes[2]}}
		h, _ = NewETagHash(c.etag, total, &moved)
		feed(h, body, nil)
		if h.Matches() {
			t.Errorf("%v: a layout with a boundary moved by one byte matched", c.sizes)
		}
		// Other bytes of the same size.
		bad := bytes.Clone(body)
		bad[len(bad)/2] ^= 1
		h, _ = NewETagHash(c.etag, total, &c.parts)
		feed(h, bad, []int{4096})
		if h.Matches() {
			t.Errorf("%v: one byte changed, the ETag still matched", c.sizes)
		}
	}
}

// TestETagHashProperty: for any layout and any bytes, streaming in any
// chunks recomputes the reference ETag, and other bytes of the same size
// never match.
func TestETagHashProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sizes := rapid.SliceOfN(rapid.Int64Range(0, 300), 1, 12).Draw(t, "sizes")
		var total int64
		for _, n := range sizes {
			total += n
		}
		body := rapid.SliceOfN(rapid.Byte(), int(total), int(total)).Draw(t, "body")
		chunks := rapid.SliceOfN(rapid.IntRange(1, 100), 0, 5).Draw(t, "chunks")
		etag := refETag(body, sizes)
		parts := PartsOf(sizes)
		if err := parts.Check(total, etag); err != nil {
			t.Fatalf("PartsOf(%v) = %+v: %v", sizes, *parts, err)
		}
		h, ok := NewETagHash(etag, total, parts)
		if !ok {
			t.Fatal("no hash")
		}
		feed(h, body, chunks)
		if !h.Matches() {
			t.Fatalf("sizes %v: recomputed ETag differs from %s", sizes, etag)
		}
		if total > 0 {
			bad := bytes.Clone(body)
			i := rapid.IntRange(0, int(total)-1).Draw(t, "flip")
			bad[i] ^= byte(rapid.IntRange(1, 255).Draw(t, "bits"))
			h, _ = NewETagHash(etag, total, parts)
			feed(h, bad, chunks)
			if h.Matches() {
				t.Fatalf("sizes %v: byte %d changed, ETag matched", sizes, i)
			}
		}
		// A byte short or a byte over never matches.
		h, _ = NewETagHash(etag, total, parts)
		feed(h, append(bytes.Clone(body), 'x'), chunks)
		if h.Matches() {
			t.Fatal("a byte over matched")
		}
		if total > 0 {
			h, _ = NewETagHash(etag, total, parts)
			feed(h, body[:total-1], chunks)
			if h.Matches() {
				t.Fatal("a byte short matched")
			}
		}
	})
}

func TestETagHashPlainAndUnknown(t *testing.T) {
	sum := md5.Sum([]byte("hello"))
	h, ok := NewETagHash(hex.EncodeToString(sum[:]), 5, nil)
	if !ok {
		t.Fatal("plain MD5: no hash")
	}
	h.Write([]byte("hel"))
	h.Write([]byte("lo"))
	if !h.Matches() {
		t.Error("plain MD5: hello did not match")
	}
	for _, c := range []struct {
		etag  string
		parts *Parts
	}{
		{"7f636b2c1182136c010c5860a051b3e8-3", nil},             // multipart, no layout
		{"7f636b2c1182136c010c5860a051b3e8-3", &Parts{Size: 1}}, // a layout that does not fit
		{"7f636b2c1182136c010c5860a051b3e8", &Parts{Size: 5}},   // plain: hashed, layout ignored
		{"not-an-etag", nil}, // neither
		{"7f636b2c1182136c010c5860a051b3e8-0", &Parts{Sizes: []int64{}}}, // no parts
	} {
		_, ok := NewETagHash(c.etag, 5<<20, c.parts)
		if want := PlainMD5(c.etag); ok != want {
			t.Errorf("NewETagHash(%q, %+v): ok %v, want %v", c.etag, c.parts, ok, want)
		}
	}
}

func TestMultipartETag(t *testing.T) {
	for etag, n := range map[string]int{
		"7f636b2c1182136c010c5860a051b3e8-3":     3,
		"7F636B2C1182136C010C5860A051B3E8-10000": 10000,
		"7f636b2c1182136c010c5860a051b3e8-10001": 0,
		"7f636b2c1182136c010c5860a051b3e8-0":     0,
		"7f636b2c1182136c010c5860a051b3e8-03":    0,
		"7f636b2c1182136c010c5860a051b3e8-":      0,
		"7f636b2c1182136c010c5860a051b3e8-+3":    0,
		"7f636b2c1182136c010c5860a051b3e8":       0,
		"7f636b2c1182136c010c5860a051b3eg-3":     0,
		"f636b2c1182136c010c5860a051b3e8-3":      0,
	} {
		_, got, ok := MultipartETag(etag)
		if ok != (n > 0) || got != n {
			t.Errorf("MultipartETag(%q) = %d %v, want %d", etag, got, ok, n)
		}
	}
}

// TestPartsCheck: the bounds a received layout must keep.
func TestPartsCheck(t *testing.T) {
	const mp3 = "7f636b2c1182136c010c5860a051b3e8-3"
	for _, c := range []struct {
		name  string
		parts Parts
		total int64
		etag  string
		field string // "" = valid
	}{
		{"uniform", Parts{Size: 10}, 25, mp3, ""},
		{"uniform, last full", Parts{Size: 10}, 30, mp3, ""},
		{"uniform, last empty", Parts{Size: 10}, 20, mp3, ""},
		{"listed", Parts{Sizes: []int64{3, 9, 1}}, 13, mp3, ""},
		{"largest parts", Parts{Size: MaxPartSize}, 3 * MaxPartSize, mp3, ""},
		{"uniform, last over", Parts{Size: 10}, 31, mp3, "Parts.Size"},
		{"uniform, too few bytes", Parts{Size: 10}, 19, mp3, "Parts.Size"},
		{"part over 5 GiB", Parts{Size: MaxPartSize + 1}, 3*MaxPartSize + 3, mp3, "Parts.Size"},
		{"negative part", Parts{Size: -1}, 1, mp3, "Parts.Size"},
		{"listed, wrong count", Parts{Sizes: []int64{3, 9}}, 12, mp3, "Parts.Sizes"},
		{"listed, wrong sum", Parts{Sizes: []int64{3, 9, 1}}, 14, mp3, "Parts.Sizes"},
		{"listed, part over 5 GiB", Parts{Sizes: []int64{MaxPartSize + 1, 0, 0}}, MaxPartSize + 1, mp3, "Parts.Sizes"},
		{"listed, negative part", Parts{Sizes: []int64{-1, 2, 1}}, 2, mp3, "Parts.Sizes"},
		{"both forms", Parts{Size: 10, Sizes: []int64{10, 10, 5}}, 25, mp3, "Parts"},
		{"neither form", Parts{}, 25, mp3, "Parts"},
		{"plain ETag", Parts{Size: 10}, 25, "7f636b2c1182136c010c5860a051b3e8", "Parts"},
		{"count over S3's", Parts{Size: 10}, 25, "7f636b2c1182136c010c5860a051b3e8-10001", "Parts"},
	} {
		err := c.parts.Check(c.total, c.etag)
		var fe *FieldError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, ErrBadRecord)):
			t.Errorf("%s: %v, want a bad-record error on field %s", c.name, err, c.field)
		}
	}
}

// partsRecord is a valid schema 3 record of a multipart body.
func partsRecord() Record {
	r := validRecord()
	r.Schema, r.Inline, r.Body = PartsSchema, false, nil
	r.Version.Size, r.Version.ETag = 25, "7f636b2c1182136c010c5860a051b3e8-3"
	r.Parts = &Parts{Size: 10}
	return r
}

// TestPartsRecord: a layout travels only in a schema 3 record, signed with
// it; where it does not fit the record, the record is refused with the
// field named.
func TestPartsRecord(t *testing.T) {
	key := testKey(1)
	ring := ringFor(key)
	r := partsRecord()
	b, err := r.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	if b[1] != PartsSchema {
		t.Errorf("envelope says schema %d, want %d", b[1], PartsSchema)
	}
	got, err := ring.Open(b, "a")
	if err != nil || !reflect.DeepEqual(normRecord(*got), normRecord(r)) {
		t.Fatalf("Open: %v\n got %+v\nwant %+v", err, got, r)
	}
	// The signature covers the layout: another layout under the same
	// signature does not verify.
	other := r
	other.Parts = &Parts{Sizes: []int64{9, 10, 6}}
	content, err := other.Encode()
	if err != nil {
		t.Fatal(err)
	}
	env, err := openEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := SealSchema(content, key, PartsSchema)
	if err != nil {
		t.Fatal(err)
	}
	copy(forged[len(forged)-ed25519.SignatureSize:], env.sig) // the envelope ends with the signature
	if _, err := ring.Open(forged, "a"); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a layout swapped under the old signature: %v, want bad signature", err)
	}
	for _, c := range []struct {
		name  string
		mut   func(*Record)
		field string
	}{
		{"layout in schema 2", func(r *Record) { r.Schema = RecordSchema }, "Parts"},
		{"layout on a tombstone", func(r *Record) { r.Version.Deleted, r.Version.Size = true, 0 }, "Parts"},
		{"layout of another size", func(r *Record) { r.Version.Size = 40 }, "Parts.Size"},
		{"layout of another count", func(r *Record) { r.Version.ETag = "7f636b2c1182136c010c5860a051b3e8-4" }, "Parts.Size"},
	} {
		m := partsRecord()
		c.mut(&m)
		var fe *FieldError
		if _, err := m.Encode(); !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: Encode gave %v, want field %s", c.name, err, c.field)
		}
	}
	// A schema 3 record without a layout is valid (nothing to check); a
	// schema 2 envelope around a schema 3 record is not: the envelope and
	// its content must agree.
	m := partsRecord()
	m.Parts = nil
	if _, err := m.Encode(); err != nil {
		t.Errorf("schema 3 without a layout: %v", err)
	}
	content, err = r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	mixed, err := Seal(content, key) // envelope of schema 2
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Open(mixed, "a"); !errors.Is(err, ErrMalformed) {
		t.Errorf("a schema 2 envelope around a schema 3 record: %v, want malformed", err)
	}
}

// oldSchema2 is a schema 2 record of a multipart body signed by the build
// before schema 3 (seed of 32 zero bytes), kept byte for byte: this build
// still reads it, and it has no layout.
const oldSchema2 = "9402c4f387a17602a162a3626b74a16bac6269672f66696c652e62696ea376657288a26964bc612e3661623266643562653738616431636563346531396366332e37a66f726967696ea161a5636c6f636b82a161cf0000000000000007a162cf0000000000000002a27473d30000018bcfe56800a472616e6bcf0000000000000000a364656cc2a473697a65d30000000000b00000a465746167d92237663633366232633131383231333663303130633538363061303531623365382d33a5617474727381a26374b86170706c69636174696f6e2f6f637465742d73747265616da6696e6c696e65c2a46d616465d30000018bcfe5687bc4203b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29c440f15cd7dfcc8899e96270674ab11f8b90604a66151da568cc44de49e99c46bee833cf7cf2d486612c78a3ea0dc1a8543579e13ff5c1e7c1a7d555ffb977a27d08"

func TestOldSchema2StillReads(t *testing.T) {
	b, err := hex.DecodeString(oldSchema2)
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	r, err := ringFor(key).Open(b, "a")
	if err != nil {
		t.Fatalf("a schema 2 record of the previous build: %v", err)
	}
	if r.Schema != RecordSchema || r.Parts != nil || r.Version.ETag != "7f636b2c1182136c010c5860a051b3e8-3" || r.Version.Size != 11534336 {
		t.Errorf("read as %+v", r)
	}
	// This build writes a record without a layout as the previous one did
	// (schema 2, the same fields and values), so an earlier build still
	// reads it. msgpack writes a map's entries (the clock's) in Go's map
	// order, so the bytes are compared as decoded values.
	again, err := r.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	decoded := func(b []byte) map[string]any {
		env, err := openEnvelope(b)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := msgpack.Unmarshal(env.content, &m); err != nil {
			t.Fatal(err)
		}
		m["envelope schema"] = env.schema
		return m
	}
	if got, want := decoded(again), decoded(b); !reflect.DeepEqual(got, want) {
		t.Errorf("re-signed schema 2 record differs from the previous build's:\n%v\n%v", got, want)
	}
}

// TestETagHashSumTwice: a reader may see EOF twice (with the last bytes,
// then alone); asking again gives the same answer.
func TestETagHashSumTwice(t *testing.T) {
	body := []byte("0123456789abcdefghij")
	etag := refETag(body, []int64{8, 8, 4})
	h, _ := NewETagHash(etag, int64(len(body)), &Parts{Size: 8})
	h.Write(body)
	if !h.Matches() || !h.Matches() || h.Sum() != etag {
		t.Errorf("asked again: %s, want %s", h.Sum(), etag)
	}
	h, _ = NewETagHash(etag, int64(len(body)), &Parts{Size: 8})
	h.Write(body[:19])
	if h.Matches() || h.Matches() {
		t.Error("a byte short matched when asked again")
	}
}
