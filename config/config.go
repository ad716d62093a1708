package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Site is the whole configuration of one s3mesh site.
type Site struct {
	Site            string        `yaml:"site"`             // site name, also its JetStream domain
	S3              S3            `yaml:"s3"`               // this site's object store
	Buckets         []Bucket      `yaml:"buckets"`          // replicated buckets (same list at every site)
	NATS            NATS          `yaml:"nats"`             // the site's broker
	Peers           []Peer        `yaml:"peers"`            // the other sites
	Events          []EventSource `yaml:"events"`           // where local-change events come from
	StateDir        string        `yaml:"state_dir"`        // per-key state store (pebble)
	HTTPAddr        string        `yaml:"http_addr"`        // metrics, health and webhook ("" = off)
	InlineThreshold int64         `yaml:"inline_threshold"` // bodies up to this size travel inside the record
	PartSize        int64         `yaml:"part_size"`        // multipart part size for large bodies
	Workers         int           `yaml:"workers"`          // parallel appliers (per-key order is kept)
	// MemoryBudget bounds the body bytes all appliers buffer at once
	// (default 32 MiB; at least 2 × part_size). A record claiming a huge
	// size cannot make every worker allocate its parts at the same time.
	// The agent also sets Go's soft memory limit to memory_budget + 16 MiB
	// (unless GOMEMLIMIT is set), so garbage is collected before the
	// process grows past what it needs.
	MemoryBudget int64 `yaml:"memory_budget"`
	// IgnoreKeys are regular expressions of keys never replicated: a store's
	// own temporary files. Default: versitygw's in-progress uploads.
	IgnoreKeys []string   `yaml:"ignore_keys"`
	Scan       Scan       `yaml:"scan"`
	Tombstones Tombstones `yaml:"tombstones"`
	Deletes    Deletes    `yaml:"deletes"` // the guard against a peer's mass deletes (deletes.go)
	Trash      Trash      `yaml:"trash"`   // what a peer's record removed is kept (trash.go)
	Retry      Retry      `yaml:"retry"`
	Records    Records    `yaml:"records"`
	Signing    Signing    `yaml:"signing"` // the key this site signs its records with (signing.go)
	Log        Log        `yaml:"log"`
}

// Records bounds what this site accepts in its peers' change records
// beyond the fixed bounds (schema/limits.go); a record outside goes to the
// DLQ with reason bad-record.
type Records struct {
	// MaxFuture is how far ahead of this site's clock a record's origin
	// time and creation time may be (default 24h; up to
	// schema.EarlyWindow further, a record waits instead). It absorbs
	// clock skew between sites; an origin time further ahead would win
	// every lww conflict of its key for that long. It must be the same at
	// every site: a write over a peer's version inherits its origin time,
	// so a site with a smaller value would refuse honest writes.
	MaxFuture time.Duration `yaml:"max_future"`
	// FormerSites are sites removed from the mesh: their entries remain in
	// the clocks of keys they wrote, which are accepted. A clock naming any
	// other site that is not this site or a peer is refused.
	FormerSites []string `yaml:"former_sites"`
	// AcceptUnsigned accepts the unsigned (schema 1) records of earlier
	// builds from peers, unverified: only while a mesh is being upgraded
	// (docs/security.md, "Signed change records"). Default false.
	AcceptUnsigned bool `yaml:"accept_unsigned"`
	// ProofWait is how long a peer's record whose clock claims a counter
	// of a third site above any counter that site's own records have shown
	// this site waits for those records (retried with backoff; default 1h).
	// Then it goes to the DLQ as bad-record; `s3mesh dlq retry` applies it
	// once the third site's records have arrived.
	ProofWait time.Duration `yaml:"proof_wait"`
}

// S3 is an S3 endpoint and its credentials.
type S3 struct {
	Endpoint  string `yaml:"endpoint"` // http(s)://host:port
	Region    string `yaml:"region"`
	AccessKey string `yaml:"access_key"`
	SecretKey Secret `yaml:"secret_key"`
	PathStyle *bool  `yaml:"path_style"` // default true
	// UnconditionalWrites runs the agent on a store that ignores If-Match
	// and If-None-Match (the agent probes it at start and refuses it
	// otherwise): every conditional write is checked with a HEAD first, so
	// a local write racing a replica write in between can be overwritten
	// without a conflict being recorded (docs/stores.md). Local only.
	UnconditionalWrites bool `yaml:"unconditional_writes"`
	// AllowWritableKey (peers only) says that this peer's store cannot give
	// a read-only key (rclone serve s3 has one key pair, with every right),
	// so the key can write there. The agent refuses a peer key that can
	// write unless this is true, and then warns at every start (docs/deployment.md,
	// "Peers' S3 keys: read-only").
	AllowWritableKey bool `yaml:"allow_writable_key"`
}

