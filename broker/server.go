package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures the embedded NATS server of one site.
type ServerConfig struct {
	// Site is the site name; it is also the JetStream domain and the
	// server name, so it must be unique in the mesh (see ValidSiteName).
	Site string
	// Listen is the host:port for clients ("127.0.0.1:0" picks a free port).
	Listen string
	// StoreDir holds the JetStream file store (created if missing).
	StoreDir string

	// LeafListen is the host:port accepting leaf-node connections from
	// peers ("" = none; port 0 picks a free port).
	LeafListen string
	// LeafRemotes are nats-leaf://host:port URLs of peers' leaf listeners
	// (in the lab: the proxies in front of them). Each pair of sites needs
	// exactly one link, dialled by one side.
	LeafRemotes []string

	// SyncAlways makes the file store fsync every write (≈25× slower
	// publishes). Otherwise it fsyncs every SyncInterval (0 = the server's
	// default, 2 minutes): an acknowledged record then survives a process
	// crash but not an OS crash.
	SyncAlways   bool
	SyncInterval time.Duration

	// User and Password, when set, are required from clients.
	User, Password string
	// LeafUser and LeafPassword, when set, are required from peers dialling
	// LeafListen and presented to the peers in LeafRemotes (unless a URL
	// carries its own user info). They must be set when User is set and
	// the site accepts leaf connections, because the server would
	// otherwise check leaf connections against the client users.
	LeafUser, LeafPassword string

	// ReadyTimeout bounds the wait for the server (including JetStream
	// recovery of the store) to accept connections (0 = 30 s).
	ReadyTimeout time.Duration

	// PingInterval and MaxPingsOut decide how soon a connection that went
	// silent is closed (0 = DefaultPingInterval, DefaultMaxPingsOut).
	PingInterval time.Duration
	MaxPingsOut  int
}

// DefaultPingInterval and DefaultMaxPingsOut close a leaf link (or client
// connection) whose peer stopped answering within 30–40 s. nats-server's
// own defaults (2 min, 2) keep a blackholed link — packets dropped, or the
// peer's address changed, with no reset reaching this end — "up" for 4–6
// minutes, and nothing is redialled or replicated meanwhile. A ping every
// 10 s costs nothing.
const (
	DefaultPingInterval = 10 * time.Second
	DefaultMaxPingsOut  = 3
)

// leafReconnectInterval is how often a cut leaf link is redialled. The
// server default (1 s) is fine, but set it explicitly: the lab's cut/heal
// tests and the mirror resume times depend on it.
const leafReconnectInterval = time.Second

const defaultReadyTimeout = 30 * time.Second

// Server is an embedded nats-server with JetStream for one site.
type Server struct {
	cfg  ServerConfig
	opts *server.Options // the server writes bound random ports back here
	ns   *server.Server
	log  *slog.Logger
}

// StartServer starts the embedded server for cfg.Site and waits until it
// accepts connections. It returns a clear error for an invalid site name,
// an unusable store directory, a port in use or a malformed leaf URL.
func StartServer(cfg ServerConfig, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("site", cfg.Site)
	opts, err := serverOptions(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkStoreDir(cfg.StoreDir); err != nil {
		return nil, err
	}
	// nats-server reports listen failures through Fatalf and keeps going,
	// so probe the ports first to give a clear error.
	if err := checkPortFree("client", cfg.Listen); err != nil {
		return nil, err
	}
	if cfg.LeafListen != "" {
		if err := checkPortFree("leaf", cfg.LeafListen); err != nil {
			return nil, err
		}
	}

	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: site %s: %w", cfg.Site, err)
	}
	sl := &serverLogger{log: log}
	ns.SetLoggerV2(sl, log.Enabled(context.Background(), slog.LevelDebug), false, false)
	ns.Start()

	timeout := cfg.ReadyTimeout
	if timeout <= 0 {
		timeout = defaultReadyTimeout
	}
	ready := ns.ReadyForConnections(timeout)
	if ferr := sl.fatal(); ferr != nil || !ready || !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		switch {
		case ferr != nil:
			return nil, fmt.Errorf("broker: site %s: start: %w", cfg.Site, ferr)
		case !ready:
			return nil, fmt.Errorf("broker: site %s: not ready for connections after %v", cfg.Site, timeout)
		default:
			return nil, fmt.Errorf("broker: site %s: JetStream failed to start (store %s)", cfg.Site, cfg.StoreDir)
		}
	}
	s := &Server{cfg: cfg, opts: opts, ns: ns, log: log}
	log.Info("nats server ready", "client_url", s.ClientURL(), "leaf_url", s.LeafURL(), "remotes", len(cfg.LeafRemotes))
	return s, nil
}

