package s3io

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// randBody returns a deterministic, non-seekable stream of n bytes.
func randBody(seed uint64, n int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func sha(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return fmt.Sprintf("%x", h.Sum(nil)), n, err
}

func TestPutMultipart(t *testing.T) {
	c, _ := newTestClient(t)
	const mib = 1 << 20
	tests := []struct {
		name      string
		size      int64
		partSize  int64
		wantParts int // 0: single PutObject
	}{
		{name: "20 MiB in 5 MiB parts", size: 20 * mib, partSize: 5 * mib, wantParts: 4},
		{name: "one byte over the part size", size: 5*mib + 1, partSize: 5 * mib, wantParts: 2},
		{name: "exactly the part size", size: 5 * mib, partSize: 5 * mib},
		{name: "default part size", size: 17 * mib, wantParts: 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			key := fmt.Sprintf("big/%d", i)
			want, _, _ := sha(randBody(uint64(i), tt.size))
			attrs := Attrs{ContentType: "application/x-test", CacheControl: "no-cache", Meta: map[string]string{"k": "v"}}
			etag, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: key, Body: randBody(uint64(i), tt.size), Size: tt.size, PartSize: tt.partSize, Attrs: attrs})
			if err != nil {
				t.Fatal(err)
			}
			wantSuffix := ""
			if tt.wantParts > 0 {
				wantSuffix = fmt.Sprintf("-%d", tt.wantParts)
			}
			if !strings.HasSuffix(etag, wantSuffix) || (wantSuffix == "" && strings.Contains(etag, "-")) {
				t.Errorf("etag %q, want suffix %q", etag, wantSuffix)
			}
			rc, info, err := c.Get(ctx, testBucket, key, etag)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, n, err := sha(rc)
			if err != nil || got != want || n != tt.size {
				t.Fatalf("read back %d bytes sha %s err %v; want %d bytes sha %s", n, got, err, tt.size, want)
			}
			if info.Size != tt.size || info.ETag != etag {
				t.Errorf("info %+v", info)
			}
			checkAttrs(t, "get", info.Attrs, attrs)
		})
	}
}

