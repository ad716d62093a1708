package schema

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// validRecord is a small valid record for table tests to mutate.
func validRecord() Record {
	c := Clock{"a": 3, "b": 1}
	return Record{
		Schema: RecordSchema,
		Bucket: "photos",
		Key:    "2024/猫.jpg",
		Version: Version{
			ID: VersionID("a", "photos", "2024/猫.jpg", 3), Origin: "a", Clock: c,
			TS: 1_700_000_000_000, Rank: 0, Size: 5, ETag: "5d41402abc4b2a76b9719d911017c592",
		},
		Attrs:  Attrs{ContentType: "image/jpeg", Meta: map[string]string{"camera": "x100"}},
		Inline: true,
		Body:   []byte("hello"),
		MadeAt: 1_700_000_000_123,
	}
}

// metaKeyGen draws user metadata keys, never s3mesh's own.
func metaKeyGen() *rapid.Generator[string] {
	return rapid.StringMatching(`[a-z0-9][a-z0-9-]{0,15}`).Filter(func(k string) bool { return !IsOwnMeta(k) })
}

// recordGen draws valid records: unicode buckets and keys (up to the 1 KiB
// limit), puts with inline bodies, puts with streamed bodies, tombstones.
func recordGen() *rapid.Generator[Record] {
	return rapid.Custom(func(t *rapid.T) Record {
		bucket := rapid.StringN(1, 20, 63).Draw(t, "bucket")
		key := rapid.OneOf(
			rapid.StringN(1, 40, 1024),
			rapid.StringOfN(rapid.RuneFrom([]rune("ключ日本語🐈/é\u0301.\x00 ")), 1, 300, 1024),
		).Draw(t, "key")
		origin := siteGen().Draw(t, "origin")
		clock := clockGen().Draw(t, "clock")
		clock[origin] = rapid.Uint64Range(1, 1<<40).Draw(t, "n")
		v := Version{
			ID:     VersionID(origin, bucket, key, clock[origin]),
			Origin: origin,
			Clock:  clock,
			TS:     rapid.Int64().Draw(t, "ts"),
			Rank: rapid.Uint64Range(0, MaxRankEpoch).Draw(t, "epoch")<<16 |
				rapid.Uint64Range(0, 1).Draw(t, "flag")<<8 | rapid.Uint64Range(0, 255).Draw(t, "level"),
			ETag: rapid.StringMatching(`[0-9a-f]{0,32}(-[0-9]{1,4})?`).Draw(t, "etag"),
		}
		r := Record{Schema: RecordSchema, Bucket: bucket, Key: key, MadeAt: rapid.Int64().Draw(t, "made")}
		switch rapid.IntRange(0, 3).Draw(t, "kind") {
		case 0: // tombstone
			v.Deleted = true
			v.Size = rapid.Int64Range(0, 1<<40).Draw(t, "size")
		case 1: // inline body
			r.Inline = true
			r.Body = rapid.SliceOfN(rapid.Byte(), 0, 256).Draw(t, "body")
			if len(r.Body) == 0 {
				r.Body = nil // omitempty: an empty body decodes as nil
			}
			v.Size = int64(len(r.Body))
		case 2: // body fetched separately
			v.Size = rapid.Int64Range(0, MaxSize).Draw(t, "size")
		default: // a multipart body fetched separately, with its part layout (schema 3)
			sizes := rapid.SliceOfN(rapid.Int64Range(0, MaxPartSize), 1, 40).Draw(t, "parts")
			v.Size = 0
			for _, n := range sizes {
				v.Size += n
			}
			v.ETag = rapid.StringMatching(`[0-9a-f]{32}`).Draw(t, "md5") + "-" + strconv.Itoa(len(sizes))
			r.Schema, r.Parts = PartsSchema, PartsOf(sizes)
		}
		r.Version = v
		r.Attrs = Attrs{
			ContentType:        rapid.SampledFrom([]string{"", "text/plain; charset=utf-8", "application/octet-stream"}).Draw(t, "ct"),
			CacheControl:       rapid.SampledFrom([]string{"", "no-cache"}).Draw(t, "cc"),
			ContentEncoding:    rapid.SampledFrom([]string{"", "gzip"}).Draw(t, "ce"),
			ContentDisposition: rapid.SampledFrom([]string{"", `attachment; filename="ü.txt"`}).Draw(t, "cd"),
		}
		if m := rapid.MapOfN(metaKeyGen(), rapid.String(), 0, 4).Draw(t, "meta"); len(m) > 0 {
			r.Attrs.Meta = m
		}
		return r
	})
}

