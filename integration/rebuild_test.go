package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/rebuild"
	"github.com/s3mesh/s3mesh/s3io"
)

// rebuildRun is the outcome of one `s3mesh rebuild`.
type rebuildRun struct {
	code           int
	out            string
	keys, copied   int
	adopted        int
	stdout, stderr string
}

var rebuildSummary = regexp.MustCompile(`: (\d+) keys, (\d+) copied .*?, (\d+) adopted`)

// rebuild runs `s3mesh rebuild` for site with args (default: --lab) and
// extra environment.
func (e *env) rebuild(t *testing.T, site string, env []string, args ...string) rebuildRun {
	t.Helper()
	if len(args) == 0 {
		args = []string{"--lab", filepath.Join(e.info.Dir, "lab.json")}
	}
	cmd := exec.Command(testenv.S3meshBin(t), append([]string{"rebuild", "--site", site, "--workers", "4"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	r := rebuildRun{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if m := rebuildSummary.FindStringSubmatch(r.stdout); m != nil {
		r.keys, _ = strconv.Atoi(m[1])
		r.copied, _ = strconv.Atoi(m[2])
		r.adopted, _ = strconv.Atoi(m[3])
	}
	t.Logf("rebuild %s: exit %d in %v: %s", site, r.code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stdout))
	return r
}

func (e *env) mustCtl(t *testing.T, verb string, args ...string) string {
	t.Helper()
	out, err := e.lab.Ctl(verb, args...)
	if err != nil {
		t.Fatalf("lab ctl %s %v: %v %s", verb, args, err, out)
	}
	return out
}

// sideWriter writes new keys at the given sites until stopped and records
// each acknowledged write.
type sideWriter struct {
	mu    sync.Mutex
	acked map[string][]byte // key → body
	stop  context.CancelFunc
	done  sync.WaitGroup
}

func (e *env) startSideWriter(pfx string, sites ...string) *sideWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &sideWriter{acked: map[string][]byte{}, stop: cancel}
	for _, s := range sites {
		w.done.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("%s%s-%04d", pfx, s, i)
				body := []byte(fmt.Sprintf("%s written at %s during the rebuild", key, s))
				_, err := e.sites[s].s3.Put(ctx, s3io.PutInput{Bucket: bucket, Key: key, Body: bytes.NewReader(body), Size: int64(len(body))})
				if err == nil {
					w.mu.Lock()
					w.acked[key] = body
					w.mu.Unlock()
				}
				sleepCtx(ctx, 20*time.Millisecond)
			}
		})
	}
	return w
}

func (w *sideWriter) finish() map[string][]byte { w.stop(); w.done.Wait(); return w.acked }

// ownAcked returns, for each key site wrote in w, its last acknowledged PUT's
// body digest — only for keys no other site wrote (their final value is that).
func lastPutsOf(w *Workload, site string) map[string]string {
	last := map[string]string{}
	for _, op := range w.Acked() {
		if op.Site != site || w.Contended[op.Key] {
			continue
		}
		if op.Kind == OpPut {
			last[op.Key] = op.MD5
		} else {
			last[op.Key] = ""
		}
	}
	return last
}

