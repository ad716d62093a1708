package s3io

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"strconv"
	"strings"
	"testing"
)

func putString(t *testing.T, c *Client, key, data string) string {
	t.Helper()
	etag, err := c.Put(testCtx(t), PutInput{Bucket: testBucket, Key: key, Body: strings.NewReader(data), Size: int64(len(data))})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return etag
}

func getString(t *testing.T, c *Client, key, ifMatch string) (string, ObjectInfo, error) {
	t.Helper()
	rc, info, err := c.Get(testCtx(t), testBucket, key, ifMatch)
	if err != nil {
		return "", info, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), info, err
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestHead(t *testing.T) {
	c, _ := newTestClient(t)
	ctx := testCtx(t)

	info, err := c.Head(ctx, testBucket, "absent")
	if err != nil || info.Exists || info.Key != "absent" {
		t.Fatalf("absent: %+v, %v", info, err)
	}

	etag := putString(t, c, "present", "hello")
	info, err = c.Head(ctx, testBucket, "present")
	switch {
	case err != nil:
		t.Fatal(err)
	case !info.Exists || info.Size != 5 || info.ETag != etag || info.ETag != md5hex("hello"):
		t.Fatalf("present: %+v (etag from put %q)", info, etag)
	case info.LastModified.IsZero():
		t.Fatalf("no LastModified: %+v", info)
	}

	// versitygw answers HEAD on a missing bucket with a bare 404 like a
	// missing key: Head cannot tell them apart (documented), Get can.
	info, err = c.Head(ctx, "nobucket", "k")
	if err != nil || info.Exists {
		t.Fatalf("head in missing bucket: %+v, %v", info, err)
	}
	_, _, err = c.Get(ctx, "nobucket", "k", "")
	if !errors.Is(err, ErrNoSuchBucket) || Classify(err) != Permanent {
		t.Fatalf("get in missing bucket: %v (class %v)", err, Classify(err))
	}
	// A "directory" (x/ of x/child) is not an object.
	putString(t, c, "dir/child", "c")
	if info, err := c.Head(ctx, testBucket, "dir"); err != nil || info.Exists {
		t.Fatalf("head of a directory: %+v, %v", info, err)
	}
}

func TestPutGetRoundTrip(t *testing.T) {
	c, _ := newTestClient(t)
	full := Attrs{
		ContentType:        "text/plain; charset=utf-8",
		CacheControl:       "max-age=60, must-revalidate",
		ContentEncoding:    "gzip",
		ContentDisposition: `attachment; filename="a b.txt"`,
		Meta: map[string]string{
			"ascii":      "plain value",
			"mixed-case": "V",
			"symbols":    `100% a+b "q" ;=,`,
			// versitygw stores and returns raw UTF-8 header bytes, and Go's
			// HTTP stack passes them through: non-ASCII values round-trip
			// as they are (AWS itself would RFC 2047-encode them instead).
			"unicode": "ünïcødé ключ ✓",
		},
	}
	tests := []struct {
		name  string
		data  string
		attrs Attrs
		want  Attrs // what comes back, when not attrs
	}{
		{name: "all attrs", data: "payload", attrs: full},
		{name: "zero bytes", data: "", attrs: full},
		{name: "zero bytes no attrs", data: "", want: Attrs{ContentType: "application/octet-stream"}},
		{name: "no attrs", data: "x", want: Attrs{ContentType: "application/octet-stream"}},
		{
			name:  "meta keys are lower-cased",
			data:  "y",
			attrs: Attrs{ContentType: "a/b", Meta: map[string]string{"Upper-Key": "v", "X-Amz-Meta-Prefixed": "w"}},
			want:  Attrs{ContentType: "a/b", Meta: map[string]string{"upper-key": "v", "prefixed": "w"}},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			key := "rt/" + string(rune('a'+i))
			want := tt.want
			if want.ContentType == "" {
				want = tt.attrs
			}
			etag, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: key, Body: strings.NewReader(tt.data), Size: int64(len(tt.data)), Attrs: tt.attrs})
			if err != nil {
				t.Fatal(err)
			}
			if etag != md5hex(tt.data) {
				t.Errorf("etag %q, want md5 %q", etag, md5hex(tt.data))
			}
			got, ginfo, err := getString(t, c, key, "")
			if err != nil || got != tt.data {
				t.Fatalf("get: %q, %v", got, err)
			}
			hinfo, err := c.Head(ctx, testBucket, key)
			if err != nil {
				t.Fatal(err)
			}
			for name, info := range map[string]ObjectInfo{"get": ginfo, "head": hinfo} {
				if info.ETag != etag || info.Size != int64(len(tt.data)) || !info.Exists {
					t.Errorf("%s: info %+v, want etag %q size %d", name, info, etag, len(tt.data))
				}
				checkAttrs(t, name, info.Attrs, want)
			}
		})
	}
}

