package s3io

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// PartSizes returns the sizes of the parts of bucket/key, an object of n
// parts (its multipart ETag's "-N") that must still have ETag etag, as the
// store holds them: one HEAD with partNumber per part (S3's way, answered
// by versitygw and rclone serve s3: the part's Content-Length and the
// object's parts count). It reads no body, so it costs n small requests,
// and only for multipart objects.
//
// A store that does not tell (an error status on part 1, no parts count,
// or a count other than n) gives nil and no error: the layout is unknown.
// An object that no longer has ETag etag, or is gone, gives
// ErrPreconditionFailed. Other failures are returned as they are.
func (c *Client) PartSizes(ctx context.Context, bucket, key, etag string, n int) ([]int64, error) {
	if err := checkKey("head", bucket, key); err != nil {
		return nil, err
	}
	if n < 1 || n > MaxParts {
		return nil, invalid("head", bucket, key, "%d parts, not in 1..%d", n, MaxParts)
	}
	sizes := make([]int64, 0, min(n, 1024))
	for i := 1; i <= n; i++ {
		out, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key, PartNumber: aws.Int32(int32(i))})
		if err != nil {
			err = wrap("head", bucket, key, err)
			switch {
			case Classify(err) == NotFound:
				return nil, &Error{Op: "head", Bucket: bucket, Key: key, sentinel: ErrPreconditionFailed, Err: fmt.Errorf("part %d: the object is gone", i)}
			case i == 1 && ctx.Err() == nil && Classify(err) != Transient:
				return nil, nil // the store does not answer part HEADs
			}
			return nil, err
		}
		if got := unquote(aws.ToString(out.ETag)); !strings.EqualFold(got, etag) {
			return nil, &Error{Op: "head", Bucket: bucket, Key: key, sentinel: ErrPreconditionFailed, Err: fmt.Errorf("part %d: ETag %s, not %s", i, got, etag)}
		}
		if aws.ToInt32(out.PartsCount) != int32(n) || out.ContentLength == nil {
			return nil, nil // no parts count, or another: the store does not tell
		}
		sizes = append(sizes, aws.ToInt64(out.ContentLength))
	}
	return sizes, nil
}
