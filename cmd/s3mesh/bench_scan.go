package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/s3mesh/s3mesh/agent"
)

// benchScan: a scan by a's agent of the backlog bucket (n unchanged
// objects, left by benchBacklog), against `rclone check` of the same bucket
// between a and b. Time and S3 requests of each.
//
// The bench asks a's agent for the scan with the admin request scan.now
// (`s3mesh scan now`): the scanner's own loop runs it and answers when it
// is done; the time is the request's round trip, the agent's own figure is
// printed too. The requests are the growth of
// s3mesh_s3_requests_total over the same time. rclone's time
// is its process from start to exit; its requests are counted from
// `--dump headers` in one extra, untimed run (debug output slows it down).
func benchScan(ctx context.Context, e *benchEnv, bucket string, n int) error {
	w := e.w
	fmt.Fprintf(w, "scan  of %d unchanged objects (bucket %s) by a's agent; baseline: rclone check of the same bucket between a and b\n", n, bucket)
	if n <= 0 {
		fmt.Fprintln(w, "  SKIPPED: S3MESH_BENCH_BACKLOG=0 (the scan reuses the backlog figure's bucket)")
		return nil
	}
	if got, _, err := listPrefix(ctx, e.s3["a"], bucket, "", 1024); err != nil || got < n {
		return fmt.Errorf("the scan figure needs the backlog figure's %d objects in %s (found %d, %v)", n, bucket, got, err)
	}
	rclone, rerr := rcloneBin()
	if rerr != nil {
		fmt.Fprintln(w, "  rclone is not installed (the baseline): `make build` builds the pinned one into bin/; the scan is measured without a ratio")
	}
	var st, sr, rt, rr, ratio series
	var scpu, rcpu []cpuSplit
	for run := 1; run <= e.cfg.runs; run++ {
		m0, err := e.metrics(ctx, "a")
		if err != nil {
			return err
		}
		req0 := m0.byLabel("s3mesh_s3_requests_total", "op")
		span := e.cpu.begin()
		took, how, err := e.scanOnce("a", bucket)
		if err != nil {
			return err
		}
		m1, err := e.metrics(ctx, "a")
		if err != nil {
			return err
		}
		c := span.end()
		scpu = append(scpu, c)
		req1 := m1.byLabel("s3mesh_s3_requests_total", "op")
		var total float64
		var ops []string
		for op, v := range req1 {
			if d := v - req0[op]; d > 0 {
				total += d
				ops = append(ops, fmt.Sprintf("%s %.0f", op, d))
			}
		}
		sort.Strings(ops)
		st, sr = append(st, took.Seconds()), append(sr, total)
		fmt.Fprintf(w, "  run %d: s3mesh scan %.2f s (%s), %.0f S3 requests (%s)\n",
			run, took.Seconds(), how, total, strings.Join(ops, ", "))
		fmt.Fprintf(w, "    %s\n", c)
		if rerr != nil {
			continue
		}
		span = e.cpu.begin()
		t1 := time.Now()
		out, cmd, err := e.rclone(ctx, rclone, []string{"check", "--checkers", "8", "src:" + bucket, "dst:" + bucket}, e.site("a"), e.site("b"))
		took2 := time.Since(t1)
		e.cpu.addTool(cmd)
		c2 := span.end()
		if err != nil {
			return fmt.Errorf("rclone check: %v\n%s", err, tailLines(out, 5))
		}
		rcpu = append(rcpu, c2)
		rt, ratio = append(rt, took2.Seconds()), append(ratio, took.Seconds()/took2.Seconds())
		if run == 1 {
			out, cmd, err := e.rclone(ctx, rclone, []string{"check", "--checkers", "8", "--dump", "headers", "src:" + bucket, "dst:" + bucket}, e.site("a"), e.site("b"))
			e.cpu.addTool(cmd)
			if err != nil {
				return fmt.Errorf("rclone check --dump headers: %v\n%s", err, tailLines(out, 5))
			}
			reqs := bytes.Count(out, []byte("HTTP REQUEST"))
			for range e.cfg.runs {
				rr = append(rr, float64(reqs))
			}
			fmt.Fprintf(w, "    rclone requests (counted in an extra run with --dump headers): %d (%s)\n", reqs, e.requestLines(out))
		}
		fmt.Fprintf(w, "    rclone check --checkers 8 a ↔ b: %.2f s (process start to exit); ratio s3mesh/rclone time %.2f\n", took2.Seconds(), took.Seconds()/took2.Seconds())
		fmt.Fprintf(w, "    %s\n", c2)
	}
	fmt.Fprintf(w, "  s3mesh scan: %s, %s S3 requests   (raw s: %s)\n", st.fmt(2, " s"), sr.fmt(0, ""), st.raw(2))
	row := summaryRow{figure: fmt.Sprintf("scan of %d unchanged objects by a's agent (time; S3 requests)", n),
		s3mesh: st.fmt(2, " s") + ", " + sr.fmt(0, " requests"), baseline: "rclone missing: not measured", ratio: "—", target: "—", holds: "—"}
	if rerr == nil {
		fmt.Fprintf(w, "  rclone check a ↔ b: %s, %s requests   (raw s: %s)\n", rt.fmt(2, " s"), rr.fmt(0, ""), rt.raw(2))
		fmt.Fprintf(w, "  ratio s3mesh / rclone time: %s\n", ratio.fmt(2, ""))
		row.baseline = "rclone check a ↔ b: " + rt.fmt(2, " s") + ", " + rr.fmt(0, " requests")
		row.ratio = "time " + ratio.fmt(2, "")
		if len(rr) > 0 && len(sr) > 0 {
			row.ratio += fmt.Sprintf(", requests %.2f", sr.median()/rr.median())
		}
		e.cpuRows = append(e.cpuRows, mergeCPU(rcpu).row("scan, rclone check"))
	}
	e.rows = append(e.rows, row)
	e.cpuRows = append(e.cpuRows, mergeCPU(scpu).row("scan, s3mesh"))
	return nil
}

