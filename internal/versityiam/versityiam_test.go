package versityiam

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3mesh/s3mesh/internal/testenv"
)

func client(endpoint, access, secret string) *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(access, secret, ""), RetryMaxAttempts: 1})
}

func status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// A reader granted by GrantRead can GET, HEAD and list the bucket (the
// positive control) and cannot PUT, DELETE or set the policy (403); granting
// again (a restarted lab) with a new secret works and the old one stops
// working.
func TestGrantReadOnly(t *testing.T) {
	v := testenv.StartVersity(t, "--iam-dir", t.TempDir())
	ctx := context.Background()
	root := client(v.Endpoint, v.AccessKey, v.SecretKey)
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("demo")}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("demo"), Key: aws.String("k"), Body: strings.NewReader("body")}); err != nil {
		t.Fatal(err)
	}
	adm := Admin{Endpoint: v.Endpoint, AccessKey: v.AccessKey, SecretKey: v.SecretKey}
	readers := []Reader{{Access: "peer-b", Secret: "secret-of-b-1"}, {Access: "peer-c", Secret: "secret-of-c-1"}}
	if err := adm.GrantRead(ctx, []string{"demo"}, readers); err != nil {
		t.Fatal(err)
	}
	for _, r := range readers {
		c := client(v.Endpoint, r.Access, r.Secret)
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("demo"), Key: aws.String("k")})
		if err != nil {
			t.Fatalf("%s: GET: %v", r.Access, err)
		}
		b, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(b) != "body" {
			t.Fatalf("%s: GET read %q", r.Access, b)
		}
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String("k")}); err != nil {
			t.Fatalf("%s: HEAD: %v", r.Access, err)
		}
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String("missing")}); status(err) != http.StatusNotFound {
			t.Fatalf("%s: HEAD of a missing key: %v, want 404", r.Access, err)
		}
		if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("demo")}); err != nil {
			t.Fatalf("%s: HEAD bucket: %v", r.Access, err)
		}
		l, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("demo")})
		if err != nil || len(l.Contents) != 1 {
			t.Fatalf("%s: LIST: %v %+v", r.Access, err, l)
		}
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("demo"), Key: aws.String("w"), Body: strings.NewReader("x")}); status(err) != http.StatusForbidden {
			t.Fatalf("%s: PUT: %v, want 403", r.Access, err)
		}
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("demo"), Key: aws.String("k")}); status(err) != http.StatusForbidden {
			t.Fatalf("%s: DELETE: %v, want 403", r.Access, err)
		}
		if _, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("demo"), Policy: aws.String(ReadPolicy("demo", []string{"*"}))}); status(err) != http.StatusForbidden {
			t.Fatalf("%s: PUT policy: %v, want 403", r.Access, err)
		}
	}
	if _, err := root.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String("w")}); status(err) != http.StatusNotFound {
		t.Fatalf("the readers' PUT wrote: %v", err)
	}
	// Again, with a new secret for b.
	readers[0].Secret = "secret-of-b-2"
	if err := adm.GrantRead(ctx, []string{"demo"}, readers); err != nil {
		t.Fatal(err)
	}
	if _, err := client(v.Endpoint, "peer-b", "secret-of-b-2").HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String("k")}); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	if _, err := client(v.Endpoint, "peer-b", "secret-of-b-1").HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String("k")}); status(err) != http.StatusForbidden {
		t.Fatalf("old secret: %v, want 403", err)
	}
	// A bucket that does not exist is an error, not a silent no-op.
	if err := adm.GrantRead(ctx, []string{"nope"}, readers); err == nil {
		t.Fatal("granting on a missing bucket succeeded")
	}
}
