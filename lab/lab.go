package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lab/proxy"
)

// Options configures a lab. Zero values take the documented defaults.
type Options struct {
	Dir        string   // lab directory (default ".lab")
	Sites      int      // 1..9 sites named a, b, c, ... (default 3)
	Buckets    []string // replicated buckets (default ["demo"])
	Fresh      bool     // wipe Dir first (refused unless Dir is empty or a lab directory)
	S3meshBin  string   // s3mesh executable run as broker and agent (default os.Executable())
	VersityBin string   // versitygw executable (default: "versitygw" beside S3meshBin)
	// Stores names each site's S3 implementation, in site order:
	// "versitygw" (events over NATS), "rclone" (`rclone serve s3`, no
	// events: the agent polls), "minio" (its own bucket notifications to
	// the site's broker) or "seaweedfs" (`weed server -s3`, polled), in any
	// mix. Default: versitygw everywhere.
	Stores []string
	// Events names each site's event source, in site order: "nats"
	// (versitygw's NATS sink, or MinIO's NATS notification target),
	// "webhook" (versitygw's webhook sink, posting to the agent's
	// token-protected webhook endpoint) or "poll" (the agent lists the
	// store). Default: nats for versitygw and MinIO, poll for the others.
	Events    []string
	RcloneBin string // rclone executable (default: "rclone" beside S3meshBin)
	MinioBin  string // minio executable (default: "minio" beside S3meshBin)
	// MinioUsersBin makes the peers' read-only users at a MinIO site
	// (default: "minio-users" beside MinioBin; tools/minio/users).
	MinioUsersBin string
	WeedBin       string        // SeaweedFS's weed executable (default: "weed" beside S3meshBin)
	Poll          time.Duration // poll interval of sites without events (default 2s)
	Log           *slog.Logger
	Stdout        io.Writer     // where the endpoint table is printed (default: nowhere)
	ScanInterval  time.Duration // agents' scan.interval (default 15s)
	// Conflicts sets the conflict policy of some buckets (default lww).
	Conflicts map[string]config.Conflicts
	// Archive and Replica name sites whose every bucket is in mode archive
	// or replica (topology.go); Filters sets the prefix filters of some
	// buckets, the same at every site (their Mode is not used).
	Archive, Replica []string
	Filters          map[string]config.Topology
	// Trash sets the trash mode of some buckets (default deletes);
	// TrashRetention is the agents' trash.retention (default: the agent's,
	// 7 days).
	Trash          map[string]string
	TrashRetention time.Duration
	// Versioning starts versitygw with a versioning directory, so a
	// bucket whose versioning is then enabled keeps old versions.
	Versioning bool
	// RetryBudget is the agents' retry.budget (default: the agent's, 10m).
	RetryBudget time.Duration
	// ProofWait is the agents' records.proof_wait (default: the agent's, 1h).
	ProofWait time.Duration
	// Deletes is the agents' deletes section (nil: the agent's defaults).
	Deletes *config.Deletes
	// AgentExtraEnv is added to the agents' environment (KEY=value).
	AgentExtraEnv []string
	// ReadyTimeout bounds how long each process may take to become ready
	// (default 60s).
	ReadyTimeout time.Duration
	// Insecure runs the brokers without authentication, without TLS and
	// with open leaf links (any client of any site's broker can then reach
	// every site's streams). By default every agent, event sink and leaf
	// link logs in with its own generated password, each link is confined
	// to what its mirrors need (see broker/links.go), and every broker
	// connection is TLS with a CA of the lab (tls.go).
	Insecure bool
}

// stopGrace is how long a process has to exit after SIGTERM.
const stopGrace = 10 * time.Second

// Lab is a running lab.
type Lab struct {
	o      Options
	dir    string // absolute
	log    *slog.Logger
	sites  []*site
	byName map[string]*site
	links  []*link
	lockf  *os.File

	ctx    context.Context // cancelled by Stop: aborts readiness waits and restarts
	cancel context.CancelFunc

	mu      sync.Mutex // serialises process verbs, versitygw restarts and Stop
	closing bool
	ctl     *ctlServer
	infoMu  sync.Mutex // serialises writes of lab.json

	stopOnce sync.Once
	stopped  chan struct{}
}

// link is one proxied leaf-node link between sites x < y.
type link struct {
	x, y  *site
	port  int
	proxy *proxy.Proxy
	mu    sync.Mutex
	delay time.Duration
}

func (k *link) name() string { return linkName(k.x.name, k.y.name) }

