package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/s3io"
)

// benchHelp documents the figures and the environment knobs (also in
// docs/PERFORMANCE.md).
const benchHelp = `Measure s3mesh against baselines measured in the same run.

"s3mesh bench all" (make bench) starts a fresh three-site lab of its own in a
temporary directory and runs every figure; "bench lag" and "bench throughput"
run one figure against a running lab (--lab). Every figure with a baseline is
run S3MESH_BENCH_RUNS times and reported as median [min-max], raw numbers
included; the report ends with a markdown summary table, the machine, the
versions and the CPU split between the lab's processes. docs/PERFORMANCE.md
says what each figure measures and how.

Environment (defaults in brackets; a quick run:
  S3MESH_BENCH_RUNS=1 S3MESH_BENCH_BACKLOG=10000 S3MESH_BENCH_BIG=256MiB s3mesh bench all):
  S3MESH_BENCH_RUNS       runs of each figure that has a baseline [3]
  S3MESH_BENCH_SMALL      1 KiB objects of the throughput figure [2000]
  S3MESH_BENCH_LARGE      8 MiB objects of the throughput figure [40]
  S3MESH_BENCH_CATCHUP    1 KiB objects written while a-b is cut [5000]
  S3MESH_BENCH_SEQ        sequential lag: objects written one at a time [200]
  S3MESH_BENCH_RATES      paced lag: writes/s, comma-separated [50,200,400]
  S3MESH_BENCH_PACE       paced lag: seconds at each rate [3]
  S3MESH_BENCH_BIG        the big object of the RSS figure, e.g. 2GiB, 512MiB, 0 skips [2GiB]
  S3MESH_BENCH_BACKLOG    records in the backlog (RSS) and scan figures, 0 skips [100000: about
                          4 minutes of the bench on a 2-core machine]
  S3MESH_BENCH_REBUILD    objects of the rebuild figure (one run), 0 skips [0: opt-in]
  S3MESH_BENCH_ONLY       comma-separated figures to run (throughput,lag,catchup,rss,scan,rebuild) [all]`

// newBenchCmd: `s3mesh bench` and its subcommands.
func newBenchCmd() *cobra.Command {
	var labPath, from, to, bucket string
	var n, size, conc int
	c := &cobra.Command{Use: "bench", Short: "Measure replication lag, throughput, catch-up, memory and scans against baselines", Long: benchHelp}
	c.PersistentFlags().StringVar(&labPath, "lab", ".lab/lab.json", "lab description written by `s3mesh lab` (lag, throughput)")
	c.PersistentFlags().StringVar(&from, "from", "a", "site written to")
	c.PersistentFlags().StringVar(&to, "to", "", "sites read from, comma-separated (default: every other site)")
	c.PersistentFlags().StringVar(&bucket, "bucket", "", "replicated bucket (default: the lab's first)")
	c.PersistentFlags().IntVar(&size, "size", 1024, "object size in bytes")
	c.PersistentFlags().IntVarP(&n, "n", "n", 0, "number of objects (default: lag 200, throughput 2000)")
	open := func(cmd *cobra.Command) (*benchEnv, []string, string, error) {
		info, err := lab.ReadInfo(labPath)
		if err != nil {
			return nil, nil, "", err
		}
		e, err := newBenchEnv(cmd.Context(), cmd.OutOrStdout(), benchConfigFromEnv(), func() lab.Info {
			if in, err := lab.ReadInfo(labPath); err == nil {
				return in
			}
			return info
		}, func(verb string, args ...string) (string, error) { return lab.CtlClient(info.Dir, verb, args...) })
		if err != nil {
			return nil, nil, "", err
		}
		b := bucket
		if b == "" && len(info.Buckets) > 0 {
			b = info.Buckets[0]
		}
		dests, err := e.dests(from, to)
		if err != nil {
			return nil, nil, "", err
		}
		return e, dests, b, nil
	}
	lag := &cobra.Command{
		Use:   "lag",
		Short: "Sequential writes at --from, time from each acknowledgement until readable at every --to (p50/p99/max), the PUT alone as baseline",
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, dests, b, err := open(cmd)
			if err != nil {
				return err
			}
			defer e.close()
			e.header("s3mesh bench lag (against the lab in " + e.info().Dir + ")")
			if err := benchSeqLag(cmd.Context(), e, from, dests, b, pick(n, e.cfg.seq), size); err != nil {
				return err
			}
			e.footer()
			return nil
		},
	}
	tput := &cobra.Command{
		Use:   "throughput",
		Short: "Copies/s from --from to every --to, as a ratio of a plain copier (GET at from + PUT at each to) with the same workers",
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, dests, b, err := open(cmd)
			if err != nil {
				return err
			}
			defer e.close()
			e.header("s3mesh bench throughput (against the lab in " + e.info().Dir + ")")
			if err := benchThroughput(cmd.Context(), e, from, dests, b, pick(n, e.cfg.small), size, conc); err != nil {
				return err
			}
			e.footer()
			return nil
		},
	}
	tput.Flags().IntVar(&conc, "concurrency", 8, "parallel writers (and copiers for the baseline)")
	all := &cobra.Command{
		Use:   "all",
		Short: "Start a fresh three-site lab in a temporary directory, run every figure, print the report, stop it",
		Long:  benchHelp,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchAll(cmd.Context(), cmd.OutOrStdout())
		},
	}
	c.AddCommand(lag, tput, all)
	return c
}

