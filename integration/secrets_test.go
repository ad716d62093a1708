package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretFiles are the files of a lab site directory that hold a secret:
// S3 secret key, its keys at its peers' stores, webhook token, the broker
// passwords of the agent and the event sink, one password per leaf link,
// the record signing seed and the broker's TLS key; and, in the lab directory itself, the lab CA's key.
var secretFiles = []string{"s3-secret", "peer-*-s3-secret", "webhook-token", "nats-password", "nats-events-password", "link-*-password", "signing.nk", "nats-key.pem", "../ca-key.pem"}

// secretsOf is what a log line must not contain of a secret file: its
// content or, for a PEM key, any line of its body.
func secretsOf(b []byte) []string {
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, "-----BEGIN") {
		return []string{s}
	}
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

// logsLeakingSecrets reads every secret of the lab in dir and returns the
// log lines (file:line) that contain one. It is run on the shared lab after
// all tests of the package (TestMain), so it sees every log line every
// test made the lab write.
func logsLeakingSecrets(dir string) ([]string, int, error) {
	var secrets []string
	sites, err := filepath.Glob(filepath.Join(dir, "*", "site.yaml"))
	if err != nil {
		return nil, 0, err
	}
	for _, sy := range sites {
		for _, pat := range secretFiles {
			files, _ := filepath.Glob(filepath.Join(filepath.Dir(sy), pat))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					return nil, 0, err
				}
				for _, s := range secretsOf(b) {
					if len(s) >= 8 {
						secrets = append(secrets, s)
					}
				}
			}
		}
	}
	if len(secrets) == 0 {
		return nil, 0, fmt.Errorf("no secrets found under %s: the lab layout changed", dir)
	}
	logs, err := filepath.Glob(filepath.Join(dir, "*", "logs", "*.log"))
	if err != nil {
		return nil, 0, err
	}
	if len(logs) == 0 {
		return nil, 0, fmt.Errorf("no logs under %s", dir)
	}
	var leaks []string
	lines := 0
	for _, l := range logs {
		f, err := os.Open(l)
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for n := 1; sc.Scan(); n++ {
			lines++
			for _, s := range secrets {
				if strings.Contains(sc.Text(), s) {
					leaks = append(leaks, fmt.Sprintf("%s:%d", l, n))
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", l, err)
		}
	}
	return leaks, lines, nil
}

// TestLogsLeakingSecretsFindsLeak: the check finds a secret in a log line
// (and only there) in a fabricated lab directory.
func TestLogsLeakingSecretsFindsLeak(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "a")
	for _, d := range []string{site, filepath.Join(site, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(site, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("site.yaml", "site: a\n")
	write("link-b-password", "0123456789abcdef-link\n")
	write("nats-password", "agent-password-xyz\n")
	write("logs/agent.log", "level=INFO msg=start\nlevel=INFO msg=\"connected\" url=nats://agent:agent-password-xyz@127.0.0.1:1\n")
	write("../ca-key.pem", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkeybodyline1\nAoGCCqGSM49AwEHoUQDQgAE\n-----END EC PRIVATE KEY-----\n")
	write("logs/broker.log", "level=INFO msg=ready\nlevel=ERROR msg=\"bad key AoGCCqGSM49AwEHoUQDQgAE\"\n-----BEGIN EC PRIVATE KEY-----\n")
	leaks, lines, err := logsLeakingSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if lines != 5 || len(leaks) != 2 || !strings.HasSuffix(leaks[0], "agent.log:2") || !strings.HasSuffix(leaks[1], "broker.log:2") {
		t.Fatalf("leaks %v in %d lines, want agent.log:2 and broker.log:2 in 5", leaks, lines)
	}
}
