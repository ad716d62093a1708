package lab

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/config"
)

func TestLoadPortsPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	pf, err := loadPorts(path, siteNames(2), noStorePorts)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	add := func(p int) {
		if p <= 0 || seen[p] {
			t.Fatalf("port %d zero or duplicated in %+v", p, pf)
		}
		seen[p] = true
	}
	for _, n := range []string{"a", "b"} {
		for _, p := range pf.Sites[n].all() {
			add(p)
		}
	}
	add(pf.Links["a-b"])
	if len(pf.Links) != 1 || len(pf.Sites) != 2 {
		t.Fatalf("ports = %+v", pf)
	}

	again, err := loadPorts(path, siteNames(2), noStorePorts)
	if err != nil || !reflect.DeepEqual(again, pf) {
		t.Fatalf("reloaded %+v (%v), want %+v", again, err, pf)
	}
	// A third site keeps the first two's ports and gets new distinct ones.
	three, err := loadPorts(path, siteNames(3), noStorePorts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(three.Sites["a"], pf.Sites["a"]) || !reflect.DeepEqual(three.Sites["b"], pf.Sites["b"]) || three.Links["a-b"] != pf.Links["a-b"] {
		t.Fatalf("existing ports changed: %+v -> %+v", pf, three)
	}
	for _, p := range three.Sites["c"].all() {
		add(p)
	}
	add(three.Links["a-c"])
	add(three.Links["b-c"])
	if err := checkPortsFree(map[string]int{"x": three.Links["b-c"]}); err != nil {
		t.Fatalf("fresh port not free: %v", err)
	}
}

