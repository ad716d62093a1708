package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/s3io"
)

// newBenchCmd: replication lag and throughput against a running lab, each
// figure next to a baseline measured in the same run.
func newBenchCmd() *cobra.Command {
	var labPath, from, to, bucket string
	var n, size, conc int
	c := &cobra.Command{Use: "bench", Short: "Measure replication lag and throughput on a running lab"}
	c.PersistentFlags().StringVar(&labPath, "lab", ".lab/lab.json", "lab description written by `s3mesh lab`")
	c.PersistentFlags().StringVar(&from, "from", "a", "site written to")
	c.PersistentFlags().StringVar(&to, "to", "c", "site read from")
	c.PersistentFlags().StringVar(&bucket, "bucket", "", "bucket (default: the lab's first)")
	c.PersistentFlags().IntVar(&size, "size", 1024, "object size in bytes")
	c.PersistentFlags().IntVarP(&n, "n", "n", 200, "number of objects")
	open := func() (src, dst *s3io.Client, b string, err error) {
		info, err := lab.ReadInfo(labPath)
		if err != nil {
			return nil, nil, "", err
		}
		b = bucket
		if b == "" && len(info.Buckets) > 0 {
			b = info.Buckets[0]
		}
		for _, s := range info.Sites {
			cl, err := s3io.New(s3io.Endpoint{URL: s.S3Endpoint, Region: s.Region, AccessKey: s.AccessKey, SecretKey: s.SecretKey, PathStyle: true})
			if err != nil {
				return nil, nil, "", err
			}
			if s.Name == from {
				src = cl
			}
			if s.Name == to {
				dst = cl
			}
		}
		if src == nil || dst == nil {
			return nil, nil, "", fmt.Errorf("lab %s has no site %q or %q", labPath, from, to)
		}
		return src, dst, b, nil
	}
	lag := &cobra.Command{
		Use:   "lag",
		Short: "Write one object at a time at --from, time until it is readable at --to (p50/p99)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, dst, b, err := open()
			if err != nil {
				return err
			}
			return benchLag(cmd.Context(), cmd.OutOrStdout(), src, dst, b, n, size)
		},
	}
	tput := &cobra.Command{
		Use:   "throughput",
		Short: "Replication throughput from --from to --to as a ratio of a raw S3 copy (GET at from + PUT at to)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, dst, b, err := open()
			if err != nil {
				return err
			}
			return benchThroughput(cmd.Context(), cmd.OutOrStdout(), src, dst, b, n, size, conc)
		},
	}
	tput.Flags().IntVar(&conc, "concurrency", 8, "parallel writers (and copiers for the baseline)")
	all := &cobra.Command{
		Use:   "all",
		Short: "Start a fresh three-site lab in a temporary directory, run every benchmark, stop it",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchAll(cmd.Context(), cmd.OutOrStdout())
		},
	}
	c.AddCommand(lag, tput, all)
	return c
}

