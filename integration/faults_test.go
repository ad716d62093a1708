package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/verify"
)

// setHooks writes site's test hooks (see agent/hooks.go) and restarts its
// agent so they take effect ("" clears them).
func (e *env) setHooks(t *testing.T, site, hooks string) {
	t.Helper()
	path := filepath.Join(e.info.Dir, "hooks", site)
	if err := os.WriteFile(path, []byte(hooks), 0o644); err != nil {
		t.Fatal(err)
	}
	if e.agentRunning(site) {
		if out, err := e.lab.Ctl("kill", site); err != nil {
			t.Fatalf("kill %s: %v %s", site, err, out)
		}
	}
	if out, err := e.lab.Ctl("start", site); err != nil {
		t.Fatalf("start %s: %v %s", site, err, out)
	}
}

func (e *env) agentRunning(site string) bool {
	for _, s := range e.lab.Status().Sites {
		if s.Name == site {
			return s.Agent.Running
		}
	}
	return false
}

// waitAgentDown waits until site's agent process has exited (a crash hook fired).
func (e *env) waitAgentDown(t *testing.T, site string, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for e.agentRunning(site) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// siteStatus asks site's agent for its status (as `s3mesh status --json`).
func (e *env) siteStatus(t *testing.T, site string) agent.Status {
	t.Helper()
	out, err := exec.Command(testenv.S3meshBin(t), "status", "--json", "--lab", filepath.Join(e.info.Dir, "lab.json"), "--site", site).CombinedOutput()
	if err != nil {
		t.Fatalf("status %s: %v\n%s", site, err, out)
	}
	var st agent.Status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status %s: %v\n%s", site, err, out)
	}
	return st
}