// serverOptions translates cfg to nats-server options.
func serverOptions(cfg ServerConfig) (*server.Options, error) {
	if err := ValidSiteName(cfg.Site); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("broker: site %s: empty store directory", cfg.Site)
	}
	if cfg.PingInterval < 0 || cfg.MaxPingsOut < 0 {
		return nil, fmt.Errorf("broker: site %s: negative ping interval %v or max pings out %d", cfg.Site, cfg.PingInterval, cfg.MaxPingsOut)
	}
	if cfg.SyncInterval < 0 {
		return nil, fmt.Errorf("broker: site %s: negative sync interval %v", cfg.Site, cfg.SyncInterval)
	}
	if (cfg.User == "") != (cfg.Password == "") {
		return nil, fmt.Errorf("broker: site %s: client User and Password must be set together", cfg.Site)
	}
	if (cfg.LeafUser == "") != (cfg.LeafPassword == "") {
		return nil, fmt.Errorf("broker: site %s: LeafUser and LeafPassword must be set together", cfg.Site)
	}
	host, port, err := splitHostPort("client", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: site %s: %w", cfg.Site, err)
	}
	opts := &server.Options{
		ServerName:      cfg.Site,
		Host:            host,
		Port:            port,
		NoSigs:          true,
		JetStream:       true,
		JetStreamDomain: cfg.Site,
		StoreDir:        cfg.StoreDir,
		SyncAlways:      cfg.SyncAlways,
		SyncInterval:    cfg.SyncInterval,
		PingInterval:    cmp.Or(cfg.PingInterval, DefaultPingInterval),
		MaxPingsOut:     cmp.Or(cfg.MaxPingsOut, DefaultMaxPingsOut),
	}
	if cfg.User != "" {
		opts.Users = []*server.User{{Username: cfg.User, Password: cfg.Password}}
	}
	leaf, err := leafNodeOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("broker: site %s: %w", cfg.Site, err)
	}
	opts.LeafNode = leaf
	return opts, nil
}

// leafNodeOptions builds the leaf-node part of the server options: the
// listener for peers, the remotes to dial, and leaf authentication.
func leafNodeOptions(cfg ServerConfig) (server.LeafNodeOpts, error) {
	lo := server.LeafNodeOpts{
		// A full mesh of leaf links needs isolated interest on every
		// server, or loop detection drops links for 30 s; it also keeps
		// a site's interest from travelling east-west through a peer.
		IsolateLeafnodeInterest: true,
		ReconnectInterval:       leafReconnectInterval,
	}
	if cfg.LeafListen != "" {
		host, port, err := splitHostPort("leaf", cfg.LeafListen)
		if err != nil {
			return lo, err
		}
		lo.Host, lo.Port = host, port
		lo.Username, lo.Password = cfg.LeafUser, cfg.LeafPassword
		if cfg.User != "" && cfg.LeafUser == "" {
			return lo, errors.New("client auth (User) is set but leaf auth (LeafUser) is not: peers could not connect to the leaf listener")
		}
	}
	seen := make(map[string]bool)
	for _, raw := range cfg.LeafRemotes {
		u, err := url.Parse(raw)
		if err != nil {
			return lo, fmt.Errorf("leaf remote %q: %w", raw, err)
		}
		switch u.Scheme {
		case "nats-leaf", "nats", "tls":
		default:
			return lo, fmt.Errorf("leaf remote %q: scheme must be nats-leaf, nats or tls", raw)
		}
		if u.Hostname() == "" || u.Port() == "" {
			return lo, fmt.Errorf("leaf remote %q: want scheme://host:port", raw)
		}
		if seen[u.Host] {
			return lo, fmt.Errorf("leaf remote %q listed twice", raw)
		}
		seen[u.Host] = true
		if u.User == nil && cfg.LeafUser != "" {
			u.User = url.UserPassword(cfg.LeafUser, cfg.LeafPassword)
		}
		lo.Remotes = append(lo.Remotes, &server.RemoteLeafOpts{
			URLs: []*url.URL{u},
			// Behind the lab proxies (or NAT, load balancers) the peer's
			// advertised address must not replace the configured one.
			IgnoreDiscoveredServers: true,
		})
	}
	return lo, nil
}

