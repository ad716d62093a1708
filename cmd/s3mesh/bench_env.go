package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/s3io"
)

// benchEnv is what every figure works with: the lab's sites, an S3 client
// per site, the lab's control verbs, the CPU meter and the report.
type benchEnv struct {
	w       io.Writer
	cfg     benchConfig
	info    func() lab.Info // fresh: agent pids change across kill/start
	ctl     func(verb string, args ...string) (string, error)
	s3      map[string]*s3io.Client
	cpu     *cpuMeter
	http    *http.Client
	rows    []summaryRow
	cpuRows []string
	failed  []string
	began   time.Time
	runID   string
	whole   *cpuSpan // the whole bench, for the footer's warning
	// parked are agents a figure left stopped so that the figures after
	// it run on a quiet lab; startParked starts them again.
	parked []string
}

// startParked starts the agents a figure left stopped (see parked); they
// catch up from their brokers' mirrors on their own.
func (e *benchEnv) startParked() error {
	for len(e.parked) > 0 {
		s := e.parked[0]
		if _, err := e.ctl("start", s); err != nil {
			return fmt.Errorf("start %s: %w", s, err)
		}
		e.parked = e.parked[1:]
	}
	return nil
}

func newBenchEnv(ctx context.Context, w io.Writer, cfg benchConfig, info func() lab.Info, ctl func(string, ...string) (string, error)) (*benchEnv, error) {
	in := info()
	e := &benchEnv{w: w, cfg: cfg, info: info, ctl: ctl, s3: map[string]*s3io.Client{},
		http: &http.Client{Timeout: 5 * time.Second}, runID: strconv.FormatInt(time.Now().Unix()%1000000, 36)}
	for _, s := range in.Sites {
		// Retries hidden inside the client would blur the figures; a few
		// are kept so one transient error does not end a long run.
		cl, err := s3io.New(s3io.Endpoint{URL: s.S3Endpoint, Region: s.Region, AccessKey: s.AccessKey, SecretKey: s.SecretKey, PathStyle: true})
		if err != nil {
			return nil, err
		}
		e.s3[s.Name] = cl
	}
	e.cpu = startCPUMeter(ctx, in.Dir)
	e.whole = e.cpu.begin()
	return e, nil
}

func (e *benchEnv) close() { e.cpu.stop() }

// site returns the current description of site name.
func (e *benchEnv) site(name string) lab.SiteInfo {
	for _, s := range e.info().Sites {
		if s.Name == name {
			return s
		}
	}
	return lab.SiteInfo{Name: name}
}

// dests parses --to (default: every site but from).
func (e *benchEnv) dests(from, to string) ([]string, error) {
	var names []string
	for _, s := range e.info().Sites {
		names = append(names, s.Name)
	}
	if !slices.Contains(names, from) {
		return nil, fmt.Errorf("the lab has no site %q (sites: %s)", from, strings.Join(names, ", "))
	}
	var out []string
	if to == "" {
		for _, n := range names {
			if n != from {
				out = append(out, n)
			}
		}
	} else {
		for _, n := range strings.Split(to, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(names, n) || n == from {
				return nil, fmt.Errorf("--to %q: not another site of the lab (sites: %s)", n, strings.Join(names, ", "))
			}
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no destination site")
	}
	return out, nil
}

// prefix returns a fresh key prefix for one run of a figure.
func (e *benchEnv) prefix(fig string, run int) string {
	return fmt.Sprintf("%s-%s-%d/", fig, e.runID, run)
}

// --- agents' metrics ------------------------------------------------------

// promSample is one parsed /metrics text: series ("name{labels}") → value.
type promSample map[string]float64

// metrics reads site's agent /metrics.
func (e *benchEnv) metrics(ctx context.Context, site string) (promSample, error) {
	s := e.site(site)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTPAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics at %s: %s", site, resp.Status)
	}
	out := promSample{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, "s3mesh_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// sum adds every series of metric name whose labels include all of want
// (`key="value"` strings).
func (p promSample) sum(name string, want ...string) float64 {
	var t float64
	for k, v := range p {
		base, labels, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(labels, w)
		}
		if ok {
			t += v
		}
	}
	return t
}

// byLabel returns metric name's values by the value of label.
func (p promSample) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range p {
		base, labels, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		_, rest, ok := strings.Cut(labels, label+`="`)
		if !ok {
			continue
		}
		val, _, _ := strings.Cut(rest, `"`)
		out[val] += v
	}
	return out
}

