package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/producer"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// Partitions is the number of CHANGES subjects per site (per-key order is
// kept within one).
const Partitions = 16

// Agent is one running site.
type Agent struct {
	cfg      *config.Site
	log      *slog.Logger
	M        *metrics.Metrics
	Store    *state.Store
	Producer *producer.Producer
	Scanner  *producer.Scanner
	Poller   *producer.Poller // nil unless an events source is of type poll
	Applier  *consumer.Applier
	server   *broker.Server
	local    *s3io.Client                      // the site's own store
	caps     atomic.Pointer[s3io.Capabilities] // what probeStore found (nil until then)
	hooks    testHooks
	nc       *nats.Conn
	js       jetstream.JetStream
	http     *http.Server
	httpLn   net.Listener
	running  sync.WaitGroup // Run in progress
	floor    uint64         // this run's lowest counter, minus one (lifecycle.Machine.Floor)
	proven   *consumer.Proven
	// adminGate: admin handlers hold it for reading; Run takes it for
	// writing when it returns (see serveAdmin).
	adminGate sync.RWMutex
	// httpLimits: defaultHTTPLimits (tests shorten them before Run).
	httpLimits httpLimits
	// peerKeys: what checkPeerKeys found of each peer's S3 key.
	peerKeys peerKeyState
	trash    *producer.Trash // the site's trash (trash.go)
}

// scanEventGrace is Scanner.EventGrace at a site with an event source.
const scanEventGrace = 5 * time.Second

