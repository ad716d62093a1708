package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
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
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/s3io"
)

const bucket = "demo"

// env is a running three-site lab with clients for every site.
type env struct {
	lab       *lab.Lab
	info      lab.Info
	names     []string
	sites     map[string]*siteClients
	conflicts map[string]config.Conflicts // the buckets' conflict policies (missing: the defaults)
	// recordsAt names, for a site whose JetStream store was lost, a peer
	// whose mirror of its CHANGES stream (same name, same sequences) the
	// checker reads instead.
	recordsAt map[string]string
	// lostConflicts holds, for a site whose JetStream store was lost, the
	// CONFLICTS entries it had logged before (read just before the loss):
	// the kept loser copies they name are in CHANGES, mirrored at peers.
	lostConflicts map[string][][]byte
}

type siteClients struct {
	name string
	s3   *s3io.Client
	raw  *s3.Client
	nc   *nats.Conn
	js   jetstream.JetStream
}

var (
	sharedOnce sync.Once
	shared     *env
	sharedErr  error
	sharedDir  string
)

// parallelTests: a test that starts a lab of its own (newEnv, or the
// MinIO/SeaweedFS lab) calls t.Parallel, so that go test runs two such labs
// at a time once the tests of the shared labs are done. Labs take their
// ports at random from outside the ephemeral range, so two of them do not
// meet, and the fault tests bound their waits generously.

// TestMain stops the shared lab after all tests.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, l := range []struct {
		e   *env
		dir string
	}{{shared, sharedDir}, {mixed, mixedDir}, {msw, mswDir}} {
		if l.e == nil {
			continue
		}
		l.e.close()
		// Every log line of every process of the lab, after every test: no
		// secret of the lab may appear in one.
		leaks, lines, err := logsLeakingSecrets(l.dir)
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "integration: checking the logs of %s for secrets: %v\n", l.dir, err)
			code = 1
		case len(leaks) > 0:
			fmt.Fprintf(os.Stderr, "integration: FAIL: lab log lines holding a secret: %v\n", leaks)
			code = 1
		default:
			fmt.Fprintf(os.Stderr, "integration: %d log lines of the lab in %s hold none of its secrets\n", lines, l.dir)
		}
	}
	for _, dir := range []string{sharedDir, mixedDir, mswDir} {
		if dir != "" && code == 0 && os.Getenv("S3MESH_KEEP_LABS") != "1" {
			os.RemoveAll(dir)
		} else if dir != "" {
			fmt.Fprintf(os.Stderr, "integration: lab kept for inspection in %s\n", dir)
		}
	}
	os.Exit(code)
}

// labEnv returns the lab shared by the tests of this package, starting it on
// first use.
func labEnv(t *testing.T) *env {
	t.Helper()
	s3meshBin := testenv.S3meshBin(t)
	versity := testenv.VersityBin(t)
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "s3mesh-lab-")
		if sharedErr != nil {
			return
		}
		shared, sharedErr = startEnv(sharedDir, s3meshBin, versity, nil)
	})
	if sharedErr != nil {
		t.Fatalf("start lab: %v", sharedErr)
	}
	return shared
}

