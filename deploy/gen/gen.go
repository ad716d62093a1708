// Package gen generates what a new production deployment of s3mesh needs
// for its brokers: a CA and TLS certificates, NATS credentials, and the
// nats-server configuration of every node (a cluster per region with
// JetStream in the region's domain, regions linked by leaf nodes with TLS
// and credentials). `s3mesh deploy gen` is its command-line face.
//
// Credentials, and why these:
//
//   - Agents (and operators' CLI) log in with user/password. Node configs
//     hold only the bcrypt hash; the plaintext goes to a 0600 file that the
//     agent reads with `password: {file: ...}`. The agent config already
//     supports this; a bare nkey seed is not an agent option, and .creds
//     files need JWT/operator mode (a resolver and an account server),
//     which is more machinery than a fixed set of sites needs.
//   - Leaf links use nkeys: the dialling region's nodes hold a user seed,
//     the accepting region's nodes hold only the public key. Nothing that
//     could be replayed sits on the accepting side, and there is no
//     password to hash on every reconnect.
//
// Both kinds of users live in one account, S3MESH, with JetStream enabled;
// leaf remotes bind to it, so `$JS.<region>.API` of every region is reachable
// from every other region in that account. Leaf users may only connect as
// leaf nodes, agent users only as clients (allowed_connection_types). Routes
// and leaf links require mutual TLS with certificates of the generated CA.
package gen

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/pki"
	"golang.org/x/crypto/bcrypt"
)

// Account is the NATS account holding s3mesh's streams and agent in every
// region.
const Account = broker.SiteAccount

// Options describes a new deployment.
type Options struct {
	Out     string   // output directory (created; must be empty or absent)
	Regions []string // region (= site, JetStream domain) names
	Nodes   int      // NATS nodes per region (default 3)

	// HostPattern names node n (1-based) of region r: "{region}" and "{n}"
	// are replaced, e.g. "nats-{region}-{n}.example.com". Default
	// "127.0.0.1" (every node on loopback: set PortStep).
	HostPattern string
	// Hosts overrides HostPattern per region: Hosts["a"] lists the
	// hostnames (or IPs) of region a's nodes in order.
	Hosts map[string][]string
	// ExtraSANs are added to every node certificate (default with the
	// loopback pattern: localhost, 127.0.0.1, ::1).
	ExtraSANs []string

	// Ports (defaults 4222, 6222, 7422, 8222). With PortStep > 0, node k
	// (counting from 0 over all regions) listens on port + k*PortStep, so
	// that all nodes fit one host.
	ClientPort, ClusterPort, LeafPort, MonitorPort int
	PortStep                                       int

	// StoreDir is the JetStream store directory of each node; "{region}"
	// and "{n}" are replaced (default /var/lib/nats/jetstream).
	StoreDir string
	// Listen is the bind address of every listener (default: the node's
	// host if it is an IP, else 0.0.0.0).
	Listen string
	// MonitorListen is the bind address of the HTTP monitoring listener
	// (default 127.0.0.1: monitoring reveals the topology and must not be
	// public; give an internal address to scrape it from elsewhere).
	MonitorListen string

	// InstallDir is where the files will sit on the nodes and agent hosts
	// (e.g. /etc/nats): configs then name InstallDir/ca.pem,
	// InstallDir/<node>.pem, ... instead of the paths under Out.
	InstallDir string

	ValidFor   time.Duration // certificate lifetime (default 2 years)
	BcryptCost int           // default bcrypt.DefaultCost
}

// Node is one generated nats-server.
type Node struct {
	Name        string // nats-<region>-<n>, also the server name
	Region      string
	Host        string
	ClientPort  int
	ClusterPort int
	LeafPort    int
	MonitorPort int
	MonitorHost string // the monitoring listener's address (MonitorListen)
	StoreDir    string
	Config      string // path of its nats-server config file
	Cert, Key   string // its TLS certificate and key
}

// ClientURL is tls://host:port of the node's client port.
func (n Node) ClientURL() string {
	return "tls://" + net.JoinHostPort(n.Host, strconv.Itoa(n.ClientPort))
}

// MonitorURL is the node's HTTP monitoring endpoint.
func (n Node) MonitorURL() string {
	return "http://" + net.JoinHostPort(n.MonitorHost, strconv.Itoa(n.MonitorPort))
}