// scanOnce has site's agent scan bucket once (`s3mesh scan now`'s admin
// request) and returns the request's round trip and how it was measured.
func (e *benchEnv) scanOnce(site, bucket string) (time.Duration, string, error) {
	s, err := (&target{labPath: filepath.Join(e.info().Dir, "lab.json"), site: site}).connect()
	if err != nil {
		return 0, "", err
	}
	defer s.close()
	t0 := time.Now()
	outcome, err := s.admin("scan.now", agent.AdminRequest{Bucket: bucket})
	took := time.Since(t0)
	if err != nil {
		return 0, "", fmt.Errorf("scan now at %s: %w", site, err)
	}
	var out struct {
		Seconds float64 `json:"seconds"`
		Listed  int     `json:"listed"`
	}
	if err := json.Unmarshal([]byte(outcome), &out); err != nil {
		return 0, "", fmt.Errorf("scan now at %s: answer %q: %w", site, outcome, err)
	}
	return took, fmt.Sprintf("admin request scan.now, round trip; the agent reports %.2f s, %d listed", out.Seconds, out.Listed), nil
}

// requestLines summarises rclone's dumped requests by method and site.
func (e *benchEnv) requestLines(out []byte) string {
	hosts := map[string]string{}
	for _, s := range e.info().Sites {
		hosts[strings.TrimPrefix(s.S3Endpoint, "http://")] = "at " + s.Name
	}
	counts := map[string]int{}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		if !strings.Contains(l, "HTTP REQUEST") || i+2 >= len(lines) {
			continue
		}
		req := lines[i+1]
		if j := strings.Index(req, " : "); j >= 0 {
			req = req[j+3:]
		}
		method, _, _ := strings.Cut(req, " ")
		host := strings.TrimPrefix(strings.TrimSpace(lines[i+2]), "Host: ")
		if h, ok := hosts[host]; ok {
			host = h
		}
		counts[method+" "+host]++
	}
	var parts []string
	for k, v := range counts {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func tailLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
