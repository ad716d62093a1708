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
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
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
	// NKeySeed, instead of User and Password, is the agent's nkeys user
	// seed ("SU…"): the broker requires a client signing with it (its
	// public key is the user) and Connect signs with it. (A NATS .creds
	// file does not log in here: its JWT needs a broker in operator mode.)
	NKeySeed string
	// LeafUser and LeafPassword, when set, are required from peers dialling
	// LeafListen and presented to the peers in LeafRemotes (unless a URL
	// carries its own user info). They must be set when User is set and
	// the site accepts leaf connections, because the server would
	// otherwise check leaf connections against the client users.
	LeafUser, LeafPassword string

	// Links, when set, authenticate every leaf link and confine it to an
	// account of its own (see links.go): one entry per peer. LeafRemotes,
	// LeafUser and LeafPassword must then be empty, and User must be set.
	Links []Link
	// Users are further clients of the site account with restricted
	// permissions, such as a store's event sink (only with Links).
	Users []User

	// ReadyTimeout bounds the wait for the server (including JetStream
	// recovery of the store) to accept connections (0 = 30 s).
	ReadyTimeout time.Duration

	// TLS, when set, is required on the client and leaf listeners and used
	// on every dialled leaf link (see TLSFiles). Without it, traffic
	// between sites is plain text: a broker listening beyond loopback
	// needs TLS unless AllowPlaintext says the network is private.
	TLS *TLSFiles
	// AllowPlaintext lets a broker without TLS listen beyond loopback
	// (a private network, or TLS terminated by something else).
	AllowPlaintext bool

	// PingInterval and MaxPingsOut decide how soon a connection that went
	// silent is closed (0 = DefaultPingInterval, DefaultMaxPingsOut).
	PingInterval time.Duration
	MaxPingsOut  int
}

// Link is the leaf link to one peer.
type Link struct {
	Peer string
	// Password is shared by the two sites of the link. The site that dials
	// logs in as the user named like itself.
	Password string
	// URL is the peer's leaf listener (nats-leaf://, nats:// or tls://) if
	// this site dials the link, "" if the peer dials this site.
	URL string
}

