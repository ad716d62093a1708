package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lab"
)

// TestBrokerContainment: acting as a compromised site b — nothing but b's
// own broker credentials from lab.json and what b's own configuration
// holds — each probe of issue 21 against site a's broker, each with a
// positive control (the same question in an honest shape is answered, so
// a refusal is not a timeout) and a canary at the victim afterwards (a's
// broker answers, its streams keep their records, c's writes still reach
// a). A lab of its own: b purges its own stream forward.
func TestBrokerContainment(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	a, b := e.sites["a"], e.sites["b"]
	infoB := e.siteInfo(t, "b")
	n := 0
	canary := func(t *testing.T, what string) {
		t.Helper()
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := a.js.AccountInfo(actx); err != nil {
			t.Fatalf("%s: a's broker does not answer a: %v", what, err)
		}
		st, err := a.js.Stream(ctx, broker.ChangesStream("a"))
		if err != nil {
			t.Fatalf("%s: CHANGES_a at a: %v", what, err)
		}
		if got := st.CachedInfo().State; got.FirstSeq != 1 || got.Msgs != got.LastSeq {
			t.Errorf("%s: CHANGES_a at a lost records: %+v", what, got)
		}
		n++
		key := fmt.Sprintf("containment/from-c-%d", n)
		body := []byte("c after " + what)
		e.put(t, "c", key, object{body: body})
		e.waitObject(t, key, object{body: body}, 45*time.Second)
	}
	e.put(t, "a", "containment/a", object{body: []byte("a")})
	e.waitObject(t, "containment/a", object{body: []byte("a")}, 45*time.Second)
	canary(t, "start")

	t.Run("deleted-details", func(t *testing.T) {
		// b publishes a message, purges its own CHANGES stream forward
		// to 2^44 (its right) and publishes one more there: every peer's
		// mirror holds both, with a gap of 2^44 deleted sequences between.
		const far = uint64(1) << 44
		first, err := b.js.Publish(ctx, broker.ChangesSubject("b", 0), []byte("b's record before the gap"))
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "a's mirror of b holding b's first message", func() error {
			s, err := a.js.Stream(ctx, broker.ChangesStream("b"))
			if err != nil {
				return err
			}
			if got := s.CachedInfo().State.LastSeq; got != first.Sequence {
				return fmt.Errorf("last seq %d, want %d", got, first.Sequence)
			}
			return nil
		})
		sb, err := b.js.Stream(ctx, broker.ChangesStream("b"))
		if err != nil {
			t.Fatal(err)
		}
		if err := sb.Purge(ctx, jetstream.WithPurgeSequence(far)); err != nil {
			t.Fatalf("b purging its own stream: %v", err)
		}
		junk := []byte("b's record at 2^44")
		ack, err := b.js.Publish(ctx, broker.ChangesSubject("b", 0), junk)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Sequence != far {
			t.Fatalf("b's record landed at %d, want %d", ack.Sequence, far)
		}
		testenv.Eventually(t, 30*time.Second, "a's mirror of b reaching 2^44", func() error {
			s, err := a.js.Stream(ctx, broker.ChangesStream("b"))
			if err != nil {
				return err
			}
			if got := s.CachedInfo().State.LastSeq; got != far {
				return fmt.Errorf("last seq %d", got)
			}
			return nil
		})
		// The attack: nats-server's STREAM.INFO of that mirror with
		// deleted_details allocates one slot per deleted sequence.
		for _, q := range []struct{ subj, body string }{
			{"$JS.a.API.STREAM.INFO." + broker.ChangesStream("b"), `{"deleted_details":true}`},
			{"$JS.a.API.STREAM.MSG.GET." + broker.ChangesStream("b"), `{"seq":1}`},
			{"$JS.a.API.DIRECT.GET." + broker.ChangesStream("b"), `{"seq":1}`},
		} {
			m, err := b.nc.Request(q.subj, []byte(q.body), 2*time.Second)
			if err == nil && !testenv.JSRefusal(m.Data) {
				t.Errorf("%s answered b: %.200s", q.subj, m.Data)
			}
		}
		// Positive control: the honest question — what a's mirror holds of
		// b's records — is answered, in its fixed shape, at once.
		start := time.Now()
		r, err := agent.AskPeerRecords(ctx, b.nc, "b", "a")
		if err != nil {
			t.Fatalf("b asking a's agent about its records: %v", err)
		}
		if r.LastSeq != far || r.Msgs != 2 || string(r.Last) != string(junk) {
			t.Errorf("a's answer: last seq %d, %d msgs, last %q; want %d, its record", r.LastSeq, r.Msgs, r.Last, far)
		}
		t.Logf("records answer in %v: %d msgs, first %d, last %d", time.Since(start), r.Msgs, r.FirstSeq, r.LastSeq)
		canary(t, "deleted-details")
	})

	t.Run("forged-flow-control", func(t *testing.T) {
		// b dials c's leaf listener with its own link credentials, as its
		// broker does, but as a leaf connection of its own: nats-server
		// refuses a client a reserved reply subject ($JS.FC.…) but passes
		// a leaf's. It publishes a flow-control request on the subject
		// c's mirror of b listens on, with a reply b picks: c's mirror
		// answers on that subject in c's account, where c's imports would
		// carry it to a's consumer feeding c (and acknowledge records c
		// never got) — if b could name that consumer.
		cfgB, err := config.Load(infoB.Config)
		if err != nil {
			t.Fatal(err)
		}
		leaf := dialLeaf(t, cfgB, "c")
		tok := randToken(t)
		seenAtA := testenv.Watch(t, a.nc, "", "$JS.FC.*.*."+tok, "$JS.FC.*.*.*.*."+tok)
		seenAtB := testenv.Watch(t, b.nc, "", "$JS.FC.*.*."+tok, "$JS.FC.*.*.*.*."+tok)
		// What b can name: the plain consumer name, and names made with
		// the secrets b holds (of its links to a and to c; none of the
		// link a–c).
		secrets := cfgB.LinkSecrets()
		guesses := []string{broker.MirrorConsumer("c"), broker.MirrorConsumerFor("a", "c", secrets["a"]), broker.MirrorConsumerFor("a", "c", secrets["c"])}
		const hdr = "NATS/1.0 100 FlowControl Request\r\n\r\n"
		for _, g := range guesses {
			for _, reply := range []string{"$JS.FC.CHANGES_a." + g + "." + tok, "$JS.FC.a.xyz.CHANGES_a." + g + "." + tok} {
				leaf.publish(t, broker.MirrorDeliverSubject("b", "c"), reply, hdr)
			}
		}
		// Positive control: the same request with a reply to b's own
		// consumer feeding c is answered by c's mirror and reaches b.
		own := "$JS.FC.CHANGES_b." + agent.Topology(cfgB).MirrorConsumer("b", "c") + "." + tok
		testenv.Eventually(t, 15*time.Second, "c's mirror answering b's forged flow-control request", func() error {
			leaf.publish(t, broker.MirrorDeliverSubject("b", "c"), own, hdr)
			if len(seenAtB.Got()) == 0 {
				return fmt.Errorf("no answer at b yet")
			}
			return nil
		})
		// The forged requests went first, over the same connection and
		// link: answered by now, none of them reached a.
		if got := seenAtA.Got(); len(got) > 0 {
			t.Errorf("forged flow control reached a: %v", got)
		}
		t.Logf("positive control answered at b on %v", seenAtB.Got())
		canary(t, "forged-flow-control")
	})
}

