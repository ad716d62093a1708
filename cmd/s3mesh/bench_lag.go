package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// lagStats are one destination's lags (write acknowledged at the origin →
// first storage event at the destination) and the objects that arrived
// without an event of their own.
type lagStats struct {
	lags       []time.Duration
	unmeasured int
}

func (l lagStats) String() string {
	s := fmt.Sprintf("p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms  (%d measured", ms(pct(l.lags, 50)), ms(pct(l.lags, 99)), ms(pct(l.lags, 100)), len(l.lags))
	if l.unmeasured > 0 {
		s += fmt.Sprintf(", %d arrived without an event of their own: confirmed by HEAD, not in the percentiles", l.unmeasured)
	}
	return s + ")"
}

// benchSeqLag: one write at a time at origin; after each acknowledgement,
// wait until the object is readable at every destination. The baseline is
// the PUT alone (request sent → acknowledged).
func benchSeqLag(ctx context.Context, e *benchEnv, origin string, dests []string, bucket string, n, size int) error {
	w := e.w
	fmt.Fprintf(w, "lag, sequential  %d × %s written one at a time at %s; lag = write acknowledged at %s → readable at each of %s (its storage event); baseline: the PUT alone\n",
		n, fmtBytes(int64(size)), origin, origin, strings.Join(dests, ", "))
	var p50, p99, putP50, ratio series
	perDest := map[string]series{}
	var spans []cpuSplit
	for run := 1; run <= e.cfg.runs; run++ {
		prefix := e.prefix("seq", run)
		ws, err := e.watchAll(dests, bucket, prefix)
		if err != nil {
			return err
		}
		span := e.cpu.begin()
		var puts, both []time.Duration
		stats := make([]lagStats, len(dests))
		unmeasuredBoth := 0
		for i := 0; i < n; i++ {
			key := fmt.Sprintf("%s%05d", prefix, i)
			chs := make([]<-chan struct{}, len(ws))
			for j, a := range ws {
				chs[j] = a.expect(key)
			}
			body := randomBody(size)
			t0 := time.Now()
			if err := put(ctx, e.s3[origin], bucket, key, body); err != nil {
				closeAll(ws)
				return err
			}
			ack := time.Now()
			puts = append(puts, ack.Sub(t0))
			var worst time.Duration
			measured := true
			for j, a := range ws {
				select {
				case <-chs[j]:
				case <-time.After(2 * time.Second):
					// No event of its own (or very late): confirm by polling.
					if err := e.pollPresent(ctx, a, key, int64(size), time.Minute); err != nil {
						closeAll(ws)
						return err
					}
				case <-ctx.Done():
					closeAll(ws)
					return ctx.Err()
				}
				t, ok, _ := a.when(key)
				if !ok {
					stats[j].unmeasured++
					measured = false
					continue
				}
				d := t.Sub(ack)
				stats[j].lags = append(stats[j].lags, d)
				worst = max(worst, d)
			}
			if measured {
				both = append(both, worst)
			} else {
				unmeasuredBoth++
			}
		}
		closeAll(ws)
		c := span.end()
		spans = append(spans, c)
		fmt.Fprintf(w, "  run %d:\n", run)
		for j, d := range dests {
			fmt.Fprintf(w, "    %s → %s  %s\n", origin, d, stats[j])
			perDest[d] = append(perDest[d], ms(pct(stats[j].lags, 99)))
		}
		fmt.Fprintf(w, "    %s → all  %s\n", origin, lagStats{lags: both, unmeasured: unmeasuredBoth})
		fmt.Fprintf(w, "    PUT alone  p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms\n", ms(pct(puts, 50)), ms(pct(puts, 99)), ms(pct(puts, 100)))
		fmt.Fprintf(w, "    %s\n", c)
		p50, p99, putP50 = append(p50, ms(pct(both, 50))), append(p99, ms(pct(both, 99))), append(putP50, ms(pct(puts, 50)))
		ratio = append(ratio, float64(pct(both, 50))/float64(max(pct(puts, 50), 1)))
	}
	fmt.Fprintf(w, "  lag until readable at every destination: p50 %s, p99 %s   (raw p99: %s ms; target p99 ≤ 20 ms)\n", p50.fmt(1, " ms"), p99.fmt(1, " ms"), p99.raw(1))
	for _, d := range dests {
		fmt.Fprintf(w, "  p99 at %s: %s\n", d, perDest[d].fmt(1, " ms"))
	}
	fmt.Fprintf(w, "  baseline PUT p50 %s; ratio p50 lag / p50 PUT %s\n", putP50.fmt(1, " ms"), ratio.fmt(1, ""))
	e.rows = append(e.rows, summaryRow{
		figure:   fmt.Sprintf("lag, sequential %s writes at %s, ack → readable at %s, p50 / p99", fmtBytes(int64(size)), origin, strings.Join(dests, "+")),
		s3mesh:   p50.fmt(1, " ms") + " / " + p99.fmt(1, " ms"),
		baseline: "the PUT alone, p50: " + putP50.fmt(1, " ms"),
		ratio:    "p50 lag / p50 PUT: " + ratio.fmt(1, ""), target: "p99 ≤ 20 ms",
		holds: verdict(p99, func(v float64) bool { return v <= 20 }),
	})
	e.cpuRows = append(e.cpuRows, mergeCPU(spans).row("lag, sequential"))
	return nil
}

