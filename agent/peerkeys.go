package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3mesh/s3mesh/config"
)

// The agent only reads from its peers' stores (GET and HEAD of bodies), so a
// peer's S3 key should be read-only: a site that holds a key able to write
// to another site's store can change that site's objects behind s3mesh's
// back (see the README, "Peers' S3 keys"). checkPeerKeys tells, at start,
// whether each peer key can write, without writing anything.

// peerKeyProbeKey is the key the write probe names: under s3mesh's reserved
// prefix, and never created (see probePeerWrite).
const peerKeyProbeKey = ".s3mesh-probe/peer-key-write-check"

// peerKeyTimeout bounds one probe: a peer that is down must not hold the
// agent up (the check runs beside the agent's work, and only warns).
const peerKeyTimeout = 15 * time.Second

// peerKeyVerdict is what a probe learnt of a key.
type peerKeyVerdict int

const (
	keyUnknown  peerKeyVerdict = iota // the peer could not be asked, or answered something else
	keyReadOnly                       // 403 AccessDenied: the key may not write
	keyWritable                       // the store weighed the write: the key may write
)

// probePeerWrite asks whether key s may write to bucket, by a PUT that
// cannot succeed: If-Match of an ETag no object has, on a key that does not
// exist, with a Content-MD5 that is not the body's. A store checks the
// key's permission first, so 403 AccessDenied means the key cannot write;
// 404 NoSuchKey, 412 PreconditionFailed or 400 BadDigest mean the store
// authorised the write and refused it only for its conditions (versitygw
// and AWS answer 404 NoSuchKey to a writable key). Nothing is written even
// by a store that ignores conditional writes (the digest fails).
func probePeerWrite(ctx context.Context, s config.S3, bucket string) (peerKeyVerdict, string) {
	secret, err := s.SecretKey.Value()
	if err != nil {
		return keyUnknown, err.Error()
	}
	pathStyle := s.PathStyle == nil || *s.PathStyle
	c := s3.New(s3.Options{
		Region: s.Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: pathStyle,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, secret, ""),
		HTTPClient:  &http.Client{Timeout: peerKeyTimeout},
		// No checksum of the SDK's own beside the wrong Content-MD5.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		RetryMaxAttempts:           1,
	})
	ctx, cancel := context.WithTimeout(ctx, peerKeyTimeout)
	defer cancel()
	_, err = c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(peerKeyProbeKey),
		Body: bytes.NewReader([]byte("x")), ContentLength: aws.Int64(1),
		ContentMD5: aws.String("AAAAAAAAAAAAAAAAAAAAAA=="), // the MD5 of no body
		IfMatch:    aws.String(`"00000000000000000000000000000000"`),
	})
	return classifyPeerWrite(err)
}

// classifyPeerWrite turns the probe's answer into a verdict.
func classifyPeerWrite(err error) (peerKeyVerdict, string) {
	if err == nil {
		return keyWritable, "the store accepted a PUT that should have failed (If-Match, Content-MD5)"
	}
	code, status := "", 0
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	answer := fmt.Sprintf("%d %s", status, code)
	switch {
	case status == http.StatusForbidden || code == "AccessDenied":
		return keyReadOnly, answer
	case code == "NoSuchBucket":
		return keyUnknown, answer
	case code == "NoSuchKey", code == "PreconditionFailed", code == "BadDigest", code == "InvalidDigest",
		status == http.StatusPreconditionFailed, status == http.StatusNotFound:
		return keyWritable, answer
	}
	if status == 0 {
		return keyUnknown, err.Error()
	}
	return keyUnknown, answer
}

// checkPeerKeys probes every peer's S3 key on every replicated bucket and
// warns of each key that can write. It never fails: the agent runs either
// way.
func (a *Agent) checkPeerKeys(ctx context.Context) {
	for _, p := range a.cfg.Peers {
		for _, b := range a.cfg.BucketNames() {
			v, answer := probePeerWrite(ctx, p.S3, b)
			if ctx.Err() != nil {
				return
			}
			args := []any{"peer", p.Name, "endpoint", p.S3.Endpoint, "bucket", b, "answer", answer}
			switch v {
			case keyWritable:
				a.log.Warn("peer S3 key can write to the peer's store: give it read-only access (GET and HEAD only; see the README, \"Peers' S3 keys\")", args...)
			case keyReadOnly:
				a.log.Debug("peer S3 key is read-only", args...)
			default:
				a.log.Info("could not tell whether the peer S3 key can write", args...)
			}
		}
	}
}
