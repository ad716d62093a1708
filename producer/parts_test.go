package producer

import (
	"bytes"
	"crypto/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// TestMultipartRecordCarriesPartLayout: the record of a multipart object
// in versitygw is schema 3 with the part layout the store tells (one HEAD
// per part, at publish), signed, and the layout recomputes the object's
// ETag from its bytes; a single-part object's record costs no extra
// request and stays schema 2.
func TestMultipartRecordCarriesPartLayout(t *testing.T) {
	var reqs requests
	f := newVersityFixture(t, 7, s3io.WithRequestCounter(reqs.add))
	ctx, s3, ring := f.ctx, f.s3, f.ring
	p, pub := f.producer()

	body := make([]byte, 2*s3io.MinPartSize+1<<20)
	rand.Read(body)
	etag, err := s3.Put(ctx, s3io.PutInput{Bucket: "demo", Key: "mp", Body: bytes.NewReader(body), Size: int64(len(body)), PartSize: s3io.MinPartSize})
	if err != nil || !strings.HasSuffix(etag, "-3") {
		t.Fatalf("multipart put: %q %v", etag, err)
	}
	reqs.take()
	res, err := p.ReconcileEvent(ctx, Hint{Bucket: "demo", Key: "mp", Op: "put", Size: int64(len(body)), ETag: etag})
	if err != nil || res != Published {
		t.Fatalf("reconcile: %v %v", res, err)
	}
	if ops := strings.Join(reqs.take(), ","); ops != "HeadObject,HeadObject,HeadObject,HeadObject" {
		t.Errorf("requests %s, want the object's HEAD and one per part", ops)
	}
	rec, err := ring.Open(pub.recs[len(pub.recs)-1], "a")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Schema != schema.PartsSchema || rec.Parts == nil || !reflect.DeepEqual(*rec.Parts, schema.Parts{Size: s3io.MinPartSize}) {
		t.Fatalf("record: schema %d, parts %+v; want schema %d with 5 MiB parts", rec.Schema, rec.Parts, schema.PartsSchema)
	}
	h, ok := schema.NewETagHash(rec.Version.ETag, rec.Version.Size, rec.Parts)
	if !ok {
		t.Fatal("the record's layout cannot recompute its ETag")
	}
	h.Write(body)
	if !h.Matches() {
		t.Errorf("the record's layout does not recompute ETag %s from the object's bytes", etag)
	}

	// A single-part object above the inline threshold: one HEAD, schema 2.
	big := strings.Repeat("b", 4096)
	etag2, err := s3.Put(ctx, s3io.PutInput{Bucket: "demo", Key: "big", Body: strings.NewReader(big), Size: int64(len(big))})
	if err != nil {
		t.Fatal(err)
	}
	reqs.take()
	if res, err := p.ReconcileEvent(ctx, Hint{Bucket: "demo", Key: "big", Op: "put", Size: 4096, ETag: etag2}); err != nil || res != Published {
		t.Fatalf("reconcile: %v %v", res, err)
	}
	if ops := strings.Join(reqs.take(), ","); ops != "HeadObject" {
		t.Errorf("single-part object: requests %s, want one HeadObject", ops)
	}
	if rec, err := ring.Open(pub.recs[len(pub.recs)-1], "a"); err != nil || rec.Schema != schema.RecordSchema || rec.Parts != nil {
		t.Errorf("single-part record: %+v %v, want schema %d without parts", rec, err, schema.RecordSchema)
	}
}
