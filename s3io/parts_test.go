package s3io

import (
	"bytes"
	"crypto/rand"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestPartSizesVersity: versitygw tells the part sizes of a multipart
// object, equal parts (s3mesh's own Put) or not (a raw upload); an object
// whose ETag changed is a precondition failure; a single-part object has
// no layout to tell.
func TestPartSizesVersity(t *testing.T) {
	c, _ := newTestClient(t)
	ctx := testCtx(t)
	body := make([]byte, 12<<20)
	rand.Read(body)
	etag, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "even", Body: bytes.NewReader(body[:2*MinPartSize+1<<20]), Size: 2*MinPartSize + 1<<20, PartSize: MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := c.PartSizes(ctx, testBucket, "even", etag, 3)
	if want := []int64{MinPartSize, MinPartSize, 1 << 20}; err != nil || !reflect.DeepEqual(sizes, want) {
		t.Errorf("even parts (ETag %s): %v %v, want %v", etag, sizes, err, want)
	}

	// Unequal parts, uploaded by hand: 6, 5 and 1 MiB.
	key := "uneven"
	up, err := c.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(testBucket), Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{6 << 20, 5 << 20, 1 << 20}
	var done []types.CompletedPart
	off := int64(0)
	for i, n := range want {
		pn := aws.Int32(int32(i + 1))
		out, err := c.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(testBucket), Key: &key, UploadId: up.UploadId, PartNumber: pn, Body: bytes.NewReader(body[off : off+n])})
		if err != nil {
			t.Fatal(err)
		}
		off += n
		done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: pn})
	}
	out, err := c.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(testBucket), Key: &key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
	if err != nil {
		t.Fatal(err)
	}
	uneven := unquote(aws.ToString(out.ETag))
	if sizes, err := c.PartSizes(ctx, testBucket, key, uneven, 3); err != nil || !reflect.DeepEqual(sizes, want) {
		t.Errorf("uneven parts (ETag %s): %v %v, want %v", uneven, sizes, err, want)
	}

	// The ETag the caller knows is stale: refused, no sizes.
	if sizes, err := c.PartSizes(ctx, testBucket, key, etag, 3); Classify(err) != Precondition || sizes != nil {
		t.Errorf("stale ETag: %v %v, want a precondition failure", sizes, err)
	}
	if sizes, err := c.PartSizes(ctx, testBucket, "absent", etag, 3); Classify(err) != Precondition || sizes != nil {
		t.Errorf("absent key: %v %v, want a precondition failure", sizes, err)
	}
	// A single-part object: the store gives no parts count, so no layout.
	small, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "small", Body: bytes.NewReader(body[:100]), Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	if sizes, err := c.PartSizes(ctx, testBucket, "small", small, 1); err != nil || sizes != nil {
		t.Errorf("single-part object: %v %v, want no layout and no error", sizes, err)
	}
}
