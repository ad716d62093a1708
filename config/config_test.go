package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

const (
	envToken  = "S3MESH_TEST_WEBHOOK_TOKEN"
	envSecret = "S3MESH_TEST_PEER_SECRET"
)

// validYAML is a complete site configuration; SECRETFILE is replaced by the
// path of a file holding the local S3 secret.
const validYAML = `
site: a
s3:
  endpoint: http://127.0.0.1:7070
  access_key: AKLOCAL
  secret_key: {file: SECRETFILE}
buckets:
  - name: demo
  - name: photos.archive
nats:
  url: nats://127.0.0.1:4222
  embedded:
    listen: 127.0.0.1:4222
    store_dir: /var/lib/s3mesh/nats
    leaf_listen: 0.0.0.0:7422
    leaf_remotes: [nats-leaf://b.example:7422]
peers:
  - name: b
    s3:
      endpoint: https://s3.b.example
      region: eu-west-1
      access_key: AKB
      secret_key: env:S3MESH_TEST_PEER_SECRET
    public_keys: [PUBKEYB]
  - name: c
    s3:
      endpoint: http://s3.c.example:9000
      access_key: AKC
      secret_key: {env: S3MESH_TEST_PEER_SECRET}
    public_keys: [PUBKEYC]
events:
  - type: nats
    subject: s3mesh.events.a.nats
    key_encoding: raw
  - type: webhook
    token: {env: S3MESH_TEST_WEBHOOK_TOKEN}
state_dir: /var/lib/s3mesh/state
http_addr: 127.0.0.1:9090
signing: {key: {file: SEEDFILE}}
`