// New connects everything; Run starts the work. On error nothing is left
// running.
func New(ctx context.Context, cfg *config.Site, log *slog.Logger) (a *Agent, err error) {
	if err := checkEventSubjects(cfg); err != nil {
		return nil, err
	}
	setMemoryLimit(cfg.MemoryBudget, log)
	a = &Agent{cfg: cfg, log: log, M: metrics.New(), httpLimits: defaultHTTPLimits}
	opened := a // the error returns below set a to nil
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	if a.Store, err = state.Open(cfg.StateDir, state.Options{Sync: true}); err != nil {
		return nil, err
	}
	hooks, err := loadHooks(cfg.Site)
	if err != nil {
		return nil, err
	}
	a.hooks = hooks
	// One budget for the body buffers of every applier (and admin retry).
	counter := func(store string) s3io.Option {
		return s3io.WithRequestCounter(func(op string) { a.M.S3Requests.WithLabelValues(store, op).Inc() })
	}
	// Parts of objects too large for the budget (over 10,000 × part_size)
	// are staged in <state_dir>/spool instead (unlinked files).
	spool := filepath.Join(cfg.StateDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	localOpts := []s3io.Option{s3io.WithMemoryBudget(cfg.MemoryBudget), s3io.WithSpoolDir(spool), counter("local")}
	if hooks.recordClockSkew != 0 {
		log.Warn("TEST HOOK: peers' record times are checked against a shifted clock", "shift", hooks.recordClockSkew)
	}
	if hooks.s3Delay > 0 {
		log.Warn("TEST HOOK: every request to the local S3 is delayed", "delay", hooks.s3Delay)
		localOpts = append(localOpts, s3io.WithHTTPClient(&http.Client{Transport: slowTransport{hooks.s3Delay, http.DefaultTransport}}))
	}
	local, err := s3Client(cfg.S3, localOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	a.local = local
	sources := map[string]consumer.Source{}
	for _, p := range cfg.Peers {
		c, err := s3Client(p.S3, counter(p.Name))
		if err != nil {
			return nil, fmt.Errorf("peer %s s3: %w", p.Name, err)
		}
		sources[p.Name] = c
	}
	// A peer key that can write stops the start (peerkeys.go); what could
	// not be asked yet is asked again by Run.
	if a.peerKeys.pending, err = a.checkPeerKeys(ctx); err != nil {
		return nil, err
	}
	if err := a.connect(); err != nil {
		return nil, err
	}
	topo := Topology(cfg)
	// Retried: a cluster that just lost a node answers only once it has
	// elected new leaders. A configuration error is not retried.
	var cfgErr error
	err = broker.Retry(ctx, func(n int, err error) {
		log.Warn("streams not ready yet, retrying", "attempt", n, "err", err)
	}, func(ctx context.Context) error {
		err := broker.EnsureStreams(ctx, a.js, topo)
		if ce := (*broker.ConfigError)(nil); errors.As(err, &ce) {
			cfgErr = err // not retried
			return nil
		}
		return err
	})
	if err == nil {
		err = cfgErr
	}
	if err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	floor, err := a.startIncarnation(ctx)
	if err != nil {
		return nil, err
	}
	a.floor = floor
	if a.proven, err = a.loadProven(ctx); err != nil {
		return nil, err
	}
	pub := &publisher{site: cfg.Site, js: a.js}
	var ignore []*regexp.Regexp
	for _, re := range cfg.IgnoreKeys {
		ignore = append(ignore, regexp.MustCompile(re)) // validated by config
	}
	// The store probe's own objects (probe.go).
	ignore = append(ignore, regexp.MustCompile("^"+regexp.QuoteMeta(s3io.ProbePrefix)), trashIgnore)
	policies := map[string]schema.Policy{}
	buckets := map[string]consumer.BucketPolicy{}
	for _, b := range cfg.Buckets {
		c := b.Conflicts
		p := schema.Policy{Mode: c.Policy, Priority: c.Priority, Deletes: c.Deletes}
		policies[b.Name] = p
		buckets[b.Name] = consumer.BucketPolicy{Policy: p, KeepLosers: c.Keep(), LosersPrefix: c.LosersPrefix, SiteMode: siteMode(b), Trash: trashMode(b.Trash)}
	}
	signKey, err := signingKey(cfg, log)
	if err != nil {
		return nil, err
	}
	a.Producer = producer.New(producer.Config{
		Site: cfg.Site, Buckets: cfg.BucketNames(), InlineThreshold: cfg.InlineThreshold, Partitions: Partitions,
		Policies: policies, Skew: hooks.clockSkew, Ignore: ignore, CounterFloor: floor, SigningKey: signKey,
		AbsentConfirm: producer.DefaultAbsentConfirm, Modes: siteModes(cfg), Filters: filters(cfg),
		ListedAlias: func(key string) string {
			if c := a.caps.Load(); c != nil {
				return c.ListedAlias(key)
			}
			return ""
		},
		Unrepresentable: func(key string) string {
			if c := a.caps.Load(); c != nil {
				return c.Unrepresentable(key)
			}
			return ""
		},
	}, a.Store, local, pub, a.M, log.With("part", "producer"))
	if hooks.crashAfterPublish > 0 {
		a.Producer.Hooks.AfterPublish = crashAt(hooks.crashAfterPublish)
	}
	a.Scanner = &producer.Scanner{P: a.Producer, S3: local, Store: a.Store, Interval: cfg.Scan.ScanInterval(),
		Debounce: cfg.Scan.Debounce, Rate: cfg.Scan.Rate, PageSize: cfg.Scan.PageSize,
		MaxDeleteFraction: cfg.Scan.MaxDeleteFraction, Retention: cfg.Tombstones.Retention,
		Log: log.With("part", "scanner"), Progress: terminal(os.Stderr)}
	a.trash = a.newTrash()
	a.Scanner.Trash = a.trash
	for _, e := range cfg.Events {
		if e.Type != "poll" {
			// A scan may see a user's delete before its event (MinIO's
			// queued NATS target replays every 3 s): a scan that would
			// hold the bucket for a few keys waits this long for them.
			a.Scanner.EventGrace = scanEventGrace
		}
	}
	for _, e := range cfg.Events {
		if e.Type == "poll" {
			a.Poller = &producer.Poller{Scanner: a.Scanner, Interval: e.Interval, Log: log.With("part", "poll")}
		}
	}
	a.Applier = &consumer.Applier{
		Site: cfg.Site, Buckets: buckets, Store: a.Store, S3: local, Sources: sources,
		Local: localAdapter{a.Producer}, Conflict: &conflictLog{site: cfg.Site, js: a.js, log: log.With("part", "conflicts")},
		PartSize: cfg.PartSize, Log: log.With("part", "consumer"), Now: time.Now,
		Unrepresentable: func(key string) string {
			if c := a.caps.Load(); c != nil {
				return c.Unrepresentable(key)
			}
			return ""
		},
		Shares: peerShares(cfg.PeerNames(), cfg.MemoryBudget), Topo: a.M.Topo,
		KeyLimit: a.keyLimit, Versioned: a.trash.Versioned,
	}
	if a.Applier.Guard, err = deleteGuard(cfg, a.Store, a.M, log); err != nil {
		return nil, err
	}
	if hooks.crashAfterApply > 0 {
		a.Applier.Hooks.AfterWrite = crashAt(hooks.crashAfterApply)
	}
	if hooks.crashAfterTrash > 0 {
		a.Applier.Hooks.AfterTrash = crashAt(hooks.crashAfterTrash)
	}
	if hooks != (testHooks{}) {
		log.Warn("TEST HOOKS ACTIVE (S3MESH_TEST_HOOKS_DIR): never in production", "hooks", fmt.Sprintf("%+v", hooks))
	}
	if cfg.HTTPAddr != "" {
		if a.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("http_addr: %w", err)
		}
	}
	return a, nil
}

func s3Client(c config.S3, opts ...s3io.Option) (*s3io.Client, error) {
	return s3io.New(s3io.Endpoint{URL: c.Endpoint, Region: c.Region, AccessKey: c.AccessKey,
		SecretKey: c.SecretKey.MustValue(), PathStyle: c.UsePathStyle()}, opts...)
}

// connect starts the embedded broker if the agent runs it (nats.url
// empty) and connects to it in-process: no TCP, so no TLS either, whatever
// nats.embedded.tls requires of network clients. Otherwise it connects to
// nats.url with nats.tls.
func (a *Agent) connect() error {
	opts := []nats.Option{nats.Name("s3mesh-agent-" + a.cfg.Site), nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond), nats.RetryOnFailedConnect(true),
		// A broker connection that went silent (the network under it
		// changed, a peer vanished without a reset) is noticed within about
		// 30 s instead of nats.go's default of several minutes, and redialled.
		nats.PingInterval(10 * time.Second), nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				a.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { a.log.Info("nats reconnected") }),
	}
	nc, err := a.dial(opts)
	if err != nil {
		return err
	}
	a.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	a.js = js
	return nil
}

