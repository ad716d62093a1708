package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/s3io"
)

// rebuildBucket is the lab bucket the rebuild benchmark fills; only it is
// rebuilt, so the figure is not skewed by the other benchmarks' objects.
const rebuildBucket = "rebuild"

// benchRebuild fills rebuildBucket at a with n objects of 1–64 KiB, waits
// until c holds them all, then times two ways of making an empty site whole
// again from a peer, in the same run: `rclone sync --transfers 8` from a
// into an empty bucket at c (the baseline), and a wipe of c followed by
// `s3mesh rebuild --site c --bucket rebuild`.
func benchRebuild(ctx context.Context, w io.Writer, l *lab.Lab, sites map[string]*s3io.Client, n int) error {
	fmt.Fprintf(w, "rebuild  %d objects of 1-64 KiB in bucket %s, site c wiped and rebuilt from its peers:\n", n, rebuildBucket)
	rclone, err := exec.LookPath("rclone")
	if err != nil {
		fmt.Fprintln(w, "  SKIPPED: rclone is not installed (the baseline); `apt-get install rclone`, or run `make bench`, which installs it")
		return nil
	}
	total, err := fillRebuildBucket(ctx, sites["a"], n)
	if err != nil {
		return err
	}
	if err := waitCount(ctx, sites["c"], rebuildBucket, n, 5*time.Minute); err != nil {
		return fmt.Errorf("before the rebuild: %w", err)
	}
	info := l.Info()
	var a, c lab.SiteInfo
	for _, s := range info.Sites {
		switch s.Name {
		case "a":
			a = s
		case "c":
			c = s
		}
	}
	target := fmt.Sprintf("rclone-%d", time.Now().UnixNano())
	t0 := time.Now()
	out, err := rcloneSync(ctx, rclone, a, c, rebuildBucket, target)
	if err != nil {
		return fmt.Errorf("rclone sync: %v\n%s", err, out)
	}
	base := time.Since(t0)
	if err := waitCount(ctx, sites["c"], target, n, time.Minute); err != nil {
		return fmt.Errorf("after rclone: %w", err)
	}
	if out, err := l.Ctl("wipe", "c"); err != nil {
		return fmt.Errorf("wipe c: %v %s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	t0 = time.Now()
	cmd := exec.CommandContext(ctx, self, "rebuild", "--site", "c", "--lab", filepath.Join(info.Dir, "lab.json"), "--bucket", rebuildBucket)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("s3mesh rebuild: %v\n%s", err, out)
	}
	took := time.Since(t0)
	if err := waitCount(ctx, sites["c"], rebuildBucket, n, time.Minute); err != nil {
		return fmt.Errorf("after the rebuild: %w", err)
	}
	if out, err := l.Ctl("start", "c"); err != nil {
		return fmt.Errorf("start c: %v %s", err, out)
	}
	mib := float64(total) / (1 << 20)
	fmt.Fprintf(w, "  baseline rclone sync --transfers 8  %7.1f s  %6.1f MiB/s\n", base.Seconds(), mib/base.Seconds())
	fmt.Fprintf(w, "  s3mesh rebuild                      %7.1f s  %6.1f MiB/s\n", took.Seconds(), mib/took.Seconds())
	fmt.Fprintf(w, "  ratio s3mesh time / rclone time = %.2f (target <= 1.0)\n", took.Seconds()/base.Seconds())
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

// rcloneSync copies bucket at a into a new bucket target at c with rclone's
// S3 backend configured from the environment (no config file).
func rcloneSync(ctx context.Context, rclone string, a, c lab.SiteInfo, bucket, target string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, rclone, "sync", "--transfers", "8", "--checkers", "16", "--config", os.DevNull,
		"src:"+bucket, "dst:"+target)
	// The stores are plain HTTP on loopback; an AWS_CA_BUNDLE in the
	// environment makes rclone's S3 backend fail before it sends anything.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, remoteEnv("SRC", a)...)
	cmd.Env = append(cmd.Env, remoteEnv("DST", c)...)
	return cmd.CombinedOutput()
}

func remoteEnv(name string, s lab.SiteInfo) []string {
	p := "RCLONE_CONFIG_" + name + "_"
	return []string{p + "TYPE=s3", p + "PROVIDER=Other", p + "ENDPOINT=" + s.S3Endpoint, p + "REGION=" + s.Region,
		p + "ACCESS_KEY_ID=" + s.AccessKey, p + "SECRET_ACCESS_KEY=" + s.SecretKey, p + "FORCE_PATH_STYLE=true"}
}
