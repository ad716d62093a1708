package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// TestIncarnationsAndLostState: every start is a new, higher incarnation,
// and a site whose per-key state was lost while its own stream holds its
// records refuses to start (naming s3mesh rebuild) instead of publishing
// clocks from zero, which its peers would judge older than what they hold.
func TestIncarnationsAndLostState(t *testing.T) {
	v := testenv.StartVersity(t)
	s3, err := s3io.New(s3io.Endpoint{URL: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: v.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s3.EnsureBucket(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte(v.SecretKey), 0o600)
	cfg := &config.Site{
		Site:     "a",
		S3:       config.S3{Endpoint: v.Endpoint, Region: "us-east-1", AccessKey: v.AccessKey, SecretKey: config.Secret{File: secret}},
		Buckets:  []config.Bucket{{Name: "demo"}},
		StateDir: filepath.Join(dir, "state"),
		NATS: config.NATS{Embedded: &config.Embedded{Listen: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
			StoreDir: filepath.Join(dir, "nats")}},
		Scan:    config.Scan{Interval: ptr(500 * time.Millisecond), MaxDeleteFraction: 1},
		Signing: func() config.Signing { s, _ := testSigning(t, dir, "a"); return s["a"] }(),
	}
	raw, _ := yamlOf(cfg)
	parsed, err := config.Parse(raw)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, raw)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := func() (*Agent, context.CancelFunc, chan error) {
		t.Helper()
		a, err := New(ctx, parsed, log)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(rctx) }()
		return a, cancel, done
	}
	stop := func(a *Agent, cancel context.CancelFunc, done chan error) {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		a.Close()
	}
	// lastCounter waits for the n-th record of CHANGES_a and returns its
	// counter for a.
	lastCounter := func(a *Agent, n uint64) uint64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			s, err := a.js.Stream(ctx, broker.ChangesStream("a"))
			if err == nil {
				if info, err := s.Info(ctx); err == nil && info.State.Msgs >= n {
					m, err := s.GetMsg(ctx, info.State.LastSeq)
					if err != nil {
						t.Fatal(err)
					}
					rec, err := schema.Decode(m.Data)
					if err != nil {
						t.Fatal(err)
					}
					return rec.Version.Clock["a"]
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("CHANGES_a never held %d records", n)
		return 0
	}
	put := func(body string) {
		if _, err := s3.Put(ctx, s3io.PutInput{Bucket: "demo", Key: "k", Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
	}
	incarnation := func(a *Agent) uint64 {
		m, ok, err := a.Store.SiteMeta()
		if err != nil || !ok || m.Site != "a" {
			t.Fatalf("site record %+v %v %v", m, ok, err)
		}
		return m.Incarnation
	}

	a, cancel, done := start()
	inc1 := incarnation(a)
	put("one")
	c1 := lastCounter(a, 1)
	if lifecycle.IncarnationOf(c1) != inc1 {
		t.Fatalf("counter %d is not of incarnation %d", c1, inc1)
	}
	stop(a, cancel, done)

	a, cancel, done = start()
	inc2 := incarnation(a)
	put("two")
	c2 := lastCounter(a, 2)
	if inc2 <= inc1 || c2 <= c1 || lifecycle.IncarnationOf(c2) != inc2 {
		t.Fatalf("second start: incarnation %d after %d, counter %d after %d", inc2, inc1, c2, c1)
	}
	stop(a, cancel, done)

	// The state directory is lost; the store and the stream are not.
	if err := os.RemoveAll(parsed.StateDir); err != nil {
		t.Fatal(err)
	}
	_, err = New(ctx, parsed, log)
	if !errors.Is(err, ErrStateLost) || !strings.Contains(err.Error(), "s3mesh rebuild --site a") {
		t.Fatalf("an agent whose state was lost must refuse to start and name the rebuild: %v", err)
	}

	// What rebuild leaves behind (a state marked rebuilt) starts, in an
	// incarnation above every counter in the stream.
	st, err := state.Open(parsed.StateDir, state.Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	// A rebuild that did not finish leaves a partial state: refused.
	if err := st.PutMeta(state.RebuildRunningMeta, map[string]string{"site": "a"}); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkRebuilt("a", time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := New(ctx, parsed, log); !errors.Is(err, ErrStateLost) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("an agent must refuse a state whose rebuild did not finish: %v", err)
	}
	if st, err = state.Open(parsed.StateDir, state.Options{Sync: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutMeta(state.RebuildRunningMeta, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	a, cancel, done = start()
	if inc3 := incarnation(a); inc3 <= inc2 {
		t.Fatalf("incarnation %d after a rebuild, want above %d", inc3, inc2)
	}
	put("three")
	if c3 := lastCounter(a, 3); c3 <= c2 {
		t.Fatalf("counter %d after the rebuild, want above %d", c3, c2)
	}
	stop(a, cancel, done)
}