// User is a client of the site account, logging in with Name and Password
// or, instead, with the nkeys user seed whose public key ("U…") is NKey.
// Publish and Subscribe, when not nil, are the only subjects it may publish
// or subscribe to.
type User struct {
	Name, Password     string
	NKey               string
	Publish, Subscribe []string
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

// leafReconnectInterval is how often a cut leaf link is redialled (the
// server waits this plus up to as much again of jitter). After a heal, a
// mirror resumes only once its link is back: measured on a two-site mesh,
// and cut for 1–30 s, 1 s (the server default) made that about
// 1 s after the heal, 250 ms about 0.25 s. A dial every 250–500 ms during
// an outage costs nothing to speak of; linkErrorReports keeps the log
// from filling with one line per failed dial.
const leafReconnectInterval = 250 * time.Millisecond

// linkErrorReports: a leaf link that cannot be dialled is logged at its
// first failed attempt and then at every linkErrorReports-th (about every
// 30 s at leafReconnectInterval), not at every attempt as nats-server's
// default for a redial would.
const linkErrorReports = 80

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
	if cfg.TLS == nil && s.exposed() {
		log.Warn("listening beyond loopback without TLS (allow_plaintext): the traffic of this broker is plain text on the network")
	}
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
	agentKey, err := agentPublicKey(cfg)
	if err != nil {
		return nil, fmt.Errorf("broker: site %s: %w", cfg.Site, err)
	}
	if (cfg.LeafUser == "") != (cfg.LeafPassword == "") {
		return nil, fmt.Errorf("broker: site %s: LeafUser and LeafPassword must be set together", cfg.Site)
	}
	host, port, err := splitHostPort("client", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: site %s: %w", cfg.Site, err)
	}
	if err := checkExposure(cfg, host); err != nil {
		return nil, fmt.Errorf("broker: site %s: %w", cfg.Site, err)
	}
	opts := &server.Options{}
	if len(cfg.Links) > 0 {
		if err := linkAccounts(cfg, opts, agentKey); err != nil {
			return nil, fmt.Errorf("broker: site %s: %w", cfg.Site, err)
		}
	}
	*opts = server.Options{
		Accounts:        opts.Accounts, // from linkAccounts, with their users
		Users:           opts.Users,
		Nkeys:           opts.Nkeys,
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
		// The first dial and every redial of a leaf link.
		ConnectErrorReports:   linkErrorReports,
		ReconnectErrorReports: linkErrorReports,
	}
	if cfg.User != "" && len(cfg.Links) == 0 {
		opts.Users = []*server.User{{Username: cfg.User, Password: cfg.Password}}
	}
	if agentKey != "" && len(cfg.Links) == 0 {
		opts.Nkeys = []*server.NkeyUser{{Nkey: agentKey}}
	}
	var leaf server.LeafNodeOpts
	if len(cfg.Links) > 0 {
		leaf, err = linkLeafOptions(cfg, opts.Accounts)
	} else {
		leaf, err = leafNodeOptions(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: site %s: %w", cfg.Site, err)
	}
	opts.LeafNode = leaf
	if cfg.TLS != nil {
		if err := applyTLS(cfg.TLS, opts); err != nil {
			return nil, fmt.Errorf("broker: site %s: %w", cfg.Site, err)
		}
	}
	return opts, nil
}

// agentPublicKey is the public key of cfg.NKeySeed ("" without one). It
// refuses a seed beside User, and a seed that is not an nkeys user seed.
func agentPublicKey(cfg ServerConfig) (string, error) {
	if cfg.NKeySeed == "" {
		return "", nil
	}
	if cfg.User != "" {
		return "", errors.New("the agent logs in with User and Password or with NKeySeed, not both")
	}
	kp, err := nkeys.FromSeed([]byte(cfg.NKeySeed))
	if err != nil {
		return "", errors.New("NKeySeed is not a valid nkeys seed")
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return "", errors.New("NKeySeed is not an nkeys user seed (SU…)")
	}
	return pub, nil
}

// authenticated reports whether clients must log in.
func (cfg ServerConfig) authenticated() bool { return cfg.User != "" || cfg.NKeySeed != "" }

// checkExposure refuses to listen on a non-loopback address without
// authentication: clients need User (or NKeySeed), leaf links need Links.
func checkExposure(cfg ServerConfig, clientHost string) error {
	if !isLoopback(clientHost) && !cfg.authenticated() {
		return fmt.Errorf("client listener %s is not on loopback: set a user and password or an nkey (or listen on 127.0.0.1)", cfg.Listen)
	}
	leafExposed := false
	if cfg.LeafListen != "" {
		host, _, err := splitHostPort("leaf", cfg.LeafListen)
		if err != nil {
			return err
		}
		leafExposed = !isLoopback(host)
	}
	if leafExposed && len(cfg.Links) == 0 {
		return fmt.Errorf("leaf listener %s is not on loopback: configure authenticated links (or listen on 127.0.0.1)", cfg.LeafListen)
	}
	if (leafExposed || !isLoopback(clientHost)) && cfg.TLS == nil && !cfg.AllowPlaintext {
		return errors.New("listening beyond loopback without TLS would send records and passwords in plain text: configure tls " +
			"(or allow_plaintext on a private network, or listen on 127.0.0.1)")
	}
	return nil
}

// exposed reports whether the client or leaf listener is beyond loopback.
func (s *Server) exposed() bool {
	return !isLoopback(s.opts.Host) || s.cfg.LeafListen != "" && !isLoopback(s.opts.LeafNode.Host)
}

// isLoopback reports whether host is a loopback IP or "localhost"; an
// empty host or 0.0.0.0 (every interface) is not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// linkAccounts lays out the accounts of links.go in opts: the site account
// with the agent (User) and Users, one account per peer with the user the
// peer dials in as (for links this site does not dial).
func linkAccounts(cfg ServerConfig, opts *server.Options, agentKey string) error {
	if !cfg.authenticated() {
		return errors.New("links need a client User or NKeySeed for the agent")
	}
	if len(cfg.LeafRemotes) > 0 || cfg.LeafUser != "" {
		return errors.New("links replace LeafRemotes and LeafUser: set one or the other")
	}
	q := strconv.Quote
	siteUsers := []AccountUser{fmt.Sprintf("{user: %s, password: %s}", q(cfg.User), q(cfg.Password))}
	if agentKey != "" {
		siteUsers = []AccountUser{fmt.Sprintf("{nkey: %s}", q(agentKey))}
	}
	for _, u := range cfg.Users {
		if u.NKey != "" {
			if u.Password != "" || !nkeys.IsValidPublicUserKey(u.NKey) || u.NKey == agentKey {
				return fmt.Errorf("client user %q: nkey %q: want an nkeys user public key (U…) of its own, without a password", u.Name, u.NKey)
			}
		} else if u.Name == "" || u.Password == "" || u.Name == cfg.User {
			return fmt.Errorf("client user %q: needs a name of its own and a password (or an nkey)", u.Name)
		}
		siteUsers = append(siteUsers, userEntry(u))
	}
	var peers []string
	peerUsers := map[string][]AccountUser{}
	secrets := map[string]string{}
	seen := map[string]bool{}
	for _, l := range cfg.Links {
		if err := ValidSiteName(l.Peer); err != nil {
			return fmt.Errorf("link: %w", err)
		}
		if l.Peer == cfg.Site || seen[l.Peer] {
			return fmt.Errorf("link to %s: listed twice or to this site itself", l.Peer)
		}
		seen[l.Peer] = true
		if len(l.Password) < 16 {
			return fmt.Errorf("link to %s: password missing or shorter than 16 characters", l.Peer)
		}
		peers = append(peers, l.Peer)
		secrets[l.Peer] = l.Password
		if l.URL == "" {
			peerUsers[l.Peer] = []AccountUser{fmt.Sprintf("{user: %s, password: %s, allowed_connection_types: [\"LEAFNODE\"]}", q(l.Peer), q(l.Password))}
		}
	}
	text := AccountsConfig(cfg.Site, peers, siteUsers, peerUsers, secrets)
	if err := opts.ProcessConfigString(text); err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	return nil
}

// userEntry renders u as an account user. A nil Publish or Subscribe
// leaves that direction unrestricted; an empty one allows nothing.
func userEntry(u User) string {
	var perms []string
	if u.Publish != nil {
		perms = append(perms, "publish: "+subjectList(u.Publish))
	}
	if u.Subscribe != nil {
		perms = append(perms, "subscribe: "+subjectList(u.Subscribe))
	}
	e := fmt.Sprintf("{user: %s, password: %s", strconv.Quote(u.Name), strconv.Quote(u.Password))
	if u.NKey != "" {
		e = fmt.Sprintf("{nkey: %s", strconv.Quote(u.NKey))
	}
	if len(perms) > 0 {
		e += ", permissions: {" + strings.Join(perms, ", ") + "}"
	}
	return e + "}"
}

// subjectList renders subjects as a configuration array; an empty list
// allows nothing.
func subjectList(subjects []string) string {
	if len(subjects) == 0 {
		return `{deny: [">"]}`
	}
	qs := make([]string, len(subjects))
	for i, s := range subjects {
		qs[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(qs, ", ") + "]"
}

// linkLeafOptions is leafNodeOptions for Links: the dialled links bind to
// their peer's account.
func linkLeafOptions(cfg ServerConfig, accounts []*server.Account) (server.LeafNodeOpts, error) {
	lo := server.LeafNodeOpts{IsolateLeafnodeInterest: true, ReconnectInterval: leafReconnectInterval}
	if cfg.LeafListen != "" {
		host, port, err := splitHostPort("leaf", cfg.LeafListen)
		if err != nil {
			return lo, err
		}
		lo.Host, lo.Port = host, port
	}
	for _, l := range cfg.Links {
		if l.URL == "" {
			continue
		}
		u, err := url.Parse(l.URL)
		if err != nil {
			return lo, fmt.Errorf("link to %s: %w", l.Peer, err)
		}
		switch u.Scheme {
		case "nats-leaf", "nats", "tls":
		default:
			return lo, fmt.Errorf("link to %s: URL %q: scheme must be nats-leaf, nats or tls", l.Peer, l.URL)
		}
		if u.Hostname() == "" || u.Port() == "" || u.User != nil {
			return lo, fmt.Errorf("link to %s: URL %q: want scheme://host:port without user info", l.Peer, l.URL)
		}
		u.User = url.UserPassword(cfg.Site, l.Password)
		lo.Remotes = append(lo.Remotes, &server.RemoteLeafOpts{
			URLs:                    []*url.URL{u},
			LocalAccount:            PeerAccount(l.Peer),
			IgnoreDiscoveredServers: true,
		})
	}
	return lo, nil
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
		if cfg.authenticated() && cfg.LeafUser == "" {
			return lo, errors.New("client auth (User or NKeySeed) is set but leaf auth (LeafUser) is not: peers could not connect to the leaf listener")
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
	if s.cfg.NKeySeed != "" {
		o, err := NKeyOption(s.cfg.NKeySeed)
		if err != nil {
			return nil, err
		}
		all = append(all, o)
	}
	return nats.Connect("", append(all, opts...)...)
}

// NKeyOption logs a client in with an nkeys user seed (the seed stays in
// memory; nothing is read from disk at reconnects).
func NKeyOption(seed string) (nats.Option, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, errors.New("nats: not a valid nkeys seed")
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, errors.New("nats: not an nkeys user seed (SU…)")
	}
	return nats.Nkey(pub, kp.Sign), nil
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
