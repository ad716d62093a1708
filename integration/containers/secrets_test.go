package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gopkg.in/yaml.v3"
)

// Each container of the compose lab holds only its own site's secrets
// (issue 21): an agent holds its store's root key, its broker password, its
// signing seed and its read-only keys at its peers' stores; nothing of
// another site (no peer's root key, broker password or seed), so a
// compromised agent-b can neither log in to a's broker as a nor write into
// a's store.

// composeFile is the part of docker-compose.yml these checks read.
type composeFile struct {
	Services map[string]struct {
		Environment map[string]string `yaml:"environment"`
		Command     []string          `yaml:"command"`
	} `yaml:"services"`
}

func readCompose(t *testing.T, root string) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

var composeVarRe = regexp.MustCompile(`\$\{?([A-Z0-9_]+)`)

// varSites are the sites whose containers may hold the host variable v of
// docker-compose.yml (nil: not a secret).
func varSites(v string) []string {
	lower := strings.ToLower
	if m := regexp.MustCompile(`^S3MESH_(?:SECRET|NATS|NATS_EVENTS|SIGNING_KEY)_([A-Z])$`).FindStringSubmatch(v); m != nil {
		return []string{lower(m[1])}
	}
	if m := regexp.MustCompile(`^S3MESH_PEER_SECRET_([A-Z])_AT_([A-Z])$`).FindStringSubmatch(v); m != nil {
		return []string{lower(m[1]), lower(m[2])} // the holder, then the store
	}
	if m := regexp.MustCompile(`^S3MESH_LINK_([A-Z])([A-Z])$`).FindStringSubmatch(v); m != nil {
		return []string{lower(m[1]), lower(m[2])}
	}
	return nil
}

// agentMayHold says whether agent-<site> may hold host variable v: its own
// site's secrets and its own keys at its peers' stores (not its peers'
// keys at its store), and the secrets of its own links.
func agentMayHold(site, v string) bool {
	sites := varSites(v)
	switch {
	case sites == nil:
		return true
	case strings.HasPrefix(v, "S3MESH_PEER_SECRET_"):
		return sites[0] == site
	case strings.HasPrefix(v, "S3MESH_NATS_EVENTS_"):
		return false // the event sink's, not the agent's
	}
	return slices.Contains(sites, site)
}