func TestSiteConfigPassesConfigLoad(t *testing.T) {
	dir := t.TempDir()
	sites, pf := preparedSites(t, dir, noStorePorts, func(s *site) {
		s.store = StoreVersity
		if s.name == "c" {
			s.store = StoreRclone
		}
	})
	leaf := func(x, y *site) string { return loopback(pf.Links[linkName(x.name, y.name)]) }
	buckets := []string{"demo", "other.bucket"}
	for _, s := range sites {
		if err := writeConfig(s, sites, Options{Buckets: buckets, ScanInterval: 15 * time.Second}, leaf); err != nil {
			t.Fatal(err)
		}
	}

	a, err := config.Load(sites[0].configPath())
	if err != nil {
		t.Fatal(err)
	}
	if a.Site != "a" || a.S3.Endpoint != sites[0].s3Endpoint() || a.S3.Region != "us-east-1" || a.S3.AccessKey != sites[0].accessKey {
		t.Errorf("s3 = %+v", a.S3)
	}
	if v, err := a.S3.SecretKey.Value(); err != nil || v != sites[0].secretKey || a.S3.SecretKey.File != sites[0].secretPath() {
		t.Errorf("secret_key = %v (%v)", a.S3.SecretKey, err)
	}
	if !reflect.DeepEqual(a.BucketNames(), buckets) {
		t.Errorf("buckets = %v", a.BucketNames())
	}
	e := a.NATS.Embedded
	if a.NATS.URL != sites[0].natsURL() || e == nil || e.Listen != loopback(pf.Sites["a"].NATS) ||
		e.StoreDir != filepath.Join(dir, "a", "nats") || e.LeafListen != sites[0].leafAddr() {
		t.Fatalf("nats = %+v / %+v", a.NATS, e)
	}
	// Secure by default: a dials b and c with the pair's password; the
	// agent logs in; the event sink may only publish a's events.
	if len(e.LeafRemotes) != 0 || len(e.Links) != 2 {
		t.Fatalf("a's leaf remotes %v, links %+v: want two links", e.LeafRemotes, e.Links)
	}
	for i, peer := range []string{"b", "c"} {
		l := e.Links[i]
		if l.Peer != peer || l.URL != "nats-leaf://"+loopback(pf.Links["a-"+peer]) || l.Password.File != sites[0].linkPasswordPath(peer) {
			t.Errorf("a's link %d = %+v", i, l)
		}
		other, err := os.ReadFile(sites[i+1].linkPasswordPath("a"))
		if err != nil || strings.TrimSpace(string(other)) != l.Password.MustValue() || len(l.Password.MustValue()) < 32 {
			t.Errorf("link a-%s: the two ends' passwords differ or are short (%v)", peer, err)
		}
	}
	if a.NATS.User != agentUser || a.NATS.Password.MustValue() != sites[0].natsPassword {
		t.Errorf("agent login = %q / %v", a.NATS.User, a.NATS.Password)
	}
	if len(e.Users) != 1 || e.Users[0].Name != eventsUser || !reflect.DeepEqual(e.Users[0].Publish, []string{"s3mesh.events.a.nats"}) || len(e.Users[0].Subscribe) != 0 {
		t.Errorf("users = %+v", e.Users)
	}
	// Peers' keys: a's own key for b's versitygw (read-only, made at b by
	// the lab), in a's directory; for c's rclone, c's only key pair, marked
	// allow_writable_key.
	pb, pc := a.Peers[0].S3, a.Peers[1].S3
	if !reflect.DeepEqual(a.PeerNames(), []string{"b", "c"}) || pb.Endpoint != sites[1].s3Endpoint() || pc.Endpoint != sites[2].s3Endpoint() {
		t.Errorf("peers = %+v", a.Peers)
	}
	if pb.AccessKey == sites[1].accessKey || pb.SecretKey.MustValue() == sites[1].secretKey || pb.AllowWritableKey ||
		pb.AccessKey != sites[0].peerKeys["b"].accessKey || pb.SecretKey.File != sites[0].peerSecretPath("b") || len(pb.SecretKey.MustValue()) != 40 {
		t.Errorf("a's key at versitygw b = %+v: want a read-only key of a's own, not b's root key", pb)
	}
	if pc.AccessKey != sites[2].accessKey || pc.SecretKey.MustValue() != sites[2].secretKey || !pc.AllowWritableKey || pc.SecretKey.File != sites[0].peerSecretPath("c") {
		t.Errorf("a's key at rclone c = %+v: want c's key pair, allow_writable_key", pc)
	}
	if sites[0].peerKeys["b"].accessKey == sites[2].peerKeys["b"].accessKey || sites[0].peerKeys["b"].secretKey == sites[2].peerKeys["b"].secretKey {
		t.Error("a and c hold the same key for b")
	}
	if len(a.Events) != 2 {
		t.Fatalf("events = %+v", a.Events)
	}
	if ev := a.Events[0]; ev.Type != "nats" || ev.Name != "nats" || ev.Subject != "s3mesh.events.a.nats" || ev.KeyEncoding != "raw" {
		t.Errorf("nats source = %+v", ev)
	}
	if ev := a.Events[1]; ev.Type != "webhook" || ev.KeyEncoding != "url" || ev.Token.File != sites[0].tokenPath() || len(ev.Token.MustValue()) != 64 {
		t.Errorf("webhook source = %+v", ev)
	}
	if a.StateDir != filepath.Join(dir, "a", "state") || a.HTTPAddr != sites[0].httpAddr() || a.Scan.ScanInterval() != 15*time.Second || a.Log.Level != "info" {
		t.Errorf("state/http/scan/log = %q %q %v %q", a.StateDir, a.HTTPAddr, a.Scan.ScanInterval(), a.Log.Level)
	}
	// The last site dials nobody; it is dialled.
	c, err := config.Load(sites[2].configPath())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.NATS.Embedded.LeafRemotes) != 0 || !reflect.DeepEqual(c.PeerNames(), []string{"a", "b"}) {
		t.Errorf("c: remotes %v peers %v", c.NATS.Embedded.LeafRemotes, c.PeerNames())
	}
	for _, l := range c.NATS.Embedded.Links {
		if l.URL != "" {
			t.Errorf("c dials %s (%s)", l.Peer, l.URL)
		}
	}
	// --insecure: plain leaf remotes, no logins.
	if err := writeConfig(sites[0], sites, Options{Buckets: buckets, ScanInterval: 15 * time.Second, Insecure: true}, leaf); err != nil {
		t.Fatal(err)
	}
	ai, err := config.Load(sites[0].configPath())
	if err != nil {
		t.Fatal(err)
	}
	wantRemotes := []string{"nats-leaf://" + loopback(pf.Links["a-b"]), "nats-leaf://" + loopback(pf.Links["a-c"])}
	if !reflect.DeepEqual(ai.NATS.Embedded.LeafRemotes, wantRemotes) || len(ai.NATS.Embedded.Links) != 0 || ai.NATS.User != "" {
		t.Errorf("insecure a: remotes %v, links %v, user %q", ai.NATS.Embedded.LeafRemotes, ai.NATS.Embedded.Links, ai.NATS.User)
	}

	// Secrets: private files, never inline in site.yaml, stable across runs.
	for _, f := range []string{sites[0].secretPath(), sites[0].tokenPath(), sites[0].natsPasswordPath(), sites[0].eventsPasswordPath(), sites[0].linkPasswordPath("b"),
		sites[0].peerSecretPath("b"), sites[0].peerSecretPath("c")} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, fi.Mode(), err)
		}
	}
	y, _ := os.ReadFile(sites[0].configPath())
	if strings.Contains(string(y), sites[0].secretKey) || strings.Contains(string(y), sites[1].secretKey) || strings.Contains(string(y), sites[0].peerKeys["b"].secretKey) {
		t.Error("site.yaml contains a secret key")
	}
	// Every file a's site.yaml names is in a's directory: a holds only its
	// own secrets.
	for _, f := range regexp.MustCompile(`file: (\S+)`).FindAllStringSubmatch(string(y), -1) {
		if !strings.HasPrefix(f[1], sites[0].dir+string(filepath.Separator)) && f[1] != filepath.Join(dir, "ca.pem") {
			t.Errorf("a's site.yaml names %s, outside a's directory", f[1])
		}
	}
	again := newSite(dir, "a", pf.Sites["a"])
	if err := again.prepare(); err != nil {
		t.Fatal(err)
	}
	if again.accessKey != sites[0].accessKey || again.secretKey != sites[0].secretKey {
		t.Error("credentials changed on a second prepare")
	}
	if k, err := again.preparePeerKey(sites[1]); err != nil || k != sites[0].peerKeys["b"] {
		t.Errorf("a's key for b changed on a second prepare (%v)", err)
	}
	if sites[0].secretKey == sites[1].secretKey || len(sites[0].secretKey) != 40 {
		t.Errorf("secret keys not random per site: %d chars", len(sites[0].secretKey))
	}
}

