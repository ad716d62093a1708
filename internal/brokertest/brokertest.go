// Package brokertest starts an embedded broker of one site for the tests of
// the packages that use the broker (the broker's own tests have their
// meshes).
package brokertest

import (
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
)

// Start runs an embedded server for site, with no peers, until the test
// ends, and returns its JetStream context.
func Start(t testing.TB, site string) jetstream.JetStream {
	t.Helper()
	srv, err := broker.StartServer(broker.ServerConfig{Site: site, Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