func (k *link) setDelay(d time.Duration) {
	k.mu.Lock()
	k.delay = d
	k.mu.Unlock()
	k.proxy.SetDelay(d)
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		o.Dir = ".lab"
	}
	if o.Sites == 0 {
		o.Sites = 3
	}
	if o.Sites < 1 || o.Sites > 9 {
		return o, fmt.Errorf("lab: --sites %d: want 1..9", o.Sites)
	}
	if len(o.Buckets) == 0 {
		o.Buckets = []string{"demo"}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.ScanInterval == 0 {
		o.ScanInterval = 15 * time.Second
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.S3meshBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("lab: locating the s3mesh executable: %w", err)
		}
		o.S3meshBin = exe
	}
	if o.VersityBin == "" {
		o.VersityBin = filepath.Join(filepath.Dir(o.S3meshBin), "versitygw")
	}
	if o.RcloneBin == "" {
		o.RcloneBin = filepath.Join(filepath.Dir(o.S3meshBin), "rclone")
	}
	if o.MinioBin == "" {
		o.MinioBin = filepath.Join(filepath.Dir(o.S3meshBin), "minio")
	}
	if o.MinioUsersBin == "" {
		o.MinioUsersBin = filepath.Join(filepath.Dir(o.MinioBin), "minio-users")
	}
	if o.WeedBin == "" {
		o.WeedBin = filepath.Join(filepath.Dir(o.S3meshBin), "weed")
	}
	if o.Poll == 0 {
		o.Poll = 2 * time.Second
	}
	if len(o.Stores) > 0 && len(o.Stores) != o.Sites {
		return o, fmt.Errorf("lab: --stores names %d store(s) for %d sites: one per site, in site order", len(o.Stores), o.Sites)
	}
	used := map[string]bool{}
	for i, st := range o.Stores {
		switch st {
		case StoreVersity, StoreRclone, StoreMinio, StoreSeaweed:
			used[st] = true
		default:
			return o, fmt.Errorf("lab: --stores: store %d is %q: want %s, %s, %s or %s", i+1, st, StoreVersity, StoreRclone, StoreMinio, StoreSeaweed)
		}
	}
	if len(o.Events) > 0 && len(o.Events) != o.Sites {
		return o, fmt.Errorf("lab: --events names %d source(s) for %d sites: one per site, in site order", len(o.Events), o.Sites)
	}
	for i, ev := range o.Events {
		store := StoreVersity
		if len(o.Stores) > 0 {
			store = o.Stores[i]
		}
		switch {
		case ev != EventsNATS && ev != EventsWebhook && ev != EventsPoll:
			return o, fmt.Errorf("lab: --events: source %d is %q: want %s, %s or %s", i+1, ev, EventsNATS, EventsWebhook, EventsPoll)
		case !slices.Contains(storeEvents(store), ev):
			return o, fmt.Errorf("lab: --events: site %d runs %s, which sends no %s events: use %s", i+1, store, ev, strings.Join(storeEvents(store), " or "))
		}
	}
	for _, b := range []*string{&o.S3meshBin, &o.VersityBin, &o.RcloneBin, &o.MinioBin, &o.MinioUsersBin, &o.WeedBin} {
		abs, err := filepath.Abs(*b)
		if err != nil {
			return o, err
		}
		*b = abs
	}
	if fi, err := os.Stat(o.VersityBin); err != nil || fi.IsDir() {
		return o, fmt.Errorf("lab: versitygw not found at %s: run `make build` (it puts versitygw beside s3mesh in bin/) or pass --versitygw", o.VersityBin)
	}
	for _, b := range []struct{ store, name, bin, how string }{
		{StoreRclone, "rclone", o.RcloneBin, "run `make build` (it builds the pinned rclone into bin/) or pass --rclone"},
		{StoreMinio, "minio", o.MinioBin, "run `make stores` (it builds the pinned MinIO into bin/) or pass --minio"},
		{StoreMinio, "minio-users", o.MinioUsersBin, "run `make stores` (it builds minio-users, which makes the peers' read-only MinIO users, beside minio in bin/)"},
		{StoreSeaweed, "seaweedfs", o.WeedBin, "run `make stores` (it builds the pinned SeaweedFS into bin/) or pass --weed"},
	} {
		if fi, err := os.Stat(b.bin); used[b.store] && (err != nil || fi.IsDir()) {
			return o, fmt.Errorf("lab: %s not found at %s: %s", b.name, b.bin, b.how)
		}
	}
	if used[StoreMinio] {
		for _, b := range o.Buckets {
			if len(b) < 3 {
				return o, fmt.Errorf("lab: bucket %q: MinIO needs bucket names of 3 characters or more", b)
			}
		}
	}
	return o, o.checkModes()
}

