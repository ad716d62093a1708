package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
)

func numCPU() int { return runtime.NumCPU() }

// benchThroughput: n objects of size bytes written at origin with conc
// writers, until every one is at every destination. A copy is one object
// arriving at one destination, so a run makes n×len(dests) copies.
//
// s3mesh's clock starts when the first write is acknowledged at the
// origin and stops when the last copy arrives (bench_events.go). The
// baseline is a plain copier with the same number of workers copying the
// same number of pre-written objects of the same size, in a bucket no
// agent replicates (<bucket>-baseline at every site), from the origin to
// every destination: one GET at the origin and one PUT at the destination
// per copy. Ratio = s3mesh copies/s ÷ baseline copies/s (target ≥ 0.8).
func benchThroughput(ctx context.Context, e *benchEnv, origin string, dests []string, bucket string, n, size, conc int) error {
	w := e.w
	copies := n * len(dests)
	fmt.Fprintf(w, "throughput  %d × %s written at %s with %d writers, until at %s (%d copies); baseline: a plain copier, %d workers, GET at %s + PUT at each destination\n",
		n, fmtBytes(int64(size)), origin, conc, strings.Join(dests, " and "), copies, conc, origin)
	if n <= 0 {
		fmt.Fprintln(w, "  SKIPPED: 0 objects (S3MESH_BENCH_SMALL / S3MESH_BENCH_LARGE)")
		return nil
	}
	base := bucket + "-baseline"
	for s := range e.s3 {
		if err := e.s3[s].EnsureBucket(ctx, base); err != nil {
			return fmt.Errorf("baseline bucket %s at %s: %w", base, s, err)
		}
	}
	var meshRate, baseRate, ratio series
	var meshCPU, baseCPU []cpuSplit
	body := randomBody(size)
	src := e.s3[origin]
	for run := 1; run <= e.cfg.runs; run++ {
		fig := fmt.Sprintf("tput%d", size)
		prefix := e.prefix(fig, run)
		// Baseline: pre-write (not timed), then copy to every destination.
		// The pre-write's CPU is shown: s3mesh's window holds the same
		// writes at the origin, sharing the cores with the replication.
		span := e.cpu.begin()
		tp := time.Now()
		if err := parallel(ctx, n, conc, func(i int) error {
			return put(ctx, src, base, fmt.Sprintf("%s%06d", prefix, i), body)
		}); err != nil {
			return fmt.Errorf("baseline pre-write: %w", err)
		}
		fmt.Fprintf(w, "  run %d: the writes alone (the baseline's pre-write, not timed): %d PUTs at %s in %.2f s\n    %s\n", run, n, origin, time.Since(tp).Seconds(), span.end())
		span = e.cpu.begin()
		t0 := time.Now()
		if err := parallel(ctx, copies, conc, func(j int) error {
			key, dst := fmt.Sprintf("%s%06d", prefix, j/len(dests)), e.s3[dests[j%len(dests)]]
			rc, info, err := src.Get(ctx, base, key, "")
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = dst.Put(ctx, s3io.PutInput{Bucket: base, Key: key, Body: rc, Size: info.Size})
			return err
		}); err != nil {
			return fmt.Errorf("baseline copy: %w", err)
		}
		bt := time.Since(t0)
		bsplit := span.end()
		if _, err := e.verifyAll(ctx, dests, base, prefix, n, int64(size)); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		// s3mesh.
		ws, err := e.watchAll(dests, bucket, prefix)
		if err != nil {
			return err
		}
		applied0 := e.appliedNow(ctx, origin, dests)
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("%s%06d", prefix, i)
		}
		span = e.cpu.begin()
		var mu sync.Mutex
		var firstAck, lastAck time.Time
		wstart := time.Now()
		err = parallel(ctx, n, conc, func(i int) error {
			if err := put(ctx, src, bucket, keys[i], body); err != nil {
				return err
			}
			now := time.Now()
			mu.Lock()
			if firstAck.IsZero() || now.Before(firstAck) {
				firstAck = now
			}
			if now.After(lastAck) {
				lastAck = now
			}
			mu.Unlock()
			return nil
		})
		if err != nil {
			closeAll(ws)
			return fmt.Errorf("writes at %s: %w", origin, err)
		}
		res, err := e.waitArrivals(ctx, origin, ws, keys, int64(size), applied0, e.cfg.replicationTimeout)
		closeAll(ws)
		if err != nil {
			return err
		}
		msplit := span.end()
		var stop time.Time
		var notes []string
		for _, r := range res {
			if r.last.After(stop) {
				stop = r.last
			}
			notes = append(notes, r.String())
		}
		mt := stop.Sub(firstAck)
		verified, err := e.verifyAll(ctx, dests, bucket, prefix, n, int64(size))
		if err != nil {
			return err
		}
		mr, br := float64(copies)/mt.Seconds(), float64(copies)/bt.Seconds()
		meshRate, baseRate, ratio = append(meshRate, mr), append(baseRate, br), append(ratio, mr/br)
		meshCPU, baseCPU = append(meshCPU, msplit), append(baseCPU, bsplit)
		mib := func(r float64) float64 { return r * float64(size) / (1 << 20) }
		fmt.Fprintf(w, "  run %d: baseline %d copies in %.2f s = %.0f copies/s (%.1f MiB/s)\n", run, copies, bt.Seconds(), br, mib(br))
		fmt.Fprintf(w, "    %s\n", bsplit)
		fmt.Fprintf(w, "         s3mesh   %d copies in %.2f s = %.0f copies/s (%.1f MiB/s), first ack → last copy; the writes took %.2f s (first PUT → last ack, %.0f writes/s); ratio %.2f\n",
			copies, mt.Seconds(), mr, mib(mr), lastAck.Sub(wstart).Seconds(), float64(n)/lastAck.Sub(wstart).Seconds(), mr/br)
		fmt.Fprintf(w, "    %s\n", msplit)
		fmt.Fprintf(w, "    arrivals: %s; %s\n", strings.Join(notes, "; "), verified)
	}
	fmt.Fprintf(w, "  s3mesh   copies/s: %s   (raw: %s)\n", meshRate.fmt(0, ""), meshRate.raw(0))
	fmt.Fprintf(w, "  baseline copies/s: %s   (raw: %s)\n", baseRate.fmt(0, ""), baseRate.raw(0))
	fmt.Fprintf(w, "  ratio s3mesh / baseline: %s   (raw: %s; target ≥ 0.8)\n", ratio.fmt(2, ""), ratio.raw(2))
	label := fmt.Sprintf("throughput, %d × %s at %s, %d writers, until at %s", n, fmtBytes(int64(size)), origin, conc, strings.Join(dests, "+"))
	e.rows = append(e.rows, summaryRow{
		figure:   label,
		s3mesh:   meshRate.fmt(0, " copies/s"),
		baseline: fmt.Sprintf("plain copier, %d workers: %s", conc, baseRate.fmt(0, " copies/s")),
		ratio:    ratio.fmt(2, ""), target: "≥ 0.8",
		holds: verdict(ratio, func(v float64) bool { return v >= 0.8 }),
	})
	e.cpuRows = append(e.cpuRows, mergeCPU(baseCPU).row(fmt.Sprintf("throughput %s, baseline copier", fmtBytes(int64(size)))),
		mergeCPU(meshCPU).row(fmt.Sprintf("throughput %s, s3mesh", fmtBytes(int64(size)))))
	return nil
}
