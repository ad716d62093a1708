package broker

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lab/proxy"
)

func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("S3MESH_TEST_NATS_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago. It picks below Linux's ephemeral range (32768 and up): a port this
// test frees to restart a server on it is then not handed to another test
// process's listen on port 0 meanwhile (which made TestCutHealRestart fail
// with "address already in use" under `go test ./...`).
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 200 {
		addr := "127.0.0.1:" + strconv.Itoa(20000+rand.IntN(12000))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}

// eventually is testenv.Eventually.
var eventually = testenv.Eventually

type site struct {
	name string
	cfg  ServerConfig
	srv  *Server
	nc   *nats.Conn
	js   jetstream.JetStream
	topo Topology
}

type mesh struct {
	t       testing.TB
	sites   map[string]*site
	names   []string
	proxies map[string]*proxy.Proxy // key "a-b" with a < b
}

func linkKey(x, y string) string {
	if x > y {
		x, y = y, x
	}
	return x + "-" + y
}

// newMesh starts one server per name, in a full mesh of leaf links, each
// through a proxy; the lexically smaller site of each pair dials.
func newMesh(t testing.TB, names ...string) *mesh {
	t.Helper()
	return newMeshWith(t, nil, names...)
}

// newMeshWith is newMesh with every server's config passed through tune.
func newMeshWith(t testing.TB, tune func(*ServerConfig), names ...string) *mesh {
	t.Helper()
	return newMeshOpt(t, false, tune, names...)
}

// newSecureMesh is newMesh with authenticated, confined links (Links) and
// a password for every site's agent ("agent-<site>").
func newSecureMesh(t testing.TB, names ...string) *mesh {
	t.Helper()
	return newMeshOpt(t, true, func(c *ServerConfig) {
		c.User, c.Password = "agent", "agent-"+c.Site+"-password"
	}, names...)
}

func newMeshOpt(t testing.TB, secure bool, tune func(*ServerConfig), names ...string) *mesh {
	t.Helper()
	m := &mesh{t: t, sites: map[string]*site{}, names: names, proxies: map[string]*proxy.Proxy{}}
	for _, n := range names {
		m.sites[n] = &site{name: n, cfg: ServerConfig{
			Site:       n,
			Listen:     freeAddr(t),
			LeafListen: freeAddr(t),
			StoreDir:   t.TempDir(),
		}}
		var peers []string
		for _, p := range names {
			if p != n {
				peers = append(peers, p)
			}
		}
		m.sites[n].topo = Topology{Site: n, Peers: peers}
		if tune != nil {
			tune(&m.sites[n].cfg)
		}
	}
	for i, x := range names {
		for _, y := range names[i+1:] {
			dialer, listener := x, y
			if dialer > listener {
				dialer, listener = listener, dialer
			}
			p, err := proxy.New("127.0.0.1:0", m.sites[listener].cfg.LeafListen, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			m.proxies[linkKey(x, y)] = p
			if secure {
				pw := "link-" + dialer + "-" + listener + "-0123456789abcdef"
				m.sites[dialer].cfg.Links = append(m.sites[dialer].cfg.Links, Link{Peer: listener, Password: pw, URL: "nats-leaf://" + p.Addr()})
				m.sites[listener].cfg.Links = append(m.sites[listener].cfg.Links, Link{Peer: dialer, Password: pw})
			} else {
				m.sites[dialer].cfg.LeafRemotes = append(m.sites[dialer].cfg.LeafRemotes, "nats-leaf://"+p.Addr())
			}
		}
	}
	for _, n := range names {
		// The link passwords name the mirror consumers, as the agent's
		// topology does (agent.Topology).
		s := m.sites[n]
		s.topo.LinkSecrets = map[string]string{}
		for _, l := range s.cfg.Links {
			s.topo.LinkSecrets[l.Peer] = l.Password
		}
		m.start(n)
	}
	t.Cleanup(func() {
		for _, s := range m.sites {
			m.stop(s.name)
		}
	})
	for _, n := range names {
		m.waitLinks(n)
	}
	return m
}

func (m *mesh) start(name string) {
	m.t.Helper()
	s := m.sites[name]
	srv, err := StartServer(s.cfg, testLogger(m.t))
	if err != nil {
		m.t.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		m.t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		m.t.Fatal(err)
	}
	s.srv, s.nc, s.js = srv, nc, js
}

func (m *mesh) stop(name string) {
	s := m.sites[name]
	if s.srv == nil {
		return
	}
	s.nc.Close()
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv, s.nc, s.js = nil, nil, nil
}

// waitLinks waits until name has a leaf link to each of its peers.
func (m *mesh) waitLinks(name string) {
	m.t.Helper()
	s := m.sites[name]
	eventually(m.t, 10*time.Second, "leaf links of "+name, func() error {
		var got []string
		for _, l := range s.srv.LeafLinks() {
			got = append(got, l.Peer)
		}
		slices.Sort(got)
		want := slices.Clone(s.topo.Peers)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("links to %v, want %v", got, want)
		}
		return nil
	})
}

func (m *mesh) ensureAll(ctx context.Context) {
	m.t.Helper()
	for _, n := range m.names {
		s := m.sites[n]
		if err := EnsureStreams(ctx, s.js, s.topo); err != nil {
			m.t.Fatal(err)
		}
	}
}

// publish sends n records to CHANGES_<origin>, numbered from first.
func (m *mesh) publish(ctx context.Context, origin string, first, n int) {
	m.t.Helper()
	js := m.sites[origin].js
	for i := first; i < first+n; i++ {
		id := origin + "-" + strconv.Itoa(i)
		ack, err := js.Publish(ctx, ChangesSubject(origin, i%4), payload(origin, i), jetstream.WithMsgID(id))
		if err != nil {
			m.t.Fatalf("publish %s: %v", id, err)
		}
		if ack.Duplicate {
			m.t.Fatalf("publish %s: unexpected duplicate", id)
		}
	}
}

func payload(origin string, i int) []byte {
	return fmt.Appendf(nil, `{"origin":%q,"n":%d,"pad":"%0100d"}`, origin, i, i)
}

func lastSeq(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.LastSeq, nil
}

// waitSeq waits until stream at site holds last sequence want.
func (m *mesh) waitSeq(ctx context.Context, at, stream string, want uint64, d time.Duration) time.Duration {
	m.t.Helper()
	start := time.Now()
	eventually(m.t, d, fmt.Sprintf("%s at %s reaching seq %d", stream, at, want), func() error {
		got, err := lastSeq(ctx, m.sites[at].js, stream)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("last seq %d", got)
		}
		return nil
	})
	return time.Since(start)
}

