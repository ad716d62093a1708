package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The CPU split. Everything (three stores (versitygw, or MinIO, SeaweedFS, rclone serve s3 in a lab of --stores), three brokers, three agents
// and the bench itself) shares the machine's CPUs, so a figure may measure
// the machine rather than s3mesh. For every figure the bench reads
// utime+stime from /proc/<pid>/stat of every lab process (found by
// scanning /proc for command lines that mention the lab's directory) and
// of itself, before and after, and prints the CPU seconds and share per
// group. A sampler reads them every 500 ms as well, so a process killed or
// started during a figure (kill/start of an agent) is counted up to its
// last sample. Child tools the bench runs (rclone, s3mesh rebuild) are
// counted from their rusage when they exit.
//
// The bench process includes, in `bench all`, the lab's leaf-link proxies
// (lab.Start runs them in-process): every change record crossing a link
// is relayed by it.

const clkTck = 100 // USER_HZ: utime and stime are in 1/100 s on Linux

// cpu groups, in report order.
var cpuGroups = []string{"stores", "brokers", "agents", "bench", "tools", "other"}

type procKey struct {
	pid   int
	start uint64 // starttime (field 22): tells a reused pid apart
}

type procTicks struct {
	group string
	ticks uint64
}

type cpuMeter struct {
	dir    string
	self   int
	mu     sync.Mutex
	latest map[procKey]procTicks
	tools  float64 // seconds of exited child tools
	busy   uint64  // the whole machine's busy ticks (/proc/stat), at the last sample
	cancel context.CancelFunc
	done   chan struct{}
}

func startCPUMeter(ctx context.Context, dir string) *cpuMeter {
	m := &cpuMeter{dir: dir, self: os.Getpid(), latest: map[procKey]procTicks{}, done: make(chan struct{})}
	ctx, m.cancel = context.WithCancel(ctx)
	m.sample()
	go func() {
		defer close(m.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.sample()
			}
		}
	}()
	return m
}

func (m *cpuMeter) stop() {
	m.cancel()
	<-m.done
}

// sample reads every lab process and the bench itself.
func (m *cpuMeter) sample() {
	ents, _ := os.ReadDir("/proc")
	seen := map[procKey]procTicks{}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		group := ""
		if pid == m.self {
			group = "bench"
		} else {
			cl, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
			if err != nil || m.dir == "" || !strings.Contains(string(cl), m.dir) {
				continue
			}
			group = groupOf(strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00"))
		}
		k, ticks, ok := readStat(pid)
		if !ok {
			continue
		}
		seen[k] = procTicks{group: group, ticks: ticks}
	}
	busy := machineBusy()
	m.mu.Lock()
	for k, v := range seen {
		m.latest[k] = v
	}
	m.busy = busy
	m.mu.Unlock()
}

// machineBusy is the CPU time of everything on the machine (the first line
// of /proc/stat, idle and iowait left out), in ticks.
func machineBusy() uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var t uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest times are in user already
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		t += n
	}
	return t
}

func groupOf(argv []string) string {
	if len(argv) == 0 {
		return "tools"
	}
	switch filepath.Base(argv[0]) {
	case "versitygw", "minio", "weed": // the lab's stores (--stores)
		return "stores"
	case "rclone":
		if len(argv) > 1 && argv[1] == "serve" {
			return "stores"
		}
	}
	if len(argv) > 1 {
		switch argv[1] {
		case "broker":
			return "brokers"
		case "agent":
			return "agents"
		}
	}
	return "tools"
}