// splitHostPort parses host:port; port 0 asks for a free port.
func splitHostPort(what, hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("%s listen address %q: %w", what, hp, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%s listen address %q: bad port", what, hp)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

func checkPortFree(what, hp string) error {
	_, port, err := splitHostPort(what, hp)
	if err != nil || port == server.RANDOM_PORT {
		return err
	}
	ln, err := net.Listen("tcp", hp)
	if err != nil {
		return fmt.Errorf("broker: %s port %s is not available: %w", what, hp, err)
	}
	return ln.Close()
}

func checkStoreDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("broker: store directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".s3mesh-probe-*")
	if err != nil {
		return fmt.Errorf("broker: store directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(filepath.Clean(name))
}

// Site is the site (and JetStream domain) this server serves.
func (s *Server) Site() string { return s.cfg.Site }

// ClientURL is the nats:// URL clients connect to (without credentials).
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// LeafURL is the nats-leaf:// URL of the leaf listener ("" if none).
func (s *Server) LeafURL() string {
	if s.cfg.LeafListen == "" {
		return ""
	}
	lo := s.opts.LeafNode // Port holds the bound port once listening.
	host := lo.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "nats-leaf://" + net.JoinHostPort(host, strconv.Itoa(lo.Port))
}

// Connect opens an in-process client connection to the server (no TCP),
// with the configured client credentials.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := []nats.Option{nats.InProcessServer(s.ns), nats.Name("s3mesh-" + s.cfg.Site)}
	if s.cfg.User != "" {
		all = append(all, nats.UserInfo(s.cfg.User, s.cfg.Password))
	}
	return nats.Connect("", append(all, opts...)...)
}

// NATS gives access to the underlying nats-server (monitoring, tests).
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the server. Stored data stays in StoreDir.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.log.Info("nats server shut down")
}

// WaitForShutdown blocks until the server has shut down.
func (s *Server) WaitForShutdown() { s.ns.WaitForShutdown() }

// serverLogger adapts slog to nats-server's Logger and remembers the
// first fatal error (nats-server reports listen and JetStream start
// failures through Fatalf; an embedded server must not exit the process).
type serverLogger struct {
	log *slog.Logger

	mu    sync.Mutex
	first error
}

func (l *serverLogger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

func (l *serverLogger) Noticef(format string, v ...any) {
	l.log.Info(fmt.Sprintf(format, v...), "component", "nats")
}

func (l *serverLogger) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...), "component", "nats")
}

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.first == nil {
		l.first = errors.New(msg)
	}
	l.mu.Unlock()
	l.log.Error(msg, "component", "nats", "fatal", true)
}

func (l *serverLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...), "component", "nats")
}

func (l *serverLogger) Debugf(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "nats")
}

func (l *serverLogger) Tracef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "nats", "trace", true)
}
