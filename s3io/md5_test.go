package s3io

import (
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// payloadHashes records the x-amz-content-sha256 header of every PUT.
type payloadHashes struct {
	mu   sync.Mutex
	seen []string
	next http.RoundTripper
}

func (p *payloadHashes) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut {
		p.mu.Lock()
		p.seen = append(p.seen, r.Header.Get("X-Amz-Content-Sha256"))
		p.mu.Unlock()
	}
	return p.next.RoundTrip(r)
}

func (p *payloadHashes) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) == 0 {
		return ""
	}
	return p.seen[len(p.seen)-1]
}

// TestPutContentMD5: the store (real versitygw) refuses bytes that do not
// match a Put's ContentMD5, as a Transient error, and keeps what it held;
// the body goes unsigned only once the client trusts the store to check
// it, and ChecksContentMD5 says when a Put is checked by the store.
func TestPutContentMD5(t *testing.T) {
	hashes := &payloadHashes{next: newHTTPClient().Transport}
	c, _ := newTestClient(t, WithHTTPClient(&http.Client{Transport: hashes}))
	ctx := testCtx(t)
	body := strings.Repeat("b", 1000)
	sum := md5.Sum([]byte(body))
	good := hex.EncodeToString(sum[:])
	bad := strings.Repeat("0", 32)
	put := func(key, want string) (string, error) {
		return c.Put(ctx, PutInput{Bucket: testBucket, Key: key, Body: strings.NewReader(body), Size: int64(len(body)), ContentMD5: want})
	}
	for _, trusted := range []bool{false, true} {
		c.TrustContentMD5(trusted)
		key := "md5/" + map[bool]string{false: "untrusted", true: "trusted"}[trusted]
		etag, err := put(key, good)
		if err != nil || etag != good {
			t.Fatalf("trusted %v: the right MD5: etag %q, %v", trusted, etag, err)
		}
		if h := hashes.last(); (h == "UNSIGNED-PAYLOAD") != trusted {
			t.Errorf("trusted %v: payload hash header %q", trusted, h)
		}
		if _, err := put(key, bad); Classify(err) != Transient || !strings.Contains(err.Error(), "BadDigest") {
			t.Fatalf("trusted %v: a wrong MD5: %v (class %v), want a Transient BadDigest", trusted, err, Classify(err))
		}
		if info, err := c.Head(ctx, testBucket, key); err != nil || info.ETag != good {
			t.Fatalf("trusted %v: after the refused put: %+v %v", trusted, info, err)
		}
	}
	// Without ContentMD5 the body is signed whatever the trust.
	if _, err := put("md5/none", ""); err != nil {
		t.Fatal(err)
	}
	if h := hashes.last(); h == "UNSIGNED-PAYLOAD" || len(h) != 64 {
		t.Errorf("a put without ContentMD5 sent payload hash %q", h)
	}
	if _, err := put("md5/invalid", "not-an-md5"); Classify(err) != Permanent {
		t.Errorf("a malformed ContentMD5: %v", err)
	}
	for _, tc := range []struct {
		in   PutInput
		want bool
	}{
		{PutInput{Bucket: testBucket, Key: "k", Size: 0, ContentMD5: good}, true},
		{PutInput{Bucket: testBucket, Key: "k", Size: DefaultPartSize, Body: strings.NewReader(""), ContentMD5: good}, true},
		{PutInput{Bucket: testBucket, Key: "k", Size: 1000, ContentMD5: good}, true},                                              // asked before the body is opened
		{PutInput{Bucket: testBucket, Key: "k", Size: DefaultPartSize + 1, Body: strings.NewReader(""), ContentMD5: good}, false}, // multipart
		{PutInput{Bucket: testBucket, Key: "k", Size: MinPartSize + 1, Body: strings.NewReader(""), PartSize: MinPartSize, ContentMD5: good}, false},
		{PutInput{Bucket: testBucket, Key: "k", Size: 1, Body: strings.NewReader("")}, false},                          // no MD5
		{PutInput{Bucket: testBucket, Key: "k", Size: 1, Body: strings.NewReader(""), ContentMD5: good + "-2"}, false}, // a multipart ETag
	} {
		if got := c.ChecksContentMD5(tc.in); got != tc.want {
			t.Errorf("ChecksContentMD5(size %d, part %d, md5 %q) = %v, want %v", tc.in.Size, tc.in.PartSize, tc.in.ContentMD5, got, tc.want)
		}
	}
	c.TrustContentMD5(false)
	if c.ChecksContentMD5(PutInput{Bucket: testBucket, Key: "k", ContentMD5: good}) {
		t.Error("an untrusted store is said to check bodies")
	}
}