func checkAttrs(t *testing.T, name string, got, want Attrs) {
	t.Helper()
	if got.ContentType != want.ContentType || got.CacheControl != want.CacheControl ||
		got.ContentEncoding != want.ContentEncoding || got.ContentDisposition != want.ContentDisposition {
		t.Errorf("%s: attrs\n got %+v\nwant %+v", name, got, want)
	}
	if !maps.Equal(got.Meta, want.Meta) {
		t.Errorf("%s: meta\n got %q\nwant %q", name, got.Meta, want.Meta)
	}
}

func TestGetIfMatch(t *testing.T) {
	c, _ := newTestClient(t)
	etag := putString(t, c, "k", "v1")
	if got, _, err := getString(t, c, "k", etag); err != nil || got != "v1" {
		t.Fatalf("current etag: %q, %v", got, err)
	}
	if got, _, err := getString(t, c, "k", `"`+etag+`"`); err != nil || got != "v1" {
		t.Fatalf("quoted etag: %q, %v", got, err)
	}
	putString(t, c, "k", "v2")
	if _, _, err := getString(t, c, "k", etag); !errors.Is(err, ErrPreconditionFailed) || Classify(err) != Precondition {
		t.Fatalf("stale etag: %v", err)
	}
	for _, ifMatch := range []string{"", etag} {
		_, _, err := getString(t, c, "absent", ifMatch)
		if !errors.Is(err, ErrNotFound) || Classify(err) != NotFound {
			t.Fatalf("absent, ifMatch %q: %v", ifMatch, err)
		}
		if !strings.HasPrefix(err.Error(), "get demo/absent: 404 NoSuchKey") {
			t.Errorf("message %q", err)
		}
	}
}

func TestDelete(t *testing.T) {
	c, _ := newTestClient(t)
	ctx := testCtx(t)
	etag := putString(t, c, "k", "v1")
	tests := []struct {
		name    string
		key     string
		ifMatch string
		want    error // sentinel, nil for success
		gone    bool
	}{
		{name: "stale if-match", key: "k", ifMatch: md5hex("other"), want: ErrPreconditionFailed},
		{name: "current if-match", key: "k", ifMatch: etag, gone: true},
		{name: "absent unconditional", key: "k", gone: true},
		// Measured: versitygw v1.8.0 answers 204 to a conditional DELETE
		// of an absent key; Delete passes the server's answer on.
		{name: "absent if-match", key: "never", ifMatch: etag, gone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Delete(ctx, testBucket, tt.key, tt.ifMatch)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			info, err := c.Head(ctx, testBucket, tt.key)
			if err != nil || info.Exists == tt.gone {
				t.Fatalf("after delete: %+v, %v (want gone=%t)", info, err, tt.gone)
			}
		})
	}
}

// awkwardKeys are keys that stress escaping in URLs, signatures, headers
// and XML. All of them are storable on versitygw's posix backend.
func awkwardKeys() []string {
	seg := strings.Repeat("s", 255)
	long := seg + "/" + seg + "/" + seg + "/" + seg[:254] + "/x" // 1024 bytes
	return []string{"a b", "ünïcødé/ключ", "a+b", "100%", "tab\tkey", `quote"key`, "x'y",
		"a&b=c?d#e", "semi;colon", "tilde~star*", long}
}

