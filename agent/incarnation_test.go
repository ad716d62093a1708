package agent

import (
	"context"
	"crypto/ed25519"
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

// TestIncarnationEvidenceIsVerified: the incarnation a start-up check reads
// from a record of this site (its own stream's last, or a peer's answer)
// counts only if the record verifies with this site's keys — signing.key
// or signing.former_public_keys — and its incarnation has started by now.
// A peer that forged a record "of a" with a huge counter (which would make
// a refuse every write of its own) is refused, naming the field.
func TestIncarnationEvidenceIsVerified(t *testing.T) {
	dir := t.TempDir()
	signing, pubs := testSigning(t, dir, "a", "old", "b")
	cfg := &config.Site{Site: "a", Signing: signing["a"]}
	a := &Agent{cfg: cfg}
	keyOf := func(name string) ed25519.PrivateKey {
		c := &config.Site{Signing: signing[name]}
		k, err := c.SigningKey()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	rec := func(inc uint64) *schema.Record {
		c := schema.Clock{"a": lifecycle.IncarnationFloor(inc) + 1}
		return &schema.Record{Schema: schema.RecordSchema, Bucket: "demo", Key: "k", Inline: true, MadeAt: now.UnixMilli(),
			Version: schema.Version{ID: schema.VersionID("a", "demo", "k", c["a"]), Origin: "a", Clock: c, TS: now.UnixMilli()}}
	}
	signed := func(r *schema.Record, key string) []byte {
		b, err := r.Sign(keyOf(key))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	today := uint64(now.Unix())
	unsigned, _ := rec(today).Encode()
	cases := []struct {
		name string
		data []byte
		want uint64 // 0: refused
	}{
		{"own key", signed(rec(today), "a"), today},
		{"former key, not listed", signed(rec(today-100), "old"), 0},
		{"another site's key", signed(rec(today), "b"), 0},
		{"unsigned", unsigned, 0},
		{"own key, incarnation 2^31 (a forged future)", signed(rec(1<<31), "a"), 0},
		{"own key, at the headroom", signed(rec(today+schema.IncarnationHeadroom-5), "a"), today + schema.IncarnationHeadroom - 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.incarnationOf(tc.data, now)
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("accepted: incarnation %d", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("incarnationOf = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
	// With records.accept_unsigned on (an upgrade from unsigned records), an
	// unsigned schema-1 record "of a" is applied as a peer's record, but is
	// still no evidence of a's incarnation: anyone can make one.
	cfg.Records.AcceptUnsigned = true
	forged := rec(today + 5) // plausible: within the clock's headroom
	forged.Schema = schema.UnsignedSchema
	bare, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (schema.Keyring{AcceptUnsigned: true}).Open(bare, "a"); err != nil {
		t.Fatalf("positive control: the unsigned record does not open with accept_unsigned: %v", err)
	}
	if got, err := a.incarnationOf(bare, now); err == nil {
		t.Fatalf("an unsigned record with accept_unsigned on gave incarnation %d", got)
	}
	cfg.Records.AcceptUnsigned = false
	// Listed as a former key, the old seed's record counts.
	cfg.Signing.FormerPublicKeys = []string{pubs["old"]}
	if got, err := a.incarnationOf(signed(rec(today-100), "old"), now); err != nil || got != today-100 {
		t.Fatalf("a record signed with a former key: %d, %v", got, err)
	}
}