// Region is one region's generated material.
type Region struct {
	Name          string
	Nodes         []Node
	AgentUser     string // NATS user of the region's agent
	AgentPassword string // path of the 0600 file holding its password
	LeafSeed      string // path of the 0600 file holding the region's leaf nkey seed
	// RoutePassword is the path of the 0600 file holding the password the
	// region's nodes require of each other's routes: a node of another
	// region (same CA) cannot join this region's cluster.
	RoutePassword string
	LeafPublicKey string
	AgentNATS     string // path of an agent config `nats:`, `signing:` and `records:` snippet
	// SigningSeed is the 0600 file holding the nkeys seed the region's
	// agent signs its change records with; SigningPublicKey is what every
	// other region lists in peers[].public_keys.
	SigningSeed      string
	SigningPublicKey string
	// LinkSecrets maps each other region to the 0600 file holding the
	// secret the two regions share, which names the mirror consumers of
	// their link (broker.MirrorConsumerFor; the agent's
	// peers[].link_secret).
	LinkSecrets map[string]string
}

// ClientURLs are the region's client URLs, comma-separated (what nats.go
// and the agent's nats.url accept).
func (r Region) ClientURLs() string {
	u := make([]string, len(r.Nodes))
	for i, n := range r.Nodes {
		u[i] = n.ClientURL()
	}
	return strings.Join(u, ",")
}

