package consumer

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
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
	h.hashed = append(h.hashed, ok && v.hash != nil)
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

// counting is a peer's real store, counting the GETs the applier sends it.
type counting struct {
	*s3io.Client
	gets int
}

func (c *counting) Get(ctx context.Context, bucket, key, ifMatch string) (io.ReadCloser, s3io.ObjectInfo, error) {
	c.gets++
	return c.Client.Get(ctx, bucket, key, ifMatch)
}

// TestMultipartBodyFromAThirdSiteIsChecked: real versitygw at the origin b,
// a third site c and the receiver a. A multipart version's record carries
// its part layout (as b's store tells it), so while b is down a holds c's
// copy only if its bytes recompute the ETag b signed: other bytes of the
// same size under the version's replica marker are refused, nothing is
// stored, and c is not asked for that version again; once b is back the
// version applies from b. Positive control: c's copy of the right bytes
// (written with another part size, so c's own ETag differs) applies while
// b is down. A record without a layout (schema 2) is fetched from b only:
// c is not asked even though it holds the right bytes. And a single-part
// version whose MD5 a's store checks itself: c's other bytes are refused
// by the store (BadDigest) and c is not asked for it again either.
func TestMultipartBodyFromAThirdSiteIsChecked(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ov := testenv.StartVersity(t)
	origin, err := s3io.New(s3io.Endpoint{URL: ov.Endpoint, Region: ov.Region, AccessKey: ov.AccessKey, SecretKey: ov.SecretKey}, s3io.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := origin.EnsureBucket(ctx, "bkt"); err != nil {
		t.Fatal(err)
	}
	third, dest := &counting{Client: versityClient(t)}, versityClient(t)

	body := make([]byte, 2*s3io.MinPartSize+1<<20) // 5+5+1 MiB at b
	rand.Read(body)
	bad := bytes.Clone(body)
	bad[len(bad)/2] ^= 1
	record := func(key string) *schema.Record {
		etag, err := origin.Put(ctx, s3io.PutInput{Bucket: "bkt", Key: key, Body: bytes.NewReader(body), Size: int64(len(body)), PartSize: s3io.MinPartSize})
		if err != nil || !strings.HasSuffix(etag, "-3") {
			t.Fatalf("origin put: %q %v", etag, err)
		}
		sizes, err := origin.PartSizes(ctx, "bkt", key, etag, 3)
		if err != nil || sizes == nil {
			t.Fatalf("origin part sizes: %v %v", sizes, err)
		}
		return &schema.Record{Schema: schema.PartsSchema, Bucket: "bkt", Key: key, Parts: schema.PartsOf(sizes),
			Version: schema.Version{ID: schema.VersionID("b", "bkt", key, 1), Origin: "b", Clock: schema.Clock{"b": 1}, TS: 1, Size: int64(len(body)), ETag: etag}}
	}
	atThird := func(rec *schema.Record, b []byte) {
		_, err := third.Put(ctx, s3io.PutInput{Bucket: "bkt", Key: rec.Key, Body: bytes.NewReader(b), Size: int64(len(b)), PartSize: 6 << 20,
			Attrs: s3io.Attrs{Meta: schema.ReplicaMeta("bkt", rec.Key, rec.Version)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	forged, good, old := record("forged"), record("good"), record("old")
	old.Schema, old.Parts = schema.RecordSchema, nil // a record of the previous schema: no layout
	atThird(forged, bad)
	atThird(good, body)
	atThird(old, body)
	// A single-part version (plain MD5 ETag), which a's store checks
	// itself (Content-MD5): other bytes from c are refused by the store,
	// and c is distrusted for it all the same.
	small := body[:1<<20]
	petag, err := origin.Put(ctx, s3io.PutInput{Bucket: "bkt", Key: "plain", Body: bytes.NewReader(small), Size: int64(len(small))})
	if err != nil || !schema.PlainMD5(petag) {
		t.Fatalf("origin put: %q %v", petag, err)
	}
	plain := &schema.Record{Schema: schema.RecordSchema, Bucket: "bkt", Key: "plain",
		Version: schema.Version{ID: schema.VersionID("b", "bkt", "plain", 1), Origin: "b", Clock: schema.Clock{"b": 1}, TS: 1, Size: int64(len(small)), ETag: petag}}
	badSmall := bytes.Clone(small)
	badSmall[100] ^= 1
	atThird(plain, badSmall)
	if caps, err := dest.Probe(ctx, "bkt", "t"); err != nil || !caps.ContentMD5 {
		t.Fatalf("probe of a's store: %+v %v", caps, err)
	}
	dest.TrustContentMD5(true)

	a := &Applier{Site: "a", S3: dest, Sources: map[string]Source{"b": origin, "c": third}, Log: slog.New(slog.DiscardHandler)}
	apply2 := func(rec *schema.Record) (string, error) {
		return a.put(ctx, lifecycle.Key{Bucket: "bkt", Key: rec.Key}, lifecycle.Put{Record: rec, IfNoneMatch: true})
	}
	apply := func(rec *schema.Record) error {
		_, err := apply2(rec)
		return err
	}
	holds := func(key string) bool {
		t.Helper()
		rc, _, err := dest.Get(ctx, "bkt", key, "")
		if s3io.Classify(err) == s3io.NotFound {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, body) {
			t.Errorf("%s: a holds other bytes than b's version", key)
		}
		return true
	}

	ov.Stop() // the origin is unreachable from here on
	err = apply(forged)
	if err == nil || !strings.Contains(err.Error(), "differs from the ETag") || s3io.Classify(err) != s3io.Transient || holds("forged") {
		t.Fatalf("other bytes from c: err %v (class %v); want refused, retryable, nothing stored", err, s3io.Classify(err))
	}
	if third.gets != 1 {
		t.Fatalf("c asked %d times, want once", third.gets)
	}
	err = apply(forged)
	if err == nil || !strings.Contains(err.Error(), "not asked: c") || third.gets != 1 || holds("forged") {
		t.Fatalf("retry while b is down: err %v, c asked %d times; want c not asked again", err, third.gets)
	}
	// Positive control: the right bytes from c pass the check.
	if err := apply(good); err != nil || !holds("good") || third.gets != 2 {
		t.Fatalf("right bytes from c: %v (c asked %d times)", err, third.gets)
	}
	// No layout: only b serves it, and b is down.
	err = apply(old)
	if err == nil || !strings.Contains(err.Error(), "only origin b serves it") || third.gets != 2 || holds("old") {
		t.Fatalf("no layout while b is down: err %v, c asked %d times; want c not asked", err, third.gets)
	}
	// A plain MD5 checked by a's store: refused there (BadDigest), c
	// distrusted.
	err = apply(plain)
	if err == nil || s3io.Classify(err) != s3io.Transient || third.gets != 3 {
		t.Fatalf("other bytes from c, checked by a's store: err %v (class %v), c asked %d times", err, s3io.Classify(err), third.gets)
	}
	if info, err := dest.Head(ctx, "bkt", "plain"); err != nil || info.Exists {
		t.Fatalf("other bytes from c were stored: %+v %v", info, err)
	}
	if err := apply(plain); err == nil || !strings.Contains(err.Error(), "not asked: c") || third.gets != 3 {
		t.Fatalf("retry while b is down: err %v, c asked %d times; want c not asked again", err, third.gets)
	}

	ov.Start()
	for _, rec := range []*schema.Record{forged, old} {
		if err := apply(rec); err != nil || !holds(rec.Key) {
			t.Fatalf("%s from b, back up: %v", rec.Key, err)
		}
	}
	if etag, err := apply2(plain); err != nil || etag != petag {
		t.Fatalf("plain from b, back up: %q %v", etag, err)
	}
	if third.gets != 3 {
		t.Errorf("c asked %d times, want 3: b serves its own versions first", third.gets)
	}
}
