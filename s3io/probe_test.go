package s3io

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestProbeVersity: versitygw honours conditional PUT and DELETE, keeps a
// 1800-byte metadata value, holds 1024-byte keys and awkward characters;
// the probe leaves nothing behind.
func TestProbeVersity(t *testing.T) {
	c, _ := newTestClient(t)
	ctx := testCtx(t)
	caps, err := c.Probe(ctx, testBucket, "t")
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Conditional() || caps.MetadataBytes != 1800 || caps.KeyBytes != 1024 || !caps.Unicode || !caps.Multipart || caps.MultipartETag != "md5-N" || !caps.PartLayout || !caps.ContentMD5 || len(caps.Notes) != 1 {
		t.Errorf("capabilities %+v", caps)
	}
	// Key classes: versitygw (posix) holds every control byte as written
	// (its listing shows most of them as U+FFFD, which is harmless: the
	// exact name is what HEAD and GET find), a decomposed letter, trailing
	// dots and spaces, backslashes; a segment is a file name, at most 255
	// bytes.
	// ... and, on a case-sensitive file system, keys that differ only in case.
	if len(caps.KeyClasses) != len(KeyClassProbes)+1 || caps.KeyClasses[len(KeyClassProbes)].Name != CasePair {
		t.Fatalf("%d key classes probed, want %d and then %q", len(caps.KeyClasses), len(KeyClassProbes)+1, CasePair)
	}
	for _, kc := range caps.KeyClasses {
		if want := kc.Name != "segment over 255 bytes"; kc.Holds != want {
			t.Errorf("key class %s: holds %v, want %v", kc.Name, kc.Holds, want)
		}
	}
	if len(caps.CannotHold) != 1 || caps.CannotHold[0] != "segment over 255 bytes" {
		t.Errorf("cannot hold %q, want only the long segment", caps.CannotHold)
	}
	for key, want := range map[string]string{
		"a	b":                             "",
		"dir/" + strings.Repeat("x", 255): "",
		"dir/" + strings.Repeat("x", 256): "segment over 255 bytes",
	} {
		if got := caps.Unrepresentable(key); got != want {
			t.Errorf("Unrepresentable(%q) = %q, want %q", key, got, want)
		}
	}
	if got := caps.ListedAlias("a\uFFFDb"); got != "" {
		t.Errorf("ListedAlias of a key versitygw lists U+FFFD in = %q: a class it holds names no alias", got)
	}
	left := 0
	if err := c.List(ctx, testBucket, "", 1000, func(e ListEntry) error {
		if strings.HasPrefix(e.Key, ProbePrefix) {
			left++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("the probe left %d objects", left)
	}
}

// TestEmulatedConditions: with WithEmulatedConditions a conditional Put or
// Delete fails as the store would have failed it (checked by a HEAD), and
// succeeds when the condition holds.
func TestEmulatedConditions(t *testing.T) {
	c, _ := newTestClient(t, WithEmulatedConditions())
	ctx := testCtx(t)
	put := func(body string, in PutInput) (string, error) {
		in.Bucket, in.Key, in.Body, in.Size = testBucket, "emulated/k", strings.NewReader(body), int64(len(body))
		return c.Put(ctx, in)
	}
	etag, err := put("v1", PutInput{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := put("v2", PutInput{IfNoneMatch: true}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("If-None-Match on an existing key: %v", err)
	}
	if _, err := put("v2", PutInput{IfMatch: flipETag(etag)}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("If-Match of another ETag: %v", err)
	}
	etag2, err := put("v2", PutInput{IfMatch: etag})
	if err != nil {
		t.Fatalf("If-Match of the ETag: %v", err)
	}
	if err := c.Delete(ctx, testBucket, "emulated/k", etag); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("delete If-Match of an old ETag: %v", err)
	}
	if err := c.Delete(ctx, testBucket, "emulated/k", etag2); err != nil {
		t.Fatalf("delete If-Match of the ETag: %v", err)
	}
	if err := c.Delete(ctx, testBucket, "emulated/k", etag2); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete If-Match of an absent key: %v", err)
	}
}

// TestEmulateConditionsPerOperation: EmulateConditions(false, true), what
// the agent sets for a store that honours conditional PUTs and ignores
// If-Match on DELETE (MinIO), sends a conditional Put as it is (no HEAD
// first) and checks a conditional Delete with a HEAD first; (false,
// false) sends both as they are. The outcomes are the store's either way.
func TestEmulateConditionsPerOperation(t *testing.T) {
	var mu sync.Mutex
	var ops []string
	c, _ := newTestClient(t, WithRequestCounter(func(op string) {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
	}))
	ctx := testCtx(t)
	sent := func(f func()) []string {
		mu.Lock()
		ops = nil
		mu.Unlock()
		f()
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ops)
	}
	k := "emulated-per-op/k"
	var etag string
	for _, tc := range []struct {
		put, del           bool
		wantPut, wantDelOK []string
	}{
		{false, true, []string{"PutObject"}, []string{"HeadObject", "DeleteObject"}},
		{false, false, []string{"PutObject"}, []string{"DeleteObject"}},
		{true, false, []string{"HeadObject", "PutObject"}, []string{"DeleteObject"}},
	} {
		c.EmulateConditions(tc.put, tc.del)
		got := sent(func() {
			var err error
			etag, err = c.Put(ctx, PutInput{Bucket: testBucket, Key: k, Body: strings.NewReader("v"), Size: 1, IfNoneMatch: true})
			if err != nil {
				t.Fatalf("emulate (%v, %v): put: %v", tc.put, tc.del, err)
			}
		})
		if !slices.Equal(got, tc.wantPut) {
			t.Errorf("emulate (%v, %v): a conditional Put sent %v, want %v", tc.put, tc.del, got, tc.wantPut)
		}
		if err := c.Delete(ctx, testBucket, k, flipETag(etag)); !errors.Is(err, ErrPreconditionFailed) {
			t.Errorf("emulate (%v, %v): delete If-Match of another ETag: %v", tc.put, tc.del, err)
		}
		got = sent(func() {
			if err := c.Delete(ctx, testBucket, k, etag); err != nil {
				t.Fatalf("emulate (%v, %v): delete If-Match of the ETag: %v", tc.put, tc.del, err)
			}
		})
		if !slices.Equal(got, tc.wantDelOK) {
			t.Errorf("emulate (%v, %v): a conditional Delete sent %v, want %v", tc.put, tc.del, got, tc.wantDelOK)
		}
	}
}