// setup writes the local secret file, sets the environment secrets and
// returns validYAML pointing at the file.
func setup(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s3-secret")
	if err := os.WriteFile(p, []byte("local-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envToken, "webhook-token")
	t.Setenv(envSecret, "peer-secret")
	return strings.NewReplacer("SECRETFILE", p, "SEEDFILE", writeSeed(t, testKeys(t).a),
		"PUBKEYB", testKeys(t).b, "PUBKEYC", testKeys(t).c).Replace(validYAML)
}

func TestParseValid(t *testing.T) {
	s, err := Parse([]byte(setup(t)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"site", s.Site, "a"},
		{"inline_threshold", s.InlineThreshold, int64(256 << 10)},
		{"part_size", s.PartSize, int64(8 << 20)},
		{"workers", s.Workers, 32},
		{"scan.debounce", s.Scan.Debounce, 500 * time.Millisecond},
		{"scan.interval (unset = 10m)", s.Scan.ScanInterval(), 10 * time.Minute},
		{"retry.budget", s.Retry.Budget, 10 * time.Minute},
		{"retry.max_backoff", s.Retry.MaxBackoff, 30 * time.Second},
		{"s3.region", s.S3.Region, "us-east-1"},
		{"s3.path_style", s.S3.UsePathStyle(), true},
		{"s3.secret_key", s.S3.SecretKey.MustValue(), "local-secret"},
		{"buckets", strings.Join(s.BucketNames(), ","), "demo,photos.archive"},
		{"nats.url", s.NATS.URL, "nats://127.0.0.1:4222"},
		{"nats.embedded.store_dir", s.NATS.Embedded.StoreDir, "/var/lib/s3mesh/nats"},
		{"peers", strings.Join(s.PeerNames(), ","), "b,c"},
		{"peers[0].s3.region", s.Peers[0].S3.Region, "eu-west-1"},
		{"peers[1].s3.region", s.Peers[1].S3.Region, "us-east-1"},
		{"peers[0].s3.secret_key", s.Peers[0].S3.SecretKey.MustValue(), "peer-secret"},
		{"peers[1].s3.secret_key", s.Peers[1].S3.SecretKey.MustValue(), "peer-secret"},
		{"peers[0].s3.allow_writable_key (default false)", s.Peers[0].S3.AllowWritableKey, false},
		{"events", len(s.Events), 2},
		{"events[0].name", s.Events[0].Name, "nats"},
		{"events[0].key_encoding", s.Events[0].KeyEncoding, "raw"},
		{"events[1].name", s.Events[1].Name, "webhook"},
		{"events[1].key_encoding", s.Events[1].KeyEncoding, "url"},
		{"events[1].token", s.Events[1].Token.MustValue(), "webhook-token"},
		{"state_dir", s.StateDir, "/var/lib/s3mesh/state"},
		{"http_addr", s.HTTPAddr, "127.0.0.1:9090"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %#v, want %#v", c.got, c.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "site.yaml")
	if err := os.WriteFile(p, []byte(setup(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(p)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if s.Site != "a" || s.Workers != DefaultWorkers {
		t.Errorf("Load gave site %q workers %d", s.Site, s.Workers)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: err = %v, want ErrNotExist", err)
	}
}

// edit changes the valid configuration: it replaces old (which must occur
// exactly once) by new.
type edit struct{ old, new string }

func TestParseFieldErrors(t *testing.T) {
	base := setup(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name  string
		edits []edit
		field string
	}{
		{"site uppercase", []edit{{"site: a\n", "site: A\n"}}, "site"},
		{"site with dot", []edit{{"site: a\n", "site: a.b\n"}}, "site"},
		{"site empty", []edit{{"site: a\n", "site: \"\"\n"}}, "site"},
		{"site missing", []edit{{"site: a\n", ""}}, "site"},
		{"site too long", []edit{{"site: a\n", "site: " + strings.Repeat("a", 33) + "\n"}}, "site"},
		{"site starting with dash", []edit{{"site: a\n", "site: -a\n"}}, "site"},
		{"no buckets", []edit{{"  - name: demo\n  - name: photos.archive\n", ""}, {"buckets:\n", "buckets: []\n"}}, "buckets"},
		{"bad bucket name", []edit{{"name: demo\n", "name: Demo_Bucket\n"}}, "buckets[0].name"},
		{"bucket name with ..", []edit{{"name: photos.archive\n", "name: photos..archive\n"}}, "buckets[1].name"},
		{"duplicate bucket", []edit{{"name: photos.archive\n", "name: demo\n"}}, "buckets[1].name"},
		{"s3.endpoint ftp", []edit{{"endpoint: http://127.0.0.1:7070", "endpoint: ftp://x"}}, "s3.endpoint"},
		{"s3.endpoint without host", []edit{{"endpoint: http://127.0.0.1:7070", "endpoint: http://"}}, "s3.endpoint"},
		{"missing access_key", []edit{{"  access_key: AKLOCAL\n", ""}}, "s3.access_key"},
		{"missing secret", []edit{{"  secret_key: {file: ", "  #"}}, "s3.secret_key"},
		{"secret env not set", []edit{{"secret_key: {file: ", "secret_key: {env: S3MESH_TEST_UNSET}\n#"}}, "s3.secret_key"},
		{"secret env and file", []edit{{"secret_key: {file: ", "secret_key: {env: " + envSecret + ", file: "}}, "s3.secret_key"},
		{"secret file missing", []edit{{"secret_key: {file: ", "secret_key: {file: " + missing + "}\n#"}}, "s3.secret_key"},
		{"secret file empty", []edit{{"secret_key: {file: ", "secret_key: {file: " + empty + "}\n#"}}, "s3.secret_key"},
		{"nats neither url nor embedded", []edit{{"nats:\n  url: nats://127.0.0.1:4222\n  embedded:\n    listen: 127.0.0.1:4222\n    store_dir: /var/lib/s3mesh/nats\n    leaf_listen: 0.0.0.0:7422\n    leaf_remotes: [nats-leaf://b.example:7422]\n", "nats: {}\n"}}, "nats"},
		{"nats url only is enough", []edit{{"  embedded:\n    listen: 127.0.0.1:4222\n    store_dir: /var/lib/s3mesh/nats\n    leaf_listen: 0.0.0.0:7422\n    leaf_remotes: [nats-leaf://b.example:7422]\n", ""}, {"state_dir: /var/lib/s3mesh/state\n", ""}}, "state_dir"},
		{"nats.url http", []edit{{"url: nats://127.0.0.1:4222", "url: http://x"}}, "nats.url"},
		{"embedded without store_dir", []edit{{"    store_dir: /var/lib/s3mesh/nats\n", ""}}, "nats.embedded.store_dir"},
		{"embedded bad listen", []edit{{"listen: 127.0.0.1:4222", "listen: nowhere"}}, "nats.embedded.listen"},
		{"links and leaf_remotes", []edit{{"    leaf_remotes: [nats-leaf://b.example:7422]\n", "    leaf_remotes: [nats-leaf://b.example:7422]\n    links:\n      - {peer: b, url: nats-leaf://b.example:7422, password: {env: S3MESH_TEST_PEER_SECRET}}\n"}, {"  url: nats://127.0.0.1:4222\n", "  url: nats://127.0.0.1:4222\n  user: agent\n  password: {env: S3MESH_TEST_PEER_SECRET}\n"}}, "nats.embedded.leaf_remotes"},
		{"links without agent user", []edit{{"    leaf_remotes: [nats-leaf://b.example:7422]\n", "    links:\n      - {peer: b, url: nats-leaf://b.example:7422, password: {env: S3MESH_TEST_PEER_SECRET}}\n"}}, "nats.user"},
		{"link password too short", []edit{{"    leaf_remotes: [nats-leaf://b.example:7422]\n", "    links:\n      - {peer: b, url: nats-leaf://b.example:7422, password: {env: S3MESH_TEST_PEER_SECRET}}\n"}, {"  url: nats://127.0.0.1:4222\n", "  url: nats://127.0.0.1:4222\n  user: agent\n  password: {env: S3MESH_TEST_PEER_SECRET}\n"}}, "nats.embedded.links[0].password"},
		{"link URL with user info", []edit{{"    leaf_remotes: [nats-leaf://b.example:7422]\n", "    links:\n      - {peer: b, url: nats-leaf://u:p@b.example:7422, password: {env: S3MESH_TEST_PEER_SECRET}}\n"}, {"  url: nats://127.0.0.1:4222\n", "  url: nats://127.0.0.1:4222\n  user: agent\n  password: {env: S3MESH_TEST_PEER_SECRET}\n"}}, "nats.embedded.links[0].url"},
		{"users without links", []edit{{"    leaf_remotes: [nats-leaf://b.example:7422]\n", "    users: [{name: events, password: {env: S3MESH_TEST_PEER_SECRET}}]\n"}}, "nats.embedded.users"},
		{"peer named like the site", []edit{{"- name: b\n", "- name: a\n"}}, "peers[0].name"},
		{"duplicate peer", []edit{{"- name: c\n", "- name: b\n"}}, "peers[1].name"},
		{"bad peer name", []edit{{"- name: c\n", "- name: C\n"}}, "peers[1].name"},
		{"peer without s3.endpoint", []edit{{"      endpoint: https://s3.b.example\n", ""}}, "peers[0].s3.endpoint"},
		{"peer secret unset", []edit{{"secret_key: env:S3MESH_TEST_PEER_SECRET", "secret_key: env:S3MESH_TEST_UNSET"}}, "peers[0].s3.secret_key"},
		{"allow_writable_key on the site's own store", []edit{{"  access_key: AKLOCAL\n", "  access_key: AKLOCAL\n  allow_writable_key: true\n"}}, "s3.allow_writable_key"},
		{"event type kafka", []edit{{"type: nats\n", "type: kafka\n"}}, "events[0].type"},
		{"event type kafka without key_encoding", []edit{{"type: nats\n", "type: kafka\n"}, {"    key_encoding: raw\n", ""}}, "events[0].type"},
		{"event type missing", []edit{{"  - type: nats\n", "  - name: mystery\n"}}, "events[0].type"},
		{"event type missing and no name", []edit{{"  - type: nats\n", "  - key_encoding: url\n"}, {"    key_encoding: raw\n", ""}}, "events[0].type"},
		{"event type in capitals", []edit{{"type: nats\n", "type: NATS\n"}}, "events[0].type"},
		{"event key_encoding base64", []edit{{"key_encoding: raw", "key_encoding: base64"}}, "events[0].key_encoding"},
		{"nats event without key_encoding", []edit{{"    key_encoding: raw\n", ""}}, "events[0].key_encoding"},
		{"nats event without subject", []edit{{"    subject: s3mesh.events.a.nats\n", ""}}, "events[0].subject"},
		{"bad event name", []edit{{"  - type: webhook\n", "  - type: webhook\n    name: Web.Hook\n"}}, "events[1].name"},
		{"duplicate event name", []edit{{"  - type: webhook\n", "  - type: webhook\n    name: nats\n"}}, "events[1].name"},
		{"webhook without token", []edit{{"    token: {env: S3MESH_TEST_WEBHOOK_TOKEN}\n", ""}}, "events[1].token"},
		{"webhook token env unset", []edit{{"token: {env: S3MESH_TEST_WEBHOOK_TOKEN}", "token: {env: S3MESH_TEST_UNSET}"}}, "events[1].token"},
		{"webhook without http_addr", []edit{{"http_addr: 127.0.0.1:9090\n", ""}}, "http_addr"},
		{"bad http_addr", []edit{{"http_addr: 127.0.0.1:9090\n", "http_addr: localhost\n"}}, "http_addr"},
		{"missing state_dir", []edit{{"state_dir: /var/lib/s3mesh/state\n", ""}}, "state_dir"},
		{"inline_threshold 10 MiB", []edit{{"state_dir:", "inline_threshold: 10485760\nstate_dir:"}}, "inline_threshold"},
		{"inline_threshold negative", []edit{{"state_dir:", "inline_threshold: -1\nstate_dir:"}}, "inline_threshold"},
		{"part_size 1 MiB", []edit{{"state_dir:", "part_size: 1048576\nstate_dir:"}}, "part_size"},
		{"part_size 1 GiB", []edit{{"state_dir:", "part_size: 1073741824\nstate_dir:"}}, "part_size"},
		{"workers -1 is not defaulted", []edit{{"state_dir:", "workers: -1\nstate_dir:"}}, "workers"},
		{"workers 257", []edit{{"state_dir:", "workers: 257\nstate_dir:"}}, "workers"},
		{"scan.interval negative", []edit{{"state_dir:", "scan: {interval: -1s}\nstate_dir:"}}, "scan.interval"},
		{"retry.max_backoff negative", []edit{{"state_dir:", "retry: {max_backoff: -1s}\nstate_dir:"}}, "retry"},
		{"log.level loud", []edit{{"state_dir:", "log: {level: loud}\nstate_dir:"}}, "log.level"},
		{"log.format xml", []edit{{"state_dir:", "log: {format: xml}\nstate_dir:"}}, "log.format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := base
			for _, e := range tc.edits {
				if n := strings.Count(y, e.old); n != 1 {
					t.Fatalf("test bug: %q occurs %d times", e.old, n)
				}
				y = strings.Replace(y, e.old, e.new, 1)
			}
			s, err := Parse([]byte(y))
			if err == nil {
				t.Fatalf("Parse accepted the configuration:\n%s", y)
			}
			if s != nil {
				t.Errorf("Parse returned a configuration with error %v", err)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *config.Error", err, err)
			}
			if ce.Field != tc.field {
				t.Errorf("field = %q, want %q (err: %v)", ce.Field, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message %q does not name the field %q", err.Error(), tc.field)
			}
		})
	}
}

// peers[].s3.allow_writable_key is read per peer (default false).
func TestPeerAllowWritableKey(t *testing.T) {
	y := strings.Replace(setup(t), "      access_key: AKC\n", "      access_key: AKC\n      allow_writable_key: true\n", 1)
	s, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if s.Peers[0].S3.AllowWritableKey || !s.Peers[1].S3.AllowWritableKey {
		t.Fatalf("allow_writable_key: b %v, c %v; want false, true", s.Peers[0].S3.AllowWritableKey, s.Peers[1].S3.AllowWritableKey)
	}
}

func TestParseYAMLErrors(t *testing.T) {
	base := setup(t)
	tests := []struct {
		name    string
		edits   []edit
		want    []string // substrings of the message
		notWant string   // must not appear in the message
	}{
		{"inline secret", []edit{{"secret_key: {file: ", "secret_key: hunter2\n#"}}, []string{"env:", "file:"}, "hunter2"},
		{"inline peer secret", []edit{{"secret_key: env:S3MESH_TEST_PEER_SECRET", "secret_key: \"p@ss: word\""}}, []string{"env:", "file:"}, "p@ss"},
		{"inline numeric token", []edit{{"token: {env: S3MESH_TEST_WEBHOOK_TOKEN}", "token: 123456789"}}, []string{"env:", "file:"}, "123456789"},
		{"unknown top-level field sitee", []edit{{"site: a\n", "site: a\nsitee: b\n"}}, []string{"sitee"}, ""},
		{"unknown field in s3", []edit{{"  access_key: AKLOCAL\n", "  access_key: AKLOCAL\n  acess_key: AK2\n"}}, []string{"acess_key"}, ""},
		{"unknown field in secret", []edit{{"token: {env: S3MESH_TEST_WEBHOOK_TOKEN}", "token: {env: S3MESH_TEST_WEBHOOK_TOKEN, fiel: x}"}}, []string{"fiel"}, ""},
		{"bad duration", []edit{{"state_dir:", "scan: {debounce: soon}\nstate_dir:"}}, []string{"soon"}, ""},
		{"not YAML", []edit{{"site: a\n", "site: [a\n"}}, []string{"yaml"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := base
			for _, e := range tc.edits {
				if n := strings.Count(y, e.old); n != 1 {
					t.Fatalf("test bug: %q occurs %d times", e.old, n)
				}
				y = strings.Replace(y, e.old, e.new, 1)
			}
			s, err := Parse([]byte(y))
			if err == nil {
				t.Fatalf("Parse accepted the configuration:\n%s", y)
			}
			if s != nil {
				t.Errorf("Parse returned a configuration with error %v", err)
			}
			var ce *Error
			if errors.As(err, &ce) {
				t.Errorf("err = %v is a field error, want a YAML decoding error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not mention %q", err.Error(), w)
				}
			}
			if tc.notWant != "" && strings.Contains(err.Error(), tc.notWant) {
				t.Errorf("message %q leaks %q", err.Error(), tc.notWant)
			}
		})
	}
}

func TestParseDefaultsKeepExplicitValues(t *testing.T) {
	y := strings.Replace(setup(t), "state_dir:", `inline_threshold: 1024
part_size: 8388608
workers: 3
scan: {interval: 1m, debounce: 2s}
retry: {budget: 1h, max_backoff: 5s}
log: {level: debug, format: json}
state_dir:`, 1)
	y = strings.Replace(y, "access_key: AKLOCAL\n", "access_key: AKLOCAL\n  region: ap-south-1\n  path_style: false\n", 1)
	s, err := Parse([]byte(y))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s.InlineThreshold != 1024 || s.PartSize != 8<<20 || s.Workers != 3 ||
		s.Scan.ScanInterval() != time.Minute || s.Scan.Debounce != 2*time.Second ||
		s.Retry.Budget != time.Hour || s.Retry.MaxBackoff != 5*time.Second ||
		s.Log.Level != "debug" || s.Log.Format != "json" ||
		s.S3.Region != "ap-south-1" || s.S3.UsePathStyle() {
		t.Errorf("explicit values not kept: %+v", s)
	}
}

func TestRecordsLimits(t *testing.T) {
	base := setup(t)
	s, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if s.Records.MaxFuture != DefaultMaxFuture || len(s.Records.FormerSites) != 0 {
		t.Fatalf("records default %+v, want max_future 24h and no former sites", s.Records)
	}
	y := strings.Replace(base, "state_dir:", "records: {max_future: 2h, former_sites: [d]}\nstate_dir:", 1)
	if s, err = Parse([]byte(y)); err != nil || s.Records.MaxFuture != 2*time.Hour || len(s.Records.FormerSites) != 1 {
		t.Fatalf("records %+v, err %v", s.Records, err)
	}
	for field, rec := range map[string]string{
		"records.max_future":      "{max_future: 1s}",
		"records.former_sites[0]": "{former_sites: [b]}",
		"records.former_sites[1]": "{former_sites: [d, D]}",
	} {
		y := strings.Replace(base, "state_dir:", "records: "+rec+"\nstate_dir:", 1)
		var ce *Error
		if _, err := Parse([]byte(y)); !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("records: %s: err %v, want field %s", rec, err, field)
		}
	}
}

// TestNATSNKey: the agent may log in with an nkeys seed instead of a
// password (also on a broker with links), restricted users with a public
// key; mistakes name their field and never show the seed.
func TestNATSNKey(t *testing.T) {
	base := setup(t)
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	t.Setenv("S3MESH_TEST_NKEY", string(seed))
	acc, _ := nkeys.CreateAccount()
	accSeed, _ := acc.Seed()
	t.Setenv("S3MESH_TEST_ACCOUNT_SEED", string(accSeed))
	links := edit{"    leaf_remotes: [nats-leaf://b.example:7422]\n", "    links:\n      - {peer: b, url: nats-leaf://b.example:7422, password: {env: S3MESH_TEST_PEER_SECRET}}\n" +
		"    users: [{name: events, nkey: " + pub + ", publish: [s3mesh.events.a.nats]}]\n"}
	login := func(extra string) edit {
		return edit{"  url: nats://127.0.0.1:4222\n", "  url: nats://127.0.0.1:4222\n" + extra}
	}
	apply := func(edits ...edit) string {
		y := base
		for _, e := range edits {
			if n := strings.Count(y, e.old); n != 1 {
				t.Fatalf("test bug: %q occurs %d times", e.old, n)
			}
			y = strings.Replace(y, e.old, e.new, 1)
		}
		return y
	}
	t.Setenv("S3MESH_TEST_LONG_SECRET", "0123456789abcdef0123")
	links.new = strings.ReplaceAll(links.new, "S3MESH_TEST_PEER_SECRET", "S3MESH_TEST_LONG_SECRET")
	s, err := Parse([]byte(apply(links, login("  nkey: {env: S3MESH_TEST_NKEY}\n"))))
	if err != nil {
		t.Fatalf("nkey login refused: %v", err)
	}
	if s.NATS.NKey.MustValue() != string(seed) || s.NATS.Embedded.Users[0].NKey != pub {
		t.Errorf("parsed %+v", s.NATS)
	}
	for _, tc := range []struct {
		name  string
		edits []edit
		field string
	}{
		{"nkey and user", []edit{links, login("  user: agent\n  password: {env: S3MESH_TEST_PEER_SECRET}\n  nkey: {env: S3MESH_TEST_NKEY}\n")}, "nats.nkey"},
		{"nkey unset", []edit{links, login("  nkey: {env: S3MESH_TEST_UNSET}\n")}, "nats.nkey"},
		{"nkey of an account", []edit{links, login("  nkey: {env: S3MESH_TEST_ACCOUNT_SEED}\n")}, "nats.nkey"},
		{"nkey a password", []edit{links, login("  nkey: {env: S3MESH_TEST_PEER_SECRET}\n")}, "nats.nkey"},
		{"user nkey not a key", []edit{{links.old, strings.Replace(links.new, pub, "UNOTAKEY", 1)}, login("  nkey: {env: S3MESH_TEST_NKEY}\n")}, "nats.embedded.users[0].nkey"},
		{"user nkey and password", []edit{{links.old, strings.Replace(links.new, "nkey: "+pub, "nkey: "+pub+", password: {env: S3MESH_TEST_PEER_SECRET}", 1)}, login("  nkey: {env: S3MESH_TEST_NKEY}\n")}, "nats.embedded.users[0].nkey"},
	} {
		_, err := Parse([]byte(apply(tc.edits...)))
		var ce *Error
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%s: got %v, want an error of field %s", tc.name, err, tc.field)
		}
		if err != nil && (strings.Contains(err.Error(), string(seed)) || strings.Contains(err.Error(), string(accSeed))) {
			t.Errorf("%s: the error shows a seed: %v", tc.name, err)
		}
	}
}

// TestPollSource: a poll source defaults its interval and key encoding;
// a bad interval, a url key encoding or a second poll source name their
// field.
func TestPollSource(t *testing.T) {
	base := setup(t)
	add := func(src string) string {
		return strings.Replace(base, "state_dir:", src+"state_dir:", 1)
	}
	s, err := Parse([]byte(add("  - type: poll\n")))
	if err != nil {
		t.Fatal(err)
	}
	if e := s.Events[2]; e.Name != "poll" || e.Interval != DefaultPollInterval || e.KeyEncoding != "raw" {
		t.Errorf("poll source %+v", e)
	}
	s, err = Parse([]byte(add("  - {type: poll, interval: 2s}\n")))
	if err != nil || s.Events[2].Interval != 2*time.Second {
		t.Fatalf("interval 2s: %v %+v", err, s)
	}
	for _, tc := range []struct{ src, field string }{
		{"  - {type: poll, interval: 10ms}\n", "events[2].interval"},
		{"  - {type: poll, interval: 48h}\n", "events[2].interval"},
		{"  - {type: poll, key_encoding: url}\n", "events[2].key_encoding"},
		{"  - {type: poll}\n  - {type: poll, name: again}\n", "events[3].type"},
	} {
		_, err := Parse([]byte(add(tc.src)))
		var ce *Error
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%q: got %v, want an error of field %s", tc.src, err, tc.field)
		}
	}
}