// Result is what Generate wrote. It is also saved as OUT/deployment.json.
type Result struct {
	Dir     string
	CA      string // CA certificate (PEM)
	CAKey   string // CA key (0600; keep offline once the deployment is made)
	Regions []Region
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

func (o *Options) defaults() error {
	if len(o.Regions) < 2 {
		return errors.New("deploy gen: at least two regions are required")
	}
	seen := map[string]bool{}
	for _, r := range o.Regions {
		if !nameRE.MatchString(r) {
			return fmt.Errorf("deploy gen: region %q: want 1-32 of a-z, 0-9, '-'", r)
		}
		if seen[r] {
			return fmt.Errorf("deploy gen: region %q listed twice", r)
		}
		seen[r] = true
	}
	if o.Out == "" {
		return errors.New("deploy gen: no output directory")
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > 9 {
		return fmt.Errorf("deploy gen: %d nodes per region: want 1..9 (3 for JetStream R3)", o.Nodes)
	}
	for r, hs := range o.Hosts {
		if !seen[r] {
			return fmt.Errorf("deploy gen: hosts given for unknown region %q", r)
		}
		if len(hs) != o.Nodes {
			return fmt.Errorf("deploy gen: region %s: %d hosts given, want %d", r, len(hs), o.Nodes)
		}
	}
	if o.HostPattern == "" {
		o.HostPattern = "127.0.0.1"
		if len(o.ExtraSANs) == 0 {
			o.ExtraSANs = []string{"localhost", "127.0.0.1", "::1"}
		}
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.ClientPort, 4222)
	def(&o.ClusterPort, 6222)
	def(&o.LeafPort, 7422)
	def(&o.MonitorPort, 8222)
	if o.MonitorListen == "" {
		o.MonitorListen = "127.0.0.1"
	}
	if ip := net.ParseIP(o.MonitorListen); ip == nil || ip.IsUnspecified() {
		return fmt.Errorf("deploy gen: monitor listen %q: want the IP of loopback or of an internal interface (not every interface)", o.MonitorListen)
	}
	if o.StoreDir == "" {
		o.StoreDir = "/var/lib/nats/jetstream"
	}
	if o.ValidFor == 0 {
		o.ValidFor = 2 * 365 * 24 * time.Hour
	}
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.DefaultCost
	}
	last := (len(o.Regions)*o.Nodes - 1) * o.PortStep
	for _, p := range []int{o.ClientPort, o.ClusterPort, o.LeafPort, o.MonitorPort} {
		if p < 1 || p+last > 65535 {
			return fmt.Errorf("deploy gen: port %d (+%d) out of range", p, last)
		}
	}
	return nil
}

func expand(pattern, region string, n int) string {
	return strings.NewReplacer("{region}", region, "{n}", strconv.Itoa(n)).Replace(pattern)
}

// Generate writes a new deployment to o.Out. It refuses a non-empty
// directory: regenerating would replace the CA and every secret.
func Generate(o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(o.Out); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("deploy gen: %s is not empty (refusing to replace an existing deployment's CA and secrets)", o.Out)
	}
	if err := os.MkdirAll(o.Out, 0o750); err != nil {
		return nil, fmt.Errorf("deploy gen: %w", err)
	}
	res := &Result{Dir: o.Out, CA: filepath.Join(o.Out, "ca.pem"), CAKey: filepath.Join(o.Out, "ca-key.pem")}
	ca, err := pki.NewCA("s3mesh deployment CA", o.ValidFor)
	if err != nil {
		return nil, err
	}
	if err := writeFile(res.CA, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := writeFile(res.CAKey, ca.KeyPEM, 0o600); err != nil {
		return nil, err
	}

	k := 0
	for _, rn := range o.Regions {
		dir := filepath.Join(o.Out, rn)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("deploy gen: %w", err)
		}
		r := Region{Name: rn, AgentUser: "s3mesh-agent-" + rn}
		for n := 1; n <= o.Nodes; n++ {
			host := expand(o.HostPattern, rn, n)
			if hs := o.Hosts[rn]; hs != nil {
				host = hs[n-1]
			}
			nd := Node{
				Name: fmt.Sprintf("nats-%s-%d", rn, n), Region: rn, Host: host,
				ClientPort: o.ClientPort + k*o.PortStep, ClusterPort: o.ClusterPort + k*o.PortStep,
				LeafPort: o.LeafPort + k*o.PortStep, MonitorPort: o.MonitorPort + k*o.PortStep, MonitorHost: o.MonitorListen,
				StoreDir: expand(o.StoreDir, rn, n),
			}
			k++
			nd.Config = filepath.Join(dir, nd.Name+".conf")
			nd.Cert = filepath.Join(dir, nd.Name+".pem")
			nd.Key = filepath.Join(dir, nd.Name+"-key.pem")
			certPEM, keyPEM, err := ca.Issue(nd.Name, append([]string{host}, o.ExtraSANs...), o.ValidFor)
			if err != nil {
				return nil, err
			}
			if err := writeFile(nd.Cert, certPEM, 0o644); err != nil {
				return nil, err
			}
			if err := writeFile(nd.Key, keyPEM, 0o600); err != nil {
				return nil, err
			}
			r.Nodes = append(r.Nodes, nd)
		}
		// The agent's password.
		pw, err := randomSecret()
		if err != nil {
			return nil, err
		}
		r.AgentPassword = filepath.Join(dir, "agent-password")
		if err := writeFile(r.AgentPassword, []byte(pw), 0o600); err != nil {
			return nil, err
		}
		rpw, err := randomSecret()
		if err != nil {
			return nil, err
		}
		r.RoutePassword = filepath.Join(dir, "route-password")
		if err := writeFile(r.RoutePassword, []byte(rpw), 0o600); err != nil {
			return nil, err
		}
		// The key the region's agent signs its change records with.
		skp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("deploy gen: nkey: %w", err)
		}
		sseed, _ := skp.Seed()
		r.SigningPublicKey, _ = skp.PublicKey()
		r.SigningSeed = filepath.Join(dir, "signing.nk")
		if err := writeFile(r.SigningSeed, append(sseed, '\n'), 0o600); err != nil {
			return nil, err
		}
		// The leaf nkey this region's nodes dial other regions with.
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("deploy gen: nkey: %w", err)
		}
		seed, _ := kp.Seed()
		r.LeafPublicKey, _ = kp.PublicKey()
		r.LeafSeed = filepath.Join(dir, "leaf.nk")
		if err := writeFile(r.LeafSeed, append(seed, '\n'), 0o600); err != nil {
			return nil, err
		}
		res.Regions = append(res.Regions, r)
	}

	// One secret per pair of regions, a copy in each region's directory.
	for i := range res.Regions {
		for j := i + 1; j < len(res.Regions); j++ {
			ls, err := randomSecret()
			if err != nil {
				return nil, err
			}
			for _, pair := range [][2]*Region{{&res.Regions[i], &res.Regions[j]}, {&res.Regions[j], &res.Regions[i]}} {
				r, other := pair[0], pair[1]
				if r.LinkSecrets == nil {
					r.LinkSecrets = map[string]string{}
				}
				r.LinkSecrets[other.Name] = filepath.Join(o.Out, r.Name, "link-"+other.Name+"-secret")
				if err := writeFile(r.LinkSecrets[other.Name], []byte(ls), 0o600); err != nil {
					return nil, err
				}
			}
		}
	}
	hashes := map[string]string{}
	for _, r := range res.Regions {
		pw, err := os.ReadFile(r.AgentPassword)
		if err != nil {
			return nil, err
		}
		h, err := bcrypt.GenerateFromPassword(pw, o.BcryptCost)
		if err != nil {
			return nil, fmt.Errorf("deploy gen: bcrypt: %w", err)
		}
		hashes[r.Name] = string(h)
	}
	for i := range res.Regions {
		r := &res.Regions[i]
		for _, nd := range r.Nodes {
			conf, err := nodeConfig(o, res, i, nd, hashes[r.Name])
			if err != nil {
				return nil, err
			}
			// 0600: it holds the leaf seed.
			if err := writeFile(nd.Config, conf, 0o600); err != nil {
				return nil, err
			}
		}
		r.AgentNATS = filepath.Join(o.Out, r.Name, "agent-nats.yaml")
		if err := writeFile(r.AgentNATS, agentSnippet(o, res, *r), 0o644); err != nil {
			return nil, err
		}
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := writeFile(filepath.Join(o.Out, "deployment.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// dials reports whether region i dials region j: each pair of regions has
// one direction of leaf links (the earlier region in the list dials), as
// in the lab. Every node of the dialling region keeps one link to some
// node of the other region.
func dials(i, j int) bool { return i < j }

func (o Options) listenHost(host string) string {
	if o.Listen != "" {
		return o.Listen
	}
	if net.ParseIP(host) != nil {
		return host
	}
	return "0.0.0.0"
}

func q(s string) string { return strconv.Quote(s) }

// installed is where file path (under Out) will be on the hosts.
func (o Options) installed(path string) string {
	if o.InstallDir == "" {
		return path
	}
	return filepath.Join(o.InstallDir, filepath.Base(path))
}

func hostPort(h string, p int) string { return net.JoinHostPort(h, strconv.Itoa(p)) }

// nodeConfig is the nats-server configuration of node nd of region i.
func nodeConfig(o Options, res *Result, i int, nd Node, agentHash string) ([]byte, error) {
	r := res.Regions[i]
	lh := o.listenHost(nd.Host)
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	tlsBlock := func(indent string, verify bool) {
		w("%stls {\n", indent)
		w("%s  cert_file: %s\n", indent, q(o.installed(nd.Cert)))
		w("%s  key_file: %s\n", indent, q(o.installed(nd.Key)))
		w("%s  ca_file: %s\n", indent, q(o.installed(res.CA)))
		if verify {
			w("%s  verify: true\n", indent)
		}
		w("%s  timeout: 5\n", indent)
		w("%s}\n", indent)
	}
	w("# nats-server configuration of %s (region %s), generated by `s3mesh deploy gen`.\n", nd.Name, r.Name)
	w("# Secret: holds the leaf nkey seed of region %s. Keep it 0600.\n\n", r.Name)
	w("server_name: %s\n", q(nd.Name))
	w("listen: %s\n", q(hostPort(lh, nd.ClientPort)))
	w("# Monitoring (/healthz, /varz, /jsz, /leafz) on %s only (--monitor-listen).\n", nd.MonitorHost)
	w("http: %s\n", q(hostPort(nd.MonitorHost, nd.MonitorPort)))
	w("# Close a link or connection that went silent within 30-40 s (nats-server's defaults,\n")
	w("# 2m x 2, keep a blackholed leaf link \"up\" for minutes, replicating nothing).\n")
	w("ping_interval: \"10s\"\n")
	w("ping_max: 3\n")
	w("\n# Clients (agents, operators) must use TLS; they log in with a password.\n")
	tlsBlock("", false)
	w("\njetstream {\n")
	w("  domain: %s  # = the s3mesh site name\n", q(r.Name))
	w("  store_dir: %s\n", q(nd.StoreDir))
	w("  # sync_interval: \"2m\"  # default; acknowledged records survive a process crash, not an OS crash\n")
	w("  # sync_interval: always  # fsync every write (≈25x slower publishes)\n")
	w("}\n")
	w("\ncluster {\n")
	w("  name: %s\n", q("s3mesh-"+r.Name))
	w("  listen: %s\n", q(hostPort(lh, nd.ClusterPort)))
	w("  # Routes require mutual TLS with certificates of this deployment's CA and\n")
	w("  # this region's route password: a node of another region cannot join.\n")
	tlsBlock("  ", true)
	rpw, err := os.ReadFile(r.RoutePassword)
	if err != nil {
		return nil, err
	}
	routeUser := "route-" + r.Name
	w("  authorization { user: %s, password: %s }\n", q(routeUser), q(string(rpw)))
	w("  routes: [\n")
	for _, peer := range r.Nodes {
		if peer.Name == nd.Name {
			continue
		}
		u := url.URL{Scheme: "nats-route", Host: hostPort(peer.Host, peer.ClusterPort), User: url.UserPassword(routeUser, string(rpw))}
		w("    %s\n", q(u.String()))
	}
	w("  ]\n}\n")

	// The region's account (SITE) holds its streams and its agent; the leaf
	// link to each other region lives in an account of its own that only
	// reaches SITE through what the two mirrors of the link need (see
	// broker/links.go). The accepting region binds the dialling region's
	// nkey to that account; the dialling region binds its remote to it.
	siteUsers := []broker.AccountUser{fmt.Sprintf("{user: %s, password: %s, allowed_connection_types: [\"STANDARD\"]}", q(r.AgentUser), q(agentHash))}
	var peers []string
	peerUsers := map[string][]broker.AccountUser{}
	secrets := map[string]string{}
	for j, other := range res.Regions {
		if j == i {
			continue
		}
		peers = append(peers, other.Name)
		ls, err := os.ReadFile(r.LinkSecrets[other.Name])
		if err != nil {
			return nil, err
		}
		secrets[other.Name] = string(ls)
		if dials(j, i) {
			peerUsers[other.Name] = []broker.AccountUser{fmt.Sprintf("{nkey: %s, allowed_connection_types: [\"LEAFNODE\"]}", q(other.LeafPublicKey))}
		}
	}
	w("\n")
	w("%s", broker.AccountsConfig(r.Name, peers, siteUsers, peerUsers, secrets))
	w("\nleafnodes {\n")
	w("  listen: %s\n", q(hostPort(lh, nd.LeafPort)))
	w("  # A full mesh of leaf links needs this on every server (or loop detection drops links).\n")
	w("  isolate_leafnode_interest: true\n")
	w("  reconnect: \"1s\"\n")
	w("  # Leaf links require mutual TLS with certificates of this deployment's CA.\n")
	tlsBlock("  ", true)
	w("  remotes: [\n")
	seed, err := os.ReadFile(r.LeafSeed)
	if err != nil {
		return nil, err
	}
	for j, other := range res.Regions {
		if !dials(i, j) {
			continue
		}
		w("    {\n")
		w("      # to region %s\n", other.Name)
		w("      urls: [")
		for k, on := range other.Nodes {
			if k > 0 {
				w(", ")
			}
			w("%s", q("tls://"+hostPort(on.Host, on.LeafPort)))
		}
		w("]\n")
		w("      account: %s\n", broker.PeerAccount(other.Name))
		w("      nkey: %s\n", q(strings.TrimSpace(string(seed))))
		w("      # Keep to the configured addresses (proxies, NAT, load balancers).\n")
		w("      ignore_discovered_servers: true\n")
		w("      tls {\n")
		w("        cert_file: %s\n        key_file: %s\n        ca_file: %s\n        timeout: 5\n",
			q(o.installed(nd.Cert)), q(o.installed(nd.Key)), q(o.installed(res.CA)))
		w("      }\n")
		w("    }\n")
	}
	w("  ]\n}\n")
	return b.Bytes(), nil
}

func agentSnippet(o Options, res *Result, r Region) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# nats: section of the s3mesh agent of region %s (generated by `s3mesh deploy gen`).\n", r.Name)
	fmt.Fprintf(&b, "nats:\n")
	fmt.Fprintf(&b, "  url: %s\n", q(r.ClientURLs()))
	fmt.Fprintf(&b, "  user: %s\n", r.AgentUser)
	fmt.Fprintf(&b, "  password: {file: %s}\n", o.installed(r.AgentPassword))
	fmt.Fprintf(&b, "  tls: {ca_file: %s}\n", o.installed(res.CA))
	fmt.Fprintf(&b, "  stream_replicas: %d\n", min(len(r.Nodes), 3))
	fmt.Fprintf(&b, "# The key this region's change records are signed with (docs/security.md, \"Signed change records\").\n")
	fmt.Fprintf(&b, "signing:\n  key: {file: %s}\n", o.installed(r.SigningSeed))
	fmt.Fprintf(&b, "# How far ahead of this region's clock a peer's record times may be: the same\n")
	fmt.Fprintf(&b, "# in every region (docs/configuration.md).\n")
	fmt.Fprintf(&b, "records:\n  max_future: 24h  # the default (config.DefaultMaxFuture)\n")
	fmt.Fprintf(&b, "# In peers:, each other region's public_keys and the secret of the link to it\n")
	fmt.Fprintf(&b, "# (it names the link's mirror consumers; docs/security.md, \"Least-privilege NATS\"):\n")
	for _, other := range res.Regions {
		if other.Name != r.Name {
			fmt.Fprintf(&b, "#   - name: %s\n#     public_keys: [%s]\n#     link_secret: {file: %s}\n",
				other.Name, other.SigningPublicKey, o.installed(r.LinkSecrets[other.Name]))
		}
	}
	return b.Bytes()
}

func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("deploy gen: %w", err)
	}
	return os.Chmod(path, mode) // WriteFile's mode is subject to umask only on create
}
