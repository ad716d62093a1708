package producer

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
)

// capture is a Publisher that keeps what it is given (the broker is not
// what this test is about).
type capture struct {
	mu   sync.Mutex
	recs [][]byte
}

func (c *capture) PublishRecord(_ context.Context, _ int, data []byte, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, data)
	return nil
}

// requests counts the S3 requests a client sends, by operation.
type requests struct {
	mu  sync.Mutex
	ops []string
}

func (r *requests) add(op string) { r.mu.Lock(); r.ops = append(r.ops, op); r.mu.Unlock() }

func (r *requests) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

// An event for a small object is confirmed with one GET that also reads the
// body for the inline record; a larger object gets a HEAD and no body read;
// the event of the applier's own replica write is recognised with no
// request at all, once.
func TestReconcileEventRequests(t *testing.T) {
	var reqs requests
	f := newVersityFixture(t, 7, s3io.WithRequestCounter(reqs.add))
	ctx, s3, ring := f.ctx, f.s3, f.ring
	p, pub := f.producer()
	put := func(k, data string) string {
		etag, err := s3.Put(ctx, s3io.PutInput{Bucket: "demo", Key: k, Body: strings.NewReader(data), Size: int64(len(data))})
		if err != nil {
			t.Fatal(err)
		}
		reqs.take()
		return etag
	}
	reconcile := func(h Hint) (Result, []string) {
		t.Helper()
		res, err := p.ReconcileEvent(ctx, h)
		if err != nil {
			t.Fatalf("reconcile %+v: %v", h, err)
		}
		return res, reqs.take()
	}
	same := func(got []string, want ...string) bool {
		return strings.Join(got, ",") == strings.Join(want, ",")
	}

	small := strings.Repeat("s", 100)
	etag := put("small", small)
	res, ops := reconcile(Hint{Bucket: "demo", Key: "small", Op: "put", Size: 100, ETag: etag})
	if res != Published || !same(ops, "GetObject") {
		t.Fatalf("small object: %v with requests %v, want published with one GetObject", res, ops)
	}
	rec, err := ring.Open(pub.recs[len(pub.recs)-1], "a")
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Inline || string(rec.Body) != small || rec.Version.ETag != etag {
		t.Fatalf("record of the small object: inline %v, body %q, etag %s (want %s)", rec.Inline, rec.Body, rec.Version.ETag, etag)
	}

	big := strings.Repeat("b", 4096)
	etag2 := put("big", big)
	res, ops = reconcile(Hint{Bucket: "demo", Key: "big", Op: "put", Size: 4096, ETag: etag2})
	if res != Published || !same(ops, "HeadObject") {
		t.Fatalf("large object: %v with requests %v, want published with one HeadObject", res, ops)
	}
	// An event that lies about the size (a store's misnamed event): the
	// peek reads at most the inline threshold, and the record is right.
	etag3 := put("liar", big+"x")
	res, ops = reconcile(Hint{Bucket: "demo", Key: "liar", Op: "put", Size: 10, ETag: etag3})
	if res != Published || !same(ops, "GetObject") {
		t.Fatalf("event under-stating the size: %v with requests %v", res, ops)
	}
	if rec, err := ring.Open(pub.recs[len(pub.recs)-1], "a"); err != nil || rec.Inline || rec.Version.Size != 4097 {
		t.Fatalf("record of the object the event under-stated: %+v, %v", rec, err)
	}

	// The echo of a replica write: no request, once; the same event again
	// is confirmed with the store.
	p.ExpectEcho("demo", "small", etag)
	if res, ops = reconcile(Hint{Bucket: "demo", Key: "small", Op: "put", Size: 100, ETag: etag}); res != Replica || len(ops) != 0 {
		t.Fatalf("echo: %v with requests %v, want replica with none", res, ops)
	}
	if res, ops = reconcile(Hint{Bucket: "demo", Key: "small", Op: "put", Size: 100, ETag: etag}); res != Unchanged || len(ops) == 0 {
		t.Fatalf("second identical event: %v with requests %v, want the store asked", res, ops)
	}
	// An expectation for another ETag absorbs nothing.
	p.ExpectEcho("demo", "big", "0123456789abcdef0123456789abcdef")
	if res, ops = reconcile(Hint{Bucket: "demo", Key: "big", Op: "put", Size: 4096, ETag: etag2}); res != Unchanged || len(ops) == 0 {
		t.Fatalf("event with another ETag than expected: %v with requests %v", res, ops)
	}
	// A user's new write after the replica write is published even if an
	// expectation is still there.
	p.ExpectEcho("demo", "small", etag)
	etag4 := put("small", "a user's new bytes")
	if res, ops = reconcile(Hint{Bucket: "demo", Key: "small", Op: "put", Size: 18, ETag: etag4}); res != Published || len(ops) == 0 {
		t.Fatalf("user write after an expected echo: %v with requests %v", res, ops)
	}
	// An expired expectation absorbs nothing.
	p.ExpectEcho("demo", "big", etag2)
	p.echoes.now = func() time.Time { return time.Now().Add(time.Hour) }
	if res, _ = reconcile(Hint{Bucket: "demo", Key: "big", Op: "put", Size: 4096, ETag: etag2}); res != Unchanged {
		t.Fatalf("expired expectation: %v", res)
	}
}
