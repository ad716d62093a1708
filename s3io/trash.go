package s3io

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// MaxCopySize is the largest object a single CopyObject copies (S3's 5 GiB).
const MaxCopySize = 5 << 30

// CopyReplace copies srcKey (its version srcVersion if not "") to dstKey
// inside bucket on the server, conditional on the source's ETag srcETag
// (x-amz-copy-source-if-match; "" for none), and gives the copy the
// attributes a instead of the source's (metadata directive REPLACE).
func (c *Client) CopyReplace(ctx context.Context, bucket, srcKey, srcVersion, dstKey, srcETag string, a Attrs) error {
	if err := checkKey("copy", bucket, srcKey); err != nil {
		return err
	}
	if err := checkKey("copy", bucket, dstKey); err != nil {
		return err
	}
	src := escapeCopySource(bucket, srcKey)
	if srcVersion != "" {
		src += "?versionId=" + url.QueryEscape(srcVersion)
	}
	in := &s3.CopyObjectInput{
		Bucket:            &bucket,
		Key:               &dstKey,
		CopySource:        aws.String(src),
		MetadataDirective: types.MetadataDirectiveReplace,
		Metadata:          a.Meta,
	}
	if srcETag != "" {
		in.CopySourceIfMatch = aws.String(quote(srcETag))
	}
	if a.ContentType != "" {
		in.ContentType = aws.String(a.ContentType)
	}
	if a.CacheControl != "" {
		in.CacheControl = aws.String(a.CacheControl)
	}
	if a.ContentEncoding != "" {
		in.ContentEncoding = aws.String(a.ContentEncoding)
	}
	if a.ContentDisposition != "" {
		in.ContentDisposition = aws.String(a.ContentDisposition)
	}
	_, err := c.s3.CopyObject(ctx, in)
	return wrap("copy", bucket, srcKey+" -> "+dstKey, err)
}

// ListPrefix calls fn for every key under prefix, in key order.
func (c *Client) ListPrefix(ctx context.Context, bucket, prefix string, fn func(ListEntry) error) error {
	in := &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix, EncodingType: types.EncodingTypeUrl}
	for {
		out, err := c.s3.ListObjectsV2(ctx, in)
		if err != nil {
			return wrap("list", bucket, prefix, err)
		}
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			if out.EncodingType == types.EncodingTypeUrl {
				if key, err = url.QueryUnescape(key); err != nil {
					return wrap("list", bucket, aws.ToString(o.Key), err)
				}
			}
			if !strings.HasPrefix(key, prefix) {
				continue // a store that ignores Prefix
			}
			if err := fn(ListEntry{Key: key, ETag: unquote(aws.ToString(o.ETag)), Size: aws.ToInt64(o.Size),
				LastModified: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// Versioned reports whether the store keeps old versions of bucket's
// objects (GetBucketVersioning says Enabled). A store that does not
// implement the call keeps none.
func (c *Client) Versioned(ctx context.Context, bucket string) (bool, error) {
	out, err := c.s3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &bucket})
	if err != nil {
		err = wrap("get-bucket-versioning", bucket, "", err)
		var se *Error
		if errors.As(err, &se) && (se.Code == "NotImplemented" || se.Code == "MethodNotAllowed" || se.StatusCode == 501) {
			return false, nil
		}
		return false, err
	}
	return out.Status == types.BucketVersioningStatusEnabled, nil
}

// HeadVersion is Head of one version of the key ("" for the current one).
func (c *Client) HeadVersion(ctx context.Context, bucket, key, version string) (ObjectInfo, error) {
	return c.head(ctx, bucket, key, version)
}

// ObjectVersion is one version (or delete marker) of a key in a versioned
// bucket.
type ObjectVersion struct {
	Key          string
	VersionID    string
	ETag         string
	Size         int64
	LastModified string // RFC 3339
	Latest       bool
	DeleteMarker bool
}

// ListVersions calls fn for every version and delete marker under prefix
// of a versioned bucket.
func (c *Client) ListVersions(ctx context.Context, bucket, prefix string, fn func(ObjectVersion) error) error {
	in := &s3.ListObjectVersionsInput{Bucket: &bucket, Prefix: &prefix}
	for {
		out, err := c.s3.ListObjectVersions(ctx, in)
		if err != nil {
			return wrap("list-versions", bucket, prefix, err)
		}
		for _, v := range out.Versions {
			if err := fn(ObjectVersion{Key: aws.ToString(v.Key), VersionID: aws.ToString(v.VersionId), ETag: unquote(aws.ToString(v.ETag)),
				Size: aws.ToInt64(v.Size), LastModified: aws.ToTime(v.LastModified).UTC().Format("2006-01-02T15:04:05Z"),
				Latest: aws.ToBool(v.IsLatest)}); err != nil {
				return err
			}
		}
		for _, m := range out.DeleteMarkers {
			if err := fn(ObjectVersion{Key: aws.ToString(m.Key), VersionID: aws.ToString(m.VersionId),
				LastModified: aws.ToTime(m.LastModified).UTC().Format("2006-01-02T15:04:05Z"),
				Latest:       aws.ToBool(m.IsLatest), DeleteMarker: true}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
}