func TestAwkwardKeys(t *testing.T) {
	c, _ := newTestClient(t)
	ctx := testCtx(t)
	keys := awkwardKeys()
	if n := len(keys[len(keys)-1]); n != MaxKeyLen {
		t.Fatalf("long key has %d bytes", n)
	}
	listed := map[string]string{}
	for i, key := range keys {
		data := "data of " + key
		dst := "copies/" + strconv.Itoa(i)
		etag := putString(t, c, key, data)
		if got, info, err := getString(t, c, key, etag); err != nil || got != data || info.ETag != etag {
			t.Fatalf("get %q: %q %+v %v", key, got, info, err)
		}
		if err := c.Copy(ctx, testBucket, key, dst); err != nil {
			t.Fatalf("copy %q: %v", key, err)
		}
		if got, _, err := getString(t, c, dst, etag); err != nil || got != data {
			t.Fatalf("get copy of %q: %q %v", key, got, err)
		}
		if err := c.Delete(ctx, testBucket, dst, etag); err != nil {
			t.Fatalf("delete copy of %q: %v", key, err)
		}
		listed[key] = etag
	}
	err := c.List(ctx, testBucket, "", 3, func(e ListEntry) error {
		want, ok := listed[e.Key]
		if !ok || want != e.ETag {
			t.Errorf("listed %q etag %q, want %q (known %t)", e.Key, e.ETag, want, ok)
		}
		delete(listed, e.Key)
		return nil
	})
	if err != nil || len(listed) != 0 {
		t.Fatalf("list: %v, not listed: %q", err, listed)
	}
}

func TestUnstorableKeys(t *testing.T) {
	c, _ := newTestClient(t)
	putString(t, c, "x/child", "c")
	putString(t, c, "file", "f")
	tests := []struct {
		name, key, data string
		sent            bool // refused by the server, not by s3io
	}{
		// 409 ExistingObjectIsDirectory
		{name: "key beside key/child", key: "x", data: "v", sent: true},
		// 409 ObjectParentIsFile
		{name: "key under a file", key: "file/child", data: "v", sent: true},
		// A segment over 255 bytes: 400 KeyTooLongError when it is the
		// first segment, 409 ExistingObjectIsDirectory (sic) otherwise.
		{name: "first segment of 300 bytes", key: strings.Repeat("s", 300) + "/leaf", data: "v", sent: true},
		{name: "only segment of 300 bytes", key: strings.Repeat("s", 300), data: "v", sent: true},
		{name: "last segment of 300 bytes", key: "d/" + strings.Repeat("s", 300), data: "v", sent: true},
		// 400 DirectoryObjectContainsData
		{name: "trailing slash with data", key: "dir/", data: "v", sent: true},
		{name: "key over 1024 bytes", key: strings.Repeat("k/", 513), data: "v"},
		{name: "invalid utf-8", key: "bad\xff", data: "v"},
		{name: "empty key", key: "", data: "v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Put(testCtx(t), PutInput{Bucket: testBucket, Key: tt.key, Body: strings.NewReader(tt.data), Size: int64(len(tt.data))})
			if Classify(err) != Permanent {
				t.Fatalf("class %v, want permanent: %v", Classify(err), err)
			}
			var e *Error
			if !errors.As(err, &e) || (e.StatusCode != 0) != tt.sent {
				t.Fatalf("error %#v: sent=%t, want %t", err, e != nil && e.StatusCode != 0, tt.sent)
			}
			if tt.key != "" && !errors.Is(err, ErrInvalidKey) {
				t.Errorf("not ErrInvalidKey: %v", err)
			}
			t.Logf("%v", err)
		})
	}
}

func TestCopyMissingSource(t *testing.T) {
	c, _ := newTestClient(t)
	err := c.Copy(testCtx(t), testBucket, "absent", "dst")
	if Classify(err) != NotFound || !errors.Is(err, ErrNotFound) {
		t.Fatalf("copy of absent key: %v (class %v)", err, Classify(err))
	}
	putString(t, c, "src", "s")
	if err := c.Copy(testCtx(t), testBucket, "src", "dst"); err != nil {
		t.Fatal(err)
	}
	if got, _, err := getString(t, c, "dst", md5hex("s")); err != nil || !bytes.Equal([]byte(got), []byte("s")) {
		t.Fatalf("dst: %q %v", got, err)
	}
}

