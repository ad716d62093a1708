package integration

import (
	"bytes"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// A replica marker is metadata any S3 user of a site can write: a user's PUT
// at b that carries the marker of the replica it overwrites (the metadata of
// a HEAD at b sent back with new bytes) is a local write, published and
// replicated like any other, not hidden from replication (issue 10 §5).
func TestCopiedMarkerWriteReplicates(t *testing.T) {
	e := labEnv(t)
	ctx := ctxT(t)
	before := e.seqs(t)
	const key = "marker/copied"
	first := object{body: []byte("written at a"), attrs: s3io.Attrs{Meta: map[string]string{"owner": "a"}}}
	e.put(t, "a", key, first)
	e.waitObject(t, key, first, converge)

	head, err := e.sites["b"].raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	replicaID := head.Metadata[schema.MetaVID]
	if replicaID == "" {
		t.Fatalf("b's replica of %s carries no marker: %v", key, head.Metadata)
	}
	// The user's write: new bytes, the replica's metadata (marker included).
	forged := []byte("written at b with a's marker copied")
	meta := map[string]string{}
	for k, v := range head.Metadata {
		meta[k] = v
	}
	meta["owner"] = "b"
	if _, err := e.sites["b"].raw.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(forged),
		ContentLength: aws.Int64(int64(len(forged))), Metadata: meta,
	}); err != nil {
		t.Fatal(err)
	}
	want := object{body: forged, attrs: s3io.Attrs{Meta: map[string]string{"owner": "b"}}}
	e.waitObject(t, key, want, converge)
	e.quiesce(t, converge)
	e.checkRecords(t, before, map[string]int{"a": 1, "b": 1})

	// The other sites hold b's new version, marked as such (the consumer
	// writes its own marker over any that came along).
	for _, site := range []string{"a", "c"} {
		info, err := e.sites[site].s3.Head(ctx, bucket, key)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := schema.Replica(bucket, key, info.Meta, info.Size)
		if !ok || v.ID == replicaID || v.Origin != "b" {
			t.Errorf("%s holds %s marked %v (ok %v), want a replica of b's write, not of %s", site, key, v.ID, ok, replicaID)
		}
	}
	// b's record carries the user's metadata only.
	st, err := e.sites["b"].js.Stream(ctx, broker.ChangesStream("b"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, broker.ChangesSubjectFilter("b"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := schema.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Key != key || rec.Version.ID == replicaID || rec.Version.Origin != "b" {
		t.Fatalf("b's last record is %s of %s, want b's write of %s", rec.Version.ID, rec.Key, key)
	}
	for k := range rec.Attrs.Meta {
		if schema.IsOwnMeta(k) {
			t.Errorf("b's record carries s3mesh's metadata %s as user metadata", k)
		}
	}
}
