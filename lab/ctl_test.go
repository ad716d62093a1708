package lab

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/lab/proxy"
)

func TestCtlSocketProtocol(t *testing.T) {
	dir := t.TempDir()
	if _, err := CtlClient(dir, "status"); err == nil || !strings.Contains(err.Error(), "no lab running") {
		t.Fatalf("without a lab: %v", err)
	}
	type call struct {
		verb string
		args []string
	}
	calls := make(chan call, 10)
	h := func(verb string, args ...string) (string, error) {
		calls <- call{verb, args}
		if verb == "fail" {
			return "partial", errors.New("it failed")
		}
		return "did " + verb + " " + strings.Join(args, ","), nil
	}
	path := filepath.Join(dir, CtlSocket)
	os.WriteFile(path, nil, 0o600) // a stale socket file is replaced
	srv, err := serveCtl(path, h, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v (%v)", fi.Mode(), err)
	}
	out, err := CtlClient(dir, "cut", "a", "b")
	if err != nil || out != "did cut a,b" {
		t.Fatalf("cut = %q, %v", out, err)
	}
	if c := <-calls; c.verb != "cut" || !reflect.DeepEqual(c.args, []string{"a", "b"}) {
		t.Fatalf("handler got %+v", c)
	}
	out, err = CtlClient(dir, "fail")
	if err == nil || err.Error() != "it failed" || out != "partial" {
		t.Fatalf("fail = %q, %v", out, err)
	}
	<-calls
	srv.close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	// A stale socket (the lab was SIGKILLed) is reported as such.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := CtlClient(dir, "status"); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("stale socket: %v", err)
	}
}

func TestCtlSocketPathTooLong(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 120), CtlSocket)
	if _, err := serveCtl(long, nil, testLogger(t)); err == nil || !strings.Contains(err.Error(), "shorter --dir") {
		t.Fatalf("long path: %v", err)
	}
}

