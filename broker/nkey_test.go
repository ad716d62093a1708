package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

func userSeed(t *testing.T) (seed, pub string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := kp.Seed()
	p, _ := kp.PublicKey()
	return string(s), p
}

// credsFile writes a NATS .creds file for seed (a user JWT issued by a
// throw-away account, as nsc would write it).
func credsFile(t *testing.T, seed, pub string) string {
	t.Helper()
	acc, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.NewUserClaims(pub).Encode(acc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := jwt.FormatUserConfig(tok, []byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "agent.creds")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNKeyAuth: a broker given the agent's nkey seed admits only a client
// signing with that seed, refuses anonymous clients, other seeds and .creds
// files (their JWT needs a broker in operator mode), and may then listen
// beyond loopback.
func TestNKeyAuth(t *testing.T) {
	seed, pub := userSeed(t)
	other, _ := userSeed(t)
	b, err := StartServer(ServerConfig{Site: "b", Listen: "127.0.0.1:0", StoreDir: t.TempDir(), NKeySeed: seed}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	opt := func(s string) nats.Option {
		o, err := NKeyOption(s)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	for name, opts := range map[string][]nats.Option{
		"anonymous":         nil,
		"another seed":      {opt(other)},
		"a password":        {nats.UserInfo(pub, "x")},
		"another's creds":   {nats.UserCredentials(credsFile(t, other, mustPub(t, other)))},
		"creds of the seed": {nats.UserCredentials(credsFile(t, seed, pub))},
	} {
		if nc, err := nats.Connect(b.ClientURL(), append(opts, nats.Timeout(2*time.Second), nats.NoReconnect())...); err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		}
	}
	for name, o := range map[string]nats.Option{"seed": opt(seed)} {
		nc, err := nats.Connect(b.ClientURL(), o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := nc.Publish("x", nil); err != nil || nc.Flush() != nil {
			t.Errorf("%s: publish: %v", name, err)
		}
		nc.Close()
	}
	nc, err := b.Connect()
	if err != nil {
		t.Fatalf("in-process connect: %v", err)
	}
	nc.Close()

	exposed := ServerConfig{Site: "c", Listen: "0.0.0.0:0", StoreDir: t.TempDir(), NKeySeed: seed, AllowPlaintext: true}
	if _, err := serverOptions(exposed); err != nil {
		t.Errorf("exposed broker with an nkey refused: %v", err)
	}
	for _, tc := range []struct {
		cfg  ServerConfig
		want string
	}{
		{ServerConfig{Site: "c", Listen: "127.0.0.1:0", StoreDir: "x", NKeySeed: "SUAGARBAGE"}, "not a valid nkeys seed"},
		{ServerConfig{Site: "c", Listen: "127.0.0.1:0", StoreDir: "x", NKeySeed: accountSeed(t)}, "not an nkeys user seed"},
		{ServerConfig{Site: "c", Listen: "127.0.0.1:0", StoreDir: "x", NKeySeed: seed, User: "u", Password: "p"}, "not both"},
	} {
		_, err := serverOptions(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), tc.cfg.NKeySeed) {
			t.Errorf("the error shows the seed: %v", err)
		}
	}
}

func mustPub(t *testing.T, seed string) string {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := kp.PublicKey()
	return p
}

func accountSeed(t *testing.T) string {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := kp.Seed()
	return string(s)
}

// TestNKeySecureMesh: agents logging in with nkeys and a restricted user
// with an nkey of its own (a store's event sink) on confined links: the
// mesh replicates, and the sink may publish only its subject.
func TestNKeySecureMesh(t *testing.T) {
	sinkSeed, sinkPub := userSeed(t)
	m := newMeshOpt(t, true, func(c *ServerConfig) {
		seed, _ := userSeed(t)
		c.NKeySeed = seed
		c.Users = []User{{Name: "events", NKey: sinkPub, Publish: []string{EventsSubject(c.Site, "nats")}, Subscribe: []string{}}}
	}, "a", "b")
	checkMeshReplication(t, m)
	a := m.sites["a"]
	opt, err := NKeyOption(sinkSeed)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	nc, err := nats.Connect("nats://"+a.cfg.Listen, opt, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(EventsSubject("a", "nats"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(ChangesSubject("a", 0), []byte("forged")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("want a permissions violation, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the sink published into CHANGES_a without a permissions violation")
	}
}