func TestRecordRoundTrip(t *testing.T) {
	t.Run("fixed", func(t *testing.T) {
		r := validRecord()
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", *got, r)
		}
	})
	t.Run("key at 1024 bytes", func(t *testing.T) {
		r := validRecord()
		r.Key = strings.Repeat("é", 512) // 1024 bytes
		r.Version.ID = VersionID("a", r.Bucket, r.Key, 3)
		if _, err := r.Encode(); err != nil {
			t.Fatalf("1024-byte key rejected: %v", err)
		}
	})
	t.Run("property", rapid.MakeCheck(func(t *rapid.T) {
		r := recordGen().Draw(t, "record")
		if err := r.Validate(); err != nil {
			t.Fatalf("generator made an invalid record: %v", err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if !reflect.DeepEqual(*got, r) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", *got, r)
		}
		// Bytes need not repeat (msgpack writes maps in iteration order),
		// but the re-encoding decodes to the same record.
		b2, err := got.Encode()
		if err != nil {
			t.Fatalf("re-Encode: %v", err)
		}
		if again, err := Decode(b2); err != nil || !reflect.DeepEqual(*again, r) {
			t.Fatalf("re-decode: %v", err)
		}
	}))
}

func TestDecodeGarbage(t *testing.T) {
	mp := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, ErrMalformed},
		{"empty", []byte{}, ErrMalformed},
		{"never-used byte 0xc1", []byte{0xc1}, ErrMalformed},
		{"json", []byte(`{"v":1,"b":"x","k":"y"}`), ErrMalformed},
		{"text", []byte("hello, world"), ErrMalformed},
		{"msgpack int", mp(1), ErrMalformed},
		{"msgpack string", mp("record"), ErrMalformed},
		{"msgpack array", mp([]int{1, 2, 3}), ErrMalformed},
		{"schema of wrong type", mp(map[string]any{"v": "1"}), ErrMalformed},
		{"map32 claiming 4G entries", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		{"str32 claiming 4 GiB", append([]byte{0x81, 0xa1, 'b', 0xdb, 0xff, 0xff, 0xff, 0xff}, 'x'), ErrMalformed},
		{"only schema", mp(map[string]any{"v": 1}), ErrMalformed},
		{"empty map: schema 0", mp(map[string]any{}), ErrUnknownVersion},
		{"msgpack nil", mp(nil), ErrUnknownVersion},
		{"schema 5", mp(map[string]any{"v": 5}), ErrUnknownVersion},
		{"schema -1", mp(map[string]any{"v": -1}), ErrUnknownVersion},
		{"clock of wrong type", func() []byte {
			r := validRecord()
			m := map[string]any{"v": 1, "b": r.Bucket, "k": r.Key, "ver": map[string]any{"id": r.Version.ID, "origin": "a", "clock": "a:3"}}
			return mp(m)
		}(), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Decode(tc.in)
			if err == nil {
				t.Fatalf("Decode(%x) = %+v, want an error", tc.in, r)
			}
			if r != nil {
				t.Fatal("Decode returned a record with its error")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%x) error %v, want errors.Is %v", tc.in, err, tc.want)
			}
		})
	}
}

func TestDecodeUnknownVersion(t *testing.T) {
	for _, schema := range []int{0, 5, 6, 1 << 30} {
		r := validRecord()
		r.Schema = schema
		if _, err := r.Encode(); !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("Encode with schema %d: %v, want ErrUnknownVersion", schema, err)
		}
		b, err := msgpack.Marshal(&r) // a record from a future (or broken) build
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b); !errors.Is(err, ErrUnknownVersion) || errors.Is(err, ErrMalformed) {
			t.Errorf("Decode schema %d: %v, want ErrUnknownVersion only", schema, err)
		}
	}
	// A future schema need not have this schema's shape at all.
	b, _ := msgpack.Marshal(map[string]any{"v": 5, "ver": []int{1}, "k": 7})
	if _, err := Decode(b); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("Decode of a differently shaped schema 5: %v", err)
	}
	b, _ = msgpack.Marshal([]any{5, "a future envelope"})
	if _, err := Decode(b); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("Decode of a schema 5 envelope: %v", err)
	}
}