func TestCheckWipeable(t *testing.T) {
	dir := t.TempDir()
	if err := checkWipeable(dir); err != nil {
		t.Fatalf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("x"), 0o644)
	if err := checkWipeable(dir); err == nil {
		t.Fatal("a non-lab directory is wipeable")
	}
	os.WriteFile(filepath.Join(dir, "ports.json"), []byte("{}"), 0o644)
	if err := checkWipeable(dir); err != nil {
		t.Fatalf("lab dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "lab.lock"), nil, 0o644)
	if err := wipe(dir, "lab.lock"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "lab.lock" {
		t.Fatalf("after wipe: %v", ents)
	}
}

func noStorePorts(string) int { return 0 }

// A store with internal listeners (SeaweedFS) gets its own distinct ports,
// also when the site had ports already (it ran another store before), and
// keeps them across restarts.
func TestLoadPortsStorePorts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	pf, err := loadPorts(path, siteNames(2), noStorePorts)
	if err != nil {
		t.Fatal(err)
	}
	weedAtB := func(n string) int {
		if n == "b" {
			return storePorts(StoreSeaweed)
		}
		return 0
	}
	again, err := loadPorts(path, siteNames(2), weedAtB)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Sites["a"], pf.Sites["a"]) || again.Sites["b"].S3 != pf.Sites["b"].S3 {
		t.Fatalf("existing ports changed: %+v -> %+v", pf, again)
	}
	if got := len(again.Sites["b"].Store); got != len(weedPortFlags) {
		t.Fatalf("b has %d store ports, want %d", got, len(weedPortFlags))
	}
	seen := map[int]bool{}
	for _, sp := range again.Sites {
		for _, p := range sp.all() {
			if seen[p] {
				t.Fatalf("port %d given twice: %+v", p, again.Sites)
			}
			seen[p] = true
		}
	}
	third, err := loadPorts(path, siteNames(2), weedAtB)
	if err != nil || !reflect.DeepEqual(third, again) {
		t.Fatalf("reloaded %+v (%v), want %+v", third, err, again)
	}
}

// preparedSites prepares, in dir, the three sites of a lab as Start does
// before it starts anything (ports, site directories, links, peer keys);
// set, if not nil, adjusts each site before it is prepared.
func preparedSites(t *testing.T, dir string, storeN func(string) int, set func(*site)) ([]*site, *portsFile) {
	t.Helper()
	pf, err := loadPorts(filepath.Join(dir, "ports.json"), siteNames(3), storeN)
	if err != nil {
		t.Fatal(err)
	}
	var sites []*site
	for _, n := range siteNames(3) {
		s := newSite(dir, n, pf.Sites[n])
		if set != nil {
			set(s)
		}
		if err := s.prepare(); err != nil {
			t.Fatal(err)
		}
		sites = append(sites, s)
	}
	if err := prepareLinks(sites); err != nil {
		t.Fatal(err)
	}
	if err := preparePeerKeys(sites); err != nil {
		t.Fatal(err)
	}
	return sites, pf
}
