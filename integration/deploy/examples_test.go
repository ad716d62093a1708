package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
	"gopkg.in/yaml.v3"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
)

// TestAgentExamplesParse checks that every agent example in deploy/examples
// is a valid site configuration (secret files replaced by temporary ones).
func TestAgentExamplesParse(t *testing.T) {
	root := testenv.RepoRoot(t)
	files, _ := filepath.Glob(filepath.Join(root, "deploy", "examples", "*.yaml"))
	if len(files) < 5 {
		t.Fatalf("want 5 agent examples (versitygw, minio, ceph-rgw, aws-s3, rclone), found %v", files)
	}
	dir := t.TempDir()
	for _, f := range []string{"s3-secret", "nats-password", "ca.pem", "webhook-token", "peer-b-s3-secret", "peer-c-s3-secret"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeSeed(t, filepath.Join(dir, "signing.nk"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "/etc/s3mesh/", dir+"/")
		cfg, err := config.Parse([]byte(s))
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		want := map[string]string{"aws-s3.yaml": "poll", "rclone.yaml": "poll", "minio.yaml": "webhook", "ceph-rgw.yaml": "webhook", "versitygw.yaml": "nats"}[filepath.Base(f)]
		if len(cfg.Events) == 0 || cfg.Events[0].Type != want {
			t.Errorf("%s: first event source %+v, want type %q", filepath.Base(f), cfg.Events, want)
		}
		if cfg.NATS.StreamReplicas != 3 || cfg.NATS.TLS.CAFile == "" || cfg.NATS.User == "" {
			t.Errorf("%s: want stream_replicas 3, tls and a NATS user: %+v", filepath.Base(f), cfg.NATS)
		}
	}
}

// TestK8sSiteYAMLParses checks the site.yaml inside the Kubernetes ConfigMap.
func TestK8sSiteYAMLParses(t *testing.T) {
	root := testenv.RepoRoot(t)
	f, err := os.Open(filepath.Join(root, "deploy", "k8s", "s3mesh-agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	for _, n := range []string{"s3-secret", "peer-b-s3-secret", "webhook-token", "nats-password", "ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeSeed(t, filepath.Join(dir, "signing.nk"))
	dec := yaml.NewDecoder(f)
	found := false
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc.Kind != "ConfigMap" {
			continue
		}
		found = true
		s := strings.ReplaceAll(doc.Data["site.yaml"], "/etc/s3mesh/secrets/", dir+"/")
		if _, err := config.Parse([]byte(s)); err != nil {
			t.Fatalf("ConfigMap site.yaml: %v", err)
		}
	}
	if !found {
		t.Fatal("no ConfigMap")
	}
}

// writeSeed writes a new record signing seed (the examples' signing.key).
func writeSeed(t *testing.T, path string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
}
