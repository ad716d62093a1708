//go:build soak

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// soakFault is one fault of the soak rotation: do it, hold it, undo it.
type soakFault struct {
	name     string
	do, undo string // lab.Ctl verbs
	link     bool   // takes two sites (a link) instead of one
}

var soakFaults = []soakFault{
	{name: "partition", do: "cut", undo: "heal", link: true},
	{name: "agent crash", do: "kill", undo: "start"},
	{name: "S3 outage", do: "stop-s3", undo: "start-s3"},
	{name: "broker crash", do: "kill-broker", undo: "start-broker"},
}

// TestSoak runs the mixed workload on a lab of its own for $S3MESH_SOAK
// (make soak; SOAK=10m make soak for longer) while injecting a fault every
// ~20 s in rotation — a cut link, a SIGKILLed agent, a stopped versitygw, a
// SIGKILLed broker — each held for a few seconds and then repaired. Then
// the lab must quiesce and pass the no-silent-loss checker.
func TestSoak(t *testing.T) {
	spec := os.Getenv("S3MESH_SOAK")
	if spec == "" {
		spec = "5m"
	}
	dur, err := time.ParseDuration(spec)
	if err != nil || dur <= 0 {
		t.Fatalf("S3MESH_SOAK=%q: want a duration such as 5m", spec)
	}
	e := newEnv(t, nil)
	seed := uint64(time.Now().UnixNano())
	t.Cleanup(func() { // runs before the lab stops and its directory goes
		if t.Failed() {
			e.keepLogs(t, filepath.Join(os.TempDir(), fmt.Sprintf("s3mesh-soak-%d", seed)))
		}
	})
	t.Logf("soak %v, seed %d", dur, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	injDone := make(chan struct{})
	go func() {
		defer close(injDone)
		e.injectFaults(t, ctx, rng)
	}()
	w := e.RunWorkload(t, ctx, WorkloadOptions{
		Keys: 40, ContendedFraction: 0.3, DeleteFraction: 0.15, Writers: 2, Pause: 25 * time.Millisecond,
		Prefix: fmt.Sprintf("soak-%d/", seed), Seed: seed,
	})
	<-injDone
	e.quiesce(t, 10*time.Minute)
	e.CheckNoSilentLoss(t, w)
}

// injectFaults runs the fault rotation until ctx ends; every fault it did
// is undone before it returns.
func (e *env) injectFaults(t *testing.T, ctx context.Context, rng *rand.Rand) {
	const period = 20 * time.Second
	for i := 0; ; i++ {
		// Quiet part of the period first, so the lab settles between faults.
		sleepCtx(ctx, period/2)
		if ctx.Err() != nil {
			return
		}
		f := soakFaults[i%len(soakFaults)]
		args := []string{e.names[rng.IntN(len(e.names))]}
		if f.link {
			x := rng.IntN(len(e.names))
			y := (x + 1 + rng.IntN(len(e.names)-1)) % len(e.names)
			args = []string{e.names[min(x, y)], e.names[max(x, y)]}
		}
		hold := 3*time.Second + time.Duration(rng.IntN(5000))*time.Millisecond
		start := time.Now()
		out, err := e.lab.Ctl(f.do, args...)
		if err != nil {
			t.Errorf("fault %s: %s %v: %v %s", f.name, f.do, args, err, out)
			continue
		}
		// The hold is not cut short by the end of the workload: the undo
		// always runs.
		time.Sleep(hold)
		out2, err := e.lab.Ctl(f.undo, args...)
		if err != nil {
			t.Errorf("fault %s: %s %v: %v %s", f.name, f.undo, args, err, out2)
		}
		t.Logf("fault %d %-12s %v held %v: %s / %s", i, f.name, args, time.Since(start).Round(100*time.Millisecond), out, out2)
	}
}

// keepLogs copies every site's logs to dir, for a failed soak.
func (e *env) keepLogs(t *testing.T, dir string) {
	for _, s := range e.info.Sites {
		dst := filepath.Join(dir, s.Name)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Logf("keep logs: %v", err)
			return
		}
		if out, err := exec.Command("cp", "-r", s.LogDir+"/.", dst).CombinedOutput(); err != nil {
			t.Logf("keep logs of %s: %v %s", s.Name, err, out)
		}
	}
	t.Logf("lab logs kept in %s", dir)
}