// dial connects to nats.url, or starts the embedded broker and connects
// to it in-process.
func (a *Agent) dial(opts []nats.Option) (*nats.Conn, error) {
	n := a.cfg.NATS
	if n.URL != "" {
		login, err := ClientOptions(n)
		if err != nil {
			return nil, err
		}
		nc, err := nats.Connect(n.URL, append(opts, login...)...)
		if err != nil {
			return nil, fmt.Errorf("nats %s: %w", n.URL, err)
		}
		return nc, nil
	}
	srv, err := broker.StartServer(*EmbeddedServerConfig(a.cfg), a.log.With("part", "nats"))
	if err != nil {
		return nil, err
	}
	a.server = srv
	nc, err := srv.Connect(opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: in-process connection to the embedded broker: %w", err)
	}
	return nc, nil
}

// ClientOptions log in to the broker at nats.url (or nats.embedded.listen)
// the way cfg says the agent does: user and password, nkey seed or .creds
// file, and TLS. Tools acting as the site use them too.
func ClientOptions(n config.NATS) ([]nats.Option, error) {
	var opts []nats.Option
	if n.User != "" {
		opts = append(opts, nats.UserInfo(n.User, n.Password.MustValue()))
	}
	if !n.NKey.IsZero() {
		o, err := broker.NKeyOption(n.NKey.MustValue())
		if err != nil {
			return nil, fmt.Errorf("nats.nkey: %w", err)
		}
		opts = append(opts, o)
	}
	if n.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(n.CredsFile))
	}
	if n.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(n.TLS.CAFile))
	}
	if n.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(n.TLS.CertFile, n.TLS.KeyFile))
	}
	return opts, nil
}

