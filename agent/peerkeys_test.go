package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/internal/versityiam"
)

// peerStore is a versitygw with its internal IAM, bucket demo, and a
// read-only user "reader" (role user, granted GetObject and ListBucket by
// the bucket policy), as the lab makes for a site's peers.
func peerStore(t *testing.T) *testenv.Versity {
	t.Helper()
	v := testenv.StartVersity(t, "--iam-dir", t.TempDir())
	root := s3.New(s3.Options{Region: v.Region, BaseEndpoint: aws.String(v.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(v.AccessKey, v.SecretKey, "")})
	if _, err := root.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("demo")}); err != nil {
		t.Fatal(err)
	}
	adm := versityiam.Admin{Endpoint: v.Endpoint, AccessKey: v.AccessKey, SecretKey: v.SecretKey}
	if err := adm.GrantRead(context.Background(), []string{"demo"}, []versityiam.Reader{{Access: "reader", Secret: "reader-secret"}}); err != nil {
		t.Fatal(err)
	}
	return v
}

func secretFile(t *testing.T, dir, name, secret string) config.Secret {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Secret{File: f}
}

// The probe's verdicts on versitygw: its root key can write (404
// NoSuchKey), a read-only user cannot (403 AccessDenied), a key the store
// does not know and a bucket that does not exist yet say nothing of the
// key's rights (asked again later), nor does a store that does not answer;
// and the probe writes nothing.
func TestPeerKeyProbeVerdicts(t *testing.T) {
	v := peerStore(t)
	dir := t.TempDir()
	ctx := context.Background()
	s3c := func(access, secret string) config.S3 {
		return config.S3{Endpoint: v.Endpoint, Region: v.Region, AccessKey: access, SecretKey: secretFile(t, dir, access, secret)}
	}
	closed := config.S3{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)), Region: v.Region, AccessKey: "x", SecretKey: secretFile(t, dir, "x", "y")}
	for _, c := range []struct {
		name   string
		s3     config.S3
		bucket string
		want   peerKeyVerdict
		answer string
	}{
		{"root key", s3c(v.AccessKey, v.SecretKey), "demo", keyWritable, "404 NoSuchKey"},
		{"read-only user", s3c("reader", "reader-secret"), "demo", keyReadOnly, "403 AccessDenied"},
		{"unknown key", s3c("nobody", "nobody-secret"), "demo", keyUnreachable, "InvalidAccessKeyId"},
		{"missing bucket", s3c(v.AccessKey, v.SecretKey), "later", keyUnreachable, "NoSuchBucket"},
		{"store down", closed, "demo", keyUnreachable, "connection refused"},
	} {
		got, answer := probePeerWrite(ctx, c.s3, c.bucket)
		if got != c.want || !strings.Contains(answer, c.answer) {
			t.Errorf("%s: verdict %v (%s), want %v (%s)", c.name, got, answer, c.want, c.answer)
		}
	}
	root := s3.New(s3.Options{Region: v.Region, BaseEndpoint: aws.String(v.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(v.AccessKey, v.SecretKey, "")})
	if _, err := root.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String(peerKeyProbeKey)}); err == nil {
		t.Fatal("the probe wrote its key")
	}
}

func TestClassifyPeerWriteOffline(t *testing.T) {
	if v, _ := classifyPeerWrite(fmt.Errorf("dial tcp: connection refused")); v != keyUnreachable {
		t.Fatalf("a network error is verdict %v, want not checked yet", v)
	}
}

// syncBuffer is a log sink read while the agent writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// peerKeyAgent builds site a (embedded broker, its own versitygw) whose
// one peer b is reached with peerS3, and calls New.
func peerKeyAgent(t *testing.T, peerS3 config.S3) (*Agent, *syncBuffer, error) {
	t.Helper()
	own := testenv.StartVersity(t)
	dir := t.TempDir()
	ownS3 := s3.New(s3.Options{Region: own.Region, BaseEndpoint: aws.String(own.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(own.AccessKey, own.SecretKey, "")})
	if _, err := ownS3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("demo")}); err != nil {
		t.Fatal(err)
	}
	signing, pubs := testSigning(t, dir, "a", "b")
	cfg := &config.Site{
		Site:     "a",
		S3:       config.S3{Endpoint: own.Endpoint, Region: own.Region, AccessKey: own.AccessKey, SecretKey: secretFile(t, dir, "own-secret", own.SecretKey)},
		Buckets:  []config.Bucket{{Name: "demo"}},
		StateDir: filepath.Join(dir, "state"),
		NATS: config.NATS{Embedded: &config.Embedded{Listen: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
			StoreDir: filepath.Join(dir, "nats")}},
		Peers:   []config.Peer{{Name: "b", S3: peerS3, PublicKeys: []string{pubs["b"]}}},
		Signing: signing["a"],
	}
	raw, _ := yamlOf(cfg)
	parsed, err := config.Parse(raw)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, raw)
	}
	logs := &syncBuffer{}
	a, err := New(context.Background(), parsed, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if a != nil {
		t.Cleanup(a.Close)
	}
	return a, logs, err
}