// counter reads one summed counter of site's agent (-1 if unreadable).
func (e *benchEnv) counter(ctx context.Context, site, name string, want ...string) float64 {
	p, err := e.metrics(ctx, site)
	if err != nil {
		return -1
	}
	return p.sum(name, want...)
}

// waitCounter polls site's counter every 200 ms until it reaches target.
func (e *benchEnv) waitCounter(ctx context.Context, site, name string, target float64, timeout time.Duration, want ...string) error {
	deadline := time.Now().Add(timeout)
	last := -1.0
	for {
		v := e.counter(ctx, site, name, want...)
		if v >= target {
			return nil
		}
		if v >= 0 {
			last = v
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s at %s is %.0f after %v, want %.0f", name, site, last, timeout, target)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// --- S3 helpers -----------------------------------------------------------

// parallel runs f(0..n-1) on conc goroutines; the first error stops it.
func parallel(ctx context.Context, n, conc int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// listPrefix counts the objects under prefix in bucket at c and how many of
// them have size want.
func listPrefix(ctx context.Context, c *s3io.Client, bucket, prefix string, want int64) (n, sized int, err error) {
	stop := errors.New("past the prefix")
	err = c.List(ctx, bucket, prefix, 1000, func(le s3io.ListEntry) error {
		if !strings.HasPrefix(le.Key, prefix) {
			if le.Key > prefix {
				return stop
			}
			return nil
		}
		n++
		if le.Size == want {
			sized++
		}
		return nil
	})
	if errors.Is(err, stop) {
		err = nil
	}
	return n, sized, err
}

// verifyAll checks by one listing per site that all n objects under prefix
// are at every site with size want.
func (e *benchEnv) verifyAll(ctx context.Context, sites []string, bucket, prefix string, n int, want int64) (string, error) {
	var parts []string
	for _, s := range sites {
		got, sized, err := listPrefix(ctx, e.s3[s], bucket, prefix, want)
		if err != nil {
			return "", fmt.Errorf("listing %s at %s: %w", bucket, s, err)
		}
		if got != n || sized != n {
			return "", fmt.Errorf("final listing: %s/%s* at %s holds %d objects (%d of size %d), want %d", bucket, prefix, s, got, sized, want, n)
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d", s, sized, n))
	}
	return "verified by listing: " + strings.Join(parts, ", ") + " with the right size", nil
}

// patternReader yields size bytes of a repeating random block without
// holding more than the block (the big-object figure's body).
type patternReader struct {
	block     []byte
	remaining int64
	off       int
}

func newPatternReader(size int64) *patternReader {
	return &patternReader{block: randomBody(1<<20 + 7), remaining: size}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.block[r.off:])
		n += c
		r.off = (r.off + c) % len(r.block)
	}
	r.remaining -= int64(n)
	return n, nil
}

// freeBytes is the space available to an unprivileged user where path is.
func freeBytes(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// --- versions -------------------------------------------------------------

func (e *benchEnv) versions() string {
	var parts []string
	s3mesh := ""
	if out, err := exec.Command("git", "describe", "--always", "--dirty", "--tags").Output(); err == nil {
		s3mesh = strings.TrimSpace(string(out))
	}
	bi, _ := debug.ReadBuildInfo()
	if s3mesh == "" && bi != nil {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				s3mesh = s.Value
			}
		}
	}
	if s3mesh == "" {
		s3mesh = "unknown"
	}
	parts = append(parts, "s3mesh "+s3mesh)
	exe, _ := os.Executable()
	if v := depVersion(filepath.Join(filepath.Dir(exe), "versitygw"), "github.com/versity/versitygw"); v != "" {
		parts = append(parts, "versitygw "+v)
	}
	if bi != nil {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats-server/v2" {
				parts = append(parts, "nats-server "+d.Version+" (embedded in `s3mesh broker`)")
			}
		}
	}
	if path, err := rcloneBin(); err == nil {
		if out, err := exec.Command(path, "version").Output(); err == nil {
			parts = append(parts, strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
		}
	} else {
		parts = append(parts, "rclone not installed")
	}
	return strings.Join(parts, ", ")
}

// depVersion reads the version of module mod from the build information
// of the executable at path (the go.mod pin it was built from).
func depVersion(path, mod string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	if bi.Main.Path == mod {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == mod {
			return d.Version
		}
	}
	return ""
}

// rcloneBin is the rclone the figures measured against rclone use: the
// pinned one `make build` puts beside s3mesh (tools/rclone), else one on
// PATH.
func rcloneBin() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "rclone")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return exec.LookPath("rclone")
}
