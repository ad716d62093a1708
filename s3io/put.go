package s3io

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/semaphore"
)

// Part sizes for Put.
const (
	DefaultPartSize int64 = 16 << 20 // PutInput.PartSize when zero
	MinPartSize     int64 = 5 << 20  // S3's minimum for all parts but the last
	MaxParts              = 10000    // S3's maximum number of parts
	MaxKeyLen             = 1024     // S3's maximum key length in bytes
)

// PutInput describes one upload.
type PutInput struct {
	Bucket, Key string
	// Body must yield exactly Size bytes. It may be nil when Size is 0.
	Body io.Reader
	Size int64
	// Attrs are stored with the object.
	Attrs Attrs
	// IfMatch makes the write conditional on the current ETag (no quotes):
	// ErrPreconditionFailed if it changed, ErrNotFound if the key is absent.
	IfMatch string
	// IfNoneMatch makes the write succeed only if the key is absent
	// (If-None-Match: *): ErrPreconditionFailed otherwise.
	IfNoneMatch bool
	// ContentMD5 is the hex MD5 the body must have (a single-part ETag;
	// "" for none). A single PutObject sends it as Content-MD5, which the
	// store checks: other bytes are refused with BadDigest, a Transient
	// error (the bytes that arrived were not the ones meant). When the
	// store is known to check it (TrustContentMD5) the body goes unsigned
	// (UNSIGNED-PAYLOAD): the signed Content-MD5 header covers it, and
	// the body is not hashed with SHA-256 on both ends. Multipart uploads
	// ignore it: see ChecksContentMD5.
	ContentMD5 string
	// PartSize is the multipart threshold and part size; DefaultPartSize
	// when 0, at least MinPartSize otherwise. It is raised automatically
	// when Size would need more than MaxParts parts.
	PartSize int64
	// Share, if set, is the part of the client's memory budget this Put
	// draws from too (one peer's share: NewShare): Puts of one share
	// buffer at most its size at once, so they cannot hold the whole
	// budget; a body whose two part buffers would not fit the share is
	// staged on disk (WithSpoolDir).
	Share *Share
}

// Share is a part of a client's memory budget (PutInput.Share).
type Share struct {
	sem *semaphore.Weighted
	n   int64
}

// NewShare makes a share of n bytes.
func NewShare(n int64) *Share { return &Share{sem: semaphore.NewWeighted(n), n: n} }

// bufferCap is the most in may buffer: the budget, or its share of it.
func (c *Client) bufferCap(in PutInput) int64 {
	if in.Share != nil && (c.budget == nil || in.Share.n < c.budgetCap) {
		return in.Share.n
	}
	return c.budgetCap
}

// Put uploads in.Body and returns the new ETag (without quotes).
//
// Bodies up to PartSize bytes are read into one buffer of exactly Size
// bytes and sent with PutObject (the SDK needs a seekable body over plain
// HTTP). Larger bodies go by multipart upload, reading the next part while
// the previous one is sent, with never more than two PartSize buffers
// alive; memory does not grow with the object. A failed multipart upload is
// aborted.
//
// A body shorter or longer than Size fails with ErrInvalidInput; a body
// read error is returned wrapped (a truncated network stream classifies as
// Transient).
//
// The SDK retries transient failures. A conditional Put whose first
// attempt was applied but whose answer was lost retries into a 412 it
// caused itself; callers that must tell these apart compare the ETag.
func (c *Client) Put(ctx context.Context, in PutInput) (string, error) {
	if err := checkPut(&in); err != nil {
		return "", err
	}
	if c.emulatePut.Load() && (in.IfMatch != "" || in.IfNoneMatch) {
		if err := c.checkCondition(ctx, in); err != nil {
			return "", err
		}
		in.IfMatch, in.IfNoneMatch = "", false
	}
	release, err := c.reserve(ctx, in)
	if err != nil {
		return "", err
	}
	defer release()
	if in.Size <= in.PartSize {
		return c.putSingle(ctx, in)
	}
	return c.putMultipart(ctx, in)
}

// spools reports whether in's parts are staged on disk: its two part
// buffers would not fit the memory budget (see WithSpoolDir).
func (c *Client) spools(in PutInput) bool {
	return c.spoolDir != "" && in.Size > in.PartSize && 2*in.PartSize > c.bufferCap(in)
}

