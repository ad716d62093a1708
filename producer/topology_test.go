package producer

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// A key outside the bucket's prefix filter is never published; one inside
// is, in a schema 4 record carrying the filter's digest (real versitygw).
func TestFilterGatesPublishing(t *testing.T) {
	f := newVersityFixture(t, 7)
	filter := schema.Filter{Include: []string{"in/"}, Exclude: []string{"in/tmp/"}}
	pub := &capture{}
	p := New(Config{Site: "a", Buckets: []string{"demo"}, InlineThreshold: 1024, SigningKey: f.key,
		Filters: map[string]schema.Filter{"demo": filter}}, f.st, f.s3, pub, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, k := range []string{"in/a", "out/b", "in/tmp/c"} {
		if _, err := f.s3.Put(f.ctx, s3io.PutInput{Bucket: "demo", Key: k, Body: strings.NewReader(k), Size: int64(len(k))}); err != nil {
			t.Fatal(err)
		}
	}
	for k, want := range map[string]Result{"in/a": Published, "out/b": NotReplicated, "in/tmp/c": NotReplicated} {
		if res, err := p.Reconcile(f.ctx, "demo", k); err != nil || res != want {
			t.Errorf("reconcile %s: %v %v, want %v", k, res, err, want)
		}
	}
	if len(pub.recs) != 1 {
		t.Fatalf("%d records published, want 1 (in/a)", len(pub.recs))
	}
	rec, err := f.ring.Open(pub.recs[0], "a")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Key != "in/a" || rec.Schema != schema.FilterSchema || rec.Filter != filter.Digest() {
		t.Fatalf("record of %s: schema %d filter %q, want schema %d filter %q", rec.Key, rec.Schema, rec.Filter, schema.FilterSchema, filter.Digest())
	}
	// A full scan skips the keys outside the filter too.
	st, err := (&Scanner{P: p, S3: f.s3, Store: f.st, Log: p.log, MaxDeleteFraction: 0.5}).ScanBucket(f.ctx, "demo")
	if err != nil || st.Published != 0 || st.Known != 1 || len(pub.recs) != 1 {
		t.Fatalf("scan: %+v %v, %d records", st, err, len(pub.recs))
	}
}

// A local write in a bucket in mode replica or archive is counted as drift,
// once, and never published (real versitygw).
func TestDriftNotPublished(t *testing.T) {
	f := newVersityFixture(t, 7)
	pub := &capture{}
	p := New(Config{Site: "a", Buckets: []string{"demo"}, InlineThreshold: 1024, SigningKey: f.key,
		Modes: map[string]lifecycle.Mode{"demo": lifecycle.ModeReplica}}, f.st, f.s3, pub, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := f.s3.Put(f.ctx, s3io.PutInput{Bucket: "demo", Key: "k", Body: strings.NewReader("local"), Size: 5}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []Result{lifecycle.Drift, Unchanged} {
		if res, err := p.Reconcile(f.ctx, "demo", "k"); err != nil || res != want {
			t.Fatalf("reconcile %d: %v %v, want %v", i, res, err, want)
		}
	}
	if len(pub.recs) != 0 {
		t.Fatalf("a replica published %d records", len(pub.recs))
	}
	if c := p.m.Topo.Counts("demo"); c.Drift != 1 || c.LastDrift != "k" {
		t.Fatalf("drift counts %+v, want one drift of k", c)
	}
	if err := f.s3.Delete(f.ctx, "demo", "k", ""); err != nil {
		t.Fatal(err)
	}
	if res, err := p.Reconcile(f.ctx, "demo", "k"); err != nil || res != Unchanged || len(pub.recs) != 0 {
		t.Fatalf("the local key deleted again: %v %v, %d records", res, err, len(pub.recs))
	}
}
