package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/s3mesh/s3mesh/config"
)

// Region every lab site uses.
const Region = "us-east-1"

// eventsSubject is the subject versitygw's NATS sink publishes to; it is
// broker.EventsSubject(site, "nats") (spelt out here so the lab does not
// depend on the broker package).
func eventsSubject(site string) string { return "s3mesh.events." + site + ".nats" }

// The S3 implementations a lab site can run.
const (
	StoreVersity = "versitygw" // posix backend; events over NATS (and webhook)
	StoreRclone  = "rclone"    // `rclone serve s3` of a local directory; no events
	// StoreMinio is a single-drive MinIO server whose own bucket
	// notifications go to the site's broker (its NATS target).
	StoreMinio = "minio"
	// StoreSeaweed is `weed server -s3` (master, volume, filer and S3
	// gateway in one process); no S3 bucket notifications: polled.
	StoreSeaweed = "seaweedfs"
)

// storeEvents says which event sources a store can feed: nats (a sink of
// its own publishing S3 event JSON to the broker), webhook, poll (always).
func storeEvents(store string) []string {
	switch store {
	case StoreVersity:
		return []string{EventsNATS, EventsWebhook, EventsPoll}
	case StoreMinio:
		return []string{EventsNATS, EventsPoll}
	}
	return []string{EventsPoll}
}

// storeProc is the name of a store's process in logs and errors.
func storeProc(store string) string {
	switch store {
	case StoreRclone, StoreMinio:
		return store
	case StoreSeaweed:
		return "weed"
	}
	return "versitygw"
}

// The event sources a lab site can take its store's changes from.
const (
	EventsNATS    = "nats"    // the store's NATS sink (versitygw, MinIO) into EVENTS_<site>
	EventsWebhook = "webhook" // versitygw's webhook sink into the agent's /events/vgw
	EventsPoll    = "poll"    // the agent lists the store (rclone sends no events)
)

// vgwWebhook is the webhook source versitygw's webhook sink posts to (its
// keys are raw; the lab's "webhook" source takes AWS-style URL-encoded ones).
const vgwWebhook = "vgw"

// site is one lab site: its files, ports, credentials and processes.
type site struct {
	name      string
	store     string // StoreVersity, StoreRclone, StoreMinio or StoreSeaweed
	events    string // EventsNATS, EventsWebhook or EventsPoll
	dir       string // <lab dir>/<name>
	ports     sitePorts
	accessKey string
	secretKey string // never logged
	// natsPassword and eventsPassword are the broker passwords of the
	// agent and of versitygw's event sink (never logged).
	natsPassword, eventsPassword string
	token                        string // the webhook endpoint's token (never logged)
	signingPub                   string // public key of the site's record signing key (signing.go)
	// caFile is the lab CA the site's broker certificate is signed by
	// ("" in an --insecure lab: no TLS).
	caFile string
	// peerKeys are the S3 keys this site's agent fetches from each peer's
	// store with (by peer name; peerkeys.go): read-only on versitygw, the
	// store's only key pair on rclone.
	peerKeys map[string]peerKey

	broker, s3, agent *proc
	// Guarded by Lab.mu:
	s3Wanted     bool // versitygw should run (false after stop-s3)
	s3Restarting bool // a restart loop is running (restartS3Later)
}

func newSite(labDir, name string, ports sitePorts) *site {
	return &site{name: name, dir: filepath.Join(labDir, name), ports: ports}
}

func (s *site) configPath() string { return filepath.Join(s.dir, "site.yaml") }
func (s *site) logDir() string     { return filepath.Join(s.dir, "logs") }
func (s *site) secretPath() string { return filepath.Join(s.dir, "s3-secret") }
func (s *site) accessPath() string { return filepath.Join(s.dir, "s3-access-key") }
func (s *site) tokenPath() string  { return filepath.Join(s.dir, "webhook-token") }

// iamDir is versitygw's internal IAM (--iam-dir: users.json), outside the
// store's data so that a wipe keeps the peers' read-only users.
func (s *site) iamDir() string { return filepath.Join(s.dir, "iam") }

// The broker's clients: the agent (and tools acting as the site) and
// versitygw's event sink, which may only publish the site's events.
func (s *site) natsPasswordPath() string   { return filepath.Join(s.dir, "nats-password") }
func (s *site) eventsPasswordPath() string { return filepath.Join(s.dir, "nats-events-password") }

// linkPasswordPath is the password of the leaf link between s and peer,
// the same file content at both sites (written by the lab for the pair).
func (s *site) linkPasswordPath(peer string) string {
	return filepath.Join(s.dir, "link-"+peer+"-password")
}

// Client user names of the lab's brokers.
const (
	agentUser  = "agent"
	eventsUser = "events"
)