// fakeLab is a Lab whose processes are `sleep`s (always ready) and whose
// links are real proxies: the process table without brokers, versitygw or
// agents.
func fakeLab(t *testing.T, names ...string) *Lab {
	dir := t.TempDir()
	l := &Lab{
		o:   Options{Buckets: []string{"demo"}, ReadyTimeout: 10 * time.Second},
		dir: dir, log: testLogger(t), byName: map[string]*site{}, stopped: make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() { l.Stop() })
	ports, err := freePorts(4*len(names), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		s := newSite(dir, n, sitePorts{S3: ports[4*i], NATS: ports[4*i+1], Leaf: ports[4*i+2], HTTP: ports[4*i+3]})
		if err := os.MkdirAll(s.logDir(), 0o755); err != nil {
			t.Fatal(err)
		}
		mk := func(what string) *proc {
			return &proc{name: n + "/" + what, bin: "sleep", args: []string{"300"}, env: childEnv(), logPath: s.logPath(what), log: l.log}
		}
		s.broker, s.s3, s.agent = mk("broker"), mk("versitygw"), mk("agent")
		s.s3.onExit = func(*proc) { l.restartS3Later(s) }
		l.sites = append(l.sites, s)
		l.byName[n] = s
	}
	for i, x := range l.sites {
		for _, y := range l.sites[i+1:] {
			p, err := proxy.New("127.0.0.1:0", y.leafAddr(), l.log)
			if err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(p.Addr())
			k := &link{x: x, y: y, proxy: p}
			k.port = atoi(t, port)
			l.links = append(l.links, k)
		}
	}
	for _, s := range l.sites {
		for _, err := range []error{l.startBroker(l.ctx, s), l.startS3(l.ctx, s), l.startAgent(l.ctx, s)} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return l
}

func atoi(t *testing.T, s string) int {
	var n int
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func labStatus(t *testing.T, l *Lab, ctl func(string, ...string) (string, error)) Status {
	t.Helper()
	out, err := ctl("status")
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status is not JSON: %v\n%s", err, out)
	}
	return st
}

func TestCtlVerbsOnFakeProcessTable(t *testing.T) {
	l := fakeLab(t, "a", "b", "c")
	srv, err := serveCtl(filepath.Join(l.dir, CtlSocket), l.Ctl, l.log)
	if err != nil {
		t.Fatal(err)
	}
	l.ctl = srv
	ctl := func(verb string, args ...string) (string, error) { return CtlClient(l.dir, verb, args...) }
	must := func(verb string, args ...string) string {
		t.Helper()
		out, err := ctl(verb, args...)
		if err != nil {
			t.Fatalf("%s %v: %v", verb, args, err)
		}
		return out
	}

	st := labStatus(t, l, ctl)
	if len(st.Sites) != 3 || len(st.Links) != 3 {
		t.Fatalf("status = %+v", st)
	}
	for _, s := range st.Sites {
		if !s.Broker.Running || !s.Versitygw.Running || !s.Agent.Running || s.Agent.PID == 0 {
			t.Fatalf("site %s not all running: %+v", s.Name, s)
		}
	}

	// Links, either order of names.
	must("cut", "c", "a")
	must("delay", "a", "b", "150ms")
	st = labStatus(t, l, ctl)
	for _, k := range st.Links {
		wantCut := k.From == "a" && k.To == "c"
		if k.Cut != wantCut {
			t.Errorf("link %s-%s cut=%v", k.From, k.To, k.Cut)
		}
		if (k.From == "a" && k.To == "b") != (k.Delay == "150ms") {
			t.Errorf("link %s-%s delay=%q", k.From, k.To, k.Delay)
		}
	}
	must("heal", "a", "c")
	if lk, _ := l.link("a", "c"); lk.proxy.IsCut() {
		t.Error("heal did not heal")
	}

	// Agent kill and start.
	old := l.byName["b"].agent.pid()
	must("kill", "b")
	if alive(old) || l.byName["b"].agent.running() {
		t.Fatal("agent b still running")
	}
	if _, err := ctl("kill", "b"); err == nil {
		t.Error("killing a dead agent succeeded")
	}
	if in, err := ReadInfo(filepath.Join(l.dir, "lab.json")); err != nil || in.Sites[1].AgentPID != 0 {
		t.Errorf("lab.json after kill: %+v %v", in.Sites, err)
	}
	must("start", "b")
	nb := l.byName["b"].agent.pid()
	if nb == 0 || nb == old {
		t.Fatalf("agent b pid %d after start (was %d)", nb, old)
	}
	if in, _ := ReadInfo(filepath.Join(l.dir, "lab.json")); in.Sites[1].AgentPID != nb {
		t.Errorf("lab.json agent_pid = %d, want %d", in.Sites[1].AgentPID, nb)
	}
	if _, err := ctl("start", "b"); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("start of a running agent: %v", err)
	}

	// versitygw: stop-s3 is not undone by the supervisor; start-s3 is.
	c := l.byName["c"]
	must("stop-s3", "c")
	if c.s3.running() {
		t.Fatal("versitygw c still running")
	}
	must("start-s3", "c")
	if !c.s3.running() {
		t.Fatal("versitygw c not running")
	}
	// An unexpected exit is repaired by the supervisor.
	s3pid := c.s3.pid()
	if err := syscallKill(s3pid); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "versitygw c restarted", func() bool { p := c.s3.pid(); return p != 0 && p != s3pid })

	// Broker: kill, versitygw refuses to start without it, start-broker
	// restarts versitygw too.
	must("kill-broker", "c")
	if c.broker.running() {
		t.Fatal("broker c still running")
	}
	must("stop-s3", "c")
	if _, err := ctl("start-s3", "c"); err == nil || !strings.Contains(err.Error(), "start-broker c first") {
		t.Errorf("start-s3 without broker: %v", err)
	}
	out := must("start-broker", "c")
	if !c.broker.running() || c.s3.running() || !strings.Contains(out, "versitygw left stopped") {
		t.Errorf("start-broker with versitygw stopped: %q", out)
	}
	must("start-s3", "c")
	s3pid = c.s3.pid()
	must("kill-broker", "c")
	out = must("start-broker", "c")
	if p := c.s3.pid(); p == 0 || p == s3pid || !strings.Contains(out, "versitygw restarted") {
		t.Errorf("versitygw not restarted by start-broker: pid %d (was %d): %q", p, s3pid, out)
	}

	// Errors.
	for _, bad := range [][]string{{"nope"}, {"kill"}, {"kill", "z"}, {"cut", "a", "z"}, {"cut", "a", "a"}, {"delay", "a", "b", "soon"}} {
		if _, err := ctl(bad[0], bad[1:]...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
	if out := must("help"); !strings.Contains(out, "kill-broker X") {
		t.Errorf("help = %q", out)
	}

	// Stop leaves nothing behind.
	var pids []int
	for _, s := range labStatus(t, l, ctl).Sites {
		pids = append(pids, s.Broker.PID, s.Versitygw.PID, s.Agent.PID)
	}
	l.Stop()
	for _, p := range pids {
		if p == 0 || alive(p) {
			t.Errorf("pid %d alive after Stop (or was never running)", p)
		}
	}
	if _, err := l.Ctl("kill", "a"); err == nil {
		t.Error("a verb after Stop succeeded")
	}
}