func pick(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// benchConfig holds the environment knobs (see benchHelp).
type benchConfig struct {
	runs                       int
	small, large, catchup, seq int
	rates                      []int
	pace                       time.Duration
	big                        int64
	backlog, rebuild           int
	only                       map[string]bool
	scanInterval               time.Duration
	throughputConc, largeConc  int
	catchupConc, backlogConc   int
	largeSize, smallSize       int
	rcloneTransfers            int
	replicationTimeout         time.Duration
}

func benchConfigFromEnv() benchConfig {
	c := benchConfig{
		runs:  max(1, envInt("S3MESH_BENCH_RUNS", 3)),
		small: envInt("S3MESH_BENCH_SMALL", 2000), large: envInt("S3MESH_BENCH_LARGE", 40),
		catchup: envInt("S3MESH_BENCH_CATCHUP", 5000), seq: envInt("S3MESH_BENCH_SEQ", 200),
		pace:    time.Duration(envInt("S3MESH_BENCH_PACE", 3)) * time.Second,
		big:     envSize("S3MESH_BENCH_BIG", 2<<30),
		backlog: envInt("S3MESH_BENCH_BACKLOG", 100000), rebuild: envInt("S3MESH_BENCH_REBUILD", 0),
		scanInterval:   time.Hour,
		throughputConc: 8, largeConc: 4, catchupConc: 8, backlogConc: 16,
		smallSize: 1024, largeSize: 8 << 20, rcloneTransfers: 8,
		replicationTimeout: 10 * time.Minute,
	}
	for _, f := range strings.Split(envStr("S3MESH_BENCH_RATES", "50,200,400"), ",") {
		if r, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && r > 0 {
			c.rates = append(c.rates, r)
		}
	}
	if v := envStr("S3MESH_BENCH_ONLY", ""); v != "" {
		c.only = map[string]bool{}
		for _, f := range strings.Split(v, ",") {
			c.only[strings.TrimSpace(f)] = true
		}
	}
	return c
}

func (c benchConfig) want(fig string) bool { return c.only == nil || c.only[fig] }

// benchBuckets are the replicated buckets of the bench's own lab, one per
// figure, so a scan one figure triggers never lists another's objects.
var benchBuckets = []string{"tput", "lag", "catchup", "big", "backlog", rebuildBucket}

// benchAll is `make bench`: a lab of its own, every figure, the report.
func benchAll(ctx context.Context, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg := benchConfigFromEnv()
	began := time.Now()
	dir, err := os.MkdirTemp("", "s3mesh-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(w, "s3mesh bench all: starting a fresh 3-site lab in %s (secure defaults; scan.interval %v: periodic full rescans are off, rescans kicked by events still run) ...\n",
		dir, cfg.scanInterval)
	l, err := lab.Start(ctx, lab.Options{Dir: dir, Sites: 3, Buckets: benchBuckets, ScanInterval: cfg.scanInterval,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer l.Stop()
	e, err := newBenchEnv(ctx, w, cfg, l.Info, l.Ctl)
	if err != nil {
		return err
	}
	defer e.close()
	e.began = began
	e.header(fmt.Sprintf("s3mesh bench all: 3-site lab on loopback in %s, writes at a, replicas at b and c; %d run(s) per figure with a baseline", dir, cfg.runs))
	fmt.Fprintf(w, "sizes: throughput %d × 1 KiB and %d × 8 MiB, catch-up %d, sequential lag %d, paced lag %v/s for %v, big object %s, backlog and scan %d%s, rebuild %d (0: off); knobs: s3mesh bench --help\n\n",
		cfg.small, cfg.large, cfg.catchup, cfg.seq, cfg.rates, cfg.pace, fmtBytes(cfg.big), cfg.backlog, backlogNote(cfg.backlog), cfg.rebuild)
	dests := []string{"b", "c"}
	if err := benchWarmup(ctx, e, "a", dests, "tput", 100); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	steps := []struct {
		fig string
		run func() error
	}{
		{"throughput", func() error {
			return benchThroughput(ctx, e, "a", dests, "tput", cfg.small, cfg.smallSize, cfg.throughputConc)
		}},
		{"throughput", func() error {
			return benchThroughput(ctx, e, "a", dests, "tput", cfg.large, cfg.largeSize, cfg.largeConc)
		}},
		{"lag", func() error { return benchSeqLag(ctx, e, "a", dests, "lag", cfg.seq, 1024) }},
		{"lag", func() error { return benchPacedLag(ctx, e, "a", dests, "lag") }},
		{"catchup", func() error { return benchCatchup(ctx, e, "catchup", cfg.catchup) }},
		{"rss", func() error { return benchBig(ctx, e, "big", cfg.big) }},
		{"rss", func() error { return benchBacklog(ctx, e, "backlog", cfg.backlog) }},
		{"scan", func() error { return benchScan(ctx, e, "backlog", cfg.backlog) }},
		{"rebuild", func() error {
			if err := e.startParked(); err != nil {
				return err
			}
			return benchRebuildFigure(ctx, e, l, cfg.rebuild)
		}},
	}
	for _, s := range steps {
		if !cfg.want(s.fig) {
			continue
		}
		if err := s.run(); err != nil {
			e.failed = append(e.failed, err.Error())
			fmt.Fprintf(w, "\nFIGURE FAILED: %v\n", err)
			if ctx.Err() != nil {
				break
			}
		}
		fmt.Fprintln(w)
	}
	if err := e.startParked(); err != nil {
		e.failed = append(e.failed, err.Error())
	}
	e.footer()
	if len(e.failed) > 0 {
		return fmt.Errorf("%d figure(s) failed", len(e.failed))
	}
	return nil
}

// benchWarmup replicates n small objects before the first figure, so
// that no figure pays for the fresh lab's first connections and consumers.
func benchWarmup(ctx context.Context, e *benchEnv, origin string, dests []string, bucket string, n int) error {
	prefix := e.prefix("warmup", 0)
	ws, err := e.watchAll(dests, bucket, prefix)
	if err != nil {
		return err
	}
	defer closeAll(ws)
	applied0 := e.appliedNow(ctx, origin, dests)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	body := randomBody(1024)
	t0 := time.Now()
	if err := parallel(ctx, n, 8, func(i int) error { return put(ctx, e.s3[origin], bucket, keys[i], body) }); err != nil {
		return err
	}
	if _, err := e.waitArrivals(ctx, origin, ws, keys, 1024, applied0, e.cfg.replicationTimeout); err != nil {
		return err
	}
	fmt.Fprintf(e.w, "warm-up (not a figure): %d × 1 KiB written at %s and replicated to %s in %.1f s\n\n", n, origin, strings.Join(dests, " and "), time.Since(t0).Seconds())
	return nil
}

func backlogNote(n int) string {
	if n < 100000 {
		return " (the issue's figure is 100000, the default)"
	}
	return ""
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(strings.TrimSpace(os.Getenv(name))); err == nil {
		return v
	}
	return def
}

func envStr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// envSize parses sizes such as 2GiB, 512MiB, 64KiB, 1G, or plain bytes.
func envSize(name string, def int64) int64 {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def
	}
	n, err := parseSize(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "s3mesh bench: %s=%q: %v; using %s\n", name, v, err, fmtBytes(def))
		return def
	}
	return n
}

func parseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a size such as 2GiB")
	}
	return int64(f * float64(mult)), nil
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
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