// reserve takes what in will buffer from the client's memory budget (see
// WithMemoryBudget) and returns its release.
func (c *Client) reserve(ctx context.Context, in PutInput) (func(), error) {
	if c.budget == nil && in.Share == nil {
		return func() {}, nil
	}
	need := in.Size
	if in.Size > in.PartSize {
		need = min(in.Size, 2*in.PartSize)
	}
	if c.spools(in) {
		need = 0 // staged on disk, through the file system's own buffers
	}
	if c.budget != nil {
		need = min(need, c.budgetCap)
	}
	if in.Share != nil {
		need = min(need, in.Share.n)
	}
	if need <= 0 {
		return func() {}, nil
	}
	// The share first: a Put waiting for its share holds nothing of the
	// budget the other shares draw from.
	if in.Share != nil {
		if err := in.Share.sem.Acquire(ctx, need); err != nil {
			return nil, wrap("put", in.Bucket, in.Key, err)
		}
	}
	if c.budget != nil {
		if err := c.budget.Acquire(ctx, need); err != nil {
			if in.Share != nil {
				in.Share.sem.Release(need)
			}
			return nil, wrap("put", in.Bucket, in.Key, err)
		}
	}
	return func() {
		if c.budget != nil {
			c.budget.Release(need)
		}
		if in.Share != nil {
			in.Share.sem.Release(need)
		}
	}, nil
}

func checkPut(in *PutInput) error {
	if err := checkKey("put", in.Bucket, in.Key); err != nil {
		return err
	}
	switch {
	case in.Size < 0:
		return invalid("put", in.Bucket, in.Key, "negative size %d", in.Size)
	case in.Body == nil && in.Size != 0:
		return invalid("put", in.Bucket, in.Key, "nil body with size %d", in.Size)
	case in.IfMatch != "" && in.IfNoneMatch:
		return invalid("put", in.Bucket, in.Key, "IfMatch and IfNoneMatch together")
	case in.ContentMD5 != "" && !isMD5(in.ContentMD5):
		return invalid("put", in.Bucket, in.Key, "ContentMD5 %q is not a hex MD5", in.ContentMD5)
	case in.PartSize == 0:
		in.PartSize = DefaultPartSize
	case in.PartSize < MinPartSize:
		return invalid("put", in.Bucket, in.Key, "part size %d below %d", in.PartSize, MinPartSize)
	}
	if in.Size > in.PartSize*MaxParts {
		// Round the part size up to a MiB boundary.
		in.PartSize = ((in.Size+MaxParts-1)/MaxParts + 1<<20 - 1) &^ (1<<20 - 1)
	}
	if in.Body == nil {
		in.Body = strings.NewReader("")
	}
	m, err := checkMeta(in.Attrs.Meta)
	if err != nil {
		return invalid("put", in.Bucket, in.Key, "%v", err)
	}
	in.Attrs.Meta = m
	return nil
}

// isMD5 reports whether s is an MD5 in hex (32 hex digits).
func isMD5(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == md5.Size
}

// checkKey refuses keys no S3 store accepts.
func checkKey(op, bucket, key string) error {
	switch {
	case bucket == "":
		return invalid(op, bucket, key, "empty bucket name")
	case key == "":
		return invalid(op, bucket, key, "empty key")
	case len(key) > MaxKeyLen || !utf8.ValidString(key):
		return &Error{Op: op, Bucket: bucket, Key: key, sentinel: ErrInvalidKey,
			Err: fmt.Errorf("key of %d bytes is over %d or not UTF-8", len(key), MaxKeyLen)}
	}
	return nil
}

// checkMeta lower-cases metadata keys and refuses keys that cannot be an
// HTTP header name or that collide once lower-cased.
func checkMeta(m map[string]string) (map[string]string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		lk := strings.ToLower(strings.TrimPrefix(strings.ToLower(k), "x-amz-meta-"))
		if lk == "" || strings.IndexFunc(lk, notToken) >= 0 {
			return nil, fmt.Errorf("metadata key %q is not an HTTP token", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("metadata value for %q holds CR, LF or NUL", k)
		}
		if _, dup := out[lk]; dup {
			return nil, fmt.Errorf("metadata key %q given twice (keys are case-insensitive)", lk)
		}
		out[lk] = v
	}
	return out, nil
}

