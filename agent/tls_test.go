package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
)

// TestConnectEmbeddedTLS: an agent running its broker with
// nats.embedded.tls (mutual TLS for clients) connects to it in-process;
// an agent of the same site with nats.url reaches that broker over TLS
// with nats.tls (the CA, and a client certificate).
func TestConnectEmbeddedTLS(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "a")
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	embedded := &config.Site{Site: "a", NATS: config.NATS{Embedded: &config.Embedded{Listen: listen,
		StoreDir: filepath.Join(t.TempDir(), "nats"),
		TLS:      &config.EmbeddedTLS{CertFile: cert, KeyFile: key, CAFile: ca.File, VerifyClients: true}}}}
	a := connectForTest(t, embedded)
	if a.server == nil {
		t.Fatal("no embedded broker")
	}

	clientCert, clientKey := ca.Issue(t, "agent-client")
	remote := &config.Site{Site: "a", NATS: config.NATS{URL: "tls://" + listen,
		TLS: config.TLS{CAFile: ca.File, CertFile: clientCert, KeyFile: clientKey}}}
	connectForTest(t, remote)
}

// connectForTest runs Agent.connect for cfg and checks JetStream answers.
func connectForTest(t *testing.T, cfg *config.Site) *Agent {
	t.Helper()
	a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	if err := a.connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.nc.Close()
		if a.server != nil {
			a.server.Shutdown()
			a.server.WaitForShutdown()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.js.AccountInfo(ctx); err != nil {
		t.Fatalf("JetStream via %s: %v", a.nc.ConnectedUrlRedacted(), err)
	}
	return a
}