// --- statistics -----------------------------------------------------------

// pct is the p-th percentile (nearest rank) of d.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// series is one figure's value over the runs.
type series []float64

func (s series) sorted() []float64 {
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	return c
}
func (s series) min() float64 { return s.sorted()[0] }
func (s series) max() float64 { return s.sorted()[len(s)-1] }
func (s series) median() float64 {
	c := s.sorted()
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// fmt prints "median [min–max]" (only the value for one run) with the
// given precision and unit.
func (s series) fmt(prec int, unit string) string {
	if len(s) == 0 {
		return "—"
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	if len(s) == 1 {
		return f(s[0]) + unit
	}
	return fmt.Sprintf("%s%s [%s–%s]", f(s.median()), unit, f(s.min()), f(s.max()))
}

// raw prints every run's value.
func (s series) raw(prec int) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = strconv.FormatFloat(v, 'f', prec, 64)
	}
	return strings.Join(parts, ", ")
}

// --- report ---------------------------------------------------------------

// summaryRow is one line of the final markdown table.
type summaryRow struct {
	figure, s3mesh, baseline, ratio, target, holds string
}

// verdict says whether a target holds for the median (and for every run).
func verdict(s series, ok func(float64) bool) string {
	if len(s) == 0 {
		return "—"
	}
	all := true
	for _, v := range s {
		all = all && ok(v)
	}
	switch {
	case all:
		return "yes"
	case ok(s.median()):
		return "median only"
	}
	return "**no**"
}