func notToken(r rune) bool {
	if r >= 0x7f || r <= ' ' {
		return true
	}
	return strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
}

func (c *Client) putSingle(ctx context.Context, in PutInput) (string, error) {
	buf := getBuf(in.Size)
	if err := readExactly(in.Body, buf, true); err != nil {
		return "", wrapBody(in, err)
	}
	req := &s3.PutObjectInput{
		Bucket:        &in.Bucket,
		Key:           &in.Key,
		Body:          bytes.NewReader(buf),
		ContentLength: aws.Int64(in.Size),
	}
	setAttrs(in.Attrs, &req.ContentType, &req.CacheControl, &req.ContentEncoding, &req.ContentDisposition, &req.Metadata)
	if in.IfMatch != "" {
		req.IfMatch = aws.String(quote(in.IfMatch))
	}
	if in.IfNoneMatch {
		req.IfNoneMatch = aws.String("*")
	}
	var opts []func(*s3.Options)
	if sum, err := hex.DecodeString(in.ContentMD5); err == nil && len(sum) == md5.Size {
		req.ContentMD5 = aws.String(base64.StdEncoding.EncodeToString(sum))
		if c.md5Checked.Load() {
			opts = append(opts, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
		}
	}
	out, err := c.s3.PutObject(ctx, req, opts...)
	if err != nil {
		// Not reused: after a failed round trip the transport may still
		// be reading the body in another goroutine.
		return "", wrap("put", in.Bucket, in.Key, err)
	}
	putBuf(buf) // the store answered 200, so it read the whole body
	return unquote(aws.ToString(out.ETag)), nil
}

func setAttrs(a Attrs, ct, cc, ce, cd **string, meta *map[string]string) {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return aws.String(s)
	}
	*ct, *cc, *ce, *cd = opt(a.ContentType), opt(a.CacheControl), opt(a.ContentEncoding), opt(a.ContentDisposition)
	*meta = a.Meta
}

var (
	errBodyShort = errors.New("body shorter than Size")
	errBodyLong  = errors.New("body longer than Size")
)

// readExactly fills buf from r. A clean EOF before buf is full is
// errBodyShort; any other read error is returned as is (a reader's own
// io.ErrUnexpectedEOF means a truncated stream, not a short body). With
// last set it also checks that r is at EOF afterwards.
func readExactly(r io.Reader, buf []byte, last bool) error {
	for n := 0; n < len(buf); {
		k, err := r.Read(buf[n:])
		n += k
		switch {
		case n == len(buf):
			// Full; an error or EOF alongside is seen again below.
		case err == io.EOF:
			return errBodyShort
		case err != nil:
			return err
		}
	}
	if !last {
		return nil
	}
	var one [1]byte
	for empty := 0; ; {
		n, err := r.Read(one[:])
		switch {
		case n > 0:
			return errBodyLong
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
		if empty++; empty > 100 {
			return io.ErrNoProgress
		}
	}
}

func wrapBody(in PutInput, err error) error {
	if err == errBodyShort || err == errBodyLong {
		return invalid("put", in.Bucket, in.Key, "%v %d", err, in.Size)
	}
	return wrap("put", in.Bucket, in.Key, fmt.Errorf("reading body: %w", err))
}

// abortTimeout bounds the clean-up of a failed multipart upload, which
// runs even when the caller's context is already cancelled.
const abortTimeout = 30 * time.Second

func (c *Client) putMultipart(ctx context.Context, in PutInput) (etag string, err error) {
	// Fail fast, before sending gigabytes, if the condition already fails.
	if err := c.checkCondition(ctx, in); err != nil {
		return "", err
	}
	create := &s3.CreateMultipartUploadInput{Bucket: &in.Bucket, Key: &in.Key}
	setAttrs(in.Attrs, &create.ContentType, &create.CacheControl, &create.ContentEncoding, &create.ContentDisposition, &create.Metadata)
	cout, err := c.s3.CreateMultipartUpload(ctx, create)
	if err != nil {
		return "", wrap("put", in.Bucket, in.Key, err)
	}
	uploadID := cout.UploadId
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
			defer cancel()
			_, _ = c.s3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
				Bucket: &in.Bucket, Key: &in.Key, UploadId: uploadID,
			})
		}
	}()

	parts, err := c.uploadParts(ctx, in, uploadID)
	if err != nil {
		return "", err
	}
	complete := &s3.CompleteMultipartUploadInput{
		Bucket:          &in.Bucket,
		Key:             &in.Key,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	// versitygw v1.8.0 honours If-Match / If-None-Match on
	// CompleteMultipartUpload (TestCompleteMultipartHonoursConditions), so
	// the condition is checked atomically by the server here; the HEAD in
	// checkCondition above only saves a doomed upload.
	if in.IfMatch != "" {
		complete.IfMatch = aws.String(quote(in.IfMatch))
	}
	if in.IfNoneMatch {
		complete.IfNoneMatch = aws.String("*")
	}
	out, err := c.s3.CompleteMultipartUpload(ctx, complete)
	if err != nil {
		return "", c.diagnoseComplete(ctx, in, wrap("put", in.Bucket, in.Key, err))
	}
	return unquote(aws.ToString(out.ETag)), nil
}

