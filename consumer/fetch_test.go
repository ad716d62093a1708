package consumer

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// corrupting serves the origin's real object with one byte changed: an
// origin (or a link) that hands out other bytes under the right ETag.
type corrupting struct{ *s3io.Client }

func (c corrupting) Get(ctx context.Context, bucket, key, ifMatch string) (io.ReadCloser, s3io.ObjectInfo, error) {
	rc, info, err := c.Client.Get(ctx, bucket, key, ifMatch)
	if err != nil {
		return nil, info, err
	}
	return struct {
		io.Reader
		io.Closer
	}{&flipFirst{r: rc}, rc}, info, nil
}

type flipFirst struct {
	r    io.Reader
	done bool
}

func (f *flipFirst) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && !f.done {
		p[0] ^= 1
		f.done = true
	}
	return n, err
}

// hashSpy is the destination store, noting whether each Put's body was
// hashed by the applier itself (a verifier with an MD5).
type hashSpy struct {
	*s3io.Client
	hashed []bool
}

func (h *hashSpy) Put(ctx context.Context, in s3io.PutInput) (string, error) {
	v, ok := in.Body.(*verifier)
	h.hashed = append(h.hashed, ok && v.md5 != nil)
	return h.Client.Put(ctx, in)
}

func versityClient(t *testing.T) *s3io.Client {
	v := testenv.StartVersity(t)
	c, err := s3io.New(s3io.Endpoint{URL: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: v.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureBucket(t.Context(), "bkt"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFetchedBodyIsChecked: a replica body fetched from the origin (real
// versitygw at both ends) is stored only if its bytes have the origin
// ETag's MD5, whether the destination store checks it (Content-MD5, after
// the probe vouched for it) or the applier hashes it itself; wrong bytes
// leave nothing behind and fail as a retryable error.
func TestFetchedBodyIsChecked(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	origin, dest := versityClient(t), versityClient(t)
	caps, err := dest.Probe(ctx, "bkt", "t")
	if err != nil || !caps.ContentMD5 {
		t.Fatalf("probe: %+v %v", caps, err)
	}
	body := strings.Repeat("replica body ", 100_000) // 1.3 MB: fetched, not inline
	sum := md5.Sum([]byte(body))
	etag, err := origin.Put(ctx, s3io.PutInput{Bucket: "bkt", Key: "k", Body: strings.NewReader(body), Size: int64(len(body))})
	if err != nil || etag != hex.EncodeToString(sum[:]) {
		t.Fatalf("origin put: %q %v", etag, err)
	}
	rec := &schema.Record{Schema: schema.RecordSchema, Bucket: "bkt", Key: "k",
		Version: schema.Version{ID: schema.VersionID("b", "bkt", "k", 1), Origin: "b", Clock: schema.Clock{"b": 1}, TS: 1, Size: int64(len(body)), ETag: etag}}
	for _, trusted := range []bool{true, false} {
		dest.TrustContentMD5(trusted)
		for _, bad := range []bool{true, false} {
			var src Source = origin
			if bad {
				src = corrupting{origin}
			}
			key := map[bool]string{true: "trusted-", false: "untrusted-"}[trusted] + map[bool]string{true: "bad", false: "good"}[bad]
			spy := &hashSpy{Client: dest}
			a := &Applier{Site: "a", S3: spy, Sources: map[string]Source{"b": src}, Log: slog.New(slog.DiscardHandler)}
			got, err := a.put(ctx, lifecycle.Key{Bucket: "bkt", Key: key}, lifecycle.Put{Record: rec, IfNoneMatch: true})
			// The applier hashes the body only where the store does not.
			if len(spy.hashed) != 1 || spy.hashed[0] == trusted {
				t.Errorf("trusted %v: bodies hashed by the applier: %v", trusted, spy.hashed)
			}
			info, herr := dest.Head(ctx, "bkt", key)
			if herr != nil {
				t.Fatal(herr)
			}
			switch {
			case bad && (err == nil || s3io.Classify(err) != s3io.Transient || info.Exists):
				t.Errorf("trusted %v: wrong bytes: err %v (class %v), stored %v", trusted, err, s3io.Classify(err), info.Exists)
			case !bad && (err != nil || got != etag || info.ETag != etag):
				t.Errorf("trusted %v: right bytes: etag %q %v, stored %+v", trusted, got, err, info)
			}
		}
	}
	// A store that checks nothing (the scripted memStore, which ignores
	// Content-MD5): the applier's own hash refuses the wrong bytes.
	mem := newMemStore()
	a := &Applier{Site: "a", S3: mem, Sources: map[string]Source{"b": corrupting{origin}}, Log: slog.New(slog.DiscardHandler)}
	if _, err := a.put(ctx, lifecycle.Key{Bucket: "bkt", Key: "k"}, lifecycle.Put{Record: rec, IfNoneMatch: true}); err == nil || !strings.Contains(err.Error(), "MD5") {
		t.Errorf("a store that checks nothing: wrong bytes gave %v", err)
	}
	if _, ok := mem.objs["k"]; ok {
		t.Error("a store that checks nothing: wrong bytes were stored")
	}
}