// Bucket is one replicated bucket.
type Bucket struct {
	Name      string    `yaml:"name"`
	Conflicts Conflicts `yaml:"conflicts"`
	// Topology is the bucket's mode and prefix filters (topology.go).
	Topology `yaml:",inline"`
	Trash    string `yaml:"trash"` // deletes (default), all or none (trash.go)
}

// Conflicts is a bucket's conflict policy. It must be the same at every
// site (see docs/operations.md, "Conflicts").
type Conflicts struct {
	Policy       string   `yaml:"policy"`        // lww (default), site-priority or manual
	Priority     []string `yaml:"priority"`      // site-priority: sites, highest first
	Deletes      string   `yaml:"deletes"`       // lww (default), delete-wins or put-wins
	KeepLosers   *bool    `yaml:"keep_losers"`   // keep each losing version's bytes (default true)
	LosersPrefix string   `yaml:"losers_prefix"` // where kept losers go (default .s3mesh-conflicts/)
}

// DefaultLosersPrefix is where kept conflict losers are written.
const DefaultLosersPrefix = ".s3mesh-conflicts/"

// Keep reports whether losing versions are kept as objects (default true).
func (c Conflicts) Keep() bool { return c.KeepLosers == nil || *c.KeepLosers }

// NATS says how the agent reaches its site's broker. With only Embedded, the
// agent runs the broker in-process. With URL, the agent connects there; an
// Embedded section beside it is what `s3mesh broker --config` runs, so one
// file describes a site whose broker is its own process (as in the lab).
type NATS struct {
	URL       string `yaml:"url"`        // external broker, e.g. nats://nats-a:4222
	User      string `yaml:"user"`       // optional user/password
	Password  Secret `yaml:"password"`   //
	CredsFile string `yaml:"creds_file"` // optional NATS .creds file (a broker in operator mode)
	// NKey is an nkeys user seed (SU…, a secret) the agent logs in with
	// instead of user and password; a broker with links then requires the
	// seed's public key of the agent.
	NKey     Secret    `yaml:"nkey"`
	Embedded *Embedded `yaml:"embedded"` // run the broker in-process
	// TLS verifies the broker with CAFile and, with CertFile and KeyFile,
	// presents a client certificate (all optional).
	TLS TLS `yaml:"tls"`
	// StreamReplicas is the replica count of every s3mesh stream and
	// mirror consumer (default 1; 3 on a 3-node production cluster).
	StreamReplicas int `yaml:"stream_replicas"`
	// Limits bound every s3mesh stream by bytes and messages (limits.go).
	Limits StreamLimits `yaml:"limits"`
}

// TLS is the client side of a TLS connection to the broker.
type TLS struct {
	CAFile   string `yaml:"ca_file"`   // PEM CA bundle that signed the broker's certificate
	CertFile string `yaml:"cert_file"` // client certificate (with key_file)
	KeyFile  string `yaml:"key_file"`  // client key (with cert_file)
}

// Embedded configures an in-process nats-server with JetStream.
type Embedded struct {
	Listen      string   `yaml:"listen"`       // client address, host:port
	StoreDir    string   `yaml:"store_dir"`    // JetStream file store
	LeafListen  string   `yaml:"leaf_listen"`  // accepts leaf links from peers ("" = none)
	LeafRemotes []string `yaml:"leaf_remotes"` // nats-leaf://host:port of peers' leaf listeners
	SyncAlways  bool     `yaml:"sync_always"`  // fsync every write (≈25x slower publishes)
	// Links authenticate every leaf link and confine it to what the two
	// mirrors of the link need (one entry per peer; replaces
	// leaf_remotes). The agent then logs in with nats.user and
	// nats.password, which the broker requires of it.
	Links []Link `yaml:"links"`
	// Users are further clients of the site's account with restricted
	// subjects, such as the store's event sink.
	Users []NATSUser `yaml:"users"`
	// SyncInterval is how often the file store fsyncs (server default 2m). An
	// acknowledged record survives a process crash either way, an OS crash
	// only once synced.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// AllowPlaintext lets the broker listen beyond loopback without tls
	// (refused otherwise): only on a private network.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// TLS, when set, is required on the client and leaf listeners and used
	// on every dialled link (see broker.TLSFiles).
	TLS *EmbeddedTLS `yaml:"tls"`
}