// checkCondition HEADs the key and fails the way the server would if the
// Put's condition does not hold now.
func (c *Client) checkCondition(ctx context.Context, in PutInput) error {
	if in.IfMatch == "" && !in.IfNoneMatch {
		return nil
	}
	info, err := c.Head(ctx, in.Bucket, in.Key)
	if err != nil {
		return wrap("put", in.Bucket, in.Key, err)
	}
	fail := func(sentinel error, format string, args ...any) error {
		return &Error{Op: "put", Bucket: in.Bucket, Key: in.Key, sentinel: sentinel,
			Err: fmt.Errorf(format, args...)}
	}
	switch {
	case in.IfNoneMatch && info.Exists:
		return fail(ErrPreconditionFailed, "If-None-Match: * but the key exists (etag %s)", info.ETag)
	case in.IfMatch != "" && !info.Exists:
		return fail(ErrNotFound, "If-Match %s but the key is absent", in.IfMatch)
	case in.IfMatch != "" && unquote(in.IfMatch) != info.ETag:
		return fail(ErrPreconditionFailed, "If-Match %s but the etag is %s", in.IfMatch, info.ETag)
	}
	return nil
}

type part struct {
	num int32
	buf []byte
	// file, when set, holds the part's bytes at offset 0 instead of buf
	// (len(buf) is then 0 and n counts them).
	file *os.File
	n    int64
}

func (p part) body() io.ReadSeeker {
	if p.file != nil {
		return io.NewSectionReader(p.file, 0, p.n)
	}
	return bytes.NewReader(p.buf)
}

func (p part) size() int64 {
	if p.file != nil {
		return p.n
	}
	return int64(len(p.buf))
}

// fill reads the next n bytes of r into p (see readExactly).
func (p *part) fill(r io.Reader, n int64, last bool) error {
	if p.file == nil {
		p.buf = p.buf[:n]
		return readExactly(r, p.buf, last)
	}
	p.n = n
	k, err := io.Copy(io.NewOffsetWriter(p.file, 0), io.LimitReader(r, n))
	switch {
	case err != nil:
		return err
	case k < n:
		return errBodyShort
	case last:
		return readExactly(r, nil, true)
	}
	return nil
}

// newStage is an empty part slot: a buffer of PartSize bytes or, when in
// spools, an unlinked file in the spool directory.
func (c *Client) newStage(in PutInput, n int64) (part, error) {
	if !c.spools(in) {
		return part{buf: getBuf(n)}, nil
	}
	f, err := os.CreateTemp(c.spoolDir, "part-*")
	if err != nil {
		return part{}, wrap("put", in.Bucket, in.Key, fmt.Errorf("spooling a part: %w", err))
	}
	os.Remove(f.Name()) // the open file lives on until closed
	c.spooled.Add(1)
	return part{file: f}, nil
}

