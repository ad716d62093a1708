package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3mesh/s3mesh/config"
)

// The agent only reads from its peers' stores (GET and HEAD of bodies;
// rebuild and verify also list), so a peer's S3 key must be read-only: a
// site that holds a key able to write to another site's store can change
// that site's objects behind s3mesh's back (see docs/deployment.md, "Peers' S3
// keys: read-only"). At start the agent asks of every peer key, on every replicated
// bucket, whether it can write, without writing anything:
//
//   - a key that can write stops the start (New fails, naming the peer,
//     the bucket and the fix), unless peers[].s3.allow_writable_key says
//     the peer's store cannot offer a read-only key: then a warning at
//     every start, in status (peer_keys) and in the metric
//     s3mesh_peer_s3_key_writable;
//   - a store that answers something the probe cannot read is warned of;
//   - a store that cannot be asked yet (down, the bucket or the key not
//     made yet) is asked again in the background (watchPeerKeys) until it
//     answers, and a key then found writable stops the agent (Run returns
//     the same error).

// peerKeyProbeKey is the key the write probe names: under s3mesh's reserved
// prefix, and never created (see probePeerWrite).
const peerKeyProbeKey = ".s3mesh-probe/peer-key-write-check"

// peerKeyTimeout bounds one probe: a peer that is down must not hold the
// agent up.
const peerKeyTimeout = 15 * time.Second

// peerKeyStartTimeout bounds the check New makes: every key is probed at
// once, and what has not answered by then is asked again by watchPeerKeys.
const peerKeyStartTimeout = 5 * time.Second

// peerKeyRetryMax is the longest pause between two attempts of
// watchPeerKeys.
const peerKeyRetryMax = 30 * time.Second

// peerKeyVerdict is what a probe learnt of a key.
type peerKeyVerdict int

const (
	keyUnknown     peerKeyVerdict = iota // the store answered something the probe cannot read
	keyReadOnly                          // 403 AccessDenied: the key may not write
	keyWritable                          // the store weighed the write: the key may write
	keyUnreachable                       // no answer yet (down, or the bucket or key not made yet): ask again
)

// String is how status and the logs name a verdict.
func (v peerKeyVerdict) String() string {
	switch v {
	case keyReadOnly:
		return "read-only"
	case keyWritable:
		return "writable"
	case keyUnreachable:
		return "not checked yet"
	}
	return "unknown"
}

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
	c := s3.New(s3.Options{
		Region: s.Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: s.UsePathStyle(),
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
	case code == "InvalidAccessKeyId", code == "SignatureDoesNotMatch", code == "NoSuchBucket":
		// The key or the bucket is not there yet (a peer still being set
		// up): nothing can be told of the key's rights until it is.
		return keyUnreachable, answer
	case status == http.StatusForbidden || code == "AccessDenied":
		return keyReadOnly, answer
	case code == "NoSuchKey", code == "PreconditionFailed", code == "BadDigest", code == "InvalidDigest",
		status == http.StatusPreconditionFailed, status == http.StatusNotFound:
		return keyWritable, answer
	case status == 0:
		return keyUnreachable, err.Error()
	case status >= 500:
		return keyUnreachable, answer
	}
	return keyUnknown, answer
}

// PeerKeyStatus is what the agent knows of one peer key on one bucket
// (status: peer_keys).
type PeerKeyStatus struct {
	Peer   string `json:"peer"`
	Bucket string `json:"bucket"`
	// Key: read-only, writable (only with allow_writable_key: the agent
	// does not run otherwise), unknown (the store's answer said nothing)
	// or "not checked yet" (the store has not answered yet).
	Key string `json:"key"`
	// AllowWritable is peers[].s3.allow_writable_key.
	AllowWritable bool   `json:"allow_writable_key,omitempty"`
	Answer        string `json:"answer,omitempty"`
}

// peerKeyState holds the latest verdict of every (peer, bucket), and the
// probes New could not settle, for Run to make again.
type peerKeyState struct {
	mu      sync.Mutex
	m       map[[2]string]PeerKeyStatus
	pending []peerKeyProbe
}

func (s *peerKeyState) set(st PeerKeyStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[[2]string]PeerKeyStatus{}
	}
	s.m[[2]string{st.Peer, st.Bucket}] = st
}

// list is every verdict, by peer and bucket.
func (s *peerKeyState) list() []PeerKeyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerKeyStatus, 0, len(s.m))
	for _, v := range s.m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Peer != out[j].Peer {
			return out[i].Peer < out[j].Peer
		}
		return out[i].Bucket < out[j].Bucket
	})
	return out
}

// peerKeyWarnings are status warnings of the keys that can write (allowed)
// or whose rights are unknown.
func peerKeyWarnings(keys []PeerKeyStatus) []string {
	var out []string
	for _, k := range keys {
		switch k.Key {
		case keyWritable.String():
			out = append(out, fmt.Sprintf("peer %s's S3 key can write to %s's store (bucket %s), allowed by allow_writable_key: a compromised site can change that store's objects behind s3mesh's back",
				k.Peer, k.Peer, k.Bucket))
		case keyUnknown.String():
			out = append(out, fmt.Sprintf("could not tell whether peer %s's S3 key can write to bucket %s (answer %s): check that it is read-only", k.Peer, k.Bucket, k.Answer))
		}
	}
	return out
}

// peerKeyProbe is one (peer, bucket) to ask.
type peerKeyProbe struct {
	i      int // index in cfg.Peers
	peer   config.Peer
	bucket string
}