// benchAll is `make bench`: a lab of its own, then lag (1 KiB) and
// throughput (1 KiB and 8 MiB objects), each with its baseline.
func benchAll(ctx context.Context, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dir, err := os.MkdirTemp("", "s3mesh-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l, err := lab.Start(ctx, lab.Options{Dir: dir, Sites: 3, Buckets: []string{"demo", rebuildBucket},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer l.Stop()
	sites := map[string]*s3io.Client{}
	for _, s := range l.Info().Sites {
		cl, err := s3io.New(s3io.Endpoint{URL: s.S3Endpoint, Region: s.Region, AccessKey: s.AccessKey, SecretKey: s.SecretKey, PathStyle: true})
		if err != nil {
			return err
		}
		sites[s.Name] = cl
	}
	src, dst := sites["a"], sites["c"]
	fmt.Fprintf(w, "s3mesh bench: 3-site lab on loopback, %d CPUs, writes at a, reads at c\n\n", runtime.NumCPU())
	if err := benchLag(ctx, w, src, dst, "demo", 300, 1024); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := benchThroughput(ctx, w, src, dst, "demo", 1000, 1024, 8); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := benchThroughput(ctx, w, src, dst, "demo", 24, 8<<20, 4); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return benchRebuild(ctx, w, l, sites, rebuildObjects)
}

// rebuildObjects is the size of the rebuild benchmark (S3MESH_BENCH_REBUILD
// overrides it; 0 skips it).
var rebuildObjects = envInt("S3MESH_BENCH_REBUILD", 20000)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func randomBody(size int) []byte {
	b := make([]byte, size)
	_, _ = rand.Read(b)
	return b
}

func put(ctx context.Context, c *s3io.Client, bucket, key string, body []byte) error {
	_, err := c.Put(ctx, s3io.PutInput{Bucket: bucket, Key: key, Body: bytes.NewReader(body), Size: int64(len(body))})
	return err
}

func benchLag(ctx context.Context, w io.Writer, src, dst *s3io.Client, bucket string, n, size int) error {
	run := time.Now().UnixNano()
	var lags, puts []time.Duration
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("bench/lag-%d/%05d", run, i)
		t0 := time.Now()
		if err := put(ctx, src, bucket, key, randomBody(size)); err != nil {
			return err
		}
		puts = append(puts, time.Since(t0))
		deadline := t0.Add(60 * time.Second)
		for {
			info, err := dst.Head(ctx, bucket, key)
			if err == nil && info.Exists {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("object %s never reached the destination within 60s", key)
			}
			time.Sleep(time.Millisecond)
		}
		lags = append(lags, time.Since(t0))
	}
	fmt.Fprintf(w, "lag  %d objects of %d B, write at source to readable at destination:\n", n, size)
	fmt.Fprintf(w, "  replication  p50 %8.1f ms   p99 %8.1f ms\n", ms(pct(lags, 50)), ms(pct(lags, 99)))
	fmt.Fprintf(w, "  baseline PUT p50 %8.1f ms   p99 %8.1f ms   (the write alone)\n", ms(pct(puts, 50)), ms(pct(puts, 99)))
	fmt.Fprintf(w, "  ratio p50 lag / p50 PUT = %.1f\n", float64(pct(lags, 50))/float64(pct(puts, 50)))
	return nil
}

func benchThroughput(ctx context.Context, w io.Writer, src, dst *s3io.Client, bucket string, n, size, conc int) error {
	run := time.Now().UnixNano()
	body := randomBody(size)
	parallel := func(f func(i int) error) error {
		var next atomic.Int64
		var wg sync.WaitGroup
		errc := make(chan error, conc)
		for g := 0; g < conc; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					if err := f(i); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		return <-errc
	}
	// Baseline: what a raw copy pipeline does between the two stores.
	basePrefix := fmt.Sprintf("bench/base-%d/", run)
	for _, c := range []*s3io.Client{src, dst} {
		if err := c.EnsureBucket(ctx, bucket+"-baseline"); err != nil {
			return err
		}
	}
	if err := parallel(func(i int) error {
		return put(ctx, src, bucket+"-baseline", fmt.Sprintf("%s%05d", basePrefix, i), body)
	}); err != nil {
		return fmt.Errorf("baseline bucket %s-baseline: %w", bucket, err)
	}
	t0 := time.Now()
	err := parallel(func(i int) error {
		key := fmt.Sprintf("%s%05d", basePrefix, i)
		rc, info, err := src.Get(ctx, bucket+"-baseline", key, "")
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = dst.Put(ctx, s3io.PutInput{Bucket: bucket + "-baseline", Key: key, Body: rc, Size: info.Size})
		return err
	})
	if err != nil {
		return err
	}
	base := time.Since(t0)
	// Replication: write at the source, wait until all are at the destination.
	prefix := fmt.Sprintf("bench/tput-%d/", run)
	t0 = time.Now()
	if err := parallel(func(i int) error { return put(ctx, src, bucket, fmt.Sprintf("%s%05d", prefix, i), body) }); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		count := 0
		if err := dst.List(ctx, bucket, prefix, 1000, func(le s3io.ListEntry) error {
			if len(le.Key) > len(prefix) && le.Key[:len(prefix)] == prefix {
				count++
			}
			return nil
		}); err != nil {
			return err
		}
		if count >= n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d objects replicated after 10 minutes", count, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	repl := time.Since(t0)
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	mib := func(d time.Duration) float64 { return float64(n) * float64(size) / (1 << 20) / d.Seconds() }
	fmt.Fprintf(w, "throughput  %d objects of %d B, concurrency %d:\n", n, size, conc)
	fmt.Fprintf(w, "  baseline raw copy (GET src + PUT dst)   %8.1f obj/s  %8.1f MiB/s\n", rate(base), mib(base))
	fmt.Fprintf(w, "  s3mesh (PUT src .. listed at dst)       %8.1f obj/s  %8.1f MiB/s\n", rate(repl), mib(repl))
	fmt.Fprintf(w, "  ratio s3mesh / baseline = %.2f\n", rate(repl)/rate(base))
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