// Run does the work until ctx ends: event ingestion, scanner, appliers and
// the HTTP endpoint. It returns the first fatal error.
func (a *Agent) Run(ctx context.Context) error {
	a.running.Add(1)
	defer a.running.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	sources := map[string]producer.KeyEncoding{}
	hooks := map[string]producer.WebhookSource{}
	for _, e := range a.cfg.Events {
		sources[e.Name] = producer.KeyEncoding(e.KeyEncoding)
		if e.Type == "webhook" {
			hooks[e.Name] = producer.WebhookSource{Name: e.Name, Token: e.Token.MustValue(), Encoding: producer.KeyEncoding(e.KeyEncoding)}
		}
	}
	// Deferred first, so it runs after the unsubscribes: waits for admin
	// requests in progress (they use the state store) and refuses later ones.
	defer a.adminGate.Lock()
	subs, err := a.serveAdmin(ctx)
	for _, s := range subs {
		defer s.Unsubscribe()
	}
	if err != nil {
		return err
	}
	ingest := &producer.Ingest{P: a.Producer, Sources: sources, Workers: a.cfg.Workers, Kick: a.Scanner.Kick, Log: a.log.With("part", "events"), Drop: a.hooks.dropEvents}
	run("events", func() error { return ingest.Run(ctx, a.js) })
	run("scanner", func() error { a.Scanner.Run(ctx); return nil })
	if a.Poller != nil {
		run("poll", func() error { a.Poller.Run(ctx); return nil })
	}
	run("peer-keys", func() error { return a.watchPeerKeys(ctx, a.peerKeys.pending) })
	run("gauges", func() error { a.runGauges(ctx); return nil })
	runner := &consumer.Runner{A: a.Applier, Site: a.cfg.Site, Peers: a.cfg.PeerNames(), Workers: a.cfg.Workers,
		Budget: a.cfg.Retry.Budget, MaxBackoff: a.cfg.Retry.MaxBackoff,
		FormerSites: a.cfg.Records.FormerSites, MaxFuture: a.cfg.Records.MaxFuture, SelfMax: a.selfMax(), Keys: a.keyring(),
		Proven: a.proven, ProofWait: a.cfg.Records.ProofWait, Filters: filters(a.cfg),
		DLQ: &consumer.DLQ{Site: a.cfg.Site, JS: a.js}, M: a.M, Log: a.log.With("part", "consumer"), Now: a.hooks.recordClock}
	// Runner.Run returns only after its workers and Consume callbacks have,
	// and wg.Wait below waits for it, so Close never closes the state store
	// under an apply.
	run("consumer", func() error {
		// Nothing is applied before the store is known to take conditional
		// writes (or the configuration accepts that it does not).
		if err := a.probeStore(ctx); err != nil {
			return err
		}
		return runner.Run(ctx, a.js)
	})
	if a.httpLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(a.M.Registry, promhttp.HandlerOpts{}))
		run("dashboard", a.serveDashboard(ctx, mux)) // the page at / and its API (dashboard.go)
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if a.nc.Status() != nats.CONNECTED {
				http.Error(w, "nats: "+a.nc.Status().String(), http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		})
		mux.Handle("/events/", &producer.Webhook{Sources: hooks, Pub: &publisher{site: a.cfg.Site, js: a.js},
			Log: a.log.With("part", "webhook"), OnBad: func(s string) { a.M.EventsMalformed.WithLabelValues(s).Inc() }})
		if os.Getenv("S3MESH_PPROF") == "1" {
			// Profiling for `docs/PERFORMANCE.md`: opt-in, on the agent's own
			// (loopback by default) HTTP address only.
			a.log.Warn("S3MESH_PPROF=1: serving /debug/pprof/ on the HTTP address")
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		a.http = newHTTPServer(limitBodies(mux), a.httpLimits)
		run("http", func() error {
			if err := a.http.Serve(a.httpLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	a.log.Info("agent running", "site", a.cfg.Site, "peers", a.cfg.PeerNames(), "buckets", a.cfg.BucketNames())
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	if a.http != nil {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.http.Shutdown(sctx)
		c()
	}
	wg.Wait()
	return err
}

// httpLimits are the timeouts of the agent's HTTP server (docs/operations.md:
// Dashboard, "Limits of http_addr"). No endpoint streams: the dashboard
// polls its JSON API (web/app.js), /metrics and /healthz answer at once.
// The longest legitimate exchange is a webhook request: a body of up to
// producer.MaxEventBytes, then up to 10 s for its publish to be acked. The
// one long response, a profile or trace of ?seconds=N with S3MESH_PPROF=1,
// moves its own write deadline to Write+N (net/http/pprof does it through
// http.ResponseController), so no profile is cut short.
type httpLimits struct {
	ReadHeader time.Duration // request line and headers
	Read       time.Duration // the whole request, body included
	Write      time.Duration // from the end of the headers to the end of the response
	Idle       time.Duration // a kept-alive connection waiting for its next request
}

// defaultHTTPLimits: Read lets a webhook body of 1 MiB arrive at 35 KB/s;
// Write covers that body and the publish (10 s) with room to spare; Idle
// closes a pooled connection of a webhook sender that went quiet (it
// redials: its events are answered 200 only once stored).
var defaultHTTPLimits = httpLimits{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 2 * time.Minute}

// maxNoBodyBytes bounds the request body of every endpoint but the
// webhook's (none of them reads one).
const maxNoBodyBytes = 4 << 10

func newHTTPServer(h http.Handler, l httpLimits) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: l.ReadHeader, ReadTimeout: l.Read, WriteTimeout: l.Write, IdleTimeout: l.Idle}
}

// limitBodies answers 413 to a request body over maxNoBodyBytes on every
// path but /events/, whose handler (producer.Webhook) reads at most
// producer.MaxEventBytes, after checking the token, and answers 413 beyond
// it. A smaller body is read and dropped here: no handler behind it takes
// one.
func limitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/events/") || r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		tooLarge := fmt.Sprintf("request body over %d bytes: only POST /events/<source> takes a body (up to %d bytes)", maxNoBodyBytes, producer.MaxEventBytes)
		if r.ContentLength > maxNoBodyBytes {
			http.Error(w, tooLarge, http.StatusRequestEntityTooLarge)
			return
		}
		// Chunked (ContentLength -1) or small: read it within the limit.
		if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxNoBodyBytes)); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				http.Error(w, tooLarge, http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = http.NoBody
		h.ServeHTTP(w, r)
	})
}