// siteInfo is lab.json's entry of site.
func (e *env) siteInfo(t *testing.T, site string) lab.SiteInfo {
	t.Helper()
	for _, s := range e.info.Sites {
		if s.Name == site {
			return s
		}
	}
	t.Fatalf("no site %s in lab.json", site)
	return lab.SiteInfo{}
}

func randToken(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "T" + hex.EncodeToString(b)
}

// rawLeaf is a leaf-node connection spoken by hand: it can publish what a
// compromised site's own server could send over a link.
type rawLeaf struct {
	w io.Writer
	r *bufio.Reader
}

// dialLeaf opens a leaf connection to peer's leaf listener as cfg's site
// would, with the link's password and the site's own certificate.
func dialLeaf(t *testing.T, cfg *config.Site, peer string) *rawLeaf {
	t.Helper()
	e := cfg.NATS.Embedded
	var link *config.Link
	for i := range e.Links {
		if e.Links[i].Peer == peer {
			link = &e.Links[i]
		}
	}
	if link == nil || link.URL == "" {
		t.Fatalf("site %s does not dial %s", cfg.Site, peer)
	}
	u, err := url.Parse(link.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n') // INFO, in the clear
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		t.Fatalf("raw leaf: %q %v", line, err)
	}
	var w io.Writer = conn
	if e.TLS != nil {
		pem, err := os.ReadFile(e.TLS.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cert, err := tls.LoadX509KeyPair(e.TLS.CertFile, e.TLS.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(conn, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("raw leaf: tls: %v", err)
		}
		w, r = tc, bufio.NewReader(tc)
	}
	connect, _ := json.Marshal(map[string]any{"user": cfg.Site, "pass": link.Password.MustValue(), "headers": true, "name": cfg.Site + "-raw", "tls_required": e.TLS != nil})
	fmt.Fprintf(w, "CONNECT %s\r\nPING\r\n", connect)
	l := &rawLeaf{w: w, r: r}
	l.waitPong(t)
	return l
}

// publish sends one message with a raw header block (nats.go cannot write
// a status line such as "NATS/1.0 100 FlowControl Request") and returns
// once the server processed it.
func (l *rawLeaf) publish(t *testing.T, subject, reply, hdr string) {
	t.Helper()
	fmt.Fprintf(l.w, "HMSG %s %s %d %d\r\n%s\r\nPING\r\n", subject, reply, len(hdr), len(hdr), hdr)
	l.waitPong(t)
}

func (l *rawLeaf) waitPong(t *testing.T) {
	t.Helper()
	for {
		line, err := l.r.ReadString('\n')
		if err != nil {
			t.Fatalf("raw leaf: %v", err)
		}
		switch {
		case strings.HasPrefix(line, "PONG"):
			return
		case strings.HasPrefix(line, "PING"):
			fmt.Fprintf(l.w, "PONG\r\n")
		case strings.HasPrefix(line, "-ERR"):
			t.Fatalf("raw leaf: %s", strings.TrimSpace(line))
		}
	}
}
