package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/internal/testenv"
)

// siteLine is one line of `s3mesh status --all --json`: a site's status,
// or the site and why it could not be reached.
type siteLine struct {
	agent.Status
	Error string `json:"error"`
}

// statusAll runs `s3mesh status --all --lab DIR --json` (or with the
// given target flags instead of --lab) and returns each line by site, in
// order, and the exit code.
func (e *env) statusAll(t *testing.T, target ...string) (map[string]siteLine, []string, int) {
	t.Helper()
	if len(target) == 0 {
		target = []string{"--lab", e.info.Dir}
	}
	cmd := exec.Command(testenv.S3meshBin(t), append([]string{"status", "--all", "--json", "--timeout", "3s"}, target...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("status --all: %v", err)
	}
	out := map[string]siteLine{}
	var order []string
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l siteLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("status --all --json line %q: %v (stderr %s)", sc.Text(), err, stderr.String())
		}
		out[l.Site] = l
		order = append(order, l.Site)
	}
	return out, order, code
}

func peerOf(l siteLine, peer string) (agent.PeerStatus, bool) {
	for _, p := range l.Peers {
		if p.Peer == peer {
			return p, true
		}
	}
	return agent.PeerStatus{}, false
}

// waitStatus polls status --all until ok accepts it.
func (e *env) waitStatus(t *testing.T, what string, timeout time.Duration, ok func(map[string]siteLine, int) bool) map[string]siteLine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, _, code := e.statusAll(t)
		if ok(st, code) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(st)
			t.Fatalf("status --all: %s not reached within %s; last (exit %d): %s", what, timeout, code, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStatusAll: `s3mesh status --all` shows every site of the lab from
// one place; the caught-up watermark follows a write and stops at a cut
// link while the lag stays 0; a site whose agent is down shows as
// unreachable while the others still show.
func TestStatusAll(t *testing.T) {
	e := labEnv(t)
	st, order, code := e.statusAll(t)
	if code != 0 || len(order) != 3 {
		t.Fatalf("status --all: exit %d, sites %v, want 3 sites and exit 0", code, order)
	}
	for i, s := range e.names {
		if order[i] != s || st[s].Error != "" || len(st[s].Peers) != 2 {
			t.Fatalf("site %s: %+v", s, st[s])
		}
	}

	// The same from every site's configuration, each through its own broker.
	var configs []string
	for _, s := range e.info.Sites {
		configs = append(configs, "--config", s.Config)
	}
	st, order, code = e.statusAll(t, configs...)
	if code != 0 || len(order) != 3 {
		t.Fatalf("status --all %v: exit %d, sites %v", configs, code, order)
	}
	for i, s := range e.names {
		if order[i] != s || st[s].Error != "" || len(st[s].Peers) != 2 {
			t.Fatalf("site %s with --config: %+v", s, st[s])
		}
	}
	// One configuration: its peers are asked through its broker, which a
	// least-privilege link does not let through: unreachable, and said why.
	st, _, code = e.statusAll(t, "--config", e.info.Sites[0].Config)
	if code != 1 || st["a"].Error != "" || !strings.Contains(st["b"].Error, "through this site's broker") {
		t.Errorf("status --all with a's configuration only: exit %d, %+v", code, st)
	}

	// A write at a: b is caught up with a, its watermark past the write.
	written := time.Now()
	e.put(t, "a", "status-all/watermark", object{body: []byte("watermark")})
	e.waitObject(t, "status-all/watermark", object{body: []byte("watermark")}, converge)
	e.waitStatus(t, "b caught up with a past the write", converge, func(st map[string]siteLine, _ int) bool {
		p, ok := peerOf(st["b"], "a")
		return ok && p.CaughtUp && p.Watermark.After(written) && p.WatermarkAgeSeconds >= 0 && p.LastSeq > 0
	})

	// Cut a-b: b's watermark for a stops advancing, with lag 0; its
	// watermark for c goes on.
	t.Cleanup(func() { _, _ = e.lab.Ctl("heal", "a", "b") })
	e.mustCtl(t, "cut", "a", "b")
	cut := e.waitStatus(t, "b sees a stalled", converge, func(st map[string]siteLine, _ int) bool {
		p, ok := peerOf(st["b"], "a")
		return ok && p.Stalled && p.SilentFor > 6
	})
	first, _ := peerOf(cut["b"], "a")
	firstC, _ := peerOf(cut["b"], "c")
	// Not a synchronisation: the watermark must stay put for a while.
	time.Sleep(3 * time.Second)
	later, _, _ := e.statusAll(t)
	second, _ := peerOf(later["b"], "a")
	secondC, _ := peerOf(later["b"], "c")
	if d := second.Watermark.Sub(first.Watermark); d < -100*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("b's watermark for a moved by %s over a cut link: %v → %v", d, first.Watermark, second.Watermark)
	}
	if second.Lag != 0 || second.CaughtUp || second.WatermarkAgeSeconds < first.WatermarkAgeSeconds+2 {
		t.Errorf("b's status for a over a cut link: %+v (before: %+v); want lag 0, not caught up, the age growing", second, first)
	}
	if !secondC.CaughtUp || !secondC.Watermark.After(firstC.Watermark.Add(time.Second)) {
		t.Errorf("b's watermark for c did not advance meanwhile: %+v → %+v", firstC, secondC)
	}
	e.mustCtl(t, "heal", "a", "b")
	e.waitStatus(t, "b caught up with a after the heal", converge, func(st map[string]siteLine, _ int) bool {
		p, ok := peerOf(st["b"], "a")
		return ok && p.CaughtUp && p.Watermark.After(second.Watermark)
	})

	// b's agent down: b unreachable, a and c still shown; exit 1.
	t.Cleanup(func() { _, _ = e.lab.Ctl("start", "b") })
	e.mustCtl(t, "kill", "b")
	down := e.waitStatus(t, "b unreachable", converge, func(st map[string]siteLine, code int) bool {
		return st["b"].Error != "" && code == 1
	})
	for _, s := range []string{"a", "c"} {
		if down[s].Error != "" || len(down[s].Peers) != 2 {
			t.Errorf("site %s while b's agent is down: %+v", s, down[s])
		}
	}
	if len(down["b"].Peers) != 0 {
		t.Errorf("unreachable site b has peers: %+v", down["b"])
	}
	t.Logf("b while its agent is down: %s", down["b"].Error)
	e.mustCtl(t, "start", "b")
	e.waitStatus(t, "every site back", converge, func(st map[string]siteLine, code int) bool {
		return code == 0 && st["b"].Error == "" && len(st["b"].Peers) == 2
	})
}
