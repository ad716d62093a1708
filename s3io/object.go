package s3io

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Attrs are the object attributes s3mesh replicates besides the bytes.
type Attrs struct {
	ContentType        string
	CacheControl       string
	ContentEncoding    string
	ContentDisposition string
	// Meta is the user metadata: keys lower-case, without "x-amz-meta-".
	Meta map[string]string
}

// ObjectInfo describes one object as HEAD or GET saw it.
type ObjectInfo struct {
	Key          string
	Exists       bool
	ETag         string // without quotes
	Size         int64
	LastModified time.Time
	Attrs
}

// Head returns the object's info. An absent key is not an error: it gives
// Exists == false and a nil error. (A HEAD answer has no body, so a missing
// bucket cannot be told from a missing key by HEAD; EnsureBucket or List
// can.)
func (c *Client) Head(ctx context.Context, bucket, key string) (ObjectInfo, error) {
	return c.head(ctx, bucket, key, "")
}

// head is Head of one version of the key (version "": the current one).
func (c *Client) head(ctx context.Context, bucket, key, version string) (ObjectInfo, error) {
	if err := checkKey("head", bucket, key); err != nil {
		return ObjectInfo{Key: key}, err
	}
	in := &s3.HeadObjectInput{Bucket: &bucket, Key: &key}
	if version != "" {
		in.VersionId = &version
	}
	out, err := c.s3.HeadObject(ctx, in)
	if err != nil {
		err = wrap("head", bucket, key, err)
		if Classify(err) == NotFound {
			return ObjectInfo{Key: key}, nil
		}
		return ObjectInfo{Key: key}, err
	}
	return objectInfo(key, out.ETag, out.ContentLength, out.LastModified,
		out.ContentType, out.CacheControl, out.ContentEncoding, out.ContentDisposition, out.Metadata), nil
}

// objectInfo builds an ObjectInfo from the fields HEAD and GET answers share.
func objectInfo(key string, etag *string, size *int64, lm *time.Time, ct, cc, ce, cd *string, meta map[string]string) ObjectInfo {
	return ObjectInfo{
		Key:          key,
		Exists:       true,
		ETag:         unquote(aws.ToString(etag)),
		Size:         aws.ToInt64(size),
		LastModified: aws.ToTime(lm),
		Attrs: Attrs{
			ContentType:        aws.ToString(ct),
			CacheControl:       aws.ToString(cc),
			ContentEncoding:    aws.ToString(ce),
			ContentDisposition: aws.ToString(cd),
			Meta:               normMeta(meta),
		},
	}
}

// Get opens the object for reading. The body is streamed; the caller must
// close it. With ifMatch != "" the GET is conditional on that ETag and
// fails with ErrPreconditionFailed if the object changed. An absent key
// gives ErrNotFound.
func (c *Client) Get(ctx context.Context, bucket, key, ifMatch string) (io.ReadCloser, ObjectInfo, error) {
	if err := checkKey("get", bucket, key); err != nil {
		return nil, ObjectInfo{Key: key}, err
	}
	in := &s3.GetObjectInput{Bucket: &bucket, Key: &key}
	if ifMatch != "" {
		in.IfMatch = aws.String(quote(ifMatch))
	}
	out, err := c.s3.GetObject(ctx, in)
	if err != nil {
		return nil, ObjectInfo{Key: key}, wrap("get", bucket, key, err)
	}
	info := objectInfo(key, out.ETag, out.ContentLength, out.LastModified,
		out.ContentType, out.CacheControl, out.ContentEncoding, out.ContentDisposition, out.Metadata)
	return &body{rc: out.Body, bucket: bucket, key: key}, info, nil
}

// body wraps a GET body so read errors carry context and classify like
// request errors (a reset mid-stream is Transient).
type body struct {
	rc          io.ReadCloser
	bucket, key string
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = wrap("get", b.bucket, b.key, err)
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }

// Delete removes the key. Deleting an absent key succeeds, unless ifMatch
// is set: then the delete is conditional on that ETag, and the server's
// answer for an absent or changed key comes back as ErrNotFound or
// ErrPreconditionFailed.
func (c *Client) Delete(ctx context.Context, bucket, key, ifMatch string) error {
	if err := checkKey("delete", bucket, key); err != nil {
		return err
	}
	in := &s3.DeleteObjectInput{Bucket: &bucket, Key: &key}
	if ifMatch != "" && c.emulateDelete.Load() {
		info, err := c.Head(ctx, bucket, key)
		switch {
		case err != nil:
			return wrap("delete", bucket, key, err)
		case !info.Exists:
			return &Error{Op: "delete", Bucket: bucket, Key: key, sentinel: ErrNotFound, Err: fmt.Errorf("If-Match %s but the key is absent", ifMatch)}
		case info.ETag != unquote(ifMatch):
			return &Error{Op: "delete", Bucket: bucket, Key: key, sentinel: ErrPreconditionFailed, Err: fmt.Errorf("If-Match %s but the etag is %s", ifMatch, info.ETag)}
		}
		ifMatch = "" // checked; the store would ignore it
	}
	if ifMatch != "" {
		in.IfMatch = aws.String(quote(ifMatch))
	}
	_, err := c.s3.DeleteObject(ctx, in)
	err = wrap("delete", bucket, key, err)
	if ifMatch == "" && Classify(err) == NotFound {
		return nil
	}
	return err
}

