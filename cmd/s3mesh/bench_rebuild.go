package main

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/s3io"
)

// rebuildBucket is the lab bucket the rebuild benchmark fills; only it is
// rebuilt, so the figure is not skewed by the other benchmarks' objects.
const rebuildBucket = "rebuild"

// benchRebuildFigure fills rebuildBucket at a with n objects of 1–64 KiB,
// waits until c holds them all, then times two ways of making an empty site
// whole again from a peer, in the same run: `rclone sync --transfers 8`
// from a into an empty bucket at c (the baseline), and a wipe of c followed
// by `s3mesh rebuild --site c --bucket rebuild`. One run; opt-in with
// S3MESH_BENCH_REBUILD=N (it wipes site c, so it runs last).
func benchRebuildFigure(ctx context.Context, e *benchEnv, _ *lab.Lab, n int) error {
	w := e.w
	fmt.Fprintf(w, "rebuild  %d objects of 1-64 KiB in bucket %s, site c wiped and rebuilt from its peers (one run):\n", n, rebuildBucket)
	if n <= 0 {
		fmt.Fprintln(w, "  SKIPPED: opt-in, S3MESH_BENCH_REBUILD=20000 runs it (about 3 minutes more)")
		return nil
	}
	rclone, err := rcloneBin()
	if err != nil {
		fmt.Fprintln(w, "  SKIPPED: rclone is not installed (the baseline): `make build` builds the pinned one into bin/")
		return nil
	}
	total, err := fillRebuildBucket(ctx, e.s3["a"], n)
	if err != nil {
		return err
	}
	if err := waitCount(ctx, e.s3["c"], rebuildBucket, n, 5*time.Minute); err != nil {
		return fmt.Errorf("before the rebuild: %w", err)
	}
	target := fmt.Sprintf("rclone-%d", time.Now().UnixNano())
	span := e.cpu.begin()
	t0 := time.Now()
	out, cmd, err := e.rclone(ctx, rclone, []string{"sync", "--transfers", "8", "--checkers", "16", "src:" + rebuildBucket, "dst:" + target}, e.site("a"), e.site("c"))
	base := time.Since(t0)
	e.cpu.addTool(cmd)
	rsplit := span.end()
	if err != nil {
		return fmt.Errorf("rclone sync: %v\n%s", err, out)
	}
	if err := waitCount(ctx, e.s3["c"], target, n, time.Minute); err != nil {
		return fmt.Errorf("after rclone: %w", err)
	}
	if out, err := e.ctl("wipe", "c"); err != nil {
		return fmt.Errorf("wipe c: %v %s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	span = e.cpu.begin()
	t0 = time.Now()
	rb := exec.CommandContext(ctx, self, "rebuild", "--site", "c", "--lab", filepath.Join(e.info().Dir, "lab.json"), "--bucket", rebuildBucket)
	out, err = rb.CombinedOutput()
	took := time.Since(t0)
	e.cpu.addTool(rb)
	msplit := span.end()
	if err != nil {
		return fmt.Errorf("s3mesh rebuild: %v\n%s", err, out)
	}
	if err := waitCount(ctx, e.s3["c"], rebuildBucket, n, time.Minute); err != nil {
		return fmt.Errorf("after the rebuild: %w", err)
	}
	if out, err := e.ctl("start", "c"); err != nil {
		return fmt.Errorf("start c: %v %s", err, out)
	}
	mib := float64(total) / (1 << 20)
	fmt.Fprintf(w, "  baseline rclone sync --transfers 8  %7.1f s  %6.1f MiB/s\n", base.Seconds(), mib/base.Seconds())
	fmt.Fprintf(w, "    %s\n", rsplit)
	fmt.Fprintf(w, "  s3mesh rebuild                      %7.1f s  %6.1f MiB/s\n", took.Seconds(), mib/took.Seconds())
	fmt.Fprintf(w, "    %s\n", msplit)
	r := took.Seconds() / base.Seconds()
	fmt.Fprintf(w, "  ratio s3mesh time / rclone time = %.2f (target <= 1.0)\n", r)
	holds := "yes"
	if r > 1 {
		holds = "**no**"
	}
	e.rows = append(e.rows, summaryRow{figure: fmt.Sprintf("rebuild of c, %d objects of 1–64 KiB (one run)", n),
		s3mesh: fmt.Sprintf("%.1f s", took.Seconds()), baseline: fmt.Sprintf("rclone sync --transfers 8 a → c: %.1f s", base.Seconds()),
		ratio: fmt.Sprintf("%.2f", r), target: "≤ 1.0", holds: holds})
	e.cpuRows = append(e.cpuRows, rsplit.row("rebuild, rclone sync"), msplit.row("rebuild, s3mesh rebuild (tools = the rebuild process)"))
	return nil
}

// fillRebuildBucket writes n objects of 1–64 KiB at src with 16 writers and
// returns their total size.
func fillRebuildBucket(ctx context.Context, src *s3io.Client, n int) (int64, error) {
	var next, total atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				body := randomBody(1024 + rng.IntN(63*1024+1))
				total.Add(int64(len(body)))
				_, err := src.Put(ctx, s3io.PutInput{Bucket: rebuildBucket, Key: fmt.Sprintf("obj/%06d", i), Body: bytes.NewReader(body), Size: int64(len(body))})
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return total.Load(), <-errc
}

// waitCount polls until bucket at c lists at least n objects.
func waitCount(ctx context.Context, c *s3io.Client, bucket string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	got := 0
	for time.Now().Before(deadline) {
		got = 0
		err := c.List(ctx, bucket, "", 1000, func(s3io.ListEntry) error { got++; return nil })
		if err == nil && got >= n {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("bucket %s holds %d objects after %s, want %d", bucket, got, timeout, n)
}

func remoteEnv(name string, s lab.SiteInfo) []string {
	p := "RCLONE_CONFIG_" + name + "_"
	return []string{p + "TYPE=s3", p + "PROVIDER=Other", p + "ENDPOINT=" + s.S3Endpoint, p + "REGION=" + s.Region,
		p + "ACCESS_KEY_ID=" + s.AccessKey, p + "SECRET_ACCESS_KEY=" + s.SecretKey, p + "FORCE_PATH_STYLE=true"}
}
