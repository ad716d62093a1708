package s3io

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/sync/semaphore"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// DefaultRegion is used when Endpoint.Region is empty.
const DefaultRegion = "us-east-1"

// DefaultMaxAttempts is how many times one call is tried (first attempt
// included) before its error is returned; only errors the SDK deems
// retryable (5xx, throttling, connection errors) are retried.
const DefaultMaxAttempts = 3

// Endpoint says where an S3 service is and how to sign requests to it.
type Endpoint struct {
	URL       string // http(s)://host[:port], no query or fragment
	Region    string // DefaultRegion when empty
	AccessKey string
	SecretKey string
	// PathStyle selects path-style addressing (http://host/bucket/key).
	// It is forced on for every host that is not an AWS host
	// (*.amazonaws.com), so it only matters for AWS itself.
	PathStyle bool
}

// String describes the endpoint without its secret key, so an Endpoint can
// be logged or printed with %v safely.
func (e Endpoint) String() string {
	secret := ""
	if e.SecretKey != "" {
		secret = "REDACTED"
	}
	return fmt.Sprintf("{URL:%s Region:%s AccessKey:%s SecretKey:%s PathStyle:%t}",
		e.URL, e.Region, e.AccessKey, secret, e.PathStyle)
}

// GoString is String, so %#v does not print the secret either.
func (e Endpoint) GoString() string { return "s3io.Endpoint" + e.String() }

// Client talks to one S3 endpoint. It is safe for concurrent use.
type Client struct {
	s3       *s3.Client
	endpoint string
	region   string
	// budget bounds the body bytes Puts hold at once (WithMemoryBudget).
	budget    *semaphore.Weighted
	budgetCap int64
	// spoolDir stages parts too large for the budget (WithSpoolDir).
	spoolDir string
	// emulatePut and emulateDelete check the write conditions of Puts and
	// Deletes with a HEAD first (WithEmulatedConditions, EmulateConditions).
	emulatePut, emulateDelete atomic.Bool
	// md5Checked: the store was seen to refuse a body that does not match
	// its Content-MD5 (TrustContentMD5).
	md5Checked atomic.Bool
	spooled    atomic.Int64 // parts staged on disk (tests)
}

// EmulateConditions sets which conditional writes the client checks with a
// HEAD first and then sends unconditionally (see WithEmulatedConditions):
// those of Puts, of Deletes, both or neither. A store that honours one and
// ignores the other (MinIO: If-Match on DELETE; Probe tells) keeps the
// safe mode for the one it honours. Call it before the writes it governs.
func (c *Client) EmulateConditions(put, del bool) {
	c.emulatePut.Store(put)
	c.emulateDelete.Store(del)
}

// TrustContentMD5 tells the client whether its store refuses a PUT whose
// body does not match its Content-MD5 (Probe's Capabilities.ContentMD5).
// Only then does a Put with ContentMD5 skip the SHA-256 of its body.
func (c *Client) TrustContentMD5(checked bool) { c.md5Checked.Store(checked) }

// ChecksContentMD5 reports whether a Put of in (with in.ContentMD5 set)
// has its body checked by the store against that MD5: a single PutObject
// to a store TrustContentMD5 vouched for. A caller that must not store
// other bytes checks them itself otherwise.
func (c *Client) ChecksContentMD5(in PutInput) bool {
	if !c.md5Checked.Load() || !isMD5(in.ContentMD5) {
		return false
	}
	if in.Body == nil {
		in.Body = strings.NewReader("") // asked before the body is opened
	}
	if err := checkPut(&in); err != nil {
		return false
	}
	return in.Size <= in.PartSize
}

// Option adjusts a Client built by New.
type Option func(*options)

type options struct {
	httpClient  aws.HTTPClient
	maxAttempts int
	budget      int64
	spoolDir    string
	emulate     bool
	onRequest   func(op string)
}

// WithEmulatedConditions is for stores that ignore If-Match and
// If-None-Match (see Probe): a conditional Put or Delete HEADs the key first
// and fails as the store would have, then writes unconditionally. A write
// racing between the HEAD and the request is not detected: the weaker mode
// the agent runs only when the configuration asks for it.
func WithEmulatedConditions() Option {
	return func(o *options) { o.emulate = true }
}

// WithSpoolDir stages on disk, in dir, the parts of a multipart Put whose
// two part buffers would not fit the memory budget. That happens only to
// objects so large that S3's 10,000-part limit raises the part size past
// what the budget allows (with the agent's defaults, objects over 78 GiB):
// a record claiming such a size (up to S3's 5 TiB) then costs disk
// space for two parts, not memory. Staged parts are unlinked files, gone
// when the Put ends or the process dies. Without it such Puts buffer in
// memory, alone.
func WithSpoolDir(dir string) Option {
	return func(o *options) { o.spoolDir = dir }
}