// Copy copies srcKey to dstKey inside bucket on the server, keeping the
// source's attributes and metadata.
func (c *Client) Copy(ctx context.Context, bucket, srcKey, dstKey string) error {
	return c.CopyIfMatch(ctx, bucket, srcKey, dstKey, "")
}

// CopyIfMatch is Copy that fails with ErrPreconditionFailed unless the
// source's ETag is srcETag ("" = unconditional).
func (c *Client) CopyIfMatch(ctx context.Context, bucket, srcKey, dstKey, srcETag string) error {
	if err := checkKey("copy", bucket, srcKey); err != nil {
		return err
	}
	if err := checkKey("copy", bucket, dstKey); err != nil {
		return err
	}
	in := &s3.CopyObjectInput{
		Bucket:     &bucket,
		Key:        &dstKey,
		CopySource: aws.String(escapeCopySource(bucket, srcKey)),
	}
	if srcETag != "" {
		in.CopySourceIfMatch = aws.String(quote(srcETag))
	}
	_, err := c.s3.CopyObject(ctx, in)
	return wrap("copy", bucket, srcKey+" -> "+dstKey, err)
}

// escapeCopySource builds x-amz-copy-source: bucket/key with every byte of
// the key percent-encoded except unreserved characters and '/'.
func escapeCopySource(bucket, key string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(bucket) + 1 + len(key)*3)
	b.WriteString(bucket)
	b.WriteByte('/')
	for i := 0; i < len(key); i++ {
		ch := key[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' ||
			ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == '/' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[ch>>4])
		b.WriteByte(hex[ch&15])
	}
	return b.String()
}

func unquote(etag string) string {
	return strings.TrimSuffix(strings.TrimPrefix(etag, `"`), `"`)
}

func quote(etag string) string {
	if strings.HasPrefix(etag, `"`) {
		return etag
	}
	return `"` + etag + `"`
}

// normMeta lower-cases metadata keys (the SDK already does for responses;
// this makes the contract independent of that) and returns nil for empty
// metadata.
func normMeta(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = decodeMetaValue(v)
	}
	return out
}

// decodeMetaValue undoes the RFC 2047 encoding (=?UTF-8?Q?…?= or
// =?UTF-8?B?…?=) that AWS S3 and MinIO give a user-metadata value holding
// non-ASCII characters when they return it: the value written was the
// decoded one. A value that is not wholly such encoded words, or names a
// charset other than UTF-8, US-ASCII or ISO-8859-1, is returned as it is.
// (On those stores a value written as a literal encoded word cannot be
// told from an encoded one.)
func decodeMetaValue(v string) string {
	if !strings.HasPrefix(v, "=?") || !strings.HasSuffix(v, "?=") {
		return v
	}
	d, err := metaWordDecoder.DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}

var metaWordDecoder = &mime.WordDecoder{}

// Peek reads a small object in one request: a GET of at most max bytes
// (Range: bytes=0-max-1) that returns the object's info, and its whole body
// when the object is no larger than max (body nil otherwise: the caller
// fetches it later, or never). It saves the HEAD before a GET when most
// objects are small. An absent key gives Exists == false and a nil error,
// like Head. A zero-byte object, which no range can address (416), is
// looked at with a HEAD.
func (c *Client) Peek(ctx context.Context, bucket, key string, max int64) (ObjectInfo, []byte, error) {
	if err := checkKey("get", bucket, key); err != nil {
		return ObjectInfo{Key: key}, nil, err
	}
	if max < 1 {
		info, err := c.Head(ctx, bucket, key)
		return info, nil, err
	}
	rng := "bytes=0-" + strconv.FormatInt(max-1, 10)
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key, Range: &rng})
	if err != nil {
		err = wrap("get", bucket, key, err)
		var e *Error
		switch {
		case Classify(err) == NotFound:
			return ObjectInfo{Key: key}, nil, nil
		case errors.As(err, &e) && (e.StatusCode == 416 || e.Code == "InvalidRange"):
			info, err := c.Head(ctx, bucket, key)
			if err == nil && info.Exists && info.Size == 0 {
				return info, []byte{}, nil
			}
			return info, nil, err
		}
		return ObjectInfo{Key: key}, nil, err
	}
	defer out.Body.Close()
	info := objectInfo(key, out.ETag, out.ContentLength, out.LastModified,
		out.ContentType, out.CacheControl, out.ContentEncoding, out.ContentDisposition, out.Metadata)
	if cr := aws.ToString(out.ContentRange); cr != "" {
		// "bytes 0-1023/4096": the object's size is after the slash.
		total, err := strconv.ParseInt(cr[strings.LastIndexByte(cr, '/')+1:], 10, 64)
		if err != nil || total < 0 {
			return ObjectInfo{Key: key}, nil, wrap("get", bucket, key, fmt.Errorf("unreadable Content-Range %q", cr))
		}
		info.Size = total
	} // else the server ignored the range and sends the whole object
	if info.Size > max {
		return info, nil, nil // closing drops at most max bytes
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, max+1))
	if err != nil {
		return ObjectInfo{Key: key}, nil, wrap("get", bucket, key, err)
	}
	if int64(len(body)) != info.Size {
		return ObjectInfo{Key: key}, nil, wrap("get", bucket, key, fmt.Errorf("%w: body of %d bytes, object of %d", io.ErrUnexpectedEOF, len(body), info.Size))
	}
	return info, body, nil
}