// readStat returns pid's identity and utime+stime in ticks.
func readStat(pid int) (procKey, uint64, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procKey{}, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may hold spaces
	if i < 0 {
		return procKey{}, 0, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 20 {
		return procKey{}, 0, false
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return procKey{pid: pid, start: start}, ut + st, true
}

// addTool counts an exited child's CPU time (rclone, s3mesh rebuild).
func (m *cpuMeter) addTool(c *exec.Cmd) {
	if c == nil || c.ProcessState == nil {
		return
	}
	m.mu.Lock()
	m.tools += (c.ProcessState.UserTime() + c.ProcessState.SystemTime()).Seconds()
	m.mu.Unlock()
}

// cpuSpan is the CPU used from begin to end.
type cpuSpan struct {
	m     *cpuMeter
	t0    time.Time
	base  map[procKey]procTicks
	tools float64
	busy  uint64
}

func (m *cpuMeter) begin() *cpuSpan {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	base := make(map[procKey]procTicks, len(m.latest))
	for k, v := range m.latest {
		base[k] = v
	}
	return &cpuSpan{m: m, t0: time.Now(), base: base, tools: m.tools, busy: m.busy}
}

// cpuSplit is the CPU seconds per group over a wall time.
type cpuSplit struct {
	wall time.Duration
	secs map[string]float64
}

func (s *cpuSpan) end() cpuSplit {
	s.m.sample()
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	out := cpuSplit{wall: time.Since(s.t0), secs: map[string]float64{}}
	for k, v := range s.m.latest {
		d := v.ticks
		if b, ok := s.base[k]; ok {
			d -= min(d, b.ticks)
		}
		out.secs[v.group] += float64(d) / clkTck
	}
	out.secs["tools"] += s.m.tools - s.tools
	// Whatever else ran on the machine meanwhile (not the lab, not the
	// bench): a figure taken while other work competes says so.
	machine := float64(s.m.busy-min(s.m.busy, s.busy)) / clkTck
	out.secs["other"] = max(0, machine-out.total())
	return out
}

// total is the CPU of the lab, the bench and its tools (not "other").
func (c cpuSplit) total() float64 {
	var t float64
	for g, v := range c.secs {
		if g != "other" {
			t += v
		}
	}
	return t
}

// String is the one-line form printed under each figure.
func (c cpuSplit) String() string {
	total := c.total()
	var parts []string
	for _, g := range cpuGroups {
		v := c.secs[g]
		if g == "other" || (g == "tools" && v == 0) {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.1fs (%.0f%%)", cpuName(g), v, 100*v/max(total, 1e-9)))
	}
	avail := c.wall.Seconds() * float64(numCPU())
	return fmt.Sprintf("cpu: %s; %.1f CPU-s used of %.1f available (%d CPUs × %.1f s wall: %.0f%% busy); other processes on the machine: %.1f CPU-s",
		strings.Join(parts, ", "), total, avail, numCPU(), c.wall.Seconds(), 100*total/max(avail, 1e-9), c.secs["other"])
}

func cpuName(g string) string {
	switch g {
	case "bench":
		return "bench process"
	case "tools":
		return "rclone/tools"
	}
	return g
}

// row is the CPU table's markdown line for phase.
func (c cpuSplit) row(phase string) string {
	total := c.total()
	cell := func(g string) string {
		v := c.secs[g]
		if g == "tools" && v == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f s (%.0f%%)", v, 100*v/max(total, 1e-9))
	}
	avail := c.wall.Seconds() * float64(numCPU())
	return fmt.Sprintf("| %s | %.1f s | %s | %s | %s | %s | %s | %.0f%% | %.1f s |", phase, c.wall.Seconds(),
		cell("stores"), cell("brokers"), cell("agents"), cell("bench"), cell("tools"), 100*total/max(avail, 1e-9), c.secs["other"])
}

// record prints the split under a figure and keeps its row for the table.
func (e *benchEnv) record(phase string, c cpuSplit) {
	fmt.Fprintf(e.w, "    %s\n", c)
	e.cpuRows = append(e.cpuRows, c.row(phase))
}

// merge adds several spans' splits (the runs of one phase).
func mergeCPU(cs []cpuSplit) cpuSplit {
	out := cpuSplit{secs: map[string]float64{}}
	for _, c := range cs {
		out.wall += c.wall
		for k, v := range c.secs {
			out.secs[k] += v
		}
	}
	return out
}