func (e *benchEnv) header(title string) {
	fmt.Fprintln(e.w, title)
	fmt.Fprintln(e.w, e.machine())
	fmt.Fprintln(e.w)
}

func (e *benchEnv) footer() {
	w := e.w
	fmt.Fprintln(w, "=== summary (markdown, for docs/PERFORMANCE.md) ===")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | s3mesh | baseline (same run) | ratio | target | holds |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range e.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.figure, r.s3mesh, r.baseline, r.ratio, r.target, r.holds)
	}
	fmt.Fprintln(w)
	whole := e.whole.end()
	e.cpuRows = append(e.cpuRows, whole.row("**whole bench**"))
	if len(e.cpuRows) > 0 {
		fmt.Fprintln(w, "CPU split (seconds of CPU and share of the CPU used, from /proc/<pid>/stat utime+stime):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| phase | wall | stores ×3 (versitygw, or the lab's --stores) | brokers ×3 | agents ×3 | bench process | rclone / tools | busy (lab+bench of all CPUs) | other processes |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
		for _, r := range e.cpuRows {
			fmt.Fprintln(w, r)
		}
		fmt.Fprintln(w)
	}
	if share := whole.secs["other"] / max(whole.wall.Seconds()*float64(numCPU()), 1e-9); share > 0.05 {
		fmt.Fprintf(w, "WARNING: other processes (neither the lab nor the bench) used %.0f%% of the machine's CPU during the bench: the figures are pessimistic (see the last column of the CPU split).\n", 100*share)
	}
	fmt.Fprintf(w, "Values are median [min–max] over %d run(s) (S3MESH_BENCH_RUNS); ratios are computed per run. \"holds\": yes = every run meets the target.\n", e.cfg.runs)
	fmt.Fprintln(w, e.machine())
	fmt.Fprintf(w, "versions: %s\n", e.versions())
	fmt.Fprintf(w, "command: %s\n", e.command())
	if !e.began.IsZero() {
		fmt.Fprintf(w, "total time: %s\n", time.Since(e.began).Round(time.Second))
	}
	for _, f := range e.failed {
		fmt.Fprintf(w, "FAILED: %s\n", f)
	}
}

func (e *benchEnv) machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(line[strings.IndexByte(line, ':')+1:])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	return fmt.Sprintf("machine: %d CPUs (%s)%s, %s, %s %s/%s", runtime.NumCPU(), model, mem, kernel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func kernel() string {
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	typ, _ := os.ReadFile("/proc/sys/kernel/ostype")
	if len(rel) == 0 {
		return "kernel unknown"
	}
	return strings.TrimSpace(string(typ)) + " " + strings.TrimSpace(string(rel))
}

func (e *benchEnv) command() string {
	cmd := filepath.Base(os.Args[0]) + " " + strings.Join(os.Args[1:], " ")
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "S3MESH_BENCH_") {
			env = append(env, kv)
		}
	}
	sort.Strings(env)
	return strings.TrimSpace(strings.Join(append(env, cmd), " "))
}