// testRebuildWiped: b loses its disk (store and state, and with
// withBroker its JetStream store) while a and c keep writing; it is rebuilt
// and started; nothing acknowledged is lost, and b's later writes win.
func testRebuildWiped(t *testing.T, withBroker bool) {
	t.Parallel() // a lab of its own: see parallelTests
	e := newEnv(t, nil)
	pfx := prefix("rebuild")
	w := e.RunWorkload(t, context.Background(), WorkloadOptions{Duration: 3 * time.Second, Keys: 150, ContendedFraction: 0.2,
		ContendedPutsOnly: true, DeleteFraction: 0.1, Pause: 5 * time.Millisecond, Prefix: pfx})
	e.quiesce(t, 2*time.Minute)
	bLast := lastPutsOf(w, "b")

	side := e.startSideWriter(prefix("rebuild-during"), "a", "c")
	args := []string{"b"}
	if withBroker {
		args = append(args, "--broker")
	}
	if withBroker {
		// The conflict log is local to a site and goes with its JetStream
		// store; the loser copies it names live on in CHANGES_b, mirrored
		// at a and c. The checker needs the log to explain those copies.
		var lost [][]byte
		if err := broker.ReadStream(ctxT(t), e.sites["b"].js, broker.ConflictsStream("b"), time.Time{}, func(_ uint64, data []byte) error {
			lost = append(lost, data)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		e.lostConflicts = map[string][][]byte{"b": lost}
	}
	t.Log(e.mustCtl(t, "wipe", args...))
	// Started as it is, b's agent refuses: its own CHANGES_b (or, with the
	// broker's store lost too, its peers' mirrors of it) hold its records.
	for _, s := range e.info.Sites {
		if s.Name != "b" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, testenv.S3meshBin(t), "agent", "--config", s.Config).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), "s3mesh rebuild --site b") {
			t.Fatalf("agent of a wiped site: err %v, want a refusal naming `s3mesh rebuild`; output:\n%s", err, out)
		}
	}
	r := e.rebuild(t, "b", nil)
	if r.code != 0 {
		t.Fatalf("rebuild failed: %s", r.stderr)
	}
	if r.copied == 0 {
		t.Fatalf("rebuild copied nothing into the wiped site: %s", r.stdout)
	}
	// The agent of b is stopped: writes made at a and c now wait in b's mirrors.
	during := side.finish()
	rebuiltBy := time.Now()
	e.mustCtl(t, "start", "b")
	e.quiesce(t, 2*time.Minute)
	e.verifyConverged(t, bucket)
	// The rebuilt agent says when it was rebuilt (status, the dashboard);
	// a site that never was says nothing.
	if st := e.siteStatus(t, "b"); st.RebuiltAt == nil || st.RebuiltAt.After(rebuiltBy) || time.Since(*st.RebuiltAt) > 10*time.Minute {
		t.Fatalf("status of the rebuilt site b: rebuilt_at %v, want a time just before %v", st.RebuiltAt, rebuiltBy)
	}
	if st := e.siteStatus(t, "a"); st.RebuiltAt != nil {
		t.Fatalf("status of site a, never rebuilt: rebuilt_at %v", st.RebuiltAt)
	}
	if withBroker {
		// b's JetStream store lost its CHANGES_b: the checker reads b's
		// records from a's mirror of it (same sequences).
		e.recordsAt = map[string]string{"b": "a"}
	}
	e.CheckNoSilentLoss(t, w)
	// b's own writes from before the wipe, each the final value everywhere.
	ctx := ctxT(t)
	for key, md5 := range bLast {
		for _, s := range e.names {
			info, err := e.sites[s].s3.Head(ctx, bucket, key)
			if err != nil {
				t.Fatal(err)
			}
			if md5 == "" && info.Exists || md5 != "" && info.ETag != md5 {
				t.Errorf("site %s key %q: want b's last acked write %q, have %q (exists %v)", s, key, md5, info.ETag, info.Exists)
			}
		}
	}
	for key, body := range during {
		for _, s := range e.names {
			sum, _, info, err := e.read(ctx, s, key)
			if err != nil || !info.Exists || sum != sha256.Sum256(body) {
				t.Errorf("site %s: write at another site during the rebuild, %q, missing (err %v, exists %v)", s, key, err, info.Exists)
			}
		}
	}
	t.Logf("%d keys b wrote before the wipe, %d written at a and c during the rebuild: all in place everywhere", len(bLast), len(during))

	// b overwrites keys it wrote before the wipe and writes new ones: its
	// clocks must not have gone backwards.
	n := 0
	for key := range bLast {
		if n == 20 {
			break
		}
		n++
		o := object{body: []byte("b again after the rebuild: " + key)}
		e.put(t, "b", key, o)
		e.waitObject(t, key, o, converge)
	}
	for i := range 5 {
		o := object{body: []byte(fmt.Sprintf("new at b after the rebuild %d", i))}
		key := fmt.Sprintf("%sb-%d", prefix("rebuild-after"), i)
		e.put(t, "b", key, o)
		e.waitObject(t, key, o, converge)
	}
	e.quiesce(t, time.Minute)
	e.verifyConverged(t, bucket)
}

func TestRebuildWipedSite(t *testing.T) { testRebuildWiped(t, false) }

func TestRebuildWipedSiteAndBroker(t *testing.T) { testRebuildWiped(t, true) }

