package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// alive reports whether pid names a live process (zombies count as dead:
// in a container nobody may reap a killed grandchild).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newTestProc(t *testing.T, name string, args ...string) *proc {
	p := &proc{
		name: name, bin: args[0], args: args[1:], env: childEnv(),
		logPath: filepath.Join(t.TempDir(), name+".log"), log: testLogger(t),
	}
	t.Cleanup(func() { p.kill() })
	return p
}

func TestProcStartKillRestart(t *testing.T) {
	var unexpected atomic.Int32
	p := newTestProc(t, "sleeper", "sleep", "300")
	p.onExit = func(*proc) { unexpected.Add(1) }
	if p.running() || p.kill() {
		t.Fatal("a never-started proc is running")
	}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	pid := p.pid()
	if pid == 0 || !alive(pid) {
		t.Fatalf("pid %d not alive", pid)
	}
	if err := p.start(); !errors.Is(err, errRunning) {
		t.Fatalf("second start: %v, want errRunning", err)
	}
	if !p.kill() {
		t.Fatal("kill of a running proc reported nothing running")
	}
	if alive(pid) || p.running() {
		t.Fatalf("pid %d still alive after kill", pid)
	}
	if st := p.status(); st.Running || st.Starts != 1 || !strings.Contains(st.LastExit, "killed") {
		t.Fatalf("status after kill = %+v", st)
	}
	// Restart on the same definition.
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	if p.pid() == 0 || p.pid() == pid && alive(pid) {
		t.Fatal("restart did not start a new process")
	}
	// A graceful stop: sleep dies of SIGTERM.
	if !p.stop(5 * time.Second) {
		t.Fatal("stop reported nothing running")
	}
	if st := p.status(); st.Starts != 2 || !strings.Contains(st.LastExit, "terminated") {
		t.Fatalf("status after stop = %+v", st)
	}
	if n := unexpected.Load(); n != 0 {
		t.Fatalf("onExit called %d times for requested exits", n)
	}
	log, _ := os.ReadFile(p.logPath)
	if c := strings.Count(string(log), "lab: starting sleep 300"); c != 2 {
		t.Fatalf("log has %d start lines, want 2 (appended):\n%s", c, log)
	}
}

func TestProcUnexpectedExitCallsOnExit(t *testing.T) {
	exited := make(chan *proc, 1)
	p := newTestProc(t, "crasher", "sh", "-c", "echo boom >&2; exit 3")
	p.onExit = func(p *proc) { exited <- p }
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("onExit not called")
	}
	if st := p.status(); st.Running || st.LastExit != "exit status 3" {
		t.Fatalf("status = %+v", st)
	}
	if log, _ := os.ReadFile(p.logPath); !strings.Contains(string(log), "boom") {
		t.Fatalf("stderr not in log:\n%s", log)
	}
}

// TestProcGroupKill: a child's own children die with it (the group is
// killed), even when the child ignores SIGTERM.
func TestProcGroupKill(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild")
	p := newTestProc(t, "parent", "sh", "-c", `trap "" TERM; sleep 300 & echo $! > `+pidFile+`; wait`)
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	var gpid int
	eventually(t, 10*time.Second, "grandchild pid", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		gpid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	pid := p.pid()
	start := time.Now()
	p.stop(300 * time.Millisecond) // SIGTERM ignored by sh; sleep dies of it
	if time.Since(start) > 5*time.Second {
		t.Fatalf("stop took %v", time.Since(start))
	}
	eventually(t, 5*time.Second, "parent and grandchild gone", func() bool { return !alive(pid) && !alive(gpid) })
}

func TestProcWaitReady(t *testing.T) {
	p := newTestProc(t, "short", "sh", "-c", "echo not ready >&2; sleep 0.2; exit 1")
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	never := func(context.Context) error { return errors.New("nope") }
	start := time.Now()
	err := p.waitReady(context.Background(), "serving", time.Minute, never)
	if err == nil || time.Since(start) > 30*time.Second {
		t.Fatalf("waitReady = %v after %v, want an early error", err, time.Since(start))
	}
	for _, want := range []string{"short exited (exit status 1) before serving", p.logPath, "not ready"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	q := newTestProc(t, "slow", "sleep", "300")
	if err := q.start(); err != nil {
		t.Fatal(err)
	}
	err = q.waitReady(context.Background(), "serving", 200*time.Millisecond, never)
	if err == nil || !strings.Contains(err.Error(), "not serving after 200ms (last error: nope)") {
		t.Fatalf("timeout error = %v", err)
	}
	var calls int
	if err := q.waitReady(context.Background(), "serving", time.Minute, func(context.Context) error {
		if calls++; calls < 3 {
			return errors.New("later")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Fatalf("waitReady = %v after %d calls", err, calls)
	}
}

func TestChildEnvDropsCredentials(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "leak")
	t.Setenv("ROOT_SECRET_KEY", "leak")
	t.Setenv("VGW_PORT", "1")
	env := childEnv("X=1")
	for _, kv := range env {
		if strings.Contains(kv, "leak") || strings.HasPrefix(kv, "VGW_") {
			t.Errorf("child env has %s", kv)
		}
	}
	if env[len(env)-1] != "X=1" {
		t.Error("extra env missing")
	}
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// TestRedactWriter: a secret is replaced even when split across writes,
// and a last line without newline is written at flush.
func TestRedactWriter(t *testing.T) {
	var b strings.Builder
	r := &redactWriter{w: &b, secrets: []string{"s3cr3t-value"}}
	for _, chunk := range []string{"url: nats://u:s3cr", "3t-value@host\nnext ", "line s3cr3t-value"} {
		if _, err := r.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	r.flush()
	if got, want := b.String(), "url: nats://u:[redacted]@host\nnext line [redacted]"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
