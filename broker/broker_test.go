package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestValidSiteName(t *testing.T) {
	long := strings.Repeat("a", 32)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"eu-west-1", true},
		{"site9", true},
		{long, true},
		{long + "a", false},
		{"", false},
		{"-a", false},
		{"A", false},
		{"eu_west", false},
		{"eu.west", false},
		{"a b", false},
		{"a*", false},
		{"a>", false},
		{"é", false},
		{"a\n", false},
	} {
		err := ValidSiteName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidSiteName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestNames(t *testing.T) {
	for got, want := range map[string]string{
		EventsStream("a"):              "EVENTS_a",
		EventsSubject("a", "webhook"):  "s3mesh.events.a.webhook",
		EventsSubjectFilter("a"):       "s3mesh.events.a.>",
		ChangesStream("eu-1"):          "CHANGES_eu-1",
		ChangesSubject("eu-1", 7):      "s3mesh.changes.eu-1.7",
		ChangesSubjectFilter("eu-1"):   "s3mesh.changes.eu-1.*",
		ConflictsStream("a"):           "CONFLICTS_a",
		ConflictsSubject("a"):          "s3mesh.conflicts.a",
		DLQStream("a"):                 "DLQ_a",
		DLQSubject("a", "apply"):       "s3mesh.dlq.a.apply",
		MirrorConsumer("b"):            "MIRROR_b",
		MirrorDeliverSubject("a", "b"): "s3mesh.mirror.a.b",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestTopologyValidate(t *testing.T) {
	for _, tc := range []struct {
		topo Topology
		ok   bool
	}{
		{Topology{Site: "a"}, true},
		{Topology{Site: "a", Peers: []string{"b", "c"}, Replicas: 3}, true},
		{Topology{Site: "A"}, false},
		{Topology{Site: "a", Peers: []string{"a"}}, false},
		{Topology{Site: "a", Peers: []string{"b", "b"}}, false},
		{Topology{Site: "a", Peers: []string{"b.c"}}, false},
		{Topology{Site: "a", Replicas: -1}, false},
		{Topology{Site: "a", Limits: Limits{DLQ: StreamLimit{MaxBytes: 1 << 20, MaxMsgs: 10}}}, true},
		{Topology{Site: "a", Limits: Limits{Changes: StreamLimit{MaxBytes: -1}}}, false},
		{Topology{Site: "a", Limits: Limits{Events: StreamLimit{MaxMsgs: -1}}}, false},
	} {
		if err := tc.topo.validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok=%v", tc.topo, err, tc.ok)
		}
	}
}

func TestStartServerErrors(t *testing.T) {
	log := testLogger(t)
	base := func() ServerConfig {
		return ServerConfig{Site: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir()}
	}

	cfg := base()
	cfg.Site = "Bad.Site"
	if _, err := StartServer(cfg, log); err == nil || !strings.Contains(err.Error(), "invalid site name") {
		t.Errorf("bad site name: %v", err)
	}

	cfg = base()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.StoreDir = filepath.Join(file, "sub")
	if _, err := StartServer(cfg, log); err == nil || !strings.Contains(err.Error(), "store directory") {
		t.Errorf("bad store dir: %v", err)
	}

	cfg = base()
	cfg.LeafRemotes = []string{"http://127.0.0.1:1"}
	if _, err := StartServer(cfg, log); err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Errorf("bad remote: %v", err)
	}

	cfg = base()
	cfg.User, cfg.Password = "u", "p"
	cfg.LeafListen = "127.0.0.1:0"
	if _, err := StartServer(cfg, log); err == nil || !strings.Contains(err.Error(), "LeafUser") {
		t.Errorf("client auth without leaf auth: %v", err)
	}

	// Port in use, for the client and the leaf listener.
	s, err := StartServer(base(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	used := strings.TrimPrefix(s.ClientURL(), "nats://")
	cfg = base()
	cfg.Listen = used
	if _, err := StartServer(cfg, log); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Errorf("client port in use: %v", err)
	}
	cfg = base()
	cfg.LeafListen = used
	if _, err := StartServer(cfg, log); err == nil || !strings.Contains(err.Error(), "leaf port") {
		t.Errorf("leaf port in use: %v", err)
	}
}

func TestAuth(t *testing.T) {
	log := testLogger(t)
	b, err := StartServer(ServerConfig{
		Site: "b", Listen: "127.0.0.1:0", LeafListen: "127.0.0.1:0", StoreDir: t.TempDir(),
		User: "app", Password: "secret", LeafUser: "leaf", LeafPassword: "leafpw",
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	if nc, err := nats.Connect(b.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	}
	nc, err := nats.Connect(b.ClientURL(), nats.UserInfo("app", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	nc, err = b.Connect()
	if err != nil {
		t.Fatalf("in-process connect: %v", err)
	}
	nc.Close()

	a, err := StartServer(ServerConfig{
		Site: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
		LeafRemotes: []string{b.LeafURL()}, LeafUser: "leaf", LeafPassword: "leafpw",
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	eventually(t, 5*time.Second, "authenticated leaf link", func() error {
		if l := a.LeafLinks(); len(l) != 1 || l[0].Peer != "b" || !l[0].Dialled {
			return errors.New("no link")
		}
		return nil
	})
}

// TestEnsureStreamsReconcile checks idempotence, in-place updates and
// errors for changes that cannot be made in place, on one server.
func TestEnsureStreamsReconcile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := StartServer(ServerConfig{Site: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	topo := Topology{Site: "a", Peers: []string{"b", "c"}}

	changes, err := ensureStreams(ctx, js, topo, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 8 { // 4 own streams, 2 mirrors, 2 consumers
		t.Fatalf("first run: %d changes, want 8: %v", len(changes), changes)
	}
	if changes, err = ensureStreams(ctx, js, topo, nil); err != nil || len(changes) != 0 {
		t.Fatalf("second run: %v, %v; want no changes", changes, err)
	}

	// Updatable fields drift and are put back.
	st, _ := js.Stream(ctx, ChangesStream("a"))
	cfg := st.CachedInfo().Config
	cfg.MaxAge, cfg.AllowDirect = time.Hour, false
	cfg.MaxMsgs = 12345           // managed (nats.limits): put back
	cfg.MaxMsgsPerSubject = 12345 // not managed: kept
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cons, _ := js.PushConsumer(ctx, ChangesStream("a"), MirrorConsumer("b"))
	ccfg := cons.CachedInfo().Config
	ccfg.MaxAckPending = 7
	if _, err := js.UpdatePushConsumer(ctx, ChangesStream("a"), ccfg); err != nil {
		t.Fatal(err)
	}
	changes, err = ensureStreams(ctx, js, topo, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CHANGES_a: updated [max_msgs max_age allow_direct]", "CHANGES_a/MIRROR_b: updated [max_ack_pending]"}
	if strings.Join(changes, "|") != strings.Join(want, "|") {
		t.Fatalf("changes %q, want %q", changes, want)
	}
	st, _ = js.Stream(ctx, ChangesStream("a"))
	if c := st.CachedInfo().Config; c.MaxAge != DefaultChangesMaxAge || !c.AllowDirect || c.MaxMsgs != DefaultLimits.Changes.MaxMsgs || c.MaxMsgsPerSubject != 12345 {
		t.Fatalf("after update: max_age %v allow_direct %v max_msgs %d max_msgs_per_subject %d", c.MaxAge, c.AllowDirect, c.MaxMsgs, c.MaxMsgsPerSubject)
	}
	if changes, err = ensureStreams(ctx, js, topo, nil); err != nil || len(changes) != 0 {
		t.Fatalf("after update: %v, %v; want no changes", changes, err)
	}

	// Non-updatable differences are reported with stream and field.
	check := func(err error, stream, consumer, field string) {
		t.Helper()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Stream != stream || ce.Consumer != consumer || ce.Field != field {
			t.Fatalf("got %v, want ConfigError on %s/%s field %s", err, stream, consumer, field)
		}
		if !strings.Contains(err.Error(), stream) || !strings.Contains(err.Error(), field) {
			t.Fatalf("message %q does not name stream and field", err)
		}
	}
	if err := js.DeleteStream(ctx, DLQStream("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: DLQStream("a"), Subjects: []string{DLQSubjectFilter("a")}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	check(EnsureStreams(ctx, js, topo), DLQStream("a"), "", "storage")
	_ = js.DeleteStream(ctx, DLQStream("a"))

	if err := js.DeleteStream(ctx, EventsStream("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: EventsStream("a"), Subjects: []string{EventsSubjectFilter("a")}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	check(EnsureStreams(ctx, js, topo), EventsStream("a"), "", "retention")
	_ = js.DeleteStream(ctx, EventsStream("a"))

	// A plain stream where the mirror of a peer belongs.
	if err := js.DeleteStream(ctx, ChangesStream("c")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: ChangesStream("c"), Subjects: []string{"x"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	check(EnsureStreams(ctx, js, topo), ChangesStream("c"), "", "mirror")
	_ = js.DeleteStream(ctx, ChangesStream("c"))

	// A consumer with another ack policy.
	if err := js.DeleteConsumer(ctx, ChangesStream("a"), MirrorConsumer("c")); err != nil {
		t.Fatal(err)
	}
	bad := mirrorConsumerConfig(topo, "c")
	bad.AckPolicy, bad.FlowControl, bad.IdleHeartbeat, bad.MaxAckPending = jetstream.AckExplicitPolicy, false, 0, 0
	if _, err := js.CreatePushConsumer(ctx, ChangesStream("a"), bad); err != nil {
		t.Fatal(err)
	}
	check(EnsureStreams(ctx, js, topo), ChangesStream("a"), MirrorConsumer("c"), "ack_policy")
	_ = js.DeleteConsumer(ctx, ChangesStream("a"), MirrorConsumer("c"))

	if err := EnsureStreams(ctx, js, topo); err != nil {
		t.Fatalf("after repairs: %v", err)
	}
}

// TestMeshReplication: three sites in a full mesh of proxied leaf links;
// each site's CHANGES reaches the other two intact and in order.
func TestMeshReplication(t *testing.T) {
	checkMeshReplication(t, newMesh(t, "a", "b", "c"))
}

func checkMeshReplication(t *testing.T, m *mesh) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	// Exactly one link per pair, dialled by the smaller name.
	for _, n := range m.names {
		for _, l := range m.sites[n].srv.LeafLinks() {
			if l.Dialled != (n < l.Peer) {
				t.Fatalf("%s–%s link dialled by the wrong side (dialled=%v at %s)", n, l.Peer, l.Dialled, n)
			}
		}
	}
	m.ensureAll(ctx)
	for _, n := range m.names {
		changes, err := ensureStreams(ctx, m.sites[n].js, m.sites[n].topo, nil)
		if err != nil || len(changes) != 0 {
			t.Fatalf("second EnsureStreams at %s: %v, %v; want no changes", n, changes, err)
		}
	}

	for _, origin := range m.names {
		m.publish(ctx, origin, 0, 1000)
	}
	for _, origin := range m.names {
		for _, at := range m.names {
			m.waitSeq(ctx, at, ChangesStream(origin), 1000, 20*time.Second)
		}
		m.sameRecords(ctx, origin)
	}
	for _, n := range m.names {
		st, err := Mirrors(ctx, m.sites[n].js, m.sites[n].topo)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.Stalled || s.Error != "" || s.LastSeq != 1000 || s.Lag != 0 {
				t.Errorf("at %s: %v", n, s)
			}
		}
	}
}

// TestCutHealRestart: a cut link stops replication between its two sites
// only; after healing (or a restart) the mirror catches up by itself.
func TestCutHealRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	m := newMesh(t, "a", "b", "c")
	m.ensureAll(ctx)
	m.publish(ctx, "a", 0, 10)
	m.publish(ctx, "b", 0, 10)
	for _, at := range m.names {
		m.waitSeq(ctx, at, ChangesStream("a"), 10, 10*time.Second)
		m.waitSeq(ctx, at, ChangesStream("b"), 10, 10*time.Second)
	}

	// Cut a–b for at least 5 s; publish at both ends meanwhile.
	ab := m.proxies["a-b"]
	ab.Cut()
	cutAt := time.Now()
	m.publish(ctx, "a", 10, 100)
	m.publish(ctx, "b", 10, 100)
	m.waitSeq(ctx, "c", ChangesStream("a"), 110, 10*time.Second)
	m.waitSeq(ctx, "c", ChangesStream("b"), 110, 10*time.Second)
	// With isolated leaf interest nothing is routed a→c→b.
	for _, tc := range []struct{ at, origin string }{{"b", "a"}, {"a", "b"}} {
		if got, _ := lastSeq(ctx, m.sites[tc.at].js, ChangesStream(tc.origin)); got != 10 {
			t.Fatalf("%s got %s records while cut: seq %d", tc.at, tc.origin, got)
		}
	}
	// Status must show the cut as stalled mirrors (Lag alone stays 0).
	eventually(t, 15*time.Second, "b's mirror of a reported stalled", func() error {
		st, err := Mirrors(ctx, m.sites["b"].js, m.sites["b"].topo)
		if err != nil {
			return err
		}
		if !st[0].Stalled || st[0].Peer != "a" {
			return errors.New(st[0].String())
		}
		if st[1].Stalled {
			t.Errorf("b's mirror of c stalled: %v", st[1])
		}
		return nil
	})
	ab.Heal()
	healed := time.Now()
	t.Logf("a–b cut for %v", healed.Sub(cutAt).Round(100*time.Millisecond))
	ba := m.waitSeq(ctx, "b", ChangesStream("a"), 110, 20*time.Second)
	m.waitSeq(ctx, "a", ChangesStream("b"), 110, 20*time.Second)
	t.Logf("b caught up with a %v after heal", ba.Round(10*time.Millisecond))
	m.sameRecords(ctx, "a")
	m.sameRecords(ctx, "b")

	// Restart c on the same ports and store; a writes while c is down.
	m.stop("c")
	m.publish(ctx, "a", 110, 50)
	m.start("c")
	restarted := time.Now()
	m.waitLinks("c")
	if err := EnsureStreams(ctx, m.sites["c"].js, m.sites["c"].topo); err != nil {
		t.Fatal(err)
	}
	m.waitSeq(ctx, "c", ChangesStream("a"), 160, 20*time.Second)
	t.Logf("restarted c caught up with a %v after start", time.Since(restarted).Round(10*time.Millisecond))
	m.publish(ctx, "c", 0, 20)
	m.waitSeq(ctx, "a", ChangesStream("c"), 20, 20*time.Second)
	m.waitSeq(ctx, "b", ChangesStream("c"), 20, 20*time.Second)
	m.sameRecords(ctx, "a")
	m.sameRecords(ctx, "c")
}

// A blackholed leaf link (no byte passes, nobody is told: dropped packets,
// or a peer whose address changed) is closed by the ping check and
// redialled, and the mirror catches up once traffic flows again. With
// nats-server's default pings (2 min, 2 out) the link would stay "up" for
// minutes; the test runs the same check with short pings.
func TestBlackholedLeafLinkIsClosedAndRedialled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	const ping = 300 * time.Millisecond
	m := newMeshWith(t, func(c *ServerConfig) { c.PingInterval, c.MaxPingsOut = ping, 2 }, "a", "b")
	m.ensureAll(ctx)
	m.publish(ctx, "a", 0, 10)
	m.waitSeq(ctx, "b", ChangesStream("a"), 10, 10*time.Second)

	p := m.proxies["a-b"]
	p.Stall()
	stalled := time.Now()
	m.publish(ctx, "a", 10, 50) // a keeps taking writes
	eventually(t, 10*time.Second, "a closes the silent link to b", func() error {
		if links := m.sites["a"].srv.LeafLinks(); len(links) != 0 {
			return fmt.Errorf("a still has links %+v", links)
		}
		return nil
	})
	closed := time.Since(stalled)
	if closed < ping {
		t.Fatalf("link closed after %v, before a single ping interval: not by the ping check", closed)
	}
	if got, _ := lastSeq(ctx, m.sites["b"].js, ChangesStream("a")); got != 10 {
		t.Fatalf("b got records through a blackholed link: seq %d", got)
	}
	p.Unstall()
	m.waitLinks("a")
	took := m.waitSeq(ctx, "b", ChangesStream("a"), 60, 20*time.Second)
	t.Logf("blackholed link closed %v after the stall (ping %v × 2); b caught up %v after traffic resumed",
		closed.Round(10*time.Millisecond), ping, took.Round(10*time.Millisecond))
	m.sameRecords(ctx, "a")
}

func TestServerPingDefaults(t *testing.T) {
	opts, err := serverOptions(ServerConfig{Site: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if opts.PingInterval != DefaultPingInterval || opts.MaxPingsOut != DefaultMaxPingsOut {
		t.Fatalf("ping %v × %d, want %v × %d", opts.PingInterval, opts.MaxPingsOut, DefaultPingInterval, DefaultMaxPingsOut)
	}
	if _, err := serverOptions(ServerConfig{Site: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir(), PingInterval: -time.Second}); err == nil {
		t.Fatal("negative ping interval accepted")
	}
}

// A hole in a mirror (records it will never fetch again) shows in Mirrors
// as Skipped, so status can say that changes never arrived; records that
// age out of the front of the stream are not a hole.
func TestMirrorHoleIsReportedAsSkipped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	m := newMesh(t, "a", "b")
	m.ensureAll(ctx)
	m.publish(ctx, "a", 0, 10)
	m.waitSeq(ctx, "b", ChangesStream("a"), 10, 10*time.Second)
	skipped := func() MirrorStatus {
		st, err := Mirrors(ctx, m.sites["b"].js, m.sites["b"].topo)
		if err != nil {
			t.Fatal(err)
		}
		return st[0]
	}
	if st := skipped(); st.Skipped != 0 {
		t.Fatalf("a whole mirror reports %d skipped: %v", st.Skipped, st)
	}
	s, err := m.sites["b"].js.Stream(ctx, ChangesStream("a"))
	if err != nil {
		t.Fatal(err)
	}
	// The front going (what age does) is no hole ...
	if err := s.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if st := skipped(); st.Skipped != 0 {
		t.Fatalf("a mirror missing only its oldest record reports %d skipped: %v", st.Skipped, st)
	}
	// ... two records gone from the middle are.
	for _, seq := range []uint64{4, 7} {
		if err := s.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	if st := skipped(); st.Skipped != 2 || !strings.Contains(st.String(), "SKIPPED=2") {
		t.Fatalf("mirror with two records gone from the middle: %v, want Skipped 2", st)
	}
}