func (e *env) verifyConverged(t *testing.T, buckets ...string) {
	t.Helper()
	var sites []verify.Site
	for _, n := range e.names {
		sites = append(sites, verify.Site{Name: n, S3: e.sites[n].s3})
	}
	deadline := time.Now().Add(converge)
	for {
		r, err := verify.Run(ctxT(t), sites, verify.Options{Buckets: buckets})
		if err == nil && r.Converged {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify: not converged after %v: err %v, differences %+v", converge, err, r.Differences)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (e *env) dlqTotal(t *testing.T) uint64 {
	var n uint64
	for _, s := range e.names {
		n += e.dlqCount(ctxT(t), t, s)
	}
	return n
}

func prefix(name string) string { return fmt.Sprintf("%s-%d/", name, time.Now().UnixNano()) }

// Every fault workload writes 30% of its keys at every site at once, while
// the sites are connected (and, under the partition, while cut off too), so
// conflicts are decided around every fault and checked by the checker.
// Contended keys are only PUT, never deleted: versitygw serialises any two
// PUTs of one key, conditional or not, but takes no lock for a DELETE, so a
// DELETE racing a PUT of the same key can undo either inside the store
// (TestStoreSerialisesPuts measures it; docs/operations.md, Failure modes). The
// partition's workload writes its contended keys carefully (conditional on
// the ETag last read, WorkloadOptions.Careful), the others plainly.

// Fault 2: agents SIGKILLed at random moments under load, including between
// the consumer's S3 write and its state update and between the producer's
// publish and its state update; restarted, everything converges with no
// echo and nothing applied twice in effect.
func TestFaultAgentCrashes(t *testing.T) { testFaultAgentCrashes(t, labEnv(t)) }

func testFaultAgentCrashes(t *testing.T, e *env) {
	e.setHooks(t, "b", "crash-after-apply-write=15\n")
	e.setHooks(t, "c", "crash-after-publish=10\n")
	t.Cleanup(func() { e.setHooks(t, "b", ""); e.setHooks(t, "c", "") })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *Workload)
	go func() {
		done <- e.RunWorkload(t, ctx, WorkloadOptions{Duration: 10 * time.Second, Keys: 40, ContendedFraction: 0.3, ContendedPutsOnly: true,
			DeleteFraction: 0.1, Prefix: prefix("crash")})
	}()
	for _, s := range []string{"b", "c"} {
		if !e.waitAgentDown(t, s, 30*time.Second) {
			cancel()
			<-done
			t.Fatalf("the crash hook of %s never fired", s)
		}
		e.setHooks(t, s, "") // restart without the hook, on the same state
	}
	// And a plain SIGKILL of a at an arbitrary moment.
	if out, err := e.lab.Ctl("kill", "a"); err != nil {
		t.Fatalf("kill a: %v %s", err, out)
	}
	if out, err := e.lab.Ctl("start", "a"); err != nil {
		t.Fatalf("start a: %v %s", err, out)
	}
	w := <-done
	cancel()
	e.checkAfterFault(t, w)
}

// Fault 3: a site's S3 stops under load and comes back within the retry
// budget: records wait and retry, nothing goes to the DLQ, all converge.
func TestFaultS3Outage(t *testing.T) {
	e := labEnv(t)
	dlq := e.dlqTotal(t)
	stop := e.ctlAt(2*time.Second, "stop-s3", "c")
	start := e.ctlAt(6*time.Second, "start-s3", "c")
	w := e.RunWorkload(t, context.Background(), WorkloadOptions{Duration: 9 * time.Second, Keys: 40, ContendedFraction: 0.3, ContendedPutsOnly: true,
		DeleteFraction: 0.05, Prefix: prefix("s3out")})
	e.mustHaveInjected(t, stop, start)
	e.quiesce(t, 2*time.Minute)
	if n := e.dlqTotal(t); n != dlq {
		t.Errorf("%d records went to a DLQ during a short S3 outage", n-dlq)
	}
	e.checkAfterFault(t, w)
}

// ctlAt runs a lab control verb after d (a fault injected at a moment of
// the workload) and reports its outcome on the returned channel.
func (e *env) ctlAt(d time.Duration, verb string, args ...string) <-chan error {
	done := make(chan error, 1)
	time.AfterFunc(d, func() {
		out, err := e.lab.Ctl(verb, args...)
		if err != nil {
			err = fmt.Errorf("%s %v: %w (%s)", verb, args, err, out)
		}
		done <- err
	})
	return done
}

// mustHaveInjected fails the test unless every scheduled fault ran and
// succeeded: a fault test that injected nothing proves nothing.
func (e *env) mustHaveInjected(t *testing.T, faults ...<-chan error) {
	t.Helper()
	for _, f := range faults {
		select {
		case err := <-f:
			if err != nil {
				t.Fatalf("fault not injected: %v", err)
			}
		case <-time.After(converge):
			t.Fatal("a scheduled fault never ran")
		}
	}
}

// checkAfterFault waits for quiescence, then checks no silent loss (I2, I4)
// and convergence (I1).
func (e *env) checkAfterFault(t *testing.T, w *Workload) {
	t.Helper()
	e.quiesce(t, 2*time.Minute)
	e.CheckNoSilentLoss(t, w)
	e.verifyConverged(t, bucket)
}

// Fault 4: a site's broker is killed with a backlog in flight and restarted.
func TestFaultBrokerRestart(t *testing.T) {
	e := labEnv(t)
	kill := e.ctlAt(2*time.Second, "kill-broker", "b")
	start := e.ctlAt(4*time.Second, "start-broker", "b")
	w := e.RunWorkload(t, context.Background(), WorkloadOptions{Duration: 8 * time.Second, Keys: 40, ContendedFraction: 0.3, ContendedPutsOnly: true,
		DeleteFraction: 0.05, Prefix: prefix("broker")})
	e.mustHaveInjected(t, kill, start)
	e.checkAfterFault(t, w)
}

// Fault 5: a site's event pipeline loses every event for a while; the
// scanner repairs what no event named.
func TestFaultLostEvents(t *testing.T) {
	e := labEnv(t)
	e.setHooks(t, "a", "drop-events=1\n")
	w := e.RunWorkload(t, context.Background(), WorkloadOptions{Duration: 6 * time.Second, Keys: 40, ContendedFraction: 0.3, ContendedPutsOnly: true,
		Prefix: prefix("lost")})
	e.setHooks(t, "a", "")
	e.checkAfterFault(t, w)
}

// Fault 6: one site's S3 answers slowly; the others keep replicating among
// themselves without waiting for it.
func TestFaultSlowPeer(t *testing.T) {
	e := labEnv(t)
	e.setHooks(t, "c", "s3-delay=400ms\n")
	defer e.setHooks(t, "c", "")
	p := prefix("slow")
	const n = 24
	for i := 0; i < n; i++ {
		e.putIn(t, "a", bucket, fmt.Sprintf("%s%02d", p, i), []byte(fmt.Sprint("slow ", i)))
	}
	count := func(site string) int {
		keys, err := e.listKeys(ctxT(t), site, bucket, p)
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	deadline := time.Now().Add(converge)
	for count("b") < n {
		if time.Now().After(deadline) {
			t.Fatalf("b got %d of %d objects while c was slow", count("b"), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := count("c"); got >= n {
		t.Fatalf("c (every S3 request +400 ms) had all %d objects as soon as b: the slowness did not apply", got)
	}
	e.quiesce(t, 2*time.Minute)
	e.verifyConverged(t, bucket)
}

// Fault 7: one site's clocks run five minutes ahead. Conflicts are still
// decided identically everywhere: under lww that site's concurrent writes
// win (its origin times are later), at every site.
func TestFaultClockSkew(t *testing.T) {
	e := labEnv(t)
	e.setHooks(t, "c", "clock-skew=5m\n")
	defer e.setHooks(t, "c", "")
	p := prefix("skew")
	before := e.seqs(t)
	e.cutAll(t, "cut")
	for _, s := range []string{"c", "a", "b"} { // c writes first but its clock is ahead
		e.putIn(t, s, bucket, p+"k", []byte("from "+s))
	}
	e.waitPublished(t, before, map[string]int{"a": 1, "b": 1, "c": 1})
	e.cutAll(t, "heal")
	e.quiesce(t, converge)
	got, ok := e.agreed(t, bucket, p+"k", converge)
	if !ok || string(got) != "from c" {
		t.Fatalf("sites hold %q, want c's version (its clock is ahead)", got)
	}
	for _, s := range e.names {
		log := e.conflictLog(t, s, bucket, p)
		if len(log) == 0 || log[len(log)-1].Winner.Origin != "c" {
			t.Errorf("site %s: conflict log %+v, want c as the winner", s, log)
		}
	}
}

// Delete safety: a site whose bucket was wiped on disk must never delete the
// other sites' data; its deletes are held until an operator confirms.
func TestDeleteSafetyWipedBucket(t *testing.T) {
	t.Parallel() // a lab of its own: see parallelTests
	e := newEnv(t, func(o *lab.Options) { o.Buckets = []string{bucket}; o.Conflicts = nil })
	p := "wipe/"
	for i := 0; i < 30; i++ {
		e.putIn(t, "a", bucket, fmt.Sprintf("%s%02d", p, i), []byte(fmt.Sprint("object ", i)))
	}
	e.quiesce(t, converge)
	e.verifyConverged(t, bucket)
	before := e.changesSeq(t, "c")
	dir := filepath.Join(e.info.Dir, "c", "s3", bucket, "wipe")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(converge)
	for {
		st := e.siteStatus(t, "c")
		held := false
		for _, b := range st.Buckets {
			held = held || (b.Bucket == bucket && b.Held != nil && b.Held.Missing == 30)
		}
		if held {
			if len(st.Warnings) == 0 || !strings.Contains(strings.Join(st.Warnings, " "), "deletes held") {
				t.Errorf("status warnings %q do not mention the held deletes", st.Warnings)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c never held its deletes: %+v", st.Buckets)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := e.changesSeq(t, "c"); got != before {
		t.Fatalf("c published %d records after its bucket was wiped", got-before)
	}
	for _, s := range []string{"a", "b"} {
		keys, err := e.listKeys(ctxT(t), s, bucket, p)
		if err != nil || len(keys) != 30 {
			t.Fatalf("site %s lost objects: %d left (%v)", s, len(keys), err)
		}
	}
}

// Lost delete events: keys deleted on disk at a without any event (a lossy
// pipeline) are more than 10% of the bucket, so the scan holds them; the
// operator confirms and the deletes reach every site.
func TestDeleteSafetyConfirm(t *testing.T) {
	t.Parallel() // a lab of its own: see parallelTests
	e := newEnv(t, func(o *lab.Options) { o.Buckets = []string{bucket}; o.Conflicts = nil })
	p := "confirm/"
	for i := 0; i < 20; i++ {
		e.putIn(t, "a", bucket, fmt.Sprintf("%s%02d", p, i), []byte(fmt.Sprint("object ", i)))
	}
	e.quiesce(t, converge)
	for i := 0; i < 4; i++ {
		if err := os.Remove(filepath.Join(e.info.Dir, "a", "s3", bucket, "confirm", fmt.Sprintf("%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// `scan now` finds them at once, holds the bucket and says so.
	out, err := exec.Command(testenv.S3meshBin(t), "scan", "now", "--bucket", bucket, "--lab", filepath.Join(e.info.Dir, "lab.json"), "--site", "a").CombinedOutput()
	if err != nil {
		t.Fatalf("scan now: %v %s", err, out)
	}
	var scanned struct {
		Listed, Missing int
		Held            bool
	}
	if err := json.Unmarshal(out, &scanned); err != nil || scanned.Listed < 16 || scanned.Missing != 4 || !scanned.Held {
		t.Fatalf("scan now after removing 4 of 20 objects: %+v (%v) from %s", scanned, err, out)
	}
	deadline := time.Now().Add(converge)
	for {
		out, err := exec.Command(testenv.S3meshBin(t), "scan", "confirm-deletes", "--bucket", bucket, "--lab", filepath.Join(e.info.Dir, "lab.json"), "--site", "a").CombinedOutput()
		if err == nil {
			break
		}
		if !strings.Contains(string(out), "not held") || time.Now().After(deadline) {
			t.Fatalf("confirm-deletes: %v %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := 0; i < 4; i++ {
		e.waitAbsent(t, fmt.Sprintf("%s%02d", p, i), converge)
	}
	e.quiesce(t, converge)
	e.verifyConverged(t, bucket)
	for _, b := range e.siteStatus(t, "a").Buckets {
		if b.Held != nil {
			t.Errorf("bucket %s still held after the confirmed deletes: %+v", b.Bucket, b.Held)
		}
	}
}
