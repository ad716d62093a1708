package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/s3mesh/s3mesh/lab"
)

// benchCatchup: the link a↔b is cut; n × 1 KiB are written at a (c
// receives them meanwhile; the bench waits until a has published all of
// them and c holds them, so only b's catch-up is timed); then the link is
// healed and the time from the heal until all n are at b is measured. The
// baseline is `rclone copy --transfers 8` of the same objects from a into
// a bucket at b that no agent replicates. Ratio = s3mesh time ÷ rclone time
// (target ≤ 0.67).
func benchCatchup(ctx context.Context, e *benchEnv, bucket string, n int) error {
	w := e.w
	const size = 1024
	fmt.Fprintf(w, "catch-up  link a-b cut, %d × %s written at a (%d writers; c receives them meanwhile), heal: time until all are at b; baseline: rclone copy --transfers %d of the same objects a → b\n",
		n, fmtBytes(size), e.cfg.catchupConc, e.cfg.rcloneTransfers)
	rclone, rerr := rcloneBin()
	if rerr != nil {
		fmt.Fprintln(w, "  rclone is not installed (the baseline): `make build` builds the pinned one into bin/; s3mesh's time is measured without a ratio")
	}
	base := bucket + "-baseline"
	if err := e.s3["b"].EnsureBucket(ctx, base); err != nil {
		return err
	}
	var mesh, rc, ratio series
	var meshCPU, rcCPU []cpuSplit
	body := randomBody(size)
	for run := 1; run <= e.cfg.runs; run++ {
		prefix := e.prefix("catchup", run)
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("%s%06d", prefix, i)
		}
		ws, err := e.watchAll([]string{"b", "c"}, bucket, prefix)
		if err != nil {
			return err
		}
		wb, wc := ws[0], ws[1]
		pub0 := e.counter(ctx, "a", "s3mesh_records_published_total")
		applied0 := e.appliedNow(ctx, "a", []string{"b", "c"})
		if _, err := e.ctl("cut", "a", "b"); err != nil {
			closeAll(ws)
			return fmt.Errorf("cut a b: %w", err)
		}
		healed := false
		heal := func() {
			if !healed {
				_, _ = e.ctl("heal", "a", "b")
				healed = true
			}
		}
		fail := func(err error) error { heal(); closeAll(ws); return err }
		tw := time.Now()
		if err := parallel(ctx, n, e.cfg.catchupConc, func(i int) error { return put(ctx, e.s3["a"], bucket, keys[i], body) }); err != nil {
			return fail(fmt.Errorf("writes at a: %w", err))
		}
		writes := time.Since(tw)
		if err := e.waitCounter(ctx, "a", "s3mesh_records_published_total", pub0+float64(n), e.cfg.replicationTimeout); err != nil {
			return fail(fmt.Errorf("waiting for a to publish: %w", err))
		}
		published := time.Since(tw)
		if _, err := e.waitArrivals(ctx, "a", []*arrivals{wc}, keys, size, applied0, e.cfg.replicationTimeout); err != nil {
			return fail(fmt.Errorf("c: %w", err))
		}
		atC := time.Since(tw)
		atB := n - len(wb.missing(keys))
		span := e.cpu.begin()
		t0 := time.Now()
		heal()
		res, err := e.waitArrivals(ctx, "a", []*arrivals{wb}, keys, size, applied0, e.cfg.replicationTimeout)
		closeAll(ws)
		if err != nil {
			return fmt.Errorf("b after the heal: %w", err)
		}
		mt := res[0].last.Sub(t0)
		msplit := span.end()
		verified, err := e.verifyAll(ctx, []string{"b"}, bucket, prefix, n, size)
		if err != nil {
			return err
		}
		mesh = append(mesh, mt.Seconds())
		meshCPU = append(meshCPU, msplit)
		fmt.Fprintf(w, "  run %d: %d writes at a in %.1f s, all published by a after %.1f s, all at c after %.1f s; b held %d of them when the link was healed\n",
			run, n, writes.Seconds(), published.Seconds(), atC.Seconds(), atB)
		resume := "no copy arrived with an event"
		if f := res[0].first; !f.IsZero() {
			// Until the first copy: the leaf link redialled, b's mirror
			// resumed, b's agent pulled and applied one record.
			resume = fmt.Sprintf("heal → first copy at b %.2f s", f.Sub(t0).Seconds())
		}
		fmt.Fprintf(w, "    s3mesh: heal → all %d at b in %.2f s (%.0f objects/s; %s); %s; %s\n", n, mt.Seconds(), float64(n)/mt.Seconds(), resume, res[0], verified)
		fmt.Fprintf(w, "    %s\n", msplit)
		if rerr != nil {
			continue
		}
		span = e.cpu.begin()
		t1 := time.Now()
		out, cmd, err := e.rclone(ctx, rclone, []string{"copy", "--transfers", fmt.Sprint(e.cfg.rcloneTransfers), "src:" + bucket + "/" + prefix, "dst:" + base + "/" + prefix}, e.site("a"), e.site("b"))
		rt := time.Since(t1)
		e.cpu.addTool(cmd)
		rsplit := span.end()
		if err != nil {
			return fmt.Errorf("rclone copy: %v\n%s", err, out)
		}
		if _, err := e.verifyAll(ctx, []string{"b"}, base, prefix, n, size); err != nil {
			return fmt.Errorf("after rclone: %w", err)
		}
		rc, ratio = append(rc, rt.Seconds()), append(ratio, mt.Seconds()/rt.Seconds())
		rcCPU = append(rcCPU, rsplit)
		fmt.Fprintf(w, "    rclone copy --transfers %d: %.2f s (%.0f objects/s, process start to exit); ratio s3mesh/rclone %.2f\n",
			e.cfg.rcloneTransfers, rt.Seconds(), float64(n)/rt.Seconds(), mt.Seconds()/rt.Seconds())
		fmt.Fprintf(w, "    %s\n", rsplit)
	}
	fmt.Fprintf(w, "  s3mesh heal → all at b: %s   (raw: %s)\n", mesh.fmt(2, " s"), mesh.raw(2))
	row := summaryRow{figure: fmt.Sprintf("catch-up: %d × %s written at a while a-b is cut, heal → all at b", n, fmtBytes(size)),
		s3mesh: mesh.fmt(2, " s"), baseline: "rclone missing: not measured", ratio: "—", target: "≤ 0.67", holds: "—"}
	if rerr == nil {
		fmt.Fprintf(w, "  rclone copy a → b:      %s   (raw: %s)\n", rc.fmt(2, " s"), rc.raw(2))
		fmt.Fprintf(w, "  ratio s3mesh / rclone:  %s   (raw: %s; target ≤ 0.67)\n", ratio.fmt(2, ""), ratio.raw(2))
		row.baseline = fmt.Sprintf("rclone copy --transfers %d a → b: %s", e.cfg.rcloneTransfers, rc.fmt(2, " s"))
		row.ratio = ratio.fmt(2, "")
		row.holds = verdict(ratio, func(v float64) bool { return v <= 0.67 })
		e.cpuRows = append(e.cpuRows, mergeCPU(rcCPU).row("catch-up, rclone copy"))
	}
	e.rows = append(e.rows, row)
	e.cpuRows = append(e.cpuRows, mergeCPU(meshCPU).row("catch-up, s3mesh after the heal"))
	return nil
}

// rclone runs rclone with remotes src (site from) and dst (site to)
// configured from the environment (no config file) and returns its output
// and the finished command (for its CPU time).
func (e *benchEnv) rclone(ctx context.Context, bin string, args []string, from, to lab.SiteInfo) ([]byte, *exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"--config", os.DevNull}, args...)...)
	// The stores are plain HTTP on loopback; an AWS_CA_BUNDLE in the
	// environment makes rclone's S3 backend fail before it sends anything.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "RCLONE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, remoteEnv("SRC", from)...)
	cmd.Env = append(cmd.Env, remoteEnv("DST", to)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), cmd, err
}