// uploadsInProgress lists unfinished multipart uploads in testBucket.
func uploadsInProgress(t *testing.T, c *Client) int {
	t.Helper()
	out, err := c.s3.ListMultipartUploads(testCtx(t), &s3.ListMultipartUploadsInput{Bucket: aws.String(testBucket)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

// errReader yields n bytes of 'x' and then err.
type errReader struct {
	n   int64
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := min(int64(len(p)), r.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= k
	return int(k), nil
}

func TestPutBodyMismatch(t *testing.T) {
	c, _ := newTestClient(t)
	const part = MinPartSize
	tests := []struct {
		name string
		body io.Reader
		size int64
		want Class
		is   error
	}{
		{name: "short single", body: strings.NewReader("abc"), size: 4, want: Permanent, is: ErrInvalidInput},
		{name: "long single", body: strings.NewReader("abcde"), size: 4, want: Permanent, is: ErrInvalidInput},
		{name: "short multipart", body: &errReader{n: 2*part - 1, err: io.EOF}, size: 2 * part, want: Permanent, is: ErrInvalidInput},
		{name: "long multipart", body: &errReader{n: 2*part + 1, err: io.EOF}, size: 2 * part, want: Permanent, is: ErrInvalidInput},
		{name: "reset single", body: &errReader{n: 3, err: syscall.ECONNRESET}, size: 4, want: Transient, is: syscall.ECONNRESET},
		{name: "truncated multipart", body: &errReader{n: part + 7, err: io.ErrUnexpectedEOF}, size: 2 * part, want: Transient, is: io.ErrUnexpectedEOF},
		{name: "nil body with size", body: nil, size: 1, want: Permanent, is: ErrInvalidInput},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("bad/%d", i)
			_, err := c.Put(testCtx(t), PutInput{Bucket: testBucket, Key: key, Body: tt.body, Size: tt.size, PartSize: part})
			if Classify(err) != tt.want || !errors.Is(err, tt.is) {
				t.Fatalf("got %v (class %v), want class %v and %v", err, Classify(err), tt.want, tt.is)
			}
			if info, err := c.Head(testCtx(t), testBucket, key); err != nil || info.Exists {
				t.Fatalf("object exists after failed put: %+v %v", info, err)
			}
			if n := uploadsInProgress(t, c); n != 0 {
				t.Fatalf("%d multipart uploads left behind", n)
			}
		})
	}
}

func TestPutInvalidInput(t *testing.T) {
	c, _ := newTestClient(t)
	tests := []struct {
		name string
		in   PutInput
	}{
		{"part size too small", PutInput{Key: "k", Size: 1, Body: strings.NewReader("x"), PartSize: 1 << 20}},
		{"both conditions", PutInput{Key: "k", Size: 1, Body: strings.NewReader("x"), IfMatch: "e", IfNoneMatch: true}},
		{"negative size", PutInput{Key: "k", Size: -1, Body: strings.NewReader("x")}},
		{"empty bucket", PutInput{Bucket: "-", Key: "k", Size: 1, Body: strings.NewReader("x")}},
		{"meta key not a token", PutInput{Key: "k", Size: 1, Body: strings.NewReader("x"), Attrs: Attrs{Meta: map[string]string{"a b": "v"}}}},
		{"meta keys collide", PutInput{Key: "k", Size: 1, Body: strings.NewReader("x"), Attrs: Attrs{Meta: map[string]string{"A": "1", "a": "2"}}}},
		{"meta value with newline", PutInput{Key: "k", Size: 1, Body: strings.NewReader("x"), Attrs: Attrs{Meta: map[string]string{"a": "1\r\nX-Evil: 1"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in.Bucket == "" {
				tt.in.Bucket = testBucket
			} else {
				tt.in.Bucket = ""
			}
			_, err := c.Put(testCtx(t), tt.in)
			if !errors.Is(err, ErrInvalidInput) || Classify(err) != Permanent {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestPutConditional(t *testing.T) {
	c, _ := newTestClient(t)
	for _, size := range []int64{3, MinPartSize + 3} {
		t.Run(fmt.Sprintf("size %d", size), func(t *testing.T) {
			ctx := testCtx(t)
			key := fmt.Sprintf("cond/%d", size)
			put := func(ifMatch string, ifNoneMatch bool) (string, error) {
				return c.Put(ctx, PutInput{Bucket: testBucket, Key: key, Body: randBody(uint64(size), size), Size: size,
					PartSize: MinPartSize, IfMatch: ifMatch, IfNoneMatch: ifNoneMatch})
			}
			// If-Match on an absent key: versitygw answers 404 NoSuchKey.
			if _, err := put("0123", false); !errors.Is(err, ErrNotFound) || Classify(err) != NotFound {
				t.Fatalf("if-match on absent key: %v", err)
			}
			first, err := put("", true)
			if err != nil {
				t.Fatalf("if-none-match on absent key: %v", err)
			}
			if _, err := put("", true); !errors.Is(err, ErrPreconditionFailed) || Classify(err) != Precondition {
				t.Fatalf("if-none-match on existing key: %v", err)
			}
			second, err := put(first, false)
			if err != nil {
				t.Fatalf("if-match current: %v", err)
			}
			putString(t, c, key, "someone else")
			if _, err := put(second, false); !errors.Is(err, ErrPreconditionFailed) || Classify(err) != Precondition {
				t.Fatalf("if-match stale: %v", err)
			}
			if n := uploadsInProgress(t, c); n != 0 {
				t.Fatalf("%d multipart uploads left behind", n)
			}
		})
	}
}

// TestCompleteMultipartHonoursConditions pins that versitygw checks
// If-Match / If-None-Match on CompleteMultipartUpload itself, which
// putMultipart relies on for atomic conditional writes.
func TestCompleteMultipartHonoursConditions(t *testing.T) {
	c, _ := newTestClient(t)
	ctx := testCtx(t)
	existing := putString(t, c, "exists", "v")
	other := putString(t, c, "other", "o")
	complete := func(key string, ifMatch, ifNoneMatch *string) error {
		cr, err := c.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(testBucket), Key: &key})
		if err != nil {
			return err
		}
		up, err := c.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(testBucket), Key: &key, UploadId: cr.UploadId,
			PartNumber: aws.Int32(1), Body: strings.NewReader("hello"), ContentLength: aws.Int64(5)})
		if err != nil {
			return err
		}
		_, err = c.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(testBucket), Key: &key,
			UploadId: cr.UploadId, IfMatch: ifMatch, IfNoneMatch: ifNoneMatch,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{ETag: up.ETag, PartNumber: aws.Int32(1)}}}})
		if err != nil {
			_, _ = c.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(testBucket), Key: &key, UploadId: cr.UploadId})
		}
		return wrap("complete", testBucket, key, err)
	}
	star := aws.String("*")
	tests := []struct {
		name        string
		key         string
		ifMatch     *string
		ifNoneMatch *string
		want        error
	}{
		{"if-none-match on existing", "exists", nil, star, ErrPreconditionFailed},
		{"if-match stale", "exists", aws.String(`"` + md5hex("other") + `"`), nil, ErrPreconditionFailed},
		{"if-match on absent", "absent", aws.String(`"` + existing + `"`), nil, ErrNotFound},
		{"if-none-match on absent", "new", nil, star, nil},
		{"if-match current", "exists", aws.String(`"` + existing + `"`), nil, nil},
		{"if-match current unquoted", "other", aws.String(other), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := complete(tt.key, tt.ifMatch, tt.ifNoneMatch)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// racingBody lets a write happen after Put's pre-check HEAD and before
// CompleteMultipartUpload: the condition must then fail at Complete.
type racingBody struct {
	io.Reader
	once atomic.Bool
	race func()
}

func (r *racingBody) Read(p []byte) (int, error) {
	if r.once.CompareAndSwap(false, true) {
		r.race()
	}
	return r.Reader.Read(p)
}

func TestPutMultipartConditionRace(t *testing.T) {
	c, _ := newTestClient(t)
	size := MinPartSize + 1
	t.Run("if-none-match", func(t *testing.T) {
		body := &racingBody{Reader: randBody(1, size), race: func() { putString(t, c, "race1", "winner") }}
		_, err := c.Put(testCtx(t), PutInput{Bucket: testBucket, Key: "race1", Body: body, Size: size, IfNoneMatch: true, PartSize: MinPartSize})
		if !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("if-match", func(t *testing.T) {
		etag := putString(t, c, "race2", "v1")
		body := &racingBody{Reader: randBody(2, size), race: func() { putString(t, c, "race2", "v2") }}
		_, err := c.Put(testCtx(t), PutInput{Bucket: testBucket, Key: "race2", Body: body, Size: size, IfMatch: etag, PartSize: MinPartSize})
		if !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("got %v", err)
		}
	})
	if got, _, err := getString(t, c, "race2", md5hex("v2")); err != nil || got != "v2" {
		t.Fatalf("race2 overwritten: %q %v", got, err)
	}
	if n := uploadsInProgress(t, c); n != 0 {
		t.Fatalf("%d multipart uploads left behind", n)
	}
}

func TestPutCancelled(t *testing.T) {
	c, _ := newTestClient(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	size := 3 * MinPartSize
	body := &racingBody{Reader: randBody(3, size), race: cancel}
	_, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "cancelled", Body: body, Size: size, PartSize: MinPartSize})
	if !errors.Is(err, context.Canceled) || Classify(err) != Transient {
		t.Fatalf("got %v (class %v)", err, Classify(err))
	}
	if n := uploadsInProgress(t, c); n != 0 {
		t.Fatalf("%d multipart uploads left behind", n)
	}
}

// TestPutFromBrokenGet: the replication pipeline feeds a Get body into a
// Put; when the source dies mid-stream the Put fails Transient, names the
// source, and leaves nothing behind.
func TestPutFromBrokenGet(t *testing.T) {
	src, srcV := newTestClient(t, WithMaxAttempts(1))
	dst, _ := newTestClient(t)
	ctx := testCtx(t)
	const size = 64 << 20
	if _, err := src.Put(ctx, PutInput{Bucket: testBucket, Key: "obj", Body: randBody(5, size), Size: size, PartSize: 32 << 20}); err != nil {
		t.Fatal(err)
	}
	rc, info, err := src.Get(ctx, testBucket, "obj", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	body := &racingBody{Reader: rc, race: srcV.Stop}
	_, err = dst.Put(ctx, PutInput{Bucket: testBucket, Key: "obj", Body: body, Size: info.Size, PartSize: MinPartSize})
	if Classify(err) != Transient || !strings.Contains(err.Error(), "get demo/obj") {
		t.Fatalf("got %v (class %v)", err, Classify(err))
	}
	t.Log(err)
	if info, err := dst.Head(ctx, testBucket, "obj"); err != nil || info.Exists {
		t.Fatalf("partial object at destination: %+v %v", info, err)
	}
	if n := uploadsInProgress(t, dst); n != 0 {
		t.Fatalf("%d multipart uploads left behind", n)
	}
}