// newEnv starts a lab of the test's own (mod adjusts the options), stopped
// when the test ends.
func newEnv(t *testing.T, mod func(*lab.Options)) *env {
	t.Helper()
	// Not t.TempDir: a failed test's lab (its logs above all) is kept for
	// inspection, as the shared labs are.
	dir, err := os.MkdirTemp("", "s3mesh-"+strings.ReplaceAll(t.Name(), "/", "-")+"-")
	if err != nil {
		t.Fatal(err)
	}
	e, err := startEnv(dir, testenv.S3meshBin(t), testenv.VersityBin(t), mod)
	if err != nil {
		t.Fatalf("start lab: %v (kept in %s)", err, dir)
	}
	t.Cleanup(func() {
		e.close()
		if t.Failed() {
			t.Logf("lab kept for inspection in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return e
}

func startEnv(dir, s3meshBin, versity string, mod func(*lab.Options)) (*env, error) {
	o := lab.Options{
		Dir: dir, Sites: 3, Buckets: []string{bucket, "prio", "manual", "delwins", "putwins"}, S3meshBin: s3meshBin, VersityBin: versity,
		ScanInterval: 3 * time.Second,
		Conflicts: map[string]config.Conflicts{
			"prio":    {Policy: "site-priority", Priority: []string{"b", "a", "c"}},
			"manual":  {Policy: "manual"},
			"delwins": {Deletes: "delete-wins"},
			"putwins": {Deletes: "put-wins"},
		},
		Log:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		AgentExtraEnv: []string{"S3MESH_TEST_HOOKS_DIR=" + filepath.Join(dir, "hooks")},
	}
	if err := os.MkdirAll(filepath.Join(dir, "hooks"), 0o755); err != nil {
		return nil, err
	}
	if mod != nil {
		mod(&o)
	}
	// The lab lives as long as its context: the whole test (process).
	l, err := lab.Start(context.Background(), o)
	if err != nil {
		return nil, err
	}
	e := &env{lab: l, info: l.Info(), sites: map[string]*siteClients{}, conflicts: o.Conflicts}
	for _, s := range e.info.Sites {
		c, err := s3io.New(s3io.Endpoint{URL: s.S3Endpoint, Region: s.Region, AccessKey: s.AccessKey, SecretKey: s.SecretKey, PathStyle: true})
		if err != nil {
			return nil, err
		}
		raw := s3.New(s3.Options{
			BaseEndpoint: aws.String(s.S3Endpoint), Region: s.Region, UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		})
		nc, err := s.ConnectNATS(nats.MaxReconnects(-1))
		if err != nil {
			return nil, err
		}
		js, _ := jetstream.New(nc)
		e.names = append(e.names, s.Name)
		e.sites[s.Name] = &siteClients{name: s.Name, s3: c, raw: raw, nc: nc, js: js}
	}
	return e, nil
}

func (e *env) close() {
	for _, s := range e.sites {
		s.nc.Close()
	}
	_ = e.lab.Stop()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// object is what a test expects a key to hold.
type object struct {
	body  []byte
	attrs s3io.Attrs
}

func (e *env) put(t *testing.T, site, key string, o object) {
	t.Helper()
	_, err := e.sites[site].s3.Put(ctxT(t), s3io.PutInput{Bucket: bucket, Key: key, Body: bytes.NewReader(o.body), Size: int64(len(o.body)), Attrs: o.attrs, PartSize: 5 << 20})
	if err != nil {
		t.Fatalf("put %q at %s: %v", key, site, err)
	}
}

func (e *env) del(t *testing.T, site, key string) {
	t.Helper()
	if err := e.sites[site].s3.Delete(ctxT(t), bucket, key, ""); err != nil {
		t.Fatalf("delete %q at %s: %v", key, site, err)
	}
}

// read returns the object's bytes digest and info at site (Exists false if absent).
func (e *env) read(ctx context.Context, site, key string) ([32]byte, int64, s3io.ObjectInfo, error) {
	rc, info, err := e.sites[site].s3.Get(ctx, bucket, key, "")
	if s3io.Classify(err) == s3io.NotFound {
		return [32]byte{}, 0, s3io.ObjectInfo{}, nil
	}
	if err != nil {
		return [32]byte{}, 0, info, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	info.Exists = true
	return sum, n, info, err
}

// userMeta drops s3mesh's own metadata.
func userMeta(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if !strings.HasPrefix(k, "s3mesh-") {
			out[k] = v
		}
	}
	return out
}

func sameAttrs(want, got s3io.Attrs) string {
	if want.ContentType == "" {
		want.ContentType = "application/octet-stream"
	}
	var diffs []string
	check := func(name, w, g string) {
		if w != g {
			diffs = append(diffs, fmt.Sprintf("%s %q != %q", name, g, w))
		}
	}
	check("content-type", want.ContentType, got.ContentType)
	check("cache-control", want.CacheControl, got.CacheControl)
	check("content-encoding", want.ContentEncoding, got.ContentEncoding)
	check("content-disposition", want.ContentDisposition, got.ContentDisposition)
	wm, gm := userMeta(want.Meta), userMeta(got.Meta)
	if fmt.Sprint(wm) != fmt.Sprint(gm) {
		diffs = append(diffs, fmt.Sprintf("meta %v != %v", gm, wm))
	}
	return strings.Join(diffs, "; ")
}

// waitObject polls every site until it holds o at key.
func (e *env) waitObject(t *testing.T, key string, o object, timeout time.Duration) {
	t.Helper()
	want := sha256.Sum256(o.body)
	deadline := time.Now().Add(timeout)
	for _, site := range e.names {
		var last string
		for {
			sum, n, info, err := e.read(ctxT(t), site, key)
			switch {
			case err != nil:
				last = err.Error()
			case !info.Exists:
				last = "absent"
			case sum != want:
				last = fmt.Sprintf("different bytes (%d bytes, want %d)", n, len(o.body))
			default:
				if d := sameAttrs(o.attrs, info.Attrs); d != "" {
					last = "attrs: " + d
				} else {
					last = ""
				}
			}
			if last == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("site %s key %q: %s after %v (in flight: %s)", site, key, last, timeout, e.busy(ctxT(t)))
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
}

// waitAbsent polls every site until key is gone.
func (e *env) waitAbsent(t *testing.T, key string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, site := range e.names {
		for {
			info, err := e.sites[site].s3.Head(ctxT(t), bucket, key)
			if err == nil && !info.Exists {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("site %s key %q still present after %v (err %v)", site, key, timeout, err)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
}

// changesSeq returns the last sequence of CHANGES_<site> at its own broker.
func (e *env) changesSeq(t *testing.T, site string) uint64 {
	t.Helper()
	s, err := e.sites[site].js.Stream(ctxT(t), broker.ChangesStream(site))
	if err != nil {
		t.Fatalf("stream CHANGES_%s: %v", site, err)
	}
	return s.CachedInfo().State.LastSeq
}

// quiesce waits until nothing is in flight anywhere: no unhandled events,
// every mirror caught up with its origin, every apply consumer drained. It
// must hold on two polls 500 ms apart (the scanner may still find work).
func (e *env) quiesce(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	stable := 0
	var why string
	for stable < 2 {
		why = e.busy(ctxT(t))
		if why == "" {
			stable++
		} else {
			stable = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("not quiescent after %v: %s", timeout, why)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (e *env) busy(ctx context.Context) string {
	origin := map[string]uint64{}
	for _, n := range e.names {
		s, err := e.sites[n].js.Stream(ctx, broker.ChangesStream(n))
		if err != nil {
			return err.Error()
		}
		origin[n] = s.CachedInfo().State.LastSeq
	}
	for _, n := range e.names {
		js := e.sites[n].js
		ev, err := js.Stream(ctx, broker.EventsStream(n))
		if err != nil {
			return err.Error()
		}
		if m := ev.CachedInfo().State.Msgs; m > 0 {
			return fmt.Sprintf("%s: %d events not handled", n, m)
		}
		for _, p := range e.names {
			if p == n {
				continue
			}
			s, err := js.Stream(ctx, broker.ChangesStream(p))
			if err != nil {
				return err.Error()
			}
			if last := s.CachedInfo().State.LastSeq; last != origin[p] {
				return fmt.Sprintf("%s: mirror of %s at %d, origin at %d", n, p, last, origin[p])
			}
			c, err := js.Consumer(ctx, broker.ChangesStream(p), consumer.ApplyConsumer(n))
			if err != nil {
				return fmt.Sprintf("%s: apply consumer on %s: %v", n, p, err)
			}
			ci := c.CachedInfo()
			if ci.NumPending > 0 || ci.NumAckPending > 0 {
				return fmt.Sprintf("%s: applying %s: %d pending, %d unacked", n, p, ci.NumPending, ci.NumAckPending)
			}
		}
	}
	return ""
}