// peerShares splits the body memory budget evenly between the peers, so
// that no peer's records can hold all of it (a body a peer serves slowly
// holds its buffers while it streams). With one peer it has all of it.
func peerShares(peers []string, budget int64) map[string]*s3io.Share {
	out := make(map[string]*s3io.Share, len(peers))
	for _, p := range peers {
		out[p] = s3io.NewShare(budget / int64(max(len(peers), 1)))
	}
	return out
}

// checkEventSubjects makes sure every nats event source's subject is one
// EVENTS_<site> captures (the store publishes there).
func checkEventSubjects(cfg *config.Site) error {
	for _, e := range cfg.Events {
		if e.Type != "nats" {
			continue
		}
		want := broker.EventsSubject(cfg.Site, e.Name)
		if e.Subject != want {
			return fmt.Errorf("events source %s: subject %q must be %q (captured by %s)", e.Name, e.Subject, want, broker.EventsStream(cfg.Site))
		}
	}
	return nil
}

// Close releases everything New acquired. It first waits for Run to return
// (cancel Run's context before), so nothing uses the state store after it
// is closed.
func (a *Agent) Close() {
	a.running.Wait()
	if a.httpLn != nil && a.http == nil {
		a.httpLn.Close()
	}
	if a.nc != nil {
		_ = a.nc.Drain()
	}
	if a.server != nil {
		a.server.Shutdown()
	}
	if a.Store != nil {
		_ = a.Store.Close()
	}
}

