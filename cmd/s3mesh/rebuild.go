package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/rebuild"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

type rebuildFlags struct {
	target
	bucket        string
	workers       int
	trustUnsigned bool
}

func newRebuildCmd() *cobra.Command {
	var f rebuildFlags
	c := &cobra.Command{
		Use:   "rebuild --site X (--lab DIR/lab.json | --config site.yaml) [--bucket B]",
		Short: "Restore a site that lost its store or per-key state from its peers (run while its agent is stopped)",
		Long: `rebuild restores site X's objects and per-key state from its peers while X's
agent is stopped: it creates the replicated buckets X lacks, reads every peer's
per-key state page by page (through the peers' agents), copies the greatest
version of every key from a peer holding it into X with its replica marker and
writes X's state entry for it. Objects X already holds in that version are
adopted; objects no peer knows are kept (the agent publishes them when it
starts). A version is adopted only when a record its origin signed backs
it, and copied bytes are checked against the ETag that record signs: a
peer's other claims and bytes are refused and reported; objects that differ from the peers' version are kept unless they are
a stale replica, and listed. If X's JetStream store was lost too, X's CHANGES
stream is moved on to the sequence its peers' mirrors hold.

It is resumable: interrupted, run it again and it continues from its cursor.
Start X's agent afterwards; writes made elsewhere meanwhile arrive through
X's mirrors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runRebuild(ctx, f, cmd.OutOrStdout(), os.Stderr, isTerminal(os.Stderr))
		},
	}
	f.target.flags(c)
	c.Flags().StringVar(&f.bucket, "bucket", "", "only this replicated bucket")
	c.Flags().IntVar(&f.workers, "workers", 16, "objects copied in parallel")
	c.Flags().BoolVar(&f.trustUnsigned, "trust-unsigned", false,
		"also adopt versions no signed record backs, as the peers state them (peers whose states predate signed proofs)")
	return c
}

// rebuildEnv is what runRebuild connects to.
type rebuildEnv struct {
	cfg   *config.Site
	self  *nats.Conn            // X's broker
	peers map[string]*nats.Conn // admin requests to each peer go here
	close func()
}

func rebuildConnect(f rebuildFlags) (*rebuildEnv, error) {
	env := &rebuildEnv{peers: map[string]*nats.Conn{}}
	var conns []*nats.Conn
	var srv *broker.Server
	env.close = func() {
		for _, c := range conns {
			c.Close()
		}
		if srv != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	}
	fail := func(err error) (*rebuildEnv, error) { env.close(); return nil, err }
	connect := func(name, url string, login ...nats.Option) (*nats.Conn, error) {
		nc, err := nats.Connect(url, append(login, nats.Name("s3mesh-rebuild"), nats.Timeout(5*time.Second))...)
		if err != nil {
			return nil, fmt.Errorf("site %s broker %s: %w", name, url, err)
		}
		conns = append(conns, nc)
		return nc, nil
	}
	switch {
	case f.labPath != "" && f.cfgPath != "":
		return nil, errors.New("give --lab or --config, not both")
	case f.labPath != "":
		if f.site == "" {
			return nil, errors.New("--site is required with --lab")
		}
		info, err := lab.ReadInfo(f.labPath)
		if err != nil {
			return nil, err
		}
		sites := map[string]lab.SiteInfo{}
		for _, s := range info.Sites {
			sites[s.Name] = s
			if s.Name == f.site {
				if env.cfg, err = config.Load(s.Config); err != nil {
					return nil, err
				}
			}
		}
		if env.cfg == nil {
			return nil, fmt.Errorf("lab %s has no site %q", f.labPath, f.site)
		}
		if env.self, err = connect(f.site, sites[f.site].NATSURL, sites[f.site].NATSOptions()...); err != nil {
			return fail(err)
		}
		// Each peer's broker directly.
		for _, p := range env.cfg.PeerNames() {
			nc, err := connect(p, sites[p].NATSURL, sites[p].NATSOptions()...)
			if err != nil {
				return fail(fmt.Errorf("peer %s unreachable: %w", p, err))
			}
			env.peers[p] = nc
		}
		return env, nil
	case f.cfgPath != "":
		cfg, err := config.Load(f.cfgPath)
		if err != nil {
			return nil, err
		}
		if f.site != "" && f.site != cfg.Site {
			return nil, fmt.Errorf("--site %s, but %s is the configuration of site %s", f.site, f.cfgPath, cfg.Site)
		}
		env.cfg = cfg
		if cfg.NATS.URL == "" && cfg.NATS.Embedded != nil {
			// The broker runs inside the (stopped) agent: run it here for
			// the rebuild, so the leaf links reach the peers.
			srv, err = broker.StartServer(*agent.EmbeddedServerConfig(cfg), slog.New(slog.DiscardHandler))
			if err != nil {
				return fail(fmt.Errorf("embedded broker: %w", err))
			}
		}
		t := f.target
		t.site = cfg.Site
		s, err := t.connect()
		if err != nil {
			return fail(err)
		}
		conns = append(conns, s.nc)
		env.self = s.nc
		// Admin requests cross X's leaf links.
		for _, p := range cfg.PeerNames() {
			env.peers[p] = s.nc
		}
		return env, nil
	}
	return nil, errors.New("give --site X with --lab LAB.json, or --config SITE.yaml")
}

// adminRequest asks site's agent (through nc) for verb.
func adminRequest(ctx context.Context, nc *nats.Conn, site, verb string, req agent.AdminRequest, timeout time.Duration) (string, error) {
	b, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, agent.AdminSubject(site, verb), b)
	if err != nil {
		return "", err
	}
	var rep agent.AdminReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return "", err
	}
	if !rep.OK {
		return "", errors.New(rep.Error)
	}
	return rep.Outcome, nil
}

func runRebuild(ctx context.Context, f rebuildFlags, stdout, stderr io.Writer, tty bool) error {
	env, err := rebuildConnect(f)
	if err != nil {
		return err
	}
	defer env.close()
	cfg := env.cfg
	site := cfg.Site
	buckets := cfg.BucketNames()
	if f.bucket != "" {
		if !slices.Contains(buckets, f.bucket) {
			return fmt.Errorf("bucket %q is not replicated (buckets: %s)", f.bucket, strings.Join(buckets, ", "))
		}
		buckets = []string{f.bucket}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("site", site)

	// X's agent must be stopped: it would write the state and the store
	// under the rebuild.
	if _, err := adminRequest(ctx, env.self, site, "status", agent.AdminRequest{}, 2*time.Second); err == nil {
		return fmt.Errorf("site %s's agent is running (it answered `status`): stop it first, rebuild, then start it", site)
	} else if ctx.Err() != nil {
		return ctx.Err()
	}
	// Every peer's agent must answer: the newest version of a key may be
	// at any of them.
	for _, p := range cfg.PeerNames() {
		if _, err := adminRequest(ctx, env.peers[p], p, "state.page", agent.AdminRequest{Bucket: buckets[0], Limit: 1}, 10*time.Second); err != nil {
			return fmt.Errorf("peer %s unreachable: its agent did not answer (is it running, is the link up?): %w", p, err)
		}
	}
	st, err := state.Open(cfg.StateDir, state.Options{Sync: true})
	if err != nil {
		return fmt.Errorf("%w (is the agent of site %s still running?)", err, site)
	}
	defer st.Close()

	if err := continueChanges(ctx, env, log); err != nil {
		return err
	}

	local, err := s3Client(cfg.S3)
	if err != nil {
		return fmt.Errorf("site %s s3: %w", site, err)
	}
	var peers []rebuild.Peer
	for _, p := range cfg.Peers {
		c, err := s3Client(p.S3)
		if err != nil {
			return fmt.Errorf("peer %s s3: %w", p.Name, err)
		}
		nc, name := env.peers[p.Name], p.Name
		peers = append(peers, rebuild.Peer{Name: name, S3: c, Page: func(ctx context.Context, bucket, after string, limit int) ([]rebuild.Item, bool, error) {
			return statePage(ctx, nc, name, bucket, after, limit)
		}})
	}
	estimate := estimateKeys(ctx, env, cfg.PeerNames(), buckets)
	prog := newRebuildProgress(stderr, tty, estimate, log)
	start := time.Now()
	// Only what the versions' origins signed is adopted: the peers' keys,
	// and this site's own (current and former) for its own versions.
	keys := schema.Keyring{Keys: cfg.PeerKeys()}
	keys.Keys[site] = cfg.OwnKeys()
	o := rebuild.Options{
		Site: site, Local: local, State: st, Peers: peers, Buckets: buckets, Archive: archiveBuckets(cfg),
		Keys: keys, TrustUnsigned: f.trustUnsigned,
		Limits:  schema.NewLimits(append(cfg.PeerNames(), append([]string{site}, cfg.Records.FormerSites...)...), time.Now(), cfg.Records.MaxFuture),
		Workers: f.workers, Log: log, Progress: prog.report, // parts of s3io.MinPartSize: two per worker at most
	}
	if n, _ := strconv.Atoi(os.Getenv("S3MESH_TEST_REBUILD_CRASH_AFTER")); n > 0 {
		// Test hook: die like a killed process after n objects were copied.
		log.Warn("TEST HOOK: the rebuild exits after copying objects", "n", n)
		var copied atomic.Int64
		o.AfterCopy = func(string, string) {
			if copied.Add(1) == int64(n) {
				os.Exit(3)
			}
		}
	}
	total, err := rebuild.Run(ctx, o)
	prog.stop()
	if err != nil {
		return fmt.Errorf("rebuild of site %s stopped (run it again to continue): %s so far: %w", site, total.Describe(), err)
	}
	fmt.Fprintf(stdout, "rebuilt site %s from %s in %s: %s\n", site, strings.Join(cfg.PeerNames(), ", "),
		time.Since(start).Round(100*time.Millisecond), total.Describe())
	fmt.Fprintf(stdout, "start the agent of site %s now; writes made elsewhere meanwhile arrive through its mirrors\n", site)
	return nil
}

func s3Client(c config.S3) (*s3io.Client, error) {
	secret, err := c.SecretKey.Value()
	if err != nil {
		return nil, err
	}
	return s3io.New(s3io.Endpoint{URL: c.Endpoint, Region: c.Region, AccessKey: c.AccessKey, SecretKey: secret, PathStyle: c.UsePathStyle()})
}

// statePage asks peer's agent for a page of its per-key state.
func statePage(ctx context.Context, nc *nats.Conn, peer, bucket, after string, limit int) ([]rebuild.Item, bool, error) {
	out, err := adminRequest(ctx, nc, peer, "state.page", agent.AdminRequest{Bucket: bucket, After: after, Limit: limit}, time.Minute)
	if err != nil {
		return nil, false, err
	}
	var p agent.StatePage
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, false, fmt.Errorf("state.page answer: %w", err)
	}
	items := make([]rebuild.Item, len(p.Items))
	for i, it := range p.Items {
		items[i] = rebuild.Item{Key: it.Key, Held: it.Held, Clock: it.Clock, ETag: it.ETag, Attrs: it.Attrs, Busy: it.Busy, Proof: it.Proof}
	}
	return items, p.More, nil
}

// continueChanges makes X's CHANGES stream continue the sequence the peers'
// mirrors of it hold (X's JetStream store may have been lost with its disk).
func continueChanges(ctx context.Context, env *rebuildEnv, log *slog.Logger) error {
	cfg := env.cfg
	name := broker.ChangesStream(cfg.Site)
	var peerLast uint64
	for _, p := range cfg.PeerNames() {
		r, err := agent.AskPeerRecords(ctx, env.peers[p], cfg.Site, p)
		if err != nil {
			return fmt.Errorf("its mirror of %s: %w", name, err)
		}
		if r.Msgs == 0 {
			continue
		}
		// The sequence is the peer's word: taken only with a last record
		// that verifies as this site's own.
		if _, err := agent.OwnIncarnation(cfg, r.Last, time.Now()); err != nil {
			return fmt.Errorf("peer %s says its mirror of %s ends at %d, but %w: check peer %s (or list this site's old key in signing.former_public_keys)",
				p, name, r.LastSeq, err, p)
		}
		peerLast = max(peerLast, r.LastSeq)
	}
	js, err := jetstream.New(env.self)
	if err != nil {
		return err
	}
	topo := agent.Topology(cfg)
	if err := broker.EnsureOrigin(ctx, js, topo); err != nil {
		return fmt.Errorf("site %s streams: %w", cfg.Site, err)
	}
	next, moved, err := broker.ContinueChanges(ctx, js, cfg.Site, peerLast)
	if err != nil {
		return err
	}
	if moved {
		log.Warn("own change stream was empty behind its peers' mirrors (JetStream store lost): moved on", "stream", name, "next_seq", next)
	}
	return nil
}

// estimateKeys is the number of keys the peers' last scans listed (the
// largest per bucket), 0 if unknown: the denominator of the ETA.
func estimateKeys(ctx context.Context, env *rebuildEnv, peers, buckets []string) int64 {
	per := map[string]int{}
	for _, p := range peers {
		out, err := adminRequest(ctx, env.peers[p], p, "status", agent.AdminRequest{}, 10*time.Second)
		if err != nil {
			continue
		}
		var s agent.Status
		if json.Unmarshal([]byte(out), &s) != nil {
			continue
		}
		for _, b := range s.Buckets {
			per[b.Bucket] = max(per[b.Bucket], b.Last.Listed, b.Listed)
		}
	}
	var n int64
	for _, b := range buckets {
		n += int64(per[b])
	}
	return n
}

// rebuildProgress draws a bar with an ETA on a terminal, or logs a line
// every 10 s otherwise.
type rebuildProgress struct {
	w        io.Writer
	tty      bool
	estimate int64
	log      *slog.Logger
	start    time.Time

	mu   sync.Mutex
	last rebuild.Progress
	quit chan struct{}
	wg   sync.WaitGroup
}

func newRebuildProgress(w io.Writer, tty bool, estimate int64, log *slog.Logger) *rebuildProgress {
	p := &rebuildProgress{w: w, tty: tty, estimate: estimate, log: log, start: time.Now(), quit: make(chan struct{})}
	every := 10 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	p.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				if p.tty {
					fmt.Fprint(p.w, "\r\033[K")
				}
				return
			case <-t.C:
				p.draw()
			}
		}
	})
	return p
}

func (p *rebuildProgress) report(pr rebuild.Progress) {
	p.mu.Lock()
	p.last = pr
	p.mu.Unlock()
}

func (p *rebuildProgress) stop() { close(p.quit); p.wg.Wait() }

func (p *rebuildProgress) draw() {
	p.mu.Lock()
	pr := p.last
	p.mu.Unlock()
	done := pr.Total.Keys
	el := time.Since(p.start).Seconds()
	rate := float64(done) / max(el, 0.001)
	eta := "?"
	total := max(p.estimate, done)
	if p.estimate > 0 && rate > 0 {
		eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
	}
	if !p.tty {
		p.log.Info("rebuild progress", "bucket", pr.Bucket, "keys", done, "of_about", p.estimate, "copied", pr.Total.Copied,
			"adopted", pr.Total.Adopted, "bytes", pr.Total.Bytes, "keys_per_s", int(rate), "eta", eta)
		return
	}
	const width = 30
	fill := 0
	if total > 0 {
		fill = int(done * width / total)
	}
	fmt.Fprintf(p.w, "\r\033[Krebuild %s [%s%s] %d/%d keys, %d copied, %.0f keys/s, ETA %s", pr.Bucket,
		strings.Repeat("#", fill), strings.Repeat(" ", width-fill), done, total, pr.Total.Copied, rate, eta)
}
