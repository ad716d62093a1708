package s3io

import (
	"context"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/internal/testenv"
)

const testBucket = "demo"

// newTestClient starts a versitygw, creates testBucket and returns a client
// for it.
func newTestClient(t *testing.T, opts ...Option) (*Client, *testenv.Versity) {
	t.Helper()
	v := testenv.StartVersity(t)
	c, err := New(Endpoint{URL: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: v.SecretKey}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureBucket(testCtx(t), testBucket); err != nil {
		t.Fatal(err)
	}
	return c, v
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