// pollPresent HEADs key at a's site every 20 ms until it is there with
// size (an object whose storage event named another key).
func (e *benchEnv) pollPresent(ctx context.Context, a *arrivals, key string, size int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, _, ok := a.when(key); ok {
			return nil
		}
		e.confirm(ctx, a, []string{key}, size)
		if _, _, ok := a.when(key); ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/%s not at %s after %v", a.bucket, key, a.site, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// benchPacedLag: 1 KiB writes at origin at each rate of S3MESH_BENCH_RATES
// for S3MESH_BENCH_PACE seconds, on a schedule (16 writers, so a slow PUT
// does not hold back the next); per object the time from its
// acknowledgement at origin until its storage event at each destination.
// No baseline: the target is p99 ≤ 20 ms.
func benchPacedLag(ctx context.Context, e *benchEnv, origin string, dests []string, bucket string) error {
	w := e.w
	const size = 1024
	fmt.Fprintf(w, "lag, paced  %s writes at %s at %v writes/s, %v each; lag = write acknowledged → storage event at each of %s; %d run(s)\n",
		fmtBytes(size), origin, e.cfg.rates, e.cfg.pace, strings.Join(dests, ", "), e.cfg.runs)
	body := randomBody(size)
	for _, rate := range e.cfg.rates {
		n := max(1, int(float64(rate)*e.cfg.pace.Seconds()))
		p50s, p99s, maxs := map[string]series{}, map[string]series{}, map[string]series{}
		var achieved series
		var spans []cpuSplit
		for run := 1; run <= e.cfg.runs; run++ {
			prefix := e.prefix(fmt.Sprintf("paced%d", rate), run)
			ws, err := e.watchAll(dests, bucket, prefix)
			if err != nil {
				return err
			}
			applied0 := e.appliedNow(ctx, origin, dests)
			keys := make([]string, n)
			acks := make([]time.Time, n)
			for i := range keys {
				keys[i] = fmt.Sprintf("%s%06d", prefix, i)
			}
			span := e.cpu.begin()
			jobs := make(chan int)
			var wg sync.WaitGroup
			var werr error
			var mu sync.Mutex
			for range 16 {
				wg.Go(func() {
					for i := range jobs {
						err := put(ctx, e.s3[origin], bucket, keys[i], body)
						mu.Lock()
						if err != nil && werr == nil {
							werr = err
						}
						acks[i] = time.Now()
						mu.Unlock()
					}
				})
			}
			t0 := time.Now()
			for i := 0; i < n && ctx.Err() == nil; i++ {
				if d := time.Until(t0.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))); d > 0 {
					time.Sleep(d)
				}
				jobs <- i
			}
			close(jobs)
			wg.Wait()
			took := time.Since(t0)
			if werr != nil {
				closeAll(ws)
				return fmt.Errorf("paced writes: %w", werr)
			}
			_, err = e.waitArrivals(ctx, origin, ws, keys, size, applied0, e.cfg.replicationTimeout)
			closeAll(ws)
			if err != nil {
				return err
			}
			c := span.end()
			spans = append(spans, c)
			achieved = append(achieved, float64(n)/took.Seconds())
			fmt.Fprintf(w, "  %d writes/s, run %d: %d writes in %.2f s (%.0f/s achieved)\n", rate, run, n, took.Seconds(), float64(n)/took.Seconds())
			for j, d := range dests {
				var st lagStats
				for i, k := range keys {
					t, measured, _ := ws[j].when(k)
					if !measured {
						st.unmeasured++
						continue
					}
					st.lags = append(st.lags, t.Sub(acks[i]))
				}
				fmt.Fprintf(w, "    %s → %s  %s\n", origin, d, st)
				p50s[d] = append(p50s[d], ms(pct(st.lags, 50)))
				p99s[d] = append(p99s[d], ms(pct(st.lags, 99)))
				maxs[d] = append(maxs[d], ms(pct(st.lags, 100)))
			}
			fmt.Fprintf(w, "    %s\n", c)
		}
		var worst series
		for _, d := range dests {
			fmt.Fprintf(w, "  %d writes/s → %s: p50 %s, p99 %s, max %s\n", rate, d, p50s[d].fmt(1, " ms"), p99s[d].fmt(1, " ms"), maxs[d].fmt(1, " ms"))
			for i, v := range p99s[d] {
				if len(worst) <= i {
					worst = append(worst, v)
				} else {
					worst[i] = max(worst[i], v)
				}
			}
		}
		var cells []string
		for _, d := range dests {
			cells = append(cells, fmt.Sprintf("%s: %s / %s / %s", d, p50s[d].fmt(1, ""), p99s[d].fmt(1, ""), maxs[d].fmt(1, "")))
		}
		e.rows = append(e.rows, summaryRow{
			figure:   fmt.Sprintf("lag, paced %d writes/s (achieved %s/s), %s at %s, ack → readable, p50 / p99 / max ms", rate, achieved.fmt(0, ""), fmtBytes(size), origin),
			s3mesh:   strings.Join(cells, "; "),
			baseline: "—", ratio: "—", target: "p99 ≤ 20 ms",
			holds: verdict(worst, func(v float64) bool { return v <= 20 }),
		})
		e.cpuRows = append(e.cpuRows, mergeCPU(spans).row(fmt.Sprintf("lag, paced %d/s", rate)))
	}
	return nil
}
