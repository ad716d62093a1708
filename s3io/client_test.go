package s3io

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestNewValidation(t *testing.T) {
	good := Endpoint{URL: "http://127.0.0.1:7070", AccessKey: "ak", SecretKey: "sk"}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
	bad := []Endpoint{
		{URL: "", AccessKey: "ak", SecretKey: "sk"},
		{URL: "127.0.0.1:7070", AccessKey: "ak", SecretKey: "sk"},
		{URL: "ftp://host", AccessKey: "ak", SecretKey: "sk"},
		{URL: "http://", AccessKey: "ak", SecretKey: "sk"},
		{URL: "http://u:p@host", AccessKey: "ak", SecretKey: "sk"},
		{URL: "http://host/?x=1", AccessKey: "ak", SecretKey: "sk"},
		{URL: "http://host:99999", AccessKey: "ak", SecretKey: "sk"},
		{URL: "http://host", AccessKey: "", SecretKey: "sk"},
		{URL: "http://host", AccessKey: "ak", SecretKey: ""},
	}
	for _, ep := range bad {
		if _, err := New(ep); !errors.Is(err, ErrInvalidInput) || Classify(err) != Permanent {
			t.Errorf("New(%v): %v", ep, err)
		}
	}
}

func TestEndpointNeverPrintsSecret(t *testing.T) {
	const secret = "very-secret-key"
	ep := Endpoint{URL: "http://host", AccessKey: "ak", SecretKey: secret}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, ep); strings.Contains(s, secret) || !strings.Contains(s, "ak") {
			t.Errorf("%s prints %q", f, s)
		}
	}
	_, err := New(Endpoint{URL: "ftp://host", AccessKey: "ak", SecretKey: secret})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("error %v", err)
	}
}

func TestPathStyle(t *testing.T) {
	for _, tt := range []struct {
		url       string
		pathStyle bool
		want      bool
	}{
		{"http://127.0.0.1:7070", false, true},
		{"https://minio.example.com", false, true},
		{"https://s3.eu-west-1.amazonaws.com", false, false},
		{"https://s3.eu-west-1.amazonaws.com", true, true},
	} {
		c, err := New(Endpoint{URL: tt.url, AccessKey: "a", SecretKey: "s", PathStyle: tt.pathStyle})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.s3.Options().UsePathStyle; got != tt.want {
			t.Errorf("%s PathStyle=%t: path style %t", tt.url, tt.pathStyle, got)
		}
	}
}

// TestStoppedServer checks that a dead endpoint gives Transient errors for
// every call, and that the same client recovers once the server is back.
func TestStoppedServer(t *testing.T) {
	c, v := newTestClient(t, WithMaxAttempts(1))
	ctx := testCtx(t)
	etag := putString(t, c, "k", "v")
	v.Stop()
	_, err := c.Head(ctx, testBucket, "k")
	var sysErr *os.SyscallError
	if Classify(err) != Transient || !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &sysErr) {
		t.Fatalf("head on stopped server: %v (class %v)", err, Classify(err))
	}
	calls := map[string]error{
		"put": func() error {
			_, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "k", Body: strings.NewReader("v"), Size: 1})
			return err
		}(),
		"get": func() error {
			_, _, err := c.Get(ctx, testBucket, "k", "")
			return err
		}(),
		"delete": c.Delete(ctx, testBucket, "k", etag),
		"list":   c.List(ctx, testBucket, "", 0, func(ListEntry) error { return nil }),
	}
	for name, err := range calls {
		if Classify(err) != Transient {
			t.Errorf("%s on stopped server: %v (class %v)", name, err, Classify(err))
		}
	}
	v.Start()
	if got, _, err := getString(t, c, "k", etag); err != nil || got != "v" {
		t.Fatalf("after restart: %q %v", got, err)
	}
}

// TestGetServerDiesMidStream: a body cut short by the server's death is a
// Transient read error, not a short object.
func TestGetServerDiesMidStream(t *testing.T) {
	c, v := newTestClient(t, WithMaxAttempts(1))
	ctx := testCtx(t)
	const size = 64 << 20
	if _, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "big", Body: randBody(9, size), Size: size, PartSize: 32 << 20}); err != nil {
		t.Fatal(err)
	}
	rc, _, err := c.Get(ctx, testBucket, "big", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	v.Stop()
	n, err := io.Copy(io.Discard, rc)
	if err == nil || Classify(err) != Transient {
		t.Fatalf("read %d more bytes, err %v (class %v)", n, err, Classify(err))
	}
	t.Logf("after %d bytes: %v", n+1, err)
}

func apiErr(status int, code string) error {
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: status}}
	var inner error = &smithy.GenericAPIError{Code: code, Message: "msg"}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "Op", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: resp, Err: inner},
	}}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
		is   error
	}{
		{"nil", nil, 0, nil},
		{"500", apiErr(500, "InternalError"), Transient, nil},
		{"503 SlowDown", apiErr(503, "SlowDown"), Transient, nil},
		{"502 no code", apiErr(502, ""), Transient, nil},
		{"501", apiErr(501, "NotImplemented"), Permanent, nil},
		{"400", apiErr(400, "InvalidArgument"), Permanent, nil},
		{"400 RequestTimeout", apiErr(400, "RequestTimeout"), Transient, nil},
		{"403", apiErr(403, "AccessDenied"), Permanent, nil},
		{"403 skew", apiErr(403, "RequestTimeTooSkewed"), Transient, nil},
		{"408", apiErr(408, ""), Transient, nil},
		{"409", apiErr(409, "BucketNotEmpty"), Permanent, nil},
		{"409 directory", apiErr(409, "ExistingObjectIsDirectory"), Permanent, ErrInvalidKey},
		{"429", apiErr(429, ""), Transient, nil},
		{"412", apiErr(412, "PreconditionFailed"), Precondition, ErrPreconditionFailed},
		{"404 NoSuchKey", apiErr(404, "NoSuchKey"), NotFound, ErrNotFound},
		{"404 HEAD", apiErr(404, "NotFound"), NotFound, ErrNotFound},
		{"404 NoSuchBucket", apiErr(404, "NoSuchBucket"), Permanent, ErrNoSuchBucket},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), Transient, nil},
		{"cancelled", context.Canceled, Transient, nil},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, Transient, nil},
		{"unexpected EOF", io.ErrUnexpectedEOF, Transient, nil},
		{"unknown", errors.New("mystery"), Transient, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("raw: %v, want %v", got, tt.want)
			}
			w := wrap("put", "b", "k", tt.err)
			if got := Classify(w); got != tt.want {
				t.Errorf("wrapped: %v, want %v (%v)", got, tt.want, w)
			}
			if tt.is != nil && !errors.Is(w, tt.is) {
				t.Errorf("wrapped %v is not %v", w, tt.is)
			}
			if tt.err != nil && !errors.Is(w, tt.err) {
				t.Errorf("wrapped %v lost the original error", w)
			}
			if tt.err != nil && !strings.HasPrefix(w.Error(), "put b/k: ") {
				t.Errorf("message %q", w)
			}
		})
	}
}
