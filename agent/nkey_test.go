package agent

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
)

// TestConnectNKey: an agent whose broker has links logs in with nats.nkey;
// the broker (run in-process, as `s3mesh broker` runs it) then requires the
// seed's public key, and an agent of the same site with nats.url reaches it
// with the same seed while a client without it is refused.
func TestConnectNKey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	t.Setenv("S3MESH_TEST_AGENT_NKEY", string(seed))
	t.Setenv("S3MESH_TEST_LINK_PASSWORD", "0123456789abcdef0123")
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	key := config.Secret{Env: "S3MESH_TEST_AGENT_NKEY"}
	embedded := &config.Site{Site: "a", NATS: config.NATS{NKey: key, Embedded: &config.Embedded{Listen: listen,
		StoreDir: filepath.Join(t.TempDir(), "nats"),
		Links:    []config.Link{{Peer: "b", Password: config.Secret{Env: "S3MESH_TEST_LINK_PASSWORD"}}}}}}
	if sc := EmbeddedServerConfig(embedded); sc.NKeySeed != string(seed) || sc.User != "" {
		t.Fatalf("broker config: user %q, nkey set %v", sc.User, sc.NKeySeed != "")
	}
	a := connectForTest(t, embedded)
	if a.server == nil {
		t.Fatal("no embedded broker")
	}
	connectForTest(t, &config.Site{Site: "a", NATS: config.NATS{URL: "nats://" + listen, NKey: key}})
	if nc, err := nats.Connect("nats://"+listen, nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client without the seed connected")
	}
}