func (s *site) dataDir() string  { return filepath.Join(s.dir, "s3") }
func (s *site) natsDir() string  { return filepath.Join(s.dir, "nats") }
func (s *site) stateDir() string { return filepath.Join(s.dir, "state") }

// versionsDir keeps versitygw's old versions (Options.Versioning).
func (s *site) versionsDir() string { return filepath.Join(s.dir, "versions") }

func (s *site) logPath(proc string) string {
	return filepath.Join(s.logDir(), proc+".log")
}

func (s *site) s3Endpoint() string { return "http://" + loopback(s.ports.S3) }
func (s *site) natsURL() string    { return s.natsScheme() + "://" + loopback(s.ports.NATS) }

// natsScheme is tls when the site's broker requires TLS (tls.go).
func (s *site) natsScheme() string {
	if s.caFile != "" {
		return "tls"
	}
	return "nats"
}
func (s *site) httpAddr() string { return loopback(s.ports.HTTP) }

// eventsNATSURL is the URL versitygw's event sink connects with: with the
// sink's own user, which may only publish the site's events.
func (s *site) eventsNATSURL(insecure bool) string {
	if insecure {
		return s.natsURL()
	}
	u := url.URL{Scheme: s.natsScheme(), Host: loopback(s.ports.NATS), User: url.UserPassword(eventsUser, s.eventsPassword)}
	return u.String()
}
func (s *site) leafAddr() string { return loopback(s.ports.Leaf) }