// uploadParts reads the body in the calling goroutine and uploads in a
// second one, so reading part n+1 overlaps sending part n. Two buffers
// circulate between them; nothing else holds body bytes.
func (c *Client) uploadParts(ctx context.Context, in PutInput, uploadID *string) ([]types.CompletedPart, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	const buffers = 2
	free := make(chan part, buffers)
	var stages []part // every slot made, closed at the end
	defer func() {
		for _, st := range stages {
			if st.file != nil {
				st.file.Close()
			}
		}
	}()
	work := make(chan part)
	var (
		done      = make(chan struct{})
		completed []types.CompletedPart
		upErr     error
	)
	go func() {
		defer close(done)
		for p := range work {
			if upErr == nil {
				out, err := c.s3.UploadPart(ctx, &s3.UploadPartInput{
					Bucket:        &in.Bucket,
					Key:           &in.Key,
					UploadId:      uploadID,
					PartNumber:    aws.Int32(p.num),
					Body:          p.body(),
					ContentLength: aws.Int64(p.size()),
				})
				if err != nil {
					upErr = wrap("put", in.Bucket, in.Key, fmt.Errorf("part %d: %w", p.num, err))
					cancel()
				} else {
					completed = append(completed, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(p.num)})
				}
			}
			free <- p
		}
	}()

	var readErr error
	remaining := in.Size
	for num := int32(1); remaining > 0; num++ {
		n := min(in.PartSize, remaining)
		var p part
		ok := false
		if len(stages) < buffers {
			// Only the last part is shorter than PartSize, so a slot
			// sized for this part fits every later one.
			st, err := c.newStage(in, n)
			if err != nil {
				readErr = err
				break
			}
			stages = append(stages, st)
			p, ok = st, true
		} else {
			select {
			case p = <-free:
				ok = true
			case <-ctx.Done():
			}
		}
		if !ok || ctx.Err() != nil {
			break
		}
		remaining -= n
		if err := p.fill(in.Body, n, remaining == 0); err != nil {
			readErr = wrapBody(in, err)
			break
		}
		p.num = num
		work <- p
	}
	close(work)
	<-done
	if upErr == nil && readErr == nil && ctx.Err() == nil {
		for len(free) > 0 { // every part was answered 200: the buffers are free
			if p := <-free; p.file == nil {
				putBuf(p.buf[:cap(p.buf)])
			}
		}
	}
	switch {
	case upErr != nil:
		return nil, upErr
	case readErr != nil:
		return nil, readErr
	case ctx.Err() != nil:
		return nil, wrap("put", in.Bucket, in.Key, ctx.Err())
	}
	return completed, nil
}

// MaxSegmentLen is the longest path segment (between '/') a posix-backed
// store such as versitygw can hold: a file name limit.
const MaxSegmentLen = 255

// diagnoseComplete turns a 5xx from CompleteMultipartUpload into
// ErrInvalidKey when the key is one the store cannot hold. versitygw v1.8.0
// answers such keys with a 4xx to PutObject but with 500 InternalError to
// CompleteMultipartUpload (TestUnstorableKeyMultipart), which would
// otherwise be retried forever. Only persisting 5xx (after the SDK's own
// retries) on a key of that shape are reclassified: a key with a path
// segment over MaxSegmentLen bytes, or a key that is also a "directory"
// (keys exist under key + "/").
func (c *Client) diagnoseComplete(ctx context.Context, in PutInput, err error) error {
	e, ok := err.(*Error)
	if !ok || e.StatusCode < 500 || e.sentinel != nil {
		return err
	}
	reason := ""
	for seg := range strings.SplitSeq(in.Key, "/") {
		if len(seg) > MaxSegmentLen {
			reason = fmt.Sprintf("a path segment is %d bytes, over %d", len(seg), MaxSegmentLen)
			break
		}
	}
	if reason == "" {
		prefix := in.Key + "/"
		out, lerr := c.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &in.Bucket, Prefix: &prefix, MaxKeys: aws.Int32(1)})
		if lerr == nil && len(out.Contents) > 0 {
			reason = "keys exist under " + shortKey(prefix)
		}
	}
	if reason == "" {
		return err
	}
	diagnosed := *e
	diagnosed.sentinel = ErrInvalidKey
	diagnosed.detail = "the store cannot hold this key: " + reason
	return &diagnosed
}