// Every prefix of a valid encoding either fails to decode or decodes to a
// valid record; none panics.
func TestDecodeTruncated(t *testing.T) {
	check := func(t interface {
		Fatalf(string, ...any)
	}, b []byte) {
		for n := 0; n < len(b); n++ {
			r, err := Decode(b[:n])
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
					t.Fatalf("prefix %d/%d: error %v wraps neither sentinel", n, len(b), err)
				}
				continue
			}
			if verr := r.Validate(); verr != nil {
				t.Fatalf("prefix %d/%d decoded to an invalid record: %v", n, len(b), verr)
			}
		}
	}
	r := validRecord()
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	check(t, b)
	rapid.Check(t, func(t *rapid.T) {
		r := recordGen().Draw(t, "record")
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		check(t, b)
	})
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Record)
	}{
		{"empty bucket", func(r *Record) { r.Bucket = "" }},
		{"empty key", func(r *Record) { r.Key = "" }},
		{"key over 1024 bytes", func(r *Record) {
			r.Key = strings.Repeat("k", 1025)
			r.Version.ID = VersionID("a", r.Bucket, r.Key, 3)
		}},
		{"empty origin", func(r *Record) { r.Version.Origin = "" }},
		{"clock lacks origin", func(r *Record) { r.Version.Clock = Clock{"b": 1} }},
		{"clock origin entry zero", func(r *Record) { r.Version.Clock = Clock{"a": 0, "b": 1} }},
		{"nil clock", func(r *Record) { r.Version.Clock = nil }},
		{"empty id", func(r *Record) { r.Version.ID = "" }},
		{"id with wrong counter", func(r *Record) { r.Version.ID = VersionID("a", r.Bucket, r.Key, 2) }},
		{"id of another key", func(r *Record) { r.Version.ID = VersionID("a", r.Bucket, "other", 3) }},
		{"id of another bucket", func(r *Record) { r.Version.ID = VersionID("a", "other", r.Key, 3) }},
		{"id of another origin", func(r *Record) { r.Version.ID = VersionID("b", r.Bucket, r.Key, 3) }},
		{"negative size", func(r *Record) { r.Inline, r.Body, r.Version.Size = false, nil, -1 }},
		{"tombstone inline", func(r *Record) { r.Version.Deleted, r.Body, r.Version.Size = true, nil, 0 }},
		{"tombstone with body", func(r *Record) { r.Version.Deleted, r.Inline = true, false }},
		{"inline body shorter than size", func(r *Record) { r.Version.Size = 6 }},
		{"inline body longer than size", func(r *Record) { r.Version.Size = 4 }},
		{"inline empty body with size", func(r *Record) { r.Body = nil }},
		{"user meta with own key", func(r *Record) { r.Attrs.Meta = map[string]string{MetaVID: "x"} }},
		{"user meta with own key, upper case", func(r *Record) { r.Attrs.Meta = map[string]string{"ok": "1", "S3Mesh-Clock": "a:1"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validRecord()
			tc.mut(&r)
			err := r.Validate()
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Validate = %v, want ErrMalformed", err)
			}
			if b, err := r.Encode(); !errors.Is(err, ErrMalformed) || b != nil {
				t.Fatalf("Encode = %d bytes, %v; want ErrMalformed", len(b), err)
			}
			// The same record arriving from a peer is rejected on Decode.
			b, err := msgpack.Marshal(&r)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := Decode(b); !errors.Is(err, ErrMalformed) || got != nil {
				t.Fatalf("Decode = %v, %v; want ErrMalformed", got, err)
			}
		})
	}
	t.Run("valid base", func(t *testing.T) {
		r := validRecord()
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("valid tombstone", func(t *testing.T) {
		r := validRecord()
		r.Version.Deleted, r.Inline, r.Body, r.Version.Size = true, false, nil, 0
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("valid empty inline body", func(t *testing.T) {
		r := validRecord()
		r.Body, r.Version.Size = nil, 0
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOwnMeta(t *testing.T) {
	for k, want := range map[string]bool{
		"s3mesh-vid": true, "S3MESH-CLOCK": true, "s3mesh-": true, "s3mesh-anything": true,
		"s3mesh": false, "x-s3mesh-vid": false, "camera": false, "": false,
	} {
		if got := IsOwnMeta(k); got != want {
			t.Errorf("IsOwnMeta(%q) = %v, want %v", k, got, want)
		}
	}
	cases := []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{"nil", nil, nil},
		{"only own", map[string]string{MetaVID: "x", "S3Mesh-TS": "1"}, nil},
		{"mixed, lower-cased", map[string]string{MetaVID: "x", "Camera": "X100", "lens": "23"}, map[string]string{"camera": "X100", "lens": "23"}},
	}
	for _, tc := range cases {
		t.Run("UserMeta/"+tc.name, func(t *testing.T) {
			if got := UserMeta(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("UserMeta = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	r := validRecord()
	b, err := r.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	tomb := validRecord()
	tomb.Version.Deleted, tomb.Inline, tomb.Body, tomb.Version.Size = true, false, nil, 0
	tomb.Attrs = Attrs{}
	if b, err := tomb.Encode(); err == nil {
		f.Add(b)
	}
	future := validRecord()
	future.Schema = 3
	if b, err := msgpack.Marshal(&future); err == nil {
		f.Add(b)
	}
	for _, junk := range [][]byte{
		nil, {0xc1}, []byte("{}"), {0x80}, {0x81, 0xa1, 'v', 0x01},
		{0xdf, 0xff, 0xff, 0xff, 0xff}, b[:len(b)/2], append(bytes.Clone(b), 0x00),
	} {
		f.Add(junk)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			if r != nil {
				t.Fatal("record returned with an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded record fails Validate: %v", err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatalf("decoded record does not re-encode: %v", err)
		}
		r2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(normRecord(*r), normRecord(*r2)) {
			t.Fatalf("re-decode differs:\n%#v\n%#v", *r, *r2)
		}
	})
}

// normRecord maps the encodings' equivalent empty values to one form
// (omitempty turns an empty body or metadata map into an absent one).
func normRecord(r Record) Record {
	r.Signed = nil // what Open read, not part of the record
	if len(r.Body) == 0 {
		r.Body = nil
	}
	if len(r.Attrs.Meta) == 0 {
		r.Attrs.Meta = nil
	}
	return r
}