// WithRequestCounter calls fn with the S3 operation's name ("HeadObject",
// "PutObject", ...) for every HTTP request the client sends, retries
// included (the agent's s3mesh_s3_requests_total).
func WithRequestCounter(fn func(op string)) Option {
	return func(o *options) { o.onRequest = fn }
}

// WithMemoryBudget bounds the body bytes all Puts of the client hold at
// once, across every goroutine using it (an agent's appliers share one
// client). A Put reserves what it will buffer (Size up to PartSize, else
// two parts) before allocating, and waits while the budget is spent; one
// that needs more than the whole budget waits until it can have all of it
// and then runs alone. 0 means no bound.
func WithMemoryBudget(bytes int64) Option {
	return func(o *options) {
		if bytes > 0 {
			o.budget = bytes
		}
	}
}

// WithHTTPClient replaces the HTTP client (and with it every timeout New
// would set).
func WithHTTPClient(c aws.HTTPClient) Option {
	return func(o *options) { o.httpClient = c }
}

// WithMaxAttempts sets how many times one call is tried; 1 disables
// retries (useful to see the first error at once).
func WithMaxAttempts(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxAttempts = n
		}
	}
}

// New returns a Client for ep. It checks the URL and the credentials but
// does not contact the endpoint. Credentials are static: environment
// variables and shared AWS config files are never read. Nothing is logged.
func New(ep Endpoint, opts ...Option) (*Client, error) {
	u, err := parseEndpointURL(ep.URL)
	if err != nil {
		return nil, fmt.Errorf("s3io: endpoint %q: %w: %v", ep.URL, ErrInvalidInput, err)
	}
	if ep.AccessKey == "" || ep.SecretKey == "" {
		return nil, fmt.Errorf("s3io: endpoint %s: %w: access key and secret key are required", u, ErrInvalidInput)
	}
	o := options{maxAttempts: DefaultMaxAttempts}
	for _, opt := range opts {
		opt(&o)
	}
	if o.httpClient == nil {
		o.httpClient = newHTTPClient()
	}
	region := ep.Region
	if region == "" {
		region = DefaultRegion
	}
	pathStyle := ep.PathStyle || !isAWSHost(u.Hostname())
	retryer := retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = o.maxAttempts
		so.MaxBackoff = 5 * time.Second
		// The default client-side retry quota fails calls with
		// QuotaExceededError after many errors in a row, which would turn a
		// peer outage into confusing non-HTTP errors. Callers retry anyway.
		so.RateLimiter = ratelimit.None
	})
	cl := s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(u.String()),
		UsePathStyle: pathStyle,
		Credentials:  credentials.NewStaticCredentialsProvider(ep.AccessKey, ep.SecretKey, ""),
		HTTPClient:   o.httpClient,
		Retryer:      retryer,
		// Checksums only where the API demands them: over plain HTTP the
		// SigV4 payload hash already covers the body, and TLS covers it
		// otherwise. This also keeps multipart uploads free of per-part
		// checksum bookkeeping that not every S3 server implements.
		RequestChecksumCalculation:                aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation:                aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
		APIOptions: apiOptions(o),
	})
	c := &Client{s3: cl, endpoint: u.String(), region: region}
	c.EmulateConditions(o.emulate, o.emulate)
	if o.budget > 0 {
		c.budget, c.budgetCap = semaphore.NewWeighted(o.budget), o.budget
		c.spoolDir = o.spoolDir
	}
	return c, nil
}

// apiOptions adds the request counter after the retry step, so that it
// sees every attempt.
func apiOptions(o options) []func(*middleware.Stack) error {
	if o.onRequest == nil {
		return nil
	}
	fn := o.onRequest
	return []func(*middleware.Stack) error{func(st *middleware.Stack) error {
		return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("s3mesh.count", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			fn(middleware.GetOperationName(ctx))
			return next.HandleFinalize(ctx, in)
		}), "Retry", middleware.After)
	}}
}

// URL returns the endpoint URL the client talks to.
func (c *Client) URL() string { return c.endpoint }

func parseEndpointURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("empty URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("no host")
	case u.User != nil:
		return nil, errors.New("credentials in the URL are not allowed")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, errors.New("query and fragment are not allowed")
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return nil, fmt.Errorf("bad port %q", p)
		}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

func isAWSHost(host string) bool {
	host = strings.ToLower(host)
	return host == "amazonaws.com" || strings.HasSuffix(host, ".amazonaws.com") ||
		strings.HasSuffix(host, ".amazonaws.com.cn")
}

// newHTTPClient returns an HTTP client with bounded connection set-up and
// response waits but no overall timeout, since bodies are streamed and can
// be arbitrarily large; callers bound whole calls with their context.
func newHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Counted from the end of the request body: a CompleteMultipartUpload
		// of a big object can take the server a while to assemble.
		ResponseHeaderTimeout: 2 * time.Minute,
	}
	return &http.Client{Transport: tr}
}