type publisher struct {
	site string
	js   jetstream.JetStream
}

func (p *publisher) PublishRecord(ctx context.Context, partition int, data []byte, msgID string) error {
	_, err := p.js.Publish(ctx, broker.ChangesSubject(p.site, partition), data, jetstream.WithMsgID(msgID))
	return err
}

func (p *publisher) PublishEvent(ctx context.Context, source string, data []byte) error {
	_, err := p.js.Publish(ctx, broker.EventsSubject(p.site, source), data)
	return err
}

type localAdapter struct{ p *producer.Producer }

func (l localAdapter) Reconcile(ctx context.Context, bucket, key string) error {
	_, err := l.p.Reconcile(ctx, bucket, key)
	return err
}

func (l localAdapter) ExpectEcho(bucket, key, etag string) { l.p.ExpectEcho(bucket, key, etag) }

func (l localAdapter) RecoverLocked(ctx context.Context, bucket, key string, e *state.Entry) error {
	return l.p.RecoverLocked(ctx, bucket, key, e)
}

// terminal returns f if it is a terminal (the scanner then draws progress).
func terminal(f *os.File) io.Writer {
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return f
	}
	return nil
}

// EmbeddedServerConfig is the broker configuration of cfg's nats.embedded
// section (nil if there is none): what the agent runs in-process and what
// `s3mesh broker` runs. With links, the agent's nats.user and
// nats.password are the client credentials the broker requires.
func EmbeddedServerConfig(cfg *config.Site) *broker.ServerConfig {
	e := cfg.NATS.Embedded
	if e == nil {
		return nil
	}
	sc := &broker.ServerConfig{Site: cfg.Site, Listen: e.Listen, StoreDir: e.StoreDir,
		LeafListen: e.LeafListen, LeafRemotes: e.LeafRemotes, SyncAlways: e.SyncAlways, SyncInterval: e.SyncInterval,
		AllowPlaintext: e.AllowPlaintext}
	if t := e.TLS; t != nil {
		sc.TLS = &broker.TLSFiles{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile, VerifyClients: t.VerifyClients}
	}
	if len(e.Links) == 0 {
		return sc
	}
	if cfg.NATS.User != "" {
		sc.User, sc.Password = cfg.NATS.User, cfg.NATS.Password.MustValue()
	} else {
		sc.NKeySeed = cfg.NATS.NKey.MustValue()
	}
	for _, l := range e.Links {
		sc.Links = append(sc.Links, broker.Link{Peer: l.Peer, URL: l.URL, Password: l.Password.MustValue()})
	}
	for _, u := range e.Users {
		bu := broker.User{Name: u.Name, NKey: u.NKey, Publish: nonNil(u.Publish), Subscribe: nonNil(u.Subscribe)}
		if u.NKey == "" {
			bu.Password = u.Password.MustValue()
		}
		sc.Users = append(sc.Users, bu)
	}
	return sc
}

// nonNil makes an absent subject list "none" rather than "all".
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// memoryOverhead is what the agent needs besides its body buffers (state
// store caches, broker client, pull buffers, goroutines).
const memoryOverhead = 16 << 20

// setMemoryLimit sets Go's soft memory limit to the body budget plus the
// agent's overhead, unless GOMEMLIMIT says otherwise: without it the heap
// may grow to twice what is live (GOGC) while a large object streams.
func setMemoryLimit(budget int64, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := budget + memoryOverhead
	if cur := debug.SetMemoryLimit(-1); cur < limit {
		return // a lower limit set by whoever embeds the agent stays
	}
	debug.SetMemoryLimit(limit)
	log.Debug("soft memory limit", "bytes", limit)
}
