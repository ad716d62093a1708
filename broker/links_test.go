package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/internal/testenv"
)

// TestSecureMeshReplication: with every link confined to its own account,
// the mirrors still replicate every record in both directions.
func TestSecureMeshReplication(t *testing.T) {
	checkMeshReplication(t, newSecureMesh(t, "a", "b", "c"))
}

// attackA tries, from a connection at another site, everything issue 10
// lists against site a. It returns the attacks that got an answer.
func attackA(t *testing.T, m *mesh, nc *nats.Conn) []string {
	t.Helper()
	// The real name of a's consumer feeding c's mirror: an attacker who
	// learnt it still cannot reach it.
	toC := m.sites["a"].topo.MirrorConsumer("a", "c")
	var answered []string
	try := func(what string, err error) {
		if err == nil {
			answered = append(answered, what)
		}
	}
	jsA, err := jetstream.NewWithDomain(nc, "a")
	if err != nil {
		t.Fatal(err)
	}
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 500*time.Millisecond)
	}
	ctx, cancel := short()
	_, err = jsA.Stream(ctx, ChangesStream("a"))
	cancel()
	try("stream info CHANGES_a", err)
	ctx, cancel = short()
	err = jsA.DeleteStream(ctx, ChangesStream("a"))
	cancel()
	try("delete CHANGES_a", err)
	// Purge and consumer deletion by raw API request: the stream handle
	// above could not be had.
	for _, subj := range []string{
		"$JS.a.API.STREAM.PURGE." + ChangesStream("a"),
		"$JS.a.API.STREAM.UPDATE." + ChangesStream("a"),
		"$JS.a.API.CONSUMER.DELETE." + ChangesStream("a") + "." + toC,
		"$JS.a.API.CONSUMER.DELETE." + ChangesStream("b") + ".APPLY",
		"$JS.a.API.CONSUMER.RESET." + ChangesStream("a") + "." + toC,
		"$JS.a.API.STREAM.CREATE.EVIL",
		"$JS.a.API.INFO",
		"$JS.a.API.STREAM.MSG.GET." + ChangesStream("c"),
		"$JS.a.API.DIRECT.GET." + ChangesStream("a"),
		// Not even about b's own records in a's mirror: these take
		// options from the body (deleted_details, batches).
		"$JS.a.API.STREAM.INFO." + ChangesStream("b"),
		"$JS.a.API.STREAM.MSG.GET." + ChangesStream("b"),
		"$JS.a.API.DIRECT.GET." + ChangesStream("b"),
		"$JS.a.API.DIRECT.GET." + ChangesStream("b") + "." + ChangesSubject("b", 0),
		"$JS.a.API.CONSUMER.INFO." + ChangesStream("a") + "." + toC,
		"$JS.a.API.CONSUMER.NAMES." + ChangesStream("a"),
		"s3mesh.admin.a.status",
		RecordsSubject("a", "c"), // c's question, not b's
	} {
		msg, err := nc.Request(subj, []byte(`{"deleted_details":true}`), 500*time.Millisecond)
		if err == nil && testenv.JSRefusal(msg.Data) {
			// A JetStream API refused it for the link's account, which has
			// no JetStream ("JetStream not enabled for account").
			err = errors.New(string(msg.Data))
		}
		try(subj, err)
	}
	// Plain publishes: into a's own streams, and forged acknowledgements
	// for the consumers feeding c's mirror and a's local consumers.
	for _, subj := range []string{
		ChangesSubject("a", 0),
		DLQSubject("a", "apply"),
		EventsSubject("a", "nats"),
		ConflictsSubject("a"),
		"$JS.FC." + ChangesStream("a") + "." + toC + ".1",
		"$JS.FC.a.xyz." + ChangesStream("a") + "." + toC + ".1",
		"$JS.ACK." + ChangesStream("b") + ".APPLY.1.1.1.1.1",
		"$JS.ACK.a.xyz." + ChangesStream("b") + ".APPLY.1.1.1.1.1.1",
	} {
		if err := nc.Publish(subj, []byte("forged")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return answered
}

// TestHostilePeerCannotReachSite: with b's own agent credentials (and then
// from a rogue server that took b's place, with no restrictions of its
// own), nothing of the attacks of issue 10 reaches site a, and replication
// goes on between all sites.
func TestHostilePeerCannotReachSite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	m := newSecureMesh(t, "a", "b", "c")
	m.ensureAll(ctx)
	a := m.sites["a"]
	// A local consumer at a, like the agent's apply consumer.
	if _, err := a.js.CreateOrUpdateConsumer(ctx, ChangesStream("b"), jetstream.ConsumerConfig{Durable: "APPLY", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	for _, n := range m.names {
		m.publish(ctx, n, 0, 10)
	}
	for _, n := range m.names {
		for _, at := range m.names {
			m.waitSeq(ctx, at, ChangesStream(n), 10, 20*time.Second)
		}
	}
	// What reaches a's site account from outside on these subjects is an
	// attack that got through (a's own agent publishes none of them here).
	seen := testenv.Watch(t, a.nc, "forged", "s3mesh.changes.a.>", "s3mesh.dlq.a.>", "s3mesh.events.a.>", "s3mesh.conflicts.a",
		"$JS.FC.*."+a.topo.MirrorConsumer("a", "c")+".*", "$JS.FC.*.*.*."+a.topo.MirrorConsumer("a", "c")+".*", "$JS.ACK.>", "$JS.API.>")
	admin, err := a.nc.Subscribe("s3mesh.admin.a.>", func(m *nats.Msg) { m.Respond([]byte("ok")) })
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Unsubscribe()
	// b must not see a's local traffic either.
	bSees := testenv.Watch(t, m.sites["b"].nc, "local", "s3mesh.admin.a.>", "s3mesh.events.a.>", "$JS.a.API.>")

	wantChanges, wantEvents := uint64(10), uint64(0)
	check := func(from string, answered []string, sync func(n int)) {
		t.Helper()
		if len(answered) > 0 {
			t.Errorf("%s: answered: %v", from, answered)
		}
		if _, err := a.nc.Request("s3mesh.admin.a.status", nil, time.Second); err != nil {
			t.Fatalf("a's admin service does not answer locally: %v", err)
		}
		for _, subj := range []string{"s3mesh.events.a.nats", "s3mesh.admin.a.status"} {
			a.nc.Publish(subj, []byte("local"))
		}
		wantEvents++
		sync(10)
		if got := seen.Got(); len(got) > 0 {
			t.Errorf("%s: reached site a: %v", from, got)
		}
		if got := bSees.Got(); len(got) > 0 {
			t.Errorf("%s: b received a's local traffic: %v", from, got)
		}
		for _, s := range []string{ChangesStream("a"), DLQStream("a"), EventsStream("a")} {
			n, err := lastSeq(ctx, a.js, s)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]uint64{ChangesStream("a"): wantChanges, EventsStream("a"): wantEvents}[s]
			if n != want {
				t.Errorf("%s: %s at a has last seq %d, want %d", from, s, n, want)
			}
		}
		for _, c := range []struct{ stream, name string }{{ChangesStream("a"), a.topo.MirrorConsumer("a", "b")}, {ChangesStream("a"), a.topo.MirrorConsumer("a", "c")}, {ChangesStream("b"), "APPLY"}} {
			st, err := a.js.Stream(ctx, c.stream)
			if err == nil {
				_, err = st.Consumer(ctx, c.name)
				if errors.Is(err, jetstream.ErrNotPullConsumer) {
					err = nil // the mirror consumers are push consumers: it exists
				}
			}
			if err != nil {
				t.Errorf("%s: consumer %s/%s at a: %v", from, c.stream, c.name, err)
			}
		}
	}

	// 1. b's own agent credentials, at b's broker.
	answered := attackA(t, m, m.sites["b"].nc)
	check("b's agent", answered, func(int) {
		// Records b publishes after the attacks cross the same link: once
		// they are at a, so is everything sent before them.
		m.publish(ctx, "b", 10, 1)
		m.waitSeq(ctx, "a", ChangesStream("b"), 11, 20*time.Second)
	})
	// What b may do at a: ask a's agent about its own records in a's
	// mirror of them, and for a page of a's state (both read-only). Stand-in
	// responders answer as a's agent would (it is not running here).
	for _, subj := range []string{StatePageSubject("a"), RecordsSubject("a", "b")} {
		sub, err := a.nc.Subscribe(subj, func(m *nats.Msg) { m.Respond([]byte("answer")) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		eventually(t, 10*time.Second, "b asking a on "+subj, func() error {
			_, err := m.sites["b"].nc.Request(subj, nil, 500*time.Millisecond)
			return err
		})
	}
	// Replication a→b, a→c, c→a still runs.
	m.publish(ctx, "a", 10, 5)
	m.publish(ctx, "c", 10, 5)
	wantChanges += 5
	for _, at := range []string{"b", "c"} {
		m.waitSeq(ctx, at, ChangesStream("a"), 15, 20*time.Second)
	}
	m.waitSeq(ctx, "a", ChangesStream("c"), 15, 20*time.Second)

	// 2. A rogue server in b's place: same leaf address (a dials it), no
	// accounts or permissions of its own, JetStream domain b.
	m.stop("b")
	rogueCfg := m.sites["b"].cfg
	rogueCfg.Links, rogueCfg.User, rogueCfg.Password = nil, "", ""
	rogueCfg.StoreDir = t.TempDir()
	rogue, err := StartServer(rogueCfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rogue.Shutdown(); rogue.WaitForShutdown() }()
	eventually(t, 15*time.Second, "a dialling the rogue b", func() error {
		for _, l := range rogue.LeafLinks() {
			if l.Peer == "a" {
				return nil
			}
		}
		return errors.New("no link from a")
	})
	rnc, err := rogue.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer rnc.Close()
	// The rogue's interest in a's subjects must not be honoured either.
	rogueSees := testenv.Watch(t, rnc, "local", "s3mesh.admin.a.>", "s3mesh.events.a.>", "$JS.a.API.>", "s3mesh.mirror.a.c")
	// The link carries the mirror deliver subject b←a, so a's mirror
	// consumer for b is a sync point: wait for a's interest in the
	// subject a's mirror of b listens on to reach the rogue.
	answered = attackA(t, m, rnc)
	check("rogue b", answered, func(int) {
		marker := testenv.Watch(t, a.nc, "marker", MirrorDeliverSubject("b", "a"))
		eventually(t, 10*time.Second, "marker from the rogue at a", func() error {
			rnc.Publish(MirrorDeliverSubject("b", "a"), []byte("marker"))
			rnc.Flush()
			if len(marker.Got()) == 0 {
				return errors.New("not yet")
			}
			return nil
		})
	})
	if got := rogueSees.Got(); len(got) > 0 {
		t.Errorf("rogue b received a's local traffic: %v", got)
	}
	// a and c replicate on.
	m.publish(ctx, "a", 15, 5)
	m.publish(ctx, "c", 15, 5)
	m.waitSeq(ctx, "c", ChangesStream("a"), 20, 20*time.Second)
	m.waitSeq(ctx, "a", ChangesStream("c"), 20, 20*time.Second)
}

// TestExposedListenersNeedAuth: a broker refuses to listen for clients or
// leaf links on a non-loopback address without authentication.
func TestExposedListenersNeedAuth(t *testing.T) {
	base := ServerConfig{Site: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir()}
	for _, tc := range []struct {
		name string
		tune func(*ServerConfig)
		want string
	}{
		{"clients on every interface", func(c *ServerConfig) { c.Listen = "0.0.0.0:0" }, "not on loopback"},
		{"clients on an empty host", func(c *ServerConfig) { c.Listen = ":0" }, "not on loopback"},
		{"leaf links on every interface", func(c *ServerConfig) { c.User, c.Password, c.LeafListen = "u", "p", "0.0.0.0:0" }, "configure authenticated links"},
		{"links without an agent user", func(c *ServerConfig) { c.Links = []Link{{Peer: "b", Password: "0123456789abcdef"}} }, "need a client User"},
		{"short link password", func(c *ServerConfig) {
			c.User, c.Password = "u", "p"
			c.Links = []Link{{Peer: "b", Password: "short"}}
		}, "shorter than 16"},
		{"links and leaf remotes", func(c *ServerConfig) {
			c.User, c.Password = "u", "p"
			c.Links = []Link{{Peer: "b", Password: "0123456789abcdef"}}
			c.LeafRemotes = []string{"nats-leaf://127.0.0.1:1"}
		}, "set one or the other"},
		{"link URL with user info", func(c *ServerConfig) {
			c.User, c.Password = "u", "p"
			c.Links = []Link{{Peer: "b", Password: "0123456789abcdef", URL: "nats-leaf://x:y@127.0.0.1:1"}}
		}, "without user info"},
	} {
		cfg := base
		tc.tune(&cfg)
		_, err := serverOptions(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// Exposed with authentication: only with TLS, or plain text allowed
	// on purpose.
	cfg := base
	cfg.Listen, cfg.LeafListen, cfg.User, cfg.Password = "0.0.0.0:0", "0.0.0.0:0", "u", "p"
	cfg.Links = []Link{{Peer: "b", Password: "0123456789abcdef"}}
	if _, err := serverOptions(cfg); err == nil || !strings.Contains(err.Error(), "without TLS") {
		t.Errorf("exposed broker without TLS: %v, want a refusal naming TLS", err)
	}
	leafOnly := cfg
	leafOnly.Listen = "127.0.0.1:0"
	if _, err := serverOptions(leafOnly); err == nil || !strings.Contains(err.Error(), "without TLS") {
		t.Errorf("exposed leaf listener without TLS: %v, want a refusal naming TLS", err)
	}
	cfg.AllowPlaintext = true
	if _, err := serverOptions(cfg); err != nil {
		t.Errorf("authenticated exposed broker allowing plain text refused: %v", err)
	}
	cfg.AllowPlaintext, cfg.TLS = false, issue(t, testenv.NewCA(t), "a")
	if _, err := serverOptions(cfg); err != nil {
		t.Errorf("authenticated exposed broker with TLS refused: %v", err)
	}
}

// TestUserEntry: a nil direction stays unrestricted, an empty one allows
// nothing.
func TestUserEntry(t *testing.T) {
	for _, tc := range []struct {
		u    User
		want string
	}{
		{User{Name: "u", Password: "p"}, `{user: "u", password: "p"}`},
		{User{Name: "u", Password: "p", Publish: []string{"s.x"}}, `{user: "u", password: "p", permissions: {publish: ["s.x"]}}`},
		{User{Name: "u", Password: "p", Publish: []string{"s.x"}, Subscribe: []string{}}, `{user: "u", password: "p", permissions: {publish: ["s.x"], subscribe: {deny: [">"]}}}`},
	} {
		if got := userEntry(tc.u); got != tc.want {
			t.Errorf("userEntry(%+v) = %s, want %s", tc.u, got, tc.want)
		}
	}
}