// TestComposeSecretsPerSite reads docker-compose.yml (no Docker needed):
// every service of site x names only host variables x may hold; agent-<x>
// only its own site's secrets, exactly the variables docker/site-<x>.yaml
// reads; and no init or one-shot service takes more than its own site's.
func TestComposeSecretsPerSite(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	c := readCompose(t, root)
	for name, svc := range c.Services {
		site := name[strings.LastIndex(name, "-")+1:]
		if !slices.Contains(siteNames, site) {
			t.Errorf("service %s belongs to no site (a container holding several sites' secrets?)", name)
			continue
		}
		for k, v := range svc.Environment {
			for _, m := range composeVarRe.FindAllStringSubmatch(v, -1) {
				hv := m[1]
				ok := varSites(hv) == nil || slices.Contains(varSites(hv), site)
				if strings.HasPrefix(name, "agent-") {
					ok = agentMayHold(site, hv)
				}
				if !ok {
					t.Errorf("%s: %s=%s holds ${%s}, a secret of %v, not of site %s alone", name, k, v, hv, varSites(hv), site)
				}
			}
		}
	}
	for _, s := range siteNames {
		agent, ok := c.Services["agent-"+s]
		if !ok {
			t.Fatalf("no service agent-%s", s)
		}
		y, err := os.ReadFile(filepath.Join(root, "docker", "site-"+s+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var reads []string
		for _, m := range regexp.MustCompile(`\{env: ([A-Z0-9_]+)\}`).FindAllStringSubmatch(string(y), -1) {
			reads = append(reads, m[1])
		}
		var has []string
		for k := range agent.Environment {
			has = append(has, k)
		}
		sort.Strings(reads)
		sort.Strings(has)
		if !slices.Equal(reads, has) {
			t.Errorf("agent-%s's environment has %v; docker/site-%s.yaml reads %v: they must be the same", s, has, s, reads)
		}
		for _, p := range siteNames {
			if p == s {
				continue
			}
			// s's key at p's store is the read-only user init-<p> makes.
			if !strings.Contains(string(y), "access_key: s3mesh-peer-"+s+"\n      secret_key: {env: PEER_S3_SECRET_"+strings.ToUpper(p)+"}") {
				t.Errorf("docker/site-%s.yaml: peer %s's key is not s3mesh-peer-%s from PEER_S3_SECRET_%s", s, p, s, strings.ToUpper(p))
			}
			init := c.Services["init-"+p]
			if !slices.Contains(init.Command, "s3mesh-peer-"+s+"=READER_SECRET_"+strings.ToUpper(s)) ||
				!strings.Contains(init.Environment["READER_SECRET_"+strings.ToUpper(s)], "S3MESH_PEER_SECRET_"+strings.ToUpper(s)+"_AT_"+strings.ToUpper(p)) {
				t.Errorf("init-%s does not make %s's read-only user from S3MESH_PEER_SECRET_%s_AT_%s: %v %v", p, s, strings.ToUpper(s), strings.ToUpper(p), init.Command, init.Environment)
			}
		}
	}
}

// TestAgentContainersHoldOnlyTheirSecrets looks into every running agent
// container of the container lab: its environment holds exactly the
// variables docker-compose.yml gives agent-<site>, with that site's values,
// and none of the lab's other secrets (another site's store key, broker,
// event sink or link password, seed, or key at a store).
func TestAgentContainersHoldOnlyTheirSecrets(t *testing.T) {
	l := getLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := readCompose(t, l.root)
	l.secretMu.Lock()
	all := map[string]string{} // every secret of the lab, by what it is
	for k, v := range l.secrets {
		all[k] = v
	}
	l.secretMu.Unlock()
	for _, s := range siteNames {
		k, v := l.signingEnv(s)
		all["seed:"+k] = v
	}
	for _, s := range siteNames {
		info, err := l.sites[s].agent.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		own := l.siteEnv(s)
		mine := map[string]bool{}
		for _, v := range own {
			mine[v] = true
		}
		var names []string
		for _, kv := range info.Config.Env {
			k, v, _ := strings.Cut(kv, "=")
			if want, ok := own[k]; ok && v != want {
				t.Errorf("agent-%s: %s is not site %s's value", s, k, s)
			}
			for what, secret := range all {
				if !mine[secret] && strings.Contains(v, secret) {
					t.Errorf("agent-%s: %s holds a secret that is not site %s's (%s)", s, k, s, what)
				}
			}
			if _, ok := c.Services["agent-"+s].Environment[k]; ok {
				names = append(names, k)
			}
		}
		if len(names) != len(c.Services["agent-"+s].Environment) || len(names) != len(own) {
			t.Errorf("agent-%s holds %v of the variables docker-compose.yml gives it (%d), the test gives it %d", s, names, len(c.Services["agent-"+s].Environment), len(own))
		}
	}
}

// TestPeerKeysReadOnlyInContainers: every agent's key at each peer's store
// (the read-only user init-<peer> made) reads there, HEAD and GET of the
// object the warm-up replicated (the positive control), and is refused a
// PUT with 403, nothing written; every agent's metric says its peer keys
// are read-only (it would not have started with one that can write).
func TestPeerKeysReadOnlyInContainers(t *testing.T) {
	l := getLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, s := range siteNames {
		for _, p := range siteNames {
			if p == s {
				continue
			}
			port, err := l.sites[p].s3.MappedPort(ctx, "7070/tcp")
			if err != nil {
				t.Fatal(err)
			}
			ep := fmt.Sprintf("http://127.0.0.1:%d", port.Num())
			c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(ep), UsePathStyle: true, RetryMaxAttempts: 1,
				Credentials: credentials.NewStaticCredentialsProvider("s3mesh-peer-"+s, l.peerSecret(s, p), "")})
			what := s + "'s key at " + p
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("warm-up/" + p)})
			if err != nil {
				t.Fatalf("%s: GET: %v", what, err)
			}
			b, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if string(b) != "warm-up written at "+p {
				t.Fatalf("%s: GET read %q", what, b)
			}
			key := "peerkeys/written-by-" + s
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("behind s3mesh's back")})
			var re *smithyhttp.ResponseError
			if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
				t.Fatalf("%s: PUT answered %v, want 403", what, err)
			}
			root, err := l.s3(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if h, err := root.Head(ctx, bucket, key); err != nil || h.Exists {
				t.Fatalf("%s: the refused PUT wrote %s (%+v, %v)", what, key, h, err)
			}
		}
		port, err := l.sites[s].agent.MappedPort(ctx, "9090/tcp")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range siteNames {
			if p == s {
				continue
			}
			sample := `s3mesh_peer_s3_key_writable{bucket="demo",peer="` + p + `"}`
			if v, err := metric(ctx, fmt.Sprintf("127.0.0.1:%d", port.Num()), sample); err != nil || v != 0 {
				t.Errorf("agent-%s: %s = %v (%v), want 0 (read-only)", s, sample, v, err)
			}
		}
	}
}

// metric reads one sample from an agent's /metrics.
func metric(ctx context.Context, addr, sample string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s absent", sample)
}
