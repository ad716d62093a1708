package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The lab gives every agent its peers' versitygw root keys, which can
// write: each agent warns of them at start (issue 10 §6).
func TestPeerKeyWritableWarnedAtStart(t *testing.T) {
	e := labEnv(t)
	for _, s := range e.info.Sites {
		path := filepath.Join(s.LogDir, "agent.log")
		deadline := time.Now().Add(converge)
		for {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "peer S3 key can write") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("site %s: %s has no warning of its peers' writable S3 keys", s.Name, path)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