// An agent whose peer key can write refuses to start, naming the peer, the
// bucket and the fix; with peers[].s3.allow_writable_key it starts and
// warns (log, status, metric); with a read-only key it starts without a
// warning (the positive control).
func TestAgentRefusesWritablePeerKey(t *testing.T) {
	v := peerStore(t)
	dir := t.TempDir()
	rootKey := config.S3{Endpoint: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: secretFile(t, dir, "root", v.SecretKey)}

	start := time.Now()
	a, logs, err := peerKeyAgent(t, rootKey)
	if err == nil || a != nil {
		t.Fatalf("New accepted a peer key that can write (err %v); log:\n%s", err, logs)
	}
	for _, want := range []string{"peer S3 key can write", "peer b", "bucket demo", v.Endpoint, "access key " + v.AccessKey,
		"404 NoSuchKey", "read-only key", "s3:GetObject and s3:ListBucket", "peers[0].s3.allow_writable_key: true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), v.SecretKey) || strings.Contains(logs.String(), v.SecretKey) {
		t.Error("the refusal shows the secret key")
	}
	t.Logf("refused in %v: %v", time.Since(start).Round(time.Millisecond), err)

	allowed := rootKey
	allowed.AllowWritableKey = true
	a, logs, err = peerKeyAgent(t, allowed)
	if err != nil {
		t.Fatalf("with allow_writable_key: %v", err)
	}
	var warned, found bool
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "peers[0].s3.allow_writable_key: true") {
			warned = true
		}
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "peer S3 key can write") && strings.Contains(l, "peer=b") && strings.Contains(l, "bucket=demo") {
			found = true
		}
	}
	if !warned || !found {
		t.Errorf("allowed writable key: start warning %v, probe warning %v; log:\n%s", warned, found, logs)
	}
	if g := testutil.ToFloat64(a.M.PeerKeyWritable.WithLabelValues("b", "demo")); g != 1 {
		t.Errorf("s3mesh_peer_s3_key_writable = %v, want 1", g)
	}
	keys := a.peerKeys.list()
	if len(keys) != 1 || keys[0].Key != "writable" || !keys[0].AllowWritable || len(peerKeyWarnings(keys)) != 1 {
		t.Errorf("status peer_keys %+v, warnings %v", keys, peerKeyWarnings(keys))
	}

	reader := config.S3{Endpoint: v.Endpoint, Region: v.Region, AccessKey: "reader", SecretKey: secretFile(t, dir, "reader", "reader-secret")}
	a, logs, err = peerKeyAgent(t, reader)
	if err != nil {
		t.Fatalf("read-only key: %v", err)
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "S3 key") {
			t.Errorf("a read-only key was warned of: %s", l)
		}
	}
	if !strings.Contains(logs.String(), "peer S3 key is read-only") {
		t.Errorf("no line says the key is read-only:\n%s", logs)
	}
	if g := testutil.ToFloat64(a.M.PeerKeyWritable.WithLabelValues("b", "demo")); g != 0 {
		t.Errorf("s3mesh_peer_s3_key_writable = %v, want 0", g)
	}
	if keys := a.peerKeys.list(); len(keys) != 1 || keys[0].Key != "read-only" {
		t.Errorf("status peer_keys %+v", keys)
	}
}

// A peer store that does not answer at start holds nothing up: the agent
// starts, warns that it could not check, and asks again; once the store
// answers that the key can write, Run stops with the refusal.
func TestAgentPeerKeyCheckedOnceReachable(t *testing.T) {
	v := peerStore(t)
	dir := t.TempDir()
	v.Stop()
	rootKey := config.S3{Endpoint: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: secretFile(t, dir, "root", v.SecretKey)}
	a, logs, err := peerKeyAgent(t, rootKey)
	if err != nil {
		t.Fatalf("New with the peer store down: %v", err)
	}
	if !strings.Contains(logs.String(), "could not check yet whether the peer S3 key can write") {
		t.Errorf("no warning that the key could not be checked:\n%s", logs)
	}
	if keys := a.peerKeys.list(); len(keys) != 1 || keys[0].Key != "not checked yet" {
		t.Errorf("status peer_keys %+v", keys)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	time.Sleep(500 * time.Millisecond)
	v.Start()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "peer S3 key can write") || !strings.Contains(err.Error(), "peers[0].s3.allow_writable_key") {
			t.Fatalf("Run returned %v, want the refusal of the writable key", err)
		}
		t.Logf("Run stopped: %v", err)
	case <-ctx.Done():
		t.Fatalf("Run went on with a writable peer key; log:\n%s", logs)
	}
}