// Start prepares the lab directory, starts every site (brokers, then
// versitygw, then the buckets, then agents) and the leaf-link proxies,
// waits until every site is ready, writes lab.json, opens the control
// socket and prints the endpoints. If anything fails, everything started is
// stopped and the error names the site and its log. The lab stops when ctx
// ends or Stop is called.
func Start(ctx context.Context, o Options) (*Lab, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Lab{o: o, log: o.Log, byName: map[string]*site{}, stopped: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	if l.dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, err
	}
	if err := l.setup(); err != nil {
		l.cancel()
		l.unlock()
		return nil, err
	}
	bootCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // Stop during boot aborts the readiness waits
		select {
		case <-l.ctx.Done():
			cancel()
		case <-bootCtx.Done():
		}
	}()
	if err := l.boot(bootCtx); err != nil {
		l.Stop()
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			l.log.Info("lab stopping", "reason", context.Cause(ctx))
			l.Stop()
		case <-l.stopped:
		}
	}()
	return l, nil
}

// setup locks and prepares the directory and writes every site.yaml.
func (l *Lab) setup() error {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if l.o.Fresh {
		if err := checkWipeable(l.dir); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(l.dir, "lab.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("lab: a lab is already running in %s (`s3mesh lab ctl --dir %s status`)", l.o.Dir, l.o.Dir)
	}
	l.lockf = f
	if l.o.Fresh {
		if err := wipe(l.dir, "lab.lock"); err != nil {
			return err
		}
	}
	names := siteNames(l.o.Sites)
	storeOf := func(name string) string {
		if i := slices.Index(names, name); i >= 0 && len(l.o.Stores) > 0 {
			return l.o.Stores[i]
		}
		return StoreVersity
	}
	pf, err := loadPorts(filepath.Join(l.dir, "ports.json"), names, func(n string) int { return storePorts(storeOf(n)) })
	if err != nil {
		return err
	}
	inUse := map[string]int{}
	for _, n := range names {
		s := newSite(l.dir, n, pf.Sites[n])
		s.store, s.events = storeOf(n), EventsNATS
		if !slices.Contains(storeEvents(s.store), EventsNATS) {
			s.events = EventsPoll
		}
		if len(l.o.Events) > 0 {
			s.events = l.o.Events[len(l.sites)]
		}
		if err := s.prepare(); err != nil {
			return err
		}
		l.sites = append(l.sites, s)
		l.byName[n] = s
		for what, p := range map[string]int{"s3": s.ports.S3, "nats": s.ports.NATS, "leaf": s.ports.Leaf, "http": s.ports.HTTP} {
			inUse[fmt.Sprintf("site %s %s", n, what)] = p
		}
		for i, p := range s.ports.Store[:storePorts(s.store)] {
			inUse[fmt.Sprintf("site %s %s internal port %d", n, s.store, i+1)] = p
		}
	}
	for i, x := range l.sites {
		for _, y := range l.sites[i+1:] {
			k := &link{x: x, y: y, port: pf.Links[linkName(x.name, y.name)]}
			l.links = append(l.links, k)
			inUse["proxy "+k.name()] = k.port
		}
	}
	if err := prepareLinks(l.sites); err != nil {
		return err
	}
	if err := preparePeerKeys(l.sites); err != nil {
		return err
	}
	for _, s := range l.sites {
		if s.store == StoreSeaweed {
			if err := writeWeedIdentities(s, l.sites); err != nil {
				return err
			}
		}
	}
	if !l.o.Insecure {
		if err := prepareTLS(l.dir, l.sites); err != nil {
			return err
		}
		for _, s := range l.sites {
			s.caFile = caPath(l.dir)
		}
	}
	leafRemote := func(x, y *site) string { return loopback(pf.Links[linkName(x.name, y.name)]) }
	for _, s := range l.sites {
		if err := writeConfig(s, l.sites, l.o, leafRemote); err != nil {
			return err
		}
		l.defineProcs(s)
	}
	return checkPortsFree(inUse)
}

// checkWipeable refuses to wipe a non-empty directory that is not a lab's.
func checkWipeable(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return err
	}
	for _, marker := range []string{"ports.json", "lab.lock"} {
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("lab: --fresh refused: %s is not empty and is not a lab directory (no ports.json)", dir)
}

// wipe removes everything in dir except keep.
func wipe(dir, keep string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	for _, e := range ents {
		if e.Name() == keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("lab: wipe: %w", err)
		}
	}
	return nil
}