// TestUnstorableKeyMultipart: versitygw answers 500 InternalError to
// CompleteMultipartUpload for keys it cannot hold; Put must still report
// ErrInvalidKey (Permanent) rather than a retryable error.
func TestUnstorableKeyMultipart(t *testing.T) {
	c, _ := newTestClient(t)
	putString(t, c, "x/child", "c")
	putString(t, c, "file", "f")
	size := MinPartSize + 1
	for _, key := range []string{
		"x",                             // 500 at Complete
		strings.Repeat("s", 300),        // 500 at Complete
		"d/" + strings.Repeat("s", 300), // 500 at Complete
		"file/child",                    // 409 ObjectParentIsFile at Complete
		"dir/",                          // 400 DirectoryObjectContainsData at Create
	} {
		_, err := c.Put(testCtx(t), PutInput{Bucket: testBucket, Key: key, Body: randBody(7, size), Size: size, PartSize: MinPartSize})
		if Classify(err) != Permanent || !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("%.20q: got %v (class %v)", key, err, Classify(err))
		}
		t.Log(err)
	}
	if n := uploadsInProgress(t, c); n != 0 {
		t.Fatalf("%d multipart uploads left behind", n)
	}
}

// Peek returns info and body in one request for small objects, info alone
// for larger ones, and counts as one request (two for a zero-byte object,
// which no range can address).
func TestPeek(t *testing.T) {
	var reqs []string
	c, _ := newTestClient(t, WithRequestCounter(func(op string) { reqs = append(reqs, op) }))
	ctx := testCtx(t)
	const max = 16
	cases := []struct {
		key, data string
		body      bool // the whole body comes back
	}{
		{"empty", "", true},
		{"one", "x", true},
		{"exact", strings.Repeat("e", max), true},
		{"over", strings.Repeat("o", max+1), false},
		{"large", strings.Repeat("l", 4096), false},
		{"sp ace+plus%/ünï", "unicode key", true},
	}
	for _, tc := range cases {
		etag := putString(t, c, tc.key, tc.data)
		reqs = nil
		info, body, err := c.Peek(ctx, testBucket, tc.key, max)
		if err != nil {
			t.Fatalf("%s: %v", tc.key, err)
		}
		if !info.Exists || info.ETag != etag || info.Size != int64(len(tc.data)) {
			t.Errorf("%s: info %+v, want etag %s size %d", tc.key, info, etag, len(tc.data))
		}
		switch {
		case tc.body && (body == nil || string(body) != tc.data):
			t.Errorf("%s: body %q, want %q", tc.key, body, tc.data)
		case !tc.body && body != nil:
			t.Errorf("%s: body of %d bytes for an object over %d", tc.key, len(body), max)
		}
		want := 1
		if tc.data == "" {
			want = 2
		}
		if len(reqs) != want {
			t.Errorf("%s: %d requests %v, want %d", tc.key, len(reqs), reqs, want)
		}
	}
	info, body, err := c.Peek(ctx, testBucket, "absent", max)
	if err != nil || info.Exists || body != nil {
		t.Fatalf("absent: %+v %q %v", info, body, err)
	}
}

// TestDecodeMetaValue: a metadata value that AWS S3 or MinIO returns
// RFC 2047-encoded (they do so for non-ASCII values) reads as the value
// written; anything else is left as it is.
func TestDecodeMetaValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"=?UTF-8?q?=C3=BCn=C3=AFc=C3=B8d=C3=A9_ok?=", "ünïcødé ok"}, // MinIO's
		{"=?UTF-8?B?w7xuw69jw7hkw6kgb2s=?=", "ünïcødé ok"},
		{"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"},
		{"ünïcødé ok", "ünïcødé ok"},
		{"plain =?UTF-8?q?x?= inside", "plain =?UTF-8?q?x?= inside"},
		{"=?UTF-8?q?bad", "=?UTF-8?q?bad"},
		{"=?KOI8-R?q?=F0?=", "=?KOI8-R?q?=F0?="},
		{"=?UTF-8?x?abc?=", "=?UTF-8?x?abc?="},
		{"", ""},
	} {
		if got := decodeMetaValue(tc.in); got != tc.want {
			t.Errorf("decodeMetaValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