// Only the per-key state is lost: the agent refuses to start, rebuild (via
// --config, through the site's own broker and its leaf links) restores the
// state without copying, and b's next write reaches its peers.
func TestRebuildLostStateOnly(t *testing.T) {
	t.Parallel() // a lab of its own: see parallelTests
	e := newEnv(t, nil)
	pfx := prefix("rbstate")
	e.RunWorkload(t, context.Background(), WorkloadOptions{Duration: 2 * time.Second, Keys: 60, Prefix: pfx})
	e.quiesce(t, 2*time.Minute)
	var cfgPath string
	for _, s := range e.info.Sites {
		if s.Name == "b" {
			cfgPath = s.Config
		}
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	newerKey, olderKey := pfx+"k000", pfx+"k001"
	bOwn := object{body: []byte("b's own write, replicated before b's agent went down")}
	e.put(t, "b", olderKey, bOwn)
	e.waitObject(t, olderKey, bOwn, converge)
	e.mustCtl(t, "kill", "b")
	// Two objects at b that differ from the peers' version and are no
	// replica of it, written while b's agent is down: a newer local write
	// of a key of a's (it must win everywhere), and b's own older write of
	// one of its keys that a overwrote meanwhile (a's version must win, and
	// b's bytes are kept under a new key).
	overA := object{body: []byte("a overwrote b's key while b was down")}
	e.put(t, "a", olderKey, overA)
	newer := object{body: []byte("b wrote this while its agent was down")}
	e.put(t, "b", newerKey, newer)
	ents, _ := os.ReadDir(cfg.StateDir)
	for _, de := range ents {
		if err := os.RemoveAll(filepath.Join(cfg.StateDir, de.Name())); err != nil {
			t.Fatal(err)
		}
	}
	// The agent refuses to start on a lost state.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, testenv.S3meshBin(t), "agent", "--config", cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "rebuild") {
		t.Fatalf("agent on a lost state: err %v, want a refusal naming `s3mesh rebuild`; output:\n%s", err, out)
	}
	r := e.rebuild(t, "b", nil, "--config", cfgPath)
	if r.code != 0 {
		t.Fatalf("rebuild failed: %s", r.stderr)
	}
	if r.copied != 1 || r.adopted == 0 {
		t.Fatalf("store intact: want everything adopted but the one key a overwrote; got %s", r.stdout)
	}
	e.mustCtl(t, "start", "b")
	e.waitObject(t, newerKey, newer, converge)
	e.waitObject(t, olderKey, overA, converge)
	// The kept copy is a local write at b, published by b's agent once it
	// runs (its store event or scan), so it reaches a some time after the
	// two keys above: poll.
	kept, deadline := 0, time.Now().Add(converge)
	for {
		kept = 0
		if err := e.sites["a"].s3.List(ctxT(t), bucket, rebuild.KeptPrefix, 0, func(le s3io.ListEntry) error {
			if strings.HasPrefix(le.Key, rebuild.KeptPrefix+olderKey+"/b-") {
				kept++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if kept != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if kept != 1 {
		t.Fatalf("b's older write of %s must be kept under %s and replicate: found %d copies at a after %v", olderKey, rebuild.KeptPrefix, kept, converge)
	}
	for i := range 3 {
		o := object{body: []byte(fmt.Sprintf("b after its state was rebuilt %d", i))}
		key := fmt.Sprintf("%sk%03d", pfx, 1+3*i) // keys of b in the workload (i%3 == 1)
		e.put(t, "b", key, o)
		e.waitObject(t, key, o, converge)
	}
	e.quiesce(t, time.Minute)
	e.verifyConverged(t, bucket)
}

// The rebuild dies half-way; run again, it continues from its cursor and
// copies nothing a second time.
func TestRebuildResumesAfterCrash(t *testing.T) {
	t.Parallel() // a lab of its own: see parallelTests
	e := newEnv(t, nil)
	pfx := prefix("rbresume")
	ctx := ctxT(t)
	const n = 300
	for i := range n {
		body := []byte(fmt.Sprintf("object %d", i))
		site := e.names[i%3]
		if _, err := e.sites[site].s3.Put(ctx, s3io.PutInput{Bucket: bucket, Key: fmt.Sprintf("%s%04d", pfx, i), Body: bytes.NewReader(body), Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
	}
	e.quiesce(t, 2*time.Minute)
	e.verifyConverged(t, bucket)
	t.Log(e.mustCtl(t, "wipe", "b"))
	first := e.rebuild(t, "b", []string{"S3MESH_TEST_REBUILD_CRASH_AFTER=150"})
	if first.code != 3 {
		t.Fatalf("the first rebuild should have died by its hook (exit 3), got %d: %s", first.code, first.stderr)
	}
	// What the first run copied, before it died.
	copied := map[string]bool{}
	if err := e.sites["b"].s3.List(ctx, bucket, "", 0, func(le s3io.ListEntry) error { copied[le.Key] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(copied) < 150 {
		t.Fatalf("the first run copied %d objects, want at least 150", len(copied))
	}
	second := e.rebuild(t, "b", nil)
	if second.code != 0 {
		t.Fatalf("second rebuild: %s", second.stderr)
	}
	if !strings.Contains(second.stderr, "resuming") {
		t.Errorf("the second run did not resume from a cursor:\n%s", second.stderr)
	}
	// Nothing copied twice: the second run copies only what the first did
	// not. A PUT the first run had fully sent when it died can still land
	// after the listing above (the store finishes it); the second run finds
	// such an object present and adopts it, so up to one object per worker
	// may be in neither count. More than total means a second copy.
	total := 0
	if err := e.sites["a"].s3.List(ctx, bucket, "", 0, func(s3io.ListEntry) error { total++; return nil }); err != nil {
		t.Fatal(err)
	}
	const workers = 16 // rebuild's default
	if sum := len(copied) + second.copied; sum > total || sum < total-workers {
		t.Errorf("first run copied %d, second %d, but the bucket holds %d objects: something was copied twice or not at all", len(copied), second.copied, total)
	}
	e.mustCtl(t, "start", "b")
	e.quiesce(t, time.Minute)
	e.verifyConverged(t, bucket)
}
