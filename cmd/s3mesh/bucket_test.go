package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3mesh/s3mesh/internal/testenv"
)

// `bucket create --reader` (compose's init-<site>) makes the bucket and a
// read-only versitygw user whose secret it reads from the environment: the
// user reads (positive control) and is refused a PUT; the secret is never
// printed.
func TestBucketCreateReader(t *testing.T) {
	v := testenv.StartVersity(t, "--iam-dir", t.TempDir())
	t.Setenv("AWS_ACCESS_KEY_ID", v.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", v.SecretKey)
	t.Setenv("READER_SECRET_B", "reader-secret-of-b-0123")
	run := func(args ...string) (string, error) {
		c := newBucketCmd()
		var out bytes.Buffer
		c.SetOut(&out)
		c.SetErr(&out)
		c.SetArgs(args)
		err := c.Execute()
		return out.String(), err
	}
	if out, err := run("create", "--endpoint", v.Endpoint, "--bucket", "demo", "--reader", "peer-b=READER_SECRET_UNSET"); err == nil || !strings.Contains(err.Error(), "READER_SECRET_UNSET") {
		t.Fatalf("an unset reader secret: %v\n%s", err, out)
	}
	out, err := run("create", "--endpoint", v.Endpoint, "--bucket", "demo", "--reader", "peer-b=READER_SECRET_B")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(out, "reader-secret-of-b-0123") || !strings.Contains(out, "read-only users peer-b") {
		t.Fatalf("output: %s", out)
	}
	ctx := context.Background()
	c := s3.New(s3.Options{Region: v.Region, BaseEndpoint: aws.String(v.Endpoint), UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("peer-b", "reader-secret-of-b-0123", "")})
	if _, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("demo")}); err != nil {
		t.Fatalf("the reader cannot list: %v", err)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("demo"), Key: aws.String("x"), Body: strings.NewReader("x")})
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
		t.Fatalf("the reader's PUT: %v, want 403", err)
	}
	// Again (a restarted compose project): the user exists; still fine.
	if out, err := run("create", "--endpoint", v.Endpoint, "--bucket", "demo", "--reader", "peer-b=READER_SECRET_B"); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
}
