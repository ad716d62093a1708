package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
)

// Peak agent memory, read from /proc/<pid>/status VmHWM (the resident
// set's high-water mark), reset before a phase with
// `echo 5 > /proc/<pid>/clear_refs`. Target: ≤ 64 MiB at any object size
// and backlog.

const rssTarget = 64 << 20

func vmHWM(pid int) int64 { return statusKB(pid, "VmHWM:") }

func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line[len(field):])
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return -1
}

// resetHWM resets pid's VmHWM to its current RSS.
func resetHWM(pid int) error {
	return os.WriteFile(filepath.Join("/proc", strconv.Itoa(pid), "clear_refs"), []byte("5"), 0)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// rssSampler follows processes' resident set every 250 ms, split as the
// kernel counts it: anonymous pages (the agent's own heap, stacks and
// buffers) and file-backed ones (mostly the s3mesh binary's code and
// read-only data, which the broker processes running the same binary
// share and the kernel can drop and read again).
type rssSampler struct {
	mu     sync.Mutex
	anon   map[string]int64 // highest RssAnon seen per site
	file   map[string]int64 // highest RssFile seen per site
	cancel context.CancelFunc
	done   chan struct{}
}

func sampleRSS(ctx context.Context, pids func() map[string]int) *rssSampler {
	r := &rssSampler{anon: map[string]int64{}, file: map[string]int64{}, done: make(chan struct{})}
	ctx, r.cancel = context.WithCancel(ctx)
	look := func() {
		for s, pid := range pids() {
			a, f := statusKB(pid, "RssAnon:"), statusKB(pid, "RssFile:")
			r.mu.Lock()
			r.anon[s], r.file[s] = max(r.anon[s], a), max(r.file[s], f)
			r.mu.Unlock()
		}
	}
	go func() {
		defer close(r.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			look()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return r
}

// stop ends the sampling; it returns "a anon 40.1 + file 23.0 MiB, …" for
// sites, in that order.
func (r *rssSampler) stop(sites ...string) string {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range sites {
		if _, ok := r.anon[s]; ok {
			out = append(out, fmt.Sprintf("%s anon %.1f + file %.1f MiB", s, mib(r.anon[s]), mib(r.file[s])))
		}
	}
	return strings.Join(out, ", ")
}

const rssSplitNote = "highest RssAnon and RssFile sampled every 250 ms; the file-backed pages are mostly the s3mesh binary's, shared with the broker processes"

// agentPIDs returns the running agents' pids by site.
func (e *benchEnv) agentPIDs() map[string]int {
	out := map[string]int{}
	for _, s := range e.info().Sites {
		if s.AgentPID > 0 {
			out[s.Name] = s.AgentPID
		}
	}
	return out
}

func (e *benchEnv) siteNames() []string {
	var out []string
	for _, s := range e.info().Sites {
		out = append(out, s.Name)
	}
	return out
}

// benchBig: one object of size bytes written at a (streamed from a
// generator with multipart, never held in memory), until it is at b and c;
// the agents' peak RSS meanwhile.
func benchBig(ctx context.Context, e *benchEnv, bucket string, size int64) error {
	w := e.w
	fmt.Fprintf(w, "peak agent RSS, one %s object written at a until at b and c\n", fmtBytes(size))
	if size <= 0 {
		fmt.Fprintln(w, "  SKIPPED: S3MESH_BENCH_BIG=0")
		return nil
	}
	dir := e.info().Dir
	need := 6*size + 1<<30 // three copies, multipart parts at each site, a margin
	if free, err := freeBytes(dir); err == nil && free < need {
		fmt.Fprintf(w, "  SKIPPED: %s free where the lab keeps its data (%s), %s needed (3 copies + multipart temp + 1 GiB); set S3MESH_BENCH_BIG smaller\n",
			fmtBytes(free), dir, fmtBytes(need))
		e.rows = append(e.rows, summaryRow{figure: fmt.Sprintf("peak agent RSS, %s object", fmtBytes(size)), s3mesh: "skipped: not enough disk", baseline: "—", ratio: "—", target: "≤ 64 MiB", holds: "—"})
		return nil
	}
	pids := e.agentPIDs()
	for _, pid := range pids {
		if err := resetHWM(pid); err != nil {
			fmt.Fprintf(w, "  (cannot reset VmHWM of pid %d: %v; the peak then covers the agent's whole life)\n", pid, err)
		}
	}
	prefix := e.prefix("big", 1)
	key := prefix + "object"
	ws, err := e.watchAll([]string{"b", "c"}, bucket, prefix)
	if err != nil {
		return err
	}
	defer closeAll(ws)
	applied0 := e.appliedNow(ctx, "a", []string{"b", "c"})
	split := sampleRSS(ctx, e.agentPIDs)
	span := e.cpu.begin()
	t0 := time.Now()
	if _, err := e.s3["a"].Put(ctx, s3io.PutInput{Bucket: bucket, Key: key, Body: newPatternReader(size), Size: size}); err != nil {
		split.stop()
		return fmt.Errorf("writing the big object at a: %w", err)
	}
	ack := time.Now()
	res, err := e.waitArrivals(ctx, "a", ws, []string{key}, size, applied0, 30*time.Minute)
	splitText := split.stop("a", "b", "c")
	if err != nil {
		return err
	}
	c := span.end()
	var last time.Time
	for _, r := range res {
		if r.last.After(last) {
			last = r.last
		}
	}
	fmt.Fprintf(w, "  written at a in %.1f s (%.0f MiB/s); at b and c %.1f s after the acknowledgement (%.0f MiB/s per destination)\n",
		ack.Sub(t0).Seconds(), mib(size)/ack.Sub(t0).Seconds(), last.Sub(ack).Seconds(), mib(size)/last.Sub(ack).Seconds())
	for _, r := range res {
		fmt.Fprintf(w, "    %s at +%.1f s (%s)\n", r.site, r.last.Sub(ack).Seconds(), r)
	}
	var peaks []string
	var worst int64
	for _, s := range e.siteNames() {
		if pid, ok := pids[s]; ok {
			h := vmHWM(pid)
			worst = max(worst, h)
			peaks = append(peaks, fmt.Sprintf("%s %.1f MiB", s, mib(h)))
		}
	}
	fmt.Fprintf(w, "  peak RSS (VmHWM) of the agents: %s (target ≤ 64 MiB)\n", strings.Join(peaks, ", "))
	fmt.Fprintf(w, "  of which: %s (%s)\n", splitText, rssSplitNote)
	e.record("big object", c)
	holds := "yes"
	if worst > rssTarget {
		holds = "**no**"
	}
	e.rows = append(e.rows, summaryRow{
		figure: fmt.Sprintf("peak agent RSS while one %s object written at a replicates to b and c (%.0f s)", fmtBytes(size), last.Sub(t0).Seconds()),
		s3mesh: strings.Join(peaks, ", ") + " (" + splitText + ")", baseline: "—", ratio: "—", target: "≤ 64 MiB", holds: holds,
	})
	// Free the disk: delete at a, wait until gone everywhere.
	if err := e.s3["a"].Delete(ctx, bucket, key, ""); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, s := range []string{"b", "c"} {
		for {
			info, err := e.s3[s].Head(ctx, bucket, key)
			if err == nil && !info.Exists {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(w, "  (the delete of the big object had not reached %s after 2 minutes)\n", s)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return nil
}

// benchBacklog: b's and c's agents are stopped, n × 1 KiB are written at a
// with 16 writers, b's agent is started: b's peak RSS and the time until b
// holds all n. c's agent stays parked until the scan figure (which reuses
// the bucket) is done, so that neither the fill nor the figures after it
// share the two cores with c's own catch-up; it then catches up unmeasured.
func benchBacklog(ctx context.Context, e *benchEnv, bucket string, n int) error {
	w := e.w
	const size = 1024
	fmt.Fprintf(w, "peak agent RSS, %d-record backlog: b's and c's agents stopped, %d × %s written at a (%d writers), b's agent started; b's peak RSS and time until b holds all (c catches up after the scan figure, unmeasured)\n",
		n, n, fmtBytes(size), e.cfg.backlogConc)
	if n <= 0 {
		fmt.Fprintln(w, "  SKIPPED: S3MESH_BENCH_BACKLOG=0")
		return nil
	}
	prefix := "obj/" // the scan figure reuses the whole bucket
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%07d", prefix, i)
	}
	ws, err := e.watchAll([]string{"b"}, bucket, prefix)
	if err != nil {
		return err
	}
	defer closeAll(ws)
	wb := ws[0]
	pub0 := e.counter(ctx, "a", "s3mesh_records_published_total")
	if pid := e.agentPIDs()["a"]; pid > 0 {
		_ = resetHWM(pid)
	}
	if _, err := e.ctl("kill", "c"); err != nil {
		return fmt.Errorf("kill c: %w", err)
	}
	e.parked = append(e.parked, "c")
	if _, err := e.ctl("kill", "b"); err != nil {
		return fmt.Errorf("kill b: %w", err)
	}
	started := false
	defer func() {
		if !started {
			_, _ = e.ctl("start", "b")
		}
	}()
	fill := e.cpu.begin()
	body := randomBody(size)
	t0 := time.Now()
	if err := parallel(ctx, n, e.cfg.backlogConc, func(i int) error { return put(ctx, e.s3["a"], bucket, keys[i], body) }); err != nil {
		return fmt.Errorf("writes at a: %w", err)
	}
	writes := time.Since(t0)
	if err := e.waitCounter(ctx, "a", "s3mesh_records_published_total", pub0+float64(n), e.cfg.replicationTimeout); err != nil {
		return err
	}
	published := time.Since(t0)
	fc := fill.end()
	peakA := vmHWM(e.agentPIDs()["a"])
	fmt.Fprintf(w, "  fill: %d writes at a in %.1f s (%.0f/s), all published by a after %.1f s; peak RSS of a's agent meanwhile %.1f MiB\n",
		n, writes.Seconds(), float64(n)/writes.Seconds(), published.Seconds(), mib(peakA))
	e.record("backlog fill (b, c stopped)", fc)
	// Catch-up of b, sampling its RSS meanwhile.
	span := e.cpu.begin()
	t1 := time.Now()
	if _, err := e.ctl("start", "b"); err != nil {
		return fmt.Errorf("start b: %w", err)
	}
	started = true
	healthy := time.Since(t1)
	pid := e.agentPIDs()["b"]
	split := sampleRSS(ctx, func() map[string]int { return map[string]int{"b": pid} })
	res, err := e.waitArrivals(ctx, "a", []*arrivals{wb}, keys, size, map[string]float64{"b": 0}, 30*time.Minute)
	splitText := split.stop("b")
	if err != nil {
		return fmt.Errorf("b catching up: %w", err)
	}
	took := res[0].last.Sub(t1)
	peakB := vmHWM(pid)
	c := span.end()
	verified, err := e.verifyAll(ctx, []string{"a", "b"}, bucket, prefix, n, size)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  b: started (healthy after %.1f s), all %d at b %.1f s after the start (%.0f records/s); %s; %s\n",
		healthy.Seconds(), n, took.Seconds(), float64(n)/took.Seconds(), res[0], verified)
	fmt.Fprintf(w, "  peak RSS of b's agent (VmHWM, pid %d): %.1f MiB (target ≤ 64 MiB); of which: %s (%s)\n", pid, mib(peakB), splitText, rssSplitNote)
	e.record("backlog drain at b", c)
	holds := "yes"
	if max(peakB, peakA) > rssTarget {
		holds = "**no**"
	}
	e.rows = append(e.rows, summaryRow{
		figure:   fmt.Sprintf("peak agent RSS, %d-record backlog (b, c stopped, %d × 1 KiB at a, b started; b drained it in %.0f s = %.0f records/s)", n, n, took.Seconds(), float64(n)/took.Seconds()),
		s3mesh:   fmt.Sprintf("b %.1f MiB (%s; a %.1f while filling)", mib(peakB), splitText, mib(peakA)),
		baseline: "—", ratio: "—", target: "≤ 64 MiB", holds: holds,
	})
	return nil
}
