package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
)

// A peer key that can write (versitygw's root key) is warned of at start; a
// read-only one (a versitygw user granted GetObject by a bucket policy) is
// not; and the probe writes nothing either way.
func TestPeerKeyWriteWarning(t *testing.T) {
	adminPort := testenv.FreePort(t)
	v := testenv.StartVersity(t, "--iam-dir", t.TempDir(), "--admin-port", fmt.Sprintf("127.0.0.1:%d", adminPort))
	ctx := context.Background()
	root := s3.New(s3.Options{Region: v.Region, BaseEndpoint: aws.String(v.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(v.AccessKey, v.SecretKey, "")})
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("demo")}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testenv.VersityBin(t), "admin", "--access", v.AccessKey, "--secret", v.SecretKey,
		"--endpoint-url", fmt.Sprintf("http://127.0.0.1:%d", adminPort), "create-user", "--access", "reader", "--secret", "reader-secret", "--role", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("create a read-only user: %v %s", err, out)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"reader","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::demo/*"]}]}`
	if _, err := root.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("demo"), Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	peer := func(name, access, secret string) config.Peer {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		return config.Peer{Name: name, S3: config.S3{Endpoint: v.Endpoint, Region: v.Region, AccessKey: access, SecretKey: config.Secret{File: f}}}
	}
	var logs bytes.Buffer
	a := &Agent{
		cfg: &config.Site{Site: "a", Buckets: []config.Bucket{{Name: "demo"}},
			Peers: []config.Peer{peer("writer", v.AccessKey, v.SecretKey), peer("reader", "reader", "reader-secret")}},
		log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	a.checkPeerKeys(ctx)
	var warned, readOnly bool
	for _, line := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(line, "level=WARN") && strings.Contains(line, "can write") && strings.Contains(line, "peer=writer"):
			warned = true
		case strings.Contains(line, "peer=reader") && strings.Contains(line, "read-only"):
			readOnly = true
		case strings.Contains(line, "peer=reader") && strings.Contains(line, "level=WARN"):
			t.Errorf("a read-only key warned of: %s", line)
		}
	}
	if !warned || !readOnly {
		t.Fatalf("writable key warned %v, read-only key seen %v; log:\n%s", warned, readOnly, logs.String())
	}
	if !strings.Contains(logs.String(), `answer="404 NoSuchKey"`) || !strings.Contains(logs.String(), `answer="403 AccessDenied"`) {
		t.Errorf("versitygw's answers changed (want 404 NoSuchKey for a writable key, 403 AccessDenied for a read-only one):\n%s", logs.String())
	}
	if _, err := root.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String(peerKeyProbeKey)}); err == nil {
		t.Fatal("the probe wrote its key")
	}
}

func TestClassifyPeerWriteOffline(t *testing.T) {
	if v, _ := classifyPeerWrite(fmt.Errorf("dial tcp: connection refused")); v != keyUnknown {
		t.Fatalf("a network error is verdict %v, want unknown", v)
	}
}
