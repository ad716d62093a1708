package s3io

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DefaultPageSize is List's page size when pageSize <= 0.
const DefaultPageSize = 1000

// ListEntry is one object as listed.
type ListEntry struct {
	Key          string
	ETag         string // without quotes
	Size         int64
	LastModified time.Time
}

// List calls fn for every key after startAfter ("" = from the start), in
// the store's order (UTF-8 byte order on S3), fetching pageSize keys per
// request. Only one page is held at a time. An error from fn stops the
// listing and is returned as is.
func (c *Client) List(ctx context.Context, bucket, startAfter string, pageSize int32, fn func(ListEntry) error) error {
	if bucket == "" {
		return invalid("list", bucket, "", "empty bucket name")
	}
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	in := &s3.ListObjectsV2Input{
		Bucket:  &bucket,
		MaxKeys: aws.Int32(pageSize),
		// URL-encoded keys survive XML whatever bytes they hold.
		EncodingType: types.EncodingTypeUrl,
	}
	if startAfter != "" {
		in.StartAfter = &startAfter
	}
	for {
		out, err := c.s3.ListObjectsV2(ctx, in)
		if err != nil {
			return wrap("list", bucket, "", err)
		}
		urlEncoded := out.EncodingType == types.EncodingTypeUrl
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			if urlEncoded {
				if key, err = url.QueryUnescape(key); err != nil {
					return wrap("list", bucket, aws.ToString(o.Key), err)
				}
			}
			if err := fn(ListEntry{
				Key:          key,
				ETag:         unquote(aws.ToString(o.ETag)),
				Size:         aws.ToInt64(o.Size),
				LastModified: aws.ToTime(o.LastModified),
			}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// BucketExists reports whether bucket exists (HeadBucket). HEAD of an
// object cannot tell a missing bucket from a missing key, so a caller about
// to treat "absent" as a delete asks this first.
func (c *Client) BucketExists(ctx context.Context, bucket string) (bool, error) {
	_, err := c.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket})
	if err == nil {
		return true, nil
	}
	werr := wrap("head-bucket", bucket, "", err)
	if Classify(werr) == NotFound || errors.Is(werr, ErrNoSuchBucket) {
		return false, nil
	}
	return false, werr
}

// EnsureBucket creates the bucket unless it exists already and is ours.
func (c *Client) EnsureBucket(ctx context.Context, bucket string) error {
	if bucket == "" {
		return invalid("ensure-bucket", bucket, "", "empty bucket name")
	}
	_, err := c.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket})
	if err == nil {
		return nil
	}
	if werr := wrap("ensure-bucket", bucket, "", err); Classify(werr) != NotFound && Classify(werr) != Permanent {
		return werr
	}
	in := &s3.CreateBucketInput{Bucket: &bucket}
	if c.region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(c.region),
		}
	}
	_, err = c.s3.CreateBucket(ctx, in)
	if err != nil {
		werr := wrap("ensure-bucket", bucket, "", err)
		if e, ok := werr.(*Error); ok && e.Code == "BucketAlreadyOwnedByYou" {
			return nil
		}
		return werr
	}
	return nil
}