type record struct {
	seq     uint64
	subject string
	msgID   string
	data    string
}

// readAll reads every message of stream at site in order.
func readAll(ctx context.Context, t testing.TB, js jetstream.JetStream, stream string) []record {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	n := s.CachedInfo().State.Msgs
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for uint64(len(out)) < n {
		batch, err := c.Fetch(int(min(n-uint64(len(out)), 500)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, record{md.Sequence.Stream, msg.Subject(), msg.Headers().Get(jetstream.MsgIDHeader), string(msg.Data())})
			got++
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			t.Fatalf("reading %s: no progress after %d of %d", stream, len(out), n)
		}
	}
	return out
}

// sameRecords checks that stream at every site holds the same records as
// at its origin.
func (m *mesh) sameRecords(ctx context.Context, origin string) {
	m.t.Helper()
	want := readAll(ctx, m.t, m.sites[origin].js, ChangesStream(origin))
	for _, n := range m.names {
		if n == origin {
			continue
		}
		got := readAll(ctx, m.t, m.sites[n].js, ChangesStream(origin))
		if len(got) != len(want) {
			if st, err := m.sites[n].js.Stream(ctx, ChangesStream(origin)); err == nil {
				info := st.CachedInfo()
				m.t.Logf("%s at %s: state %+v, mirror %+v", ChangesStream(origin), n, info.State, info.Mirror)
			}
			m.t.Fatalf("%s at %s: %d records, origin has %d", ChangesStream(origin), n, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				m.t.Fatalf("%s at %s: record %d differs:\n got %+v\nwant %+v", ChangesStream(origin), n, i, got[i], want[i])
			}
		}
	}
}