// EmbeddedTLS is the server side of the embedded broker's TLS.
type EmbeddedTLS struct {
	CertFile string `yaml:"cert_file"` // the broker's certificate, server and client auth (required)
	KeyFile  string `yaml:"key_file"`  // its key (required)
	// CAFile signed the peers' certificates: with it, dialling peers must
	// present one (mutual TLS on links) and dialled peers are verified
	// against it (otherwise against the system roots).
	CAFile string `yaml:"ca_file"`
	// VerifyClients requires clients to present a certificate signed by
	// CAFile (nats.tls.cert_file for the agent).
	VerifyClients bool `yaml:"verify_clients"`
}

func (t *EmbeddedTLS) validate() error {
	if t.CertFile == "" || t.KeyFile == "" {
		return fieldErr("nats.embedded.tls", "cert_file and key_file are both required")
	}
	if t.VerifyClients && t.CAFile == "" {
		return fieldErr("nats.embedded.tls.ca_file", "required with verify_clients")
	}
	for _, f := range []struct{ name, path string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"ca_file", t.CAFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fieldErr("nats.embedded.tls."+f.name, "%v", err)
		}
	}
	return nil
}

// Link is the leaf link to one peer. The site whose URL names the other's
// leaf listener dials; the other leaves URL empty. Both hold the same
// password (at least 16 characters).
type Link struct {
	Peer     string `yaml:"peer"`
	URL      string `yaml:"url"`
	Password Secret `yaml:"password"`
}

// NATSUser is a client of the embedded broker with only the subjects
// listed (an empty list allows none).
type NATSUser struct {
	Name     string `yaml:"name"`
	Password Secret `yaml:"password"`
	// NKey, instead of Password, is the public key (U…) of the nkeys user
	// seed the client logs in with.
	NKey      string   `yaml:"nkey"`
	Publish   []string `yaml:"publish"`
	Subscribe []string `yaml:"subscribe"`
}

// Peer is another site: its name and the S3 endpoint bodies are fetched from.
type Peer struct {
	Name string `yaml:"name"`
	S3   S3     `yaml:"s3"`
	// PublicKeys are the nkeys user public keys ("U…") the peer signs its
	// records with: one, or two while it rotates its key.
	PublicKeys []string `yaml:"public_keys"`
	// LinkSecret is a secret this site and the peer share (at least 16
	// characters, the same at both ends), from which the names of the two
	// mirror consumers of the link are made (broker.MirrorConsumerFor), so
	// that no third site can forge flow control for them. Only for an
	// external broker (nats.url without nats.embedded.links): an embedded
	// broker's link password serves.
	LinkSecret Secret `yaml:"link_secret"`
}

// EventSource is one source of local-change hints.
type EventSource struct {
	Type        string `yaml:"type"`         // "nats", "webhook" or "poll"
	Name        string `yaml:"name"`         // source name in subjects (default: the type)
	Subject     string `yaml:"subject"`      // nats: subject the store publishes to (captured by EVENTS_<site>)
	KeyEncoding string `yaml:"key_encoding"` // "raw" (versitygw) or "url" (AWS, MinIO, Ceph); not for poll
	Token       Secret `yaml:"token"`        // webhook: required bearer token
	// Interval is how often a poll source lists every replicated bucket
	// and publishes what changed (default DefaultPollInterval): for stores
	// that send no events. A change waits at most one interval plus one
	// listing of the bucket.
	Interval time.Duration `yaml:"interval"`
}

// DefaultPollInterval is a poll source's interval when none is given.
const DefaultPollInterval = 10 * time.Second