func (p peerKeyProbe) field() string { return fmt.Sprintf("peers[%d].s3", p.i) }

// writableKeyError is the refusal of a peer key that can write, with what
// to do about it.
func writableKeyError(p peerKeyProbe, answer string) error {
	return fmt.Errorf("peer S3 key can write to the peer's store: peer %s, endpoint %s, bucket %s, access key %s (it answered %q to a PUT that a read-only key is refused with 403): "+
		"the agent does not run with it. Give %s a read-only key (s3:GetObject and s3:ListBucket on the replicated buckets; docs/deployment.md, \"Peers' S3 keys: read-only\"), "+
		"or, only if %s's store cannot offer one (rclone serve s3), set %s.allow_writable_key: true",
		p.peer.Name, p.peer.S3.Endpoint, p.bucket, p.peer.S3.AccessKey, answer, p.field(), p.peer.Name, p.field())
}

// judgePeerKey records and logs one verdict. It returns the refusal of a
// writable key that is not allowed, and whether the key must be asked
// again later.
func (a *Agent) judgePeerKey(p peerKeyProbe, v peerKeyVerdict, answer string, first bool) (refuse error, again bool) {
	allowed := p.peer.S3.AllowWritableKey
	a.peerKeys.set(PeerKeyStatus{Peer: p.peer.Name, Bucket: p.bucket, Key: v.String(), AllowWritable: allowed, Answer: answer})
	g := a.M.PeerKeyWritable.WithLabelValues(p.peer.Name, p.bucket)
	args := []any{"peer", p.peer.Name, "endpoint", p.peer.S3.Endpoint, "bucket", p.bucket, "answer", answer}
	switch v {
	case keyWritable:
		g.Set(1)
		if !allowed {
			a.log.Error("peer S3 key can write to the peer's store: the agent does not run with it", args...)
			return writableKeyError(p, answer), false
		}
		a.log.Warn("peer S3 key can write to the peer's store, allowed by "+p.field()+".allow_writable_key: a compromised site can change "+p.peer.Name+
			"'s objects behind s3mesh's back; use a read-only key as soon as the store offers one (docs/deployment.md, \"Peers' S3 keys: read-only\")", args...)
	case keyReadOnly:
		g.Set(0)
		if allowed {
			a.log.Info("peer S3 key is read-only although "+p.field()+".allow_writable_key is set: remove it", args...)
		} else {
			a.log.Info("peer S3 key is read-only", args...)
		}
	case keyUnreachable:
		g.Set(-1)
		if first {
			a.log.Warn("could not check yet whether the peer S3 key can write (the store did not answer, or the bucket or key is not there yet): asking again in the background", args...)
		}
		return nil, true
	default:
		g.Set(-1)
		a.log.Warn("COULD NOT TELL whether the peer S3 key can write: the store's answer to the write probe is not one the probe reads; check by hand that the key is read-only (docs/deployment.md, \"Peers' S3 keys: read-only\")", args...)
	}
	return nil, false
}

// checkPeerKeys probes every peer key on every replicated bucket at once,
// within peerKeyStartTimeout. It returns the refusals of writable keys (the
// agent must not start) and the probes to make again (no answer yet).
// Allowed writable keys are warned of first, whatever the probe finds.
func (a *Agent) checkPeerKeys(ctx context.Context) (again []peerKeyProbe, err error) {
	var probes []peerKeyProbe
	for i, p := range a.cfg.Peers {
		if p.S3.AllowWritableKey {
			a.log.Warn(fmt.Sprintf("peers[%d].s3.allow_writable_key: true: peer %s's S3 key may write to %s's store, which a compromised site could use to change its objects behind s3mesh's back (docs/deployment.md, \"Peers' S3 keys: read-only\")", i, p.Name, p.Name),
				"peer", p.Name, "endpoint", p.S3.Endpoint)
		}
		for _, b := range a.cfg.BucketNames() {
			probes = append(probes, peerKeyProbe{i: i, peer: p, bucket: b})
		}
	}
	type result struct {
		v      peerKeyVerdict
		answer string
	}
	results := make([]result, len(probes))
	pctx, cancel := context.WithTimeout(ctx, peerKeyStartTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			v, answer := probePeerWrite(pctx, p.peer.S3, p.bucket)
			results[i] = result{v, answer}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var refusals []error
	for i, p := range probes {
		refuse, retry := a.judgePeerKey(p, results[i].v, results[i].answer, true)
		if refuse != nil {
			refusals = append(refusals, refuse)
		}
		if retry {
			again = append(again, p)
		}
	}
	return again, errors.Join(refusals...)
}

// watchPeerKeys asks again, with a growing pause, every probe the start
// could not settle, until each is answered or ctx ends. A key found
// writable then, and not allowed, stops the agent: it returns the refusal.
func (a *Agent) watchPeerKeys(ctx context.Context, pending []peerKeyProbe) error {
	delay := time.Second
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, peerKeyRetryMax)
		var still []peerKeyProbe
		for _, p := range pending {
			v, answer := probePeerWrite(ctx, p.peer.S3, p.bucket)
			if ctx.Err() != nil {
				return nil
			}
			refuse, again := a.judgePeerKey(p, v, answer, false)
			if refuse != nil {
				return refuse
			}
			if again {
				still = append(still, p)
			}
		}
		pending = still
	}
	return nil
}