// boot starts the proxies and every site, and publishes the lab.
func (l *Lab) boot(ctx context.Context) error {
	for _, k := range l.links {
		p, err := proxy.New(loopback(k.port), k.y.leafAddr(), l.log.With("link", k.name()))
		if err != nil {
			return fmt.Errorf("lab: link %s: %w", k.name(), err)
		}
		k.proxy = p
	}
	if err := l.eachSite(func(s *site) error { return l.startBroker(ctx, s) }); err != nil {
		return err
	}
	// versitygw with a webhook sink posts a test event at start and exits if
	// nothing listens; the agent that will listen is not up yet (it needs
	// the store), so the lab answers that first post in its place.
	var stand []*http.Server
	for _, s := range l.sites {
		if s.events == EventsWebhook {
			srv, err := standIn(s.httpAddr())
			if err != nil {
				return err
			}
			stand = append(stand, srv)
		}
	}
	err := l.eachSite(func(s *site) error { return l.startS3(ctx, s) })
	for _, srv := range stand {
		srv.Close() // the listener and every connection
	}
	if err != nil {
		return err
	}
	if err := l.eachSite(func(s *site) error {
		c := newS3Client(s.s3Endpoint(), s.accessKey, s.secretKey)
		for _, b := range l.o.Buckets {
			if err := ensureBucket(ctx, c, b); err != nil {
				return fmt.Errorf("lab: site %s: %w; see %s", s.name, err, s.s3.logPath)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := l.eachSite(func(s *site) error { return l.startAgent(ctx, s) }); err != nil {
		return err
	}
	l.writeInfo()
	ctl, err := serveCtl(filepath.Join(l.dir, CtlSocket), l.Ctl, l.log)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.ctl = ctl
	l.mu.Unlock()
	l.printTable(l.o.Stdout)
	l.log.Info("lab ready", "dir", l.dir, "sites", len(l.sites))
	return nil
}

// eachSite runs f for every site concurrently and joins the errors.
func (l *Lab) eachSite(f func(*site) error) error {
	errs := make([]error, len(l.sites))
	var wg sync.WaitGroup
	for i, s := range l.sites {
		wg.Go(func() { errs[i] = f(s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stop stops every process (agents, then versitygw, then brokers), the
// proxies and the control socket, and waits for all of them. It is safe to
// call more than once and from several goroutines.
func (l *Lab) Stop() error {
	l.stopOnce.Do(func() {
		l.cancel() // aborts verbs and restarts waiting for readiness
		l.mu.Lock()
		l.closing = true
		ctl := l.ctl
		l.mu.Unlock()
		if ctl != nil {
			ctl.close()
		}
		for _, pick := range []func(*site) *proc{
			func(s *site) *proc { return s.agent },
			func(s *site) *proc { return s.s3 },
			func(s *site) *proc { return s.broker },
		} {
			_ = l.eachSite(func(s *site) error {
				if p := pick(s); p != nil {
					p.stop(stopGrace)
				}
				return nil
			})
		}
		for _, k := range l.links {
			if k.proxy != nil {
				_ = k.proxy.Close()
			}
		}
		if len(l.sites) > 0 {
			l.writeInfo()
		}
		l.unlock()
		l.log.Info("lab stopped", "dir", l.dir)
		close(l.stopped)
	})
	<-l.stopped
	return nil
}

func (l *Lab) unlock() {
	if l.lockf != nil {
		_ = syscall.Flock(int(l.lockf.Fd()), syscall.LOCK_UN)
		l.lockf.Close()
		l.lockf = nil
	}
}

// Wait blocks until the lab has stopped (Stop was called or the context
// given to Start ended and the lab stopped).
func (l *Lab) Wait() error {
	<-l.stopped
	return nil
}

func (l *Lab) names() []string {
	out := make([]string, len(l.sites))
	for i, s := range l.sites {
		out[i] = s.name
	}
	return out
}

// link returns the link between sites a and b, in either order.
func (l *Lab) link(a, b string) (*link, error) {
	for _, n := range []string{a, b} {
		if _, ok := l.byName[n]; !ok {
			return nil, fmt.Errorf("unknown site %q (sites: %s)", n, strings.Join(l.names(), ", "))
		}
	}
	if a > b {
		a, b = b, a
	}
	for _, k := range l.links {
		if k.x.name == a && k.y.name == b {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no link between %s and %s", a, b)
}

// standIn answers every request on addr with 200 until closed. It keeps
// no connection alive: versitygw's sink pools connections, and a pooled
// one to the stand-in would carry every later event to it instead of to
// the agent (seen: all of them lost).
func standIn(addr string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lab: standing in for the agent's webhook on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ReadHeaderTimeout: 5 * time.Second}
	srv.SetKeepAlivesEnabled(false)
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	return srv, nil
}