// Scan configures the bucket scanner (initial sync and repair of lost events).
type Scan struct {
	// Interval is the full rescan period: unset means 10m, 0 disables the
	// timer (scans then run only at start and when an event asks for one).
	Interval *time.Duration `yaml:"interval"`
	Debounce time.Duration  `yaml:"debounce"`  // delay before a requested rescan
	Rate     float64        `yaml:"rate"`      // listed objects per second (0 = unlimited)
	PageSize int32          `yaml:"page_size"` // keys per listing page (default 1000)
	// MaxDeleteFraction: when a scan finds more than this share of the keys
	// the site holds missing from a bucket, it publishes none of those
	// deletes and holds the bucket until an operator confirms (default 0.1).
	MaxDeleteFraction float64 `yaml:"max_delete_fraction"`
}

// Tombstones configures how long deletes are remembered.
type Tombstones struct {
	// Retention: a tombstone is kept this long (default 7 days, also the
	// CHANGES streams' max age). A site cut off for longer must resync.
	Retention time.Duration `yaml:"retention"`
}

// ScanInterval returns the effective rescan period (0 = timer off).
func (s Scan) ScanInterval() time.Duration {
	if s.Interval == nil {
		return DefaultScanInterval
	}
	return *s.Interval
}

// Retry bounds how long a transient failure is retried before the record
// goes to the dead-letter queue.
type Retry struct {
	Budget     time.Duration `yaml:"budget"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// DefaultIgnoreKeys are versitygw's temporary names: an overwrite links the
// new file as .<name>.sgwtmp.<nanoseconds> and renames it into place, and the
// posix backend stages other uploads under .sgwtmp/; listings can show both
// for a moment.
var DefaultIgnoreKeys = []string{`(^|/)\.[^/]+\.sgwtmp\.[0-9]+$`, `(^|/)\.sgwtmp(/|$)`}

// Defaults applied by Load.
const (
	DefaultInlineThreshold = 256 << 10
	DefaultPartSize        = 8 << 20  // S3's minimum is 5 MiB; two per large body in flight
	DefaultMemoryBudget    = 32 << 20 // with the agent's soft memory limit it bounds RSS near 64 MiB at any object size
	DefaultWorkers         = 32       // appliers mostly wait on S3 and the disk; more overlap, same memory bound
	DefaultScanInterval    = 10 * time.Minute
	DefaultScanDebounce    = 500 * time.Millisecond
	DefaultRetryBudget     = 10 * time.Minute
	DefaultMaxBackoff      = 30 * time.Second
	DefaultMaxFuture       = 24 * time.Hour // schema.DefaultMaxFuture
	DefaultProofWait       = time.Hour      // consumer.DefaultProofWait
)

// Error is a configuration error naming the offending field.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %s", e.Field, e.Msg) }

func fieldErr(field, format string, a ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Load reads, defaults and validates a site configuration file.
func Load(path string) (*Site, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b)
}

// Parse decodes, defaults and validates a configuration. Unknown fields are
// errors (a typo must not silently fall back to a default).
func Parse(b []byte) (*Site, error) {
	var s Site
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s.applyDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Site) applyDefaults() {
	if s.InlineThreshold == 0 {
		s.InlineThreshold = DefaultInlineThreshold
	}
	if s.PartSize == 0 {
		s.PartSize = DefaultPartSize
	}
	if s.MemoryBudget == 0 {
		s.MemoryBudget = max(DefaultMemoryBudget, 2*s.PartSize)
	}
	if s.Workers == 0 {
		s.Workers = DefaultWorkers
	}
	if s.IgnoreKeys == nil {
		s.IgnoreKeys = DefaultIgnoreKeys
	}
	if s.Scan.Debounce == 0 {
		s.Scan.Debounce = DefaultScanDebounce
	}
	if s.Scan.PageSize == 0 {
		s.Scan.PageSize = 1000
	}
	if s.Scan.MaxDeleteFraction == 0 {
		s.Scan.MaxDeleteFraction = 0.1
	}
	s.Deletes.defaults(s.Scan.MaxDeleteFraction)
	if s.Tombstones.Retention == 0 {
		s.Tombstones.Retention = 7 * 24 * time.Hour
	}
	if s.Retry.Budget == 0 {
		s.Retry.Budget = DefaultRetryBudget
	}
	if s.Retry.MaxBackoff == 0 {
		s.Retry.MaxBackoff = DefaultMaxBackoff
	}
	if s.Records.MaxFuture == 0 {
		s.Records.MaxFuture = DefaultMaxFuture
	}
	if s.Records.ProofWait == 0 {
		s.Records.ProofWait = DefaultProofWait
	}
	if s.S3.Region == "" {
		s.S3.Region = "us-east-1"
	}
	if s.NATS.StreamReplicas == 0 {
		s.NATS.StreamReplicas = 1
	}
	s.NATS.Limits.applyDefaults()
	s.trashDefaults()
	for i := range s.Peers {
		if s.Peers[i].S3.Region == "" {
			s.Peers[i].S3.Region = "us-east-1"
		}
	}
	for i := range s.Buckets {
		c := &s.Buckets[i].Conflicts
		if c.Policy == "" {
			c.Policy = "lww"
		}
		if c.Deletes == "" {
			c.Deletes = "lww"
		}
		if c.LosersPrefix == "" {
			c.LosersPrefix = DefaultLosersPrefix
		}
		s.Buckets[i].Topology.applyDefaults()
	}
	for i := range s.Events {
		e := &s.Events[i]
		if e.Name == "" {
			e.Name = e.Type
		}
		if e.KeyEncoding == "" && e.Type == "webhook" {
			e.KeyEncoding = "url"
		}
		if e.Type == "poll" {
			if e.KeyEncoding == "" {
				e.KeyEncoding = "raw" // listings carry keys as they are
			}
			if e.Interval == 0 {
				e.Interval = DefaultPollInterval
			}
		}
	}
}

var siteRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
var bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
var sourceRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ValidSiteName reports whether s can name a site (it becomes a JetStream
// domain and part of subjects and stream names).
func ValidSiteName(s string) error {
	if !siteRe.MatchString(s) {
		return fmt.Errorf("site name %q: want 1-32 of a-z, 0-9, '-' (starting with a letter or digit)", s)
	}
	return nil
}

// Validate checks the whole configuration and names the first bad field.
func (s *Site) Validate() error {
	if err := ValidSiteName(s.Site); err != nil {
		return fieldErr("site", "%v", err)
	}
	if err := s.S3.validate("s3"); err != nil {
		return err
	}
	if s.S3.AllowWritableKey {
		return fieldErr("s3.allow_writable_key", "only for a peer's key (peers[].s3.allow_writable_key): this site's own key writes its store")
	}
	if len(s.Buckets) == 0 {
		return fieldErr("buckets", "at least one replicated bucket is required")
	}
	seen := map[string]bool{}
	for i, b := range s.Buckets {
		f := fmt.Sprintf("buckets[%d].name", i)
		if !bucketRe.MatchString(b.Name) || strings.Contains(b.Name, "..") {
			return fieldErr(f, "%q is not a valid S3 bucket name", b.Name)
		}
		if seen[b.Name] {
			return fieldErr(f, "bucket %q listed twice", b.Name)
		}
		seen[b.Name] = true
		c := b.Conflicts
		cf := fmt.Sprintf("buckets[%d].conflicts", i)
		switch c.Policy {
		case "lww", "manual":
			if len(c.Priority) > 0 {
				return fieldErr(cf+".priority", "only for policy site-priority")
			}
		case "site-priority":
			if len(c.Priority) == 0 {
				return fieldErr(cf+".priority", "policy site-priority needs the sites in order, highest first")
			}
			dup := map[string]bool{}
			for _, p := range c.Priority {
				if err := ValidSiteName(p); err != nil || dup[p] {
					return fieldErr(cf+".priority", "%q: not a site name, or listed twice", p)
				}
				dup[p] = true
			}
		default:
			return fieldErr(cf+".policy", "%q: want lww, site-priority or manual", c.Policy)
		}
		switch c.Deletes {
		case "lww", "delete-wins", "put-wins":
		default:
			return fieldErr(cf+".deletes", "%q: want lww, delete-wins or put-wins", c.Deletes)
		}
		if strings.HasPrefix(c.LosersPrefix, "/") || strings.Contains(c.LosersPrefix, "..") || len(c.LosersPrefix) > 200 {
			return fieldErr(cf+".losers_prefix", "%q: want a relative key prefix without '..' (at most 200 bytes)", c.LosersPrefix)
		}
		if err := b.Topology.validate(fmt.Sprintf("buckets[%d]", i)); err != nil {
			return err
		}
	}
	if err := s.validateTrash(); err != nil {
		return err
	}
	if err := s.NATS.validate(); err != nil {
		return err
	}
	peers := map[string]bool{s.Site: true}
	for i, p := range s.Peers {
		f := fmt.Sprintf("peers[%d]", i)
		if err := ValidSiteName(p.Name); err != nil {
			return fieldErr(f+".name", "%v", err)
		}
		if peers[p.Name] {
			return fieldErr(f+".name", "site %q appears twice (or is this site)", p.Name)
		}
		peers[p.Name] = true
		if err := p.S3.validate(f + ".s3"); err != nil {
			return err
		}
		if !p.LinkSecret.IsZero() {
			v, err := p.LinkSecret.Value()
			if err != nil {
				return fieldErr(f+".link_secret", "%v", err)
			}
			if len(v) < 16 {
				return fieldErr(f+".link_secret", "shorter than 16 characters")
			}
			if e := s.NATS.Embedded; e != nil && slices.ContainsFunc(e.Links, func(l Link) bool { return l.Peer == p.Name }) {
				return fieldErr(f+".link_secret", "the embedded broker's link to %s has a password, which serves as the link's secret: set one of the two", p.Name)
			}
		}
	}
	if err := s.validateSigning(); err != nil {
		return err
	}
	if s.Records.MaxFuture < time.Minute {
		return fieldErr("records.max_future", "%s: want at least 1m (clocks of sites skew)", s.Records.MaxFuture)
	}
	if s.Records.ProofWait < time.Second {
		return fieldErr("records.proof_wait", "%s: want at least 1s", s.Records.ProofWait)
	}
	for i, f := range s.Records.FormerSites {
		if err := ValidSiteName(f); err != nil {
			return fieldErr(fmt.Sprintf("records.former_sites[%d]", i), "%v", err)
		}
		if peers[f] {
			return fieldErr(fmt.Sprintf("records.former_sites[%d]", i), "%q is this site or a peer", f)
		}
	}
	names := map[string]bool{}
	polls := 0
	for i, e := range s.Events {
		f := fmt.Sprintf("events[%d]", i)
		// The type first: a bad one also makes the defaulted name and
		// key_encoding wrong, and the type is what must be fixed.
		if e.Type != "nats" && e.Type != "webhook" && e.Type != "poll" {
			return fieldErr(f+".type", "%q: want nats, webhook or poll", e.Type)
		}
		if !sourceRe.MatchString(e.Name) {
			return fieldErr(f+".name", "%q: want 1-32 of a-z, 0-9, '-'", e.Name)
		}
		if names[e.Name] {
			return fieldErr(f+".name", "source %q twice", e.Name)
		}
		names[e.Name] = true
		switch e.KeyEncoding {
		case "raw", "url":
		default:
			return fieldErr(f+".key_encoding", "%q: want raw (versitygw) or url (AWS, MinIO, Ceph)", e.KeyEncoding)
		}
		switch e.Type {
		case "nats":
			if e.Subject == "" {
				return fieldErr(f+".subject", "required for a nats source")
			}
		case "webhook":
			if s.HTTPAddr == "" {
				return fieldErr("http_addr", "required by the webhook source %s", f)
			}
			if e.Token.IsZero() {
				return fieldErr(f+".token", "a webhook requires a token (env: or file:)")
			}
			if _, err := e.Token.Value(); err != nil {
				return fieldErr(f+".token", "%v", err)
			}
		case "poll":
			if e.Interval < 100*time.Millisecond || e.Interval > 24*time.Hour {
				return fieldErr(f+".interval", "%v: want 100ms..24h", e.Interval)
			}
			if e.KeyEncoding != "raw" {
				return fieldErr(f+".key_encoding", "%q: a poll source reads keys from listings (raw)", e.KeyEncoding)
			}
			if polls++; polls > 1 {
				return fieldErr(f+".type", "one poll source per site (it lists every replicated bucket)")
			}
		default:
			return fieldErr(f+".type", "%q: want nats, webhook or poll", e.Type)
		}
	}
	if s.StateDir == "" {
		return fieldErr("state_dir", "required")
	}
	if s.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(s.HTTPAddr); err != nil {
			return fieldErr("http_addr", "%v", err)
		}
	}
	if s.InlineThreshold < 0 || s.InlineThreshold > 512<<10 {
		return fieldErr("inline_threshold", "%d: want 0..524288 (records must fit a NATS message)", s.InlineThreshold)
	}
	if s.PartSize < 5<<20 || s.PartSize > 512<<20 {
		return fieldErr("part_size", "%d: want 5 MiB..512 MiB", s.PartSize)
	}
	if s.MemoryBudget < 2*s.PartSize || s.MemoryBudget > 64<<30 {
		return fieldErr("memory_budget", "%d: want 2 × part_size (%d) .. 64 GiB", s.MemoryBudget, 2*s.PartSize)
	}
	for i, re := range s.IgnoreKeys {
		if _, err := regexp.Compile(re); err != nil {
			return fieldErr(fmt.Sprintf("ignore_keys[%d]", i), "%v", err)
		}
	}
	if s.Workers < 1 || s.Workers > 256 {
		return fieldErr("workers", "%d: want 1..256", s.Workers)
	}
	if s.Scan.Interval != nil && *s.Scan.Interval < 0 {
		return fieldErr("scan.interval", "negative")
	}
	if s.Scan.Rate < 0 {
		return fieldErr("scan.rate", "negative")
	}
	if s.Scan.PageSize < 1 || s.Scan.PageSize > 1000 {
		return fieldErr("scan.page_size", "%d: want 1..1000", s.Scan.PageSize)
	}
	if s.Scan.MaxDeleteFraction <= 0 || s.Scan.MaxDeleteFraction > 1 {
		return fieldErr("scan.max_delete_fraction", "%v: want (0, 1]", s.Scan.MaxDeleteFraction)
	}
	if err := s.Deletes.validate(); err != nil {
		return err
	}
	if s.Tombstones.Retention < time.Hour {
		return fieldErr("tombstones.retention", "%v: want at least 1h", s.Tombstones.Retention)
	}
	if s.Retry.Budget < 0 || s.Retry.MaxBackoff <= 0 {
		return fieldErr("retry", "budget must be >= 0 and max_backoff > 0")
	}
	switch s.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", "%q: want debug, info, warn or error", s.Log.Level)
	}
	switch s.Log.Format {
	case "", "text", "json":
	default:
		return fieldErr("log.format", "%q: want text or json", s.Log.Format)
	}
	return nil
}

func (c S3) validate(f string) error {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr(f+".endpoint", "%q: want http(s)://host[:port]", c.Endpoint)
	}
	if c.AccessKey == "" {
		return fieldErr(f+".access_key", "required")
	}
	if c.SecretKey.IsZero() {
		return fieldErr(f+".secret_key", "required (env: NAME or file: PATH)")
	}
	if _, err := c.SecretKey.Value(); err != nil {
		return fieldErr(f+".secret_key", "%v", err)
	}
	return nil
}

// UsePathStyle reports whether path-style addressing is on (default true).
func (c S3) UsePathStyle() bool { return c.PathStyle == nil || *c.PathStyle }

func (n NATS) validate() error {
	if n.URL == "" && n.Embedded == nil {
		return fieldErr("nats", "set url (external broker), embedded, or both (`s3mesh broker` runs the embedded one, the agent uses url)")
	}
	if n.URL != "" {
		u, err := url.Parse(n.URL)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			return fieldErr("nats.url", "%q: want nats://host:port or tls://host:port", n.URL)
		}
	}
	if !n.Password.IsZero() {
		if _, err := n.Password.Value(); err != nil {
			return fieldErr("nats.password", "%v", err)
		}
	}
	if !n.NKey.IsZero() {
		if n.User != "" || n.CredsFile != "" {
			return fieldErr("nats.nkey", "log in with one of user/password, nkey or creds_file")
		}
		seed, err := n.NKey.Value()
		if err != nil {
			return fieldErr("nats.nkey", "%v", err)
		}
		if _, err := ParseSeed(seed); err != nil {
			return fieldErr("nats.nkey", "%v", err)
		}
	}
	if n.StreamReplicas < 1 || n.StreamReplicas > 5 {
		return fieldErr("nats.stream_replicas", "%d: want 1..5 (3 on a 3-node cluster)", n.StreamReplicas)
	}
	if err := n.Limits.validate(); err != nil {
		return err
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		return fieldErr("nats.tls", "cert_file and key_file must be set together")
	}
	for _, f := range []struct{ name, path string }{{"ca_file", n.TLS.CAFile}, {"cert_file", n.TLS.CertFile}, {"key_file", n.TLS.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fieldErr("nats.tls."+f.name, "%v", err)
		}
	}
	if e := n.Embedded; e != nil {
		if _, _, err := net.SplitHostPort(e.Listen); err != nil {
			return fieldErr("nats.embedded.listen", "%v", err)
		}
		if e.StoreDir == "" {
			return fieldErr("nats.embedded.store_dir", "required")
		}
		if e.LeafListen != "" {
			if _, _, err := net.SplitHostPort(e.LeafListen); err != nil {
				return fieldErr("nats.embedded.leaf_listen", "%v", err)
			}
		}
		for i, r := range e.LeafRemotes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return fieldErr(fmt.Sprintf("nats.embedded.leaf_remotes[%d]", i), "%q: want nats-leaf://host:port", r)
			}
		}
		if e.SyncInterval < 0 {
			return fieldErr("nats.embedded.sync_interval", "negative")
		}
		if err := e.validateLinks(n); err != nil {
			return err
		}
		if e.TLS != nil {
			if err := e.TLS.validate(); err != nil {
				return err
			}
		}
	}
	return nil
}

// LinkSecrets returns, per peer, the secret the link to it shares: the
// peer's link_secret, else the embedded broker's link password ("" for
// neither). Call it only on a validated configuration.
func (s *Site) LinkSecrets() map[string]string {
	out := map[string]string{}
	if e := s.NATS.Embedded; e != nil {
		for _, l := range e.Links {
			out[l.Peer] = l.Password.MustValue()
		}
	}
	for _, p := range s.Peers {
		if !p.LinkSecret.IsZero() {
			out[p.Name] = p.LinkSecret.MustValue()
		}
	}
	return out
}

// PeerNames returns the peers' names in configuration order.
func (s *Site) PeerNames() []string {
	out := make([]string, len(s.Peers))
	for i, p := range s.Peers {
		out[i] = p.Name
	}
	return out
}

// BucketNames returns the replicated bucket names.
func (s *Site) BucketNames() []string {
	out := make([]string, len(s.Buckets))
	for i, b := range s.Buckets {
		out[i] = b.Name
	}
	return out
}

var errNoSecret = errors.New("no value")

func (e *Embedded) validateLinks(n NATS) error {
	if len(e.Links) == 0 {
		if len(e.Users) > 0 {
			return fieldErr("nats.embedded.users", "needs links (restricted users live in the site account of a linked broker)")
		}
		return nil
	}
	if len(e.LeafRemotes) > 0 {
		return fieldErr("nats.embedded.leaf_remotes", "set links or leaf_remotes, not both (links authenticate and confine every link)")
	}
	if (n.User == "" || n.Password.IsZero()) && n.NKey.IsZero() {
		return fieldErr("nats.user", "a broker with links requires the agent to log in: set nats.user and nats.password, or nats.nkey")
	}
	seen := map[string]bool{}
	for i, l := range e.Links {
		f := fmt.Sprintf("nats.embedded.links[%d]", i)
		if l.Peer == "" || seen[l.Peer] {
			return fieldErr(f+".peer", "%q: missing or listed twice", l.Peer)
		}
		seen[l.Peer] = true
		if l.URL != "" {
			u, err := url.Parse(l.URL)
			if err != nil || u.Host == "" || u.User != nil {
				return fieldErr(f+".url", "%q: want nats-leaf://host:port (no user info: the password is its own field)", l.URL)
			}
		}
		pw, err := l.Password.Value()
		if err != nil {
			return fieldErr(f+".password", "%v", err)
		}
		if len(pw) < 16 {
			return fieldErr(f+".password", "missing or shorter than 16 characters")
		}
	}
	for i, u := range e.Users {
		f := fmt.Sprintf("nats.embedded.users[%d]", i)
		if u.Name == "" || u.Name == n.User {
			return fieldErr(f+".name", "%q: missing or the same as nats.user", u.Name)
		}
		if u.NKey != "" {
			if !u.Password.IsZero() {
				return fieldErr(f+".nkey", "set password or nkey, not both")
			}
			if _, err := ParsePublicKey(u.NKey); err != nil {
				return fieldErr(f+".nkey", "%v", err)
			}
			continue
		}
		if _, err := u.Password.Value(); err != nil || u.Password.IsZero() {
			return fieldErr(f+".password", "required, or nkey (%v)", err)
		}
	}
	return nil
}