// webhookURL is where versitygw's webhook sink posts: the agent's webhook
// endpoint, the token as the password of HTTP basic auth (versitygw's sink
// cannot send a header of its own; Go sends a URL's user info that way).
func (s *site) webhookURL() string {
	u := url.URL{Scheme: "http", Host: s.httpAddr(), Path: "/events/" + vgwWebhook, User: url.UserPassword("s3mesh", s.token)}
	return u.String()
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// prepare creates the site's directories and credentials (generated once,
// kept across restarts of the lab).
func (s *site) prepare() error {
	for _, d := range []string{s.dir, s.logDir(), s.dataDir(), s.natsDir(), s.stateDir(), s.iamDir(), s.versionsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	var err error
	if s.accessKey, err = ensureFile(s.accessPath(), 0o644, func() string {
		return "LAB" + strings.ToUpper(s.name) + strings.ToUpper(randHex(8))
	}); err != nil {
		return err
	}
	if s.secretKey, err = ensureFile(s.secretPath(), 0o600, func() string { return randHex(20) }); err != nil {
		return err
	}
	if s.token, err = ensureFile(s.tokenPath(), 0o600, func() string { return randHex(32) }); err != nil {
		return err
	}
	if s.natsPassword, err = ensureFile(s.natsPasswordPath(), 0o600, func() string { return randHex(24) }); err != nil {
		return err
	}
	if s.eventsPassword, err = ensureFile(s.eventsPasswordPath(), 0o600, func() string { return randHex(24) }); err != nil {
		return err
	}
	return s.prepareSigning()
}

// prepareLinks writes the password of every link (one per pair, the same
// at both ends; kept across restarts).
func prepareLinks(sites []*site) error {
	for i, x := range sites {
		for _, y := range sites[i+1:] {
			pw, err := ensureFile(x.linkPasswordPath(y.name), 0o600, func() string { return randHex(24) })
			if err != nil {
				return err
			}
			b, err := os.ReadFile(y.linkPasswordPath(x.name))
			if err != nil || strings.TrimSpace(string(b)) != pw {
				if err := writeFileAtomic(y.linkPasswordPath(x.name), []byte(pw+"\n"), 0o600); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ensureFile returns the trimmed content of path, first writing gen() to
// it with mode if it does not exist (or is empty).
func ensureFile(path string, mode os.FileMode, gen func() string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return v, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("lab: %w", err)
	}
	v := gen()
	if err := writeFileAtomic(path, []byte(v+"\n"), mode); err != nil {
		return "", err
	}
	return v, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("lab: crypto/rand: " + err.Error()) // never fails on Linux
	}
	return hex.EncodeToString(b)
}

// The YAML written for a site. It mirrors config.Site with only the
// fields the lab sets, durations as strings and secrets as {file: ...}.
type (
	ySecret struct {
		File string `yaml:"file"`
	}
	yS3 struct {
		Endpoint         string  `yaml:"endpoint"`
		Region           string  `yaml:"region"`
		AccessKey        string  `yaml:"access_key"`
		SecretKey        ySecret `yaml:"secret_key"`
		AllowWritableKey bool    `yaml:"allow_writable_key,omitempty"`
		// UnconditionalWrites: the store ignores If-Match on DELETE
		// (MinIO); the agent then HEAD-checks replica deletes only.
		UnconditionalWrites bool `yaml:"unconditional_writes,omitempty"`
	}
	yBucket struct {
		Name      string            `yaml:"name"`
		Conflicts *config.Conflicts `yaml:"conflicts,omitempty"`
		yTopology `yaml:",inline"`
		Trash     string `yaml:"trash,omitempty"`
	}
	yTrash struct {
		Retention string `yaml:"retention,omitempty"`
	}
	yRetry struct {
		Budget string `yaml:"budget,omitempty"`
	}
	yRecords struct {
		MaxFuture string `yaml:"max_future"`
		ProofWait string `yaml:"proof_wait,omitempty"`
	}
	yDeletes struct {
		MaxFraction float64 `yaml:"max_fraction,omitempty"`
		Window      string  `yaml:"window,omitempty"`
		Min         int     `yaml:"min,omitempty"`
	}
	yLink struct {
		Peer     string  `yaml:"peer"`
		URL      string  `yaml:"url,omitempty"`
		Password ySecret `yaml:"password"`
	}
	yUser struct {
		Name      string   `yaml:"name"`
		Password  ySecret  `yaml:"password"`
		Publish   []string `yaml:"publish"`
		Subscribe []string `yaml:"subscribe"`
	}
	yEmbeddedTLS struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
		CAFile   string `yaml:"ca_file"`
	}
	yTLS struct {
		CAFile string `yaml:"ca_file"`
	}
	yEmbedded struct {
		TLS         *yEmbeddedTLS `yaml:"tls,omitempty"`
		Listen      string        `yaml:"listen"`
		StoreDir    string        `yaml:"store_dir"`
		LeafListen  string        `yaml:"leaf_listen"`
		LeafRemotes []string      `yaml:"leaf_remotes,omitempty"`
		Links       []yLink       `yaml:"links,omitempty"`
		Users       []yUser       `yaml:"users,omitempty"`
	}
	yNATS struct {
		URL      string    `yaml:"url"`
		User     string    `yaml:"user,omitempty"`
		Password *ySecret  `yaml:"password,omitempty"`
		TLS      *yTLS     `yaml:"tls,omitempty"`
		Embedded yEmbedded `yaml:"embedded"`
	}
	yPeer struct {
		Name       string   `yaml:"name"`
		S3         yS3      `yaml:"s3"`
		PublicKeys []string `yaml:"public_keys"`
	}
	yEvent struct {
		Type        string   `yaml:"type"`
		Name        string   `yaml:"name"`
		Subject     string   `yaml:"subject,omitempty"`
		KeyEncoding string   `yaml:"key_encoding"`
		Token       *ySecret `yaml:"token,omitempty"`
		Interval    string   `yaml:"interval,omitempty"`
	}
	yScan struct {
		Interval string `yaml:"interval"`
	}
	yLog struct {
		Level string `yaml:"level"`
	}
	ySite struct {
		Site     string    `yaml:"site"`
		S3       yS3       `yaml:"s3"`
		Buckets  []yBucket `yaml:"buckets"`
		NATS     yNATS     `yaml:"nats"`
		Peers    []yPeer   `yaml:"peers,omitempty"`
		Events   []yEvent  `yaml:"events"`
		StateDir string    `yaml:"state_dir"`
		HTTPAddr string    `yaml:"http_addr"`
		Scan     yScan     `yaml:"scan"`
		Retry    yRetry    `yaml:"retry,omitempty"`
		Records  yRecords  `yaml:"records"`
		Deletes  *yDeletes `yaml:"deletes,omitempty"`
		Trash    *yTrash   `yaml:"trash,omitempty"`
		Log      yLog      `yaml:"log"`
		Signing  *ySigning `yaml:"signing"`
	}
)

// yEvents are s's event sources: the store's NATS sink (versitygw's, or
// MinIO's NATS notification target), versitygw's webhook sink, or polling
// for a store that sends none; and the webhook endpoint either way.
func (s *site) yEvents(o Options) []yEvent {
	var ev []yEvent
	switch s.events {
	case EventsPoll:
		ev = append(ev, yEvent{Type: "poll", Name: "poll", Interval: o.Poll.String(), KeyEncoding: "raw"})
	case EventsWebhook:
		ev = append(ev, yEvent{Type: "webhook", Name: vgwWebhook, KeyEncoding: "raw", Token: &ySecret{File: s.tokenPath()}})
	default:
		// versitygw writes keys raw; MinIO URL-encodes them, as S3 does.
		enc := "raw"
		if s.store == StoreMinio {
			enc = "url"
		}
		ev = append(ev, yEvent{Type: "nats", Name: "nats", Subject: eventsSubject(s.name), KeyEncoding: enc})
	}
	return append(ev, yEvent{Type: "webhook", Name: "webhook", KeyEncoding: "url", Token: &ySecret{File: s.tokenPath()}})
}

func (s *site) yS3() yS3 {
	return yS3{Endpoint: s.s3Endpoint(), Region: Region, AccessKey: s.accessKey, SecretKey: ySecret{File: s.secretPath()},
		UnconditionalWrites: s.store == StoreMinio}
}

// siteConfig renders s's site.yaml. all is every site of the lab (s
// included); leafRemote(x, y) is the address x's broker dials to reach y's
// leaf listener (the lab's proxy for the pair).
func siteConfig(s *site, all []*site, o Options, leafRemote func(x, y *site) string) ([]byte, error) {
	buckets, scan := o.Buckets, o.ScanInterval
	c := ySite{
		Site: s.name,
		S3:   s.yS3(),
		NATS: yNATS{
			URL: s.natsURL(),
			Embedded: yEmbedded{
				Listen:     loopback(s.ports.NATS),
				StoreDir:   s.natsDir(),
				LeafListen: s.leafAddr(),
			},
		},
		Events:   s.yEvents(o),
		StateDir: s.stateDir(),
		HTTPAddr: s.httpAddr(),
		Scan:     yScan{Interval: scan.String()},
		Log:      yLog{Level: "info"},
		Signing:  s.ySigning(),
		// The same at every site of the mesh (docs/configuration.md).
		Records: yRecords{MaxFuture: config.DefaultMaxFuture.String()},
	}
	for _, b := range buckets {
		yb := yBucket{Name: b, Trash: o.Trash[b]}
		if cf, ok := o.Conflicts[b]; ok {
			yb.Conflicts = &cf
		}
		yb.yTopology = o.topology(s.name, b)
		c.Buckets = append(c.Buckets, yb)
	}
	if o.RetryBudget > 0 {
		c.Retry.Budget = o.RetryBudget.String()
	}
	if o.TrashRetention > 0 {
		c.Trash = &yTrash{Retention: o.TrashRetention.String()}
	}
	if o.ProofWait > 0 {
		c.Records.ProofWait = o.ProofWait.String()
	}
	if d := o.Deletes; d != nil {
		c.Deletes = &yDeletes{MaxFraction: d.MaxFraction, Min: d.Min}
		if d.Window > 0 {
			c.Deletes.Window = d.Window.String()
		}
	}
	for _, p := range all {
		if p == s {
			continue
		}
		// Peers are reached directly (bodies are fetched from their S3);
		// only the leaf-node links go through the cuttable proxies.
		c.Peers = append(c.Peers, yPeer{Name: p.name, S3: s.yPeerS3(p), PublicKeys: []string{p.signingPub}})
		// One link per pair: the smaller name dials the larger one.
		url := ""
		if s.name < p.name {
			url = "nats-leaf://" + leafRemote(s, p)
		}
		if o.Insecure {
			if url != "" {
				c.NATS.Embedded.LeafRemotes = append(c.NATS.Embedded.LeafRemotes, url)
			}
			continue
		}
		c.NATS.Embedded.Links = append(c.NATS.Embedded.Links, yLink{Peer: p.name, URL: url, Password: ySecret{File: s.linkPasswordPath(p.name)}})
	}
	if s.caFile != "" {
		// Client and leaf listeners take TLS only; links are mutual TLS.
		c.NATS.TLS = &yTLS{CAFile: s.caFile}
		c.NATS.Embedded.TLS = &yEmbeddedTLS{CertFile: s.certPath(), KeyFile: s.certKeyPath(), CAFile: s.caFile}
	}
	if !o.Insecure {
		c.NATS.User, c.NATS.Password = agentUser, &ySecret{File: s.natsPasswordPath()}
		c.NATS.Embedded.Users = []yUser{{Name: eventsUser, Password: ySecret{File: s.eventsPasswordPath()},
			Publish: []string{eventsSubject(s.name)}, Subscribe: []string{}}}
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		return nil, err
	}
	hdr := "# Generated by `s3mesh lab` at every start of the lab: edits are overwritten.\n"
	return append([]byte(hdr), out...), nil
}

// writeConfig writes s's site.yaml and checks that config.Load accepts it.
func writeConfig(s *site, all []*site, o Options, leafRemote func(x, y *site) string) error {
	b, err := siteConfig(s, all, o, leafRemote)
	if err != nil {
		return fmt.Errorf("lab: site %s: %w", s.name, err)
	}
	if err := writeFileAtomic(s.configPath(), b, 0o644); err != nil {
		return err
	}
	if _, err := config.Load(s.configPath()); err != nil {
		return fmt.Errorf("lab: generated %s is invalid: %w", s.configPath(), err)
	}
	return nil
}
