package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/internal/versityiam"
	"github.com/s3mesh/s3mesh/s3io"
)

// TestThreeAgentsInProcess runs three agents with embedded brokers in one
// process against three real versitygw servers and checks that a PUT, an
// overwrite and a DELETE at one site reach the others. Each site fetches
// from its peers with read-only keys of its own (a versitygw user per
// peer, granted GetObject and ListBucket by bucket policy), as in the lab.
func TestThreeAgentsInProcess(t *testing.T) {
	sites := []string{"a", "b", "c"}
	vgw := map[string]*testenv.Versity{}
	clients := map[string]*s3io.Client{}
	// readKey is the read-only key of site s at peer p's store.
	readKey := func(s, p string) (string, string) {
		return "read-" + s + "-at-" + p, "read-secret-of-" + s + "-at-" + p
	}
	for _, s := range sites {
		v := testenv.StartVersity(t, "--iam-dir", t.TempDir())
		vgw[s] = v
		c, err := s3io.New(s3io.Endpoint{URL: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: v.SecretKey, PathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		clients[s] = c
		if err := c.EnsureBucket(context.Background(), "demo"); err != nil {
			t.Fatal(err)
		}
		var readers []versityiam.Reader
		for _, p := range sites {
			if p != s {
				ak, sk := readKey(p, s)
				readers = append(readers, versityiam.Reader{Access: ak, Secret: sk})
			}
		}
		adm := versityiam.Admin{Endpoint: v.Endpoint, AccessKey: v.AccessKey, SecretKey: v.SecretKey}
		if err := adm.GrantRead(context.Background(), []string{"demo"}, readers); err != nil {
			t.Fatal(err)
		}
	}
	leaf := map[string]int{}
	for _, s := range sites {
		leaf[s] = testenv.FreePort(t)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, len(sites))
	signing, pubs := testSigning(t, dir, sites...)
	for _, s := range sites {
		secretFile := filepath.Join(dir, s+"-secret")
		os.WriteFile(secretFile, []byte(vgw[s].SecretKey), 0o600)
		cfg := &config.Site{
			Site:     s,
			S3:       config.S3{Endpoint: vgw[s].Endpoint, Region: "us-east-1", AccessKey: vgw[s].AccessKey, SecretKey: config.Secret{File: secretFile}},
			Buckets:  []config.Bucket{{Name: "demo"}},
			StateDir: filepath.Join(dir, s, "state"),
			NATS: config.NATS{Embedded: &config.Embedded{
				Listen: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), StoreDir: filepath.Join(dir, s, "nats"),
				LeafListen: fmt.Sprintf("127.0.0.1:%d", leaf[s]),
			}},
			Scan:    config.Scan{Interval: ptr(2 * time.Second), MaxDeleteFraction: 1}, // no event source here: deletes come from the scanner
			Signing: signing[s],
		}
		for _, p := range sites {
			if p == s {
				continue
			}
			ak, sk := readKey(s, p)
			ps := filepath.Join(dir, s+"-read-"+p+"-secret")
			os.WriteFile(ps, []byte(sk), 0o600)
			cfg.Peers = append(cfg.Peers, config.Peer{Name: p, S3: config.S3{Endpoint: vgw[p].Endpoint, Region: "us-east-1", AccessKey: ak, SecretKey: config.Secret{File: ps}},
				PublicKeys: []string{pubs[p]}})
			if s < p {
				cfg.NATS.Embedded.LeafRemotes = append(cfg.NATS.Embedded.LeafRemotes, fmt.Sprintf("nats-leaf://127.0.0.1:%d", leaf[p]))
			}
		}
		raw, _ := yamlOf(cfg)
		parsed, err := config.Parse(raw)
		if err != nil {
			t.Fatalf("site %s config: %v\n%s", s, err, raw)
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("site", s)
		a, err := New(ctx, parsed, log)
		if err != nil {
			t.Fatalf("site %s: %v", s, err)
		}
		t.Cleanup(a.Close)
		go func() { done <- a.Run(ctx) }()
	}
	put := func(site, key, body string) {
		t.Helper()
		_, err := clients[site].Put(ctx, s3io.PutInput{Bucket: "demo", Key: key, Body: strings.NewReader(body), Size: int64(len(body)),
			Attrs: s3io.Attrs{ContentType: "text/plain", Meta: map[string]string{"color": "blue"}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitBody := func(site, key, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var last string
		for time.Now().Before(deadline) {
			rc, info, err := clients[site].Get(ctx, "demo", key, "")
			if err == nil {
				b, _ := io.ReadAll(rc)
				rc.Close()
				last = string(b)
				if bytes.Equal(b, []byte(want)) {
					if info.ContentType != "text/plain" || info.Meta["color"] != "blue" {
						t.Fatalf("site %s key %q: attrs %+v", site, key, info.Attrs)
					}
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("site %s key %q: want %q, last saw %q", site, key, want, last)
	}
	waitGone := func(site, key string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			info, err := clients[site].Head(ctx, "demo", key)
			if err == nil && !info.Exists {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("site %s key %q still exists", site, key)
	}
	put("a", "hello", "from a")
	put("b", "dir/ünï code+%", "from b")
	for _, s := range sites {
		waitBody(s, "hello", "from a")
		waitBody(s, "dir/ünï code+%", "from b")
	}
	put("c", "hello", "from c, later")
	for _, s := range sites {
		waitBody(s, "hello", "from c, later")
	}
	if err := clients["b"].Delete(ctx, "demo", "hello", ""); err != nil {
		t.Fatal(err)
	}
	for _, s := range sites {
		waitGone(s, "hello")
	}
	cancel()
	for range sites {
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}
}
