package broker

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/s3mesh/s3mesh/internal/testenv"
)

// issue makes TLS files for name with a certificate of ca.
func issue(t testing.TB, ca *testenv.CA, name string) *TLSFiles {
	t.Helper()
	cert, key := ca.Issue(t, name)
	return &TLSFiles{CertFile: cert, KeyFile: key, CAFile: ca.File}
}

// logWatch passes records on to the test log and keeps the messages
// containing match for wait.
type logWatch struct {
	slog.Handler
	match string
	hits  chan string
}

func newLogWatch(t testing.TB, match string) *logWatch {
	return &logWatch{Handler: testLogger(t).Handler(), match: match, hits: make(chan string, 100)}
}

func (w *logWatch) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, w.match) {
		select {
		case w.hits <- r.Message:
		default: // the test has seen enough
		}
	}
	return w.Handler.Handle(ctx, r)
}

func (w *logWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &logWatch{Handler: w.Handler.WithAttrs(as), match: w.match, hits: w.hits}
}

func (w *logWatch) WithGroup(g string) slog.Handler {
	return &logWatch{Handler: w.Handler.WithGroup(g), match: w.match, hits: w.hits}
}

// wait returns the first kept message that also contains sub, failing
// after d.
func (w *logWatch) wait(t testing.TB, sub string, d time.Duration) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m := <-w.hits:
			if strings.Contains(m, sub) {
				return m
			}
		case <-timeout:
			t.Fatalf("no log message containing %q and %q after %v", w.match, sub, d)
			return ""
		}
	}
}

// TestTLSMeshReplication: with TLS on every listener and link (links
// dialled as nats-leaf:// and upgraded, through the proxies), the mirrors
// replicate every record; the agents' in-process connections need no TLS.
func TestTLSMeshReplication(t *testing.T) {
	ca := testenv.NewCA(t)
	m := newMeshOpt(t, true, func(c *ServerConfig) {
		c.User, c.Password = "agent", "agent-"+c.Site+"-password"
		c.TLS = issue(t, ca, c.Site)
	}, "a", "b", "c")
	for _, n := range m.names {
		if u := m.sites[n].srv.ClientURL(); !strings.HasPrefix(u, "tls://") {
			t.Fatalf("client URL of %s: %s, want tls://", n, u)
		}
	}
	checkPlainTextRefused(t, m.sites["b"].cfg.LeafListen)
	checkMeshReplication(t, m)
}

func startTLS(t *testing.T, cfg ServerConfig, log *slog.Logger) *Server {
	t.Helper()
	srv, err := StartServer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// TestTLSLinkRefusesUnsignedCertificate: a dials b as tls:// with a
// certificate of the CA and the link comes up; a rogue server with a's
// name and link password, which trusts the CA but presents a self-signed
// certificate, is refused in the TLS handshake and never links.
func TestTLSLinkRefusesUnsignedCertificate(t *testing.T) {
	ca := testenv.NewCA(t)
	const pw = "link-a-b-0123456789abcdef"
	bLog := newLogWatch(t, "handshake error")
	b := startTLS(t, ServerConfig{Site: "b", Listen: freeAddr(t), LeafListen: freeAddr(t), StoreDir: t.TempDir(),
		User: "agent", Password: "agent-b-password", Links: []Link{{Peer: "a", Password: pw}}, TLS: issue(t, ca, "b")}, slog.New(bLog))
	aCfg := ServerConfig{Site: "a", Listen: freeAddr(t), StoreDir: t.TempDir(), User: "agent", Password: "agent-a-password",
		Links: []Link{{Peer: "b", Password: pw, URL: "tls://" + b.cfg.LeafListen}}, TLS: issue(t, ca, "a")}
	a := startTLS(t, aCfg, testLogger(t))
	eventually(t, 10*time.Second, "link a–b", func() error {
		if len(a.LeafLinks()) != 1 || len(b.LeafLinks()) != 1 {
			return errors.New("not up")
		}
		return nil
	})

	rogueCfg := aCfg
	rogueCfg.Listen, rogueCfg.StoreDir = freeAddr(t), t.TempDir()
	certFile, keyFile := testenv.SelfSigned(t, "rogue")
	rogueCfg.TLS = &TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: ca.File}
	rogue := startTLS(t, rogueCfg, testLogger(t))
	// crypto/tls does not offer a certificate the CA did not sign.
	bLog.wait(t, "didn't provide a certificate", 15*time.Second)
	if n := b.NATS().NumLeafNodes(); n != 1 {
		t.Fatalf("b has %d leaf connections after refusing the rogue, want 1 (a's)", n)
	}
	if l := rogue.LeafLinks(); len(l) != 0 {
		t.Fatalf("rogue has links %v", l)
	}
	// A dialler that insists on presenting the self-signed certificate.
	forceCertificate(t, b.cfg.LeafListen, certFile, keyFile, ca.File)
	bLog.wait(t, "unknown authority", 15*time.Second)
	if n := b.NATS().NumLeafNodes(); n != 1 {
		t.Fatalf("b has %d leaf connections, want 1 (a's)", n)
	}
}

// forceCertificate dials a leaf listener, reads its INFO and starts TLS
// presenting certFile whatever the server asks for.
func forceCertificate(t *testing.T, addr, certFile, keyFile, caFile string) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := (&TLSFiles{CAFile: caFile}).caPool()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, &tls.Config{ServerName: "127.0.0.1", RootCAs: roots, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
	if err := tc.Handshake(); err != nil {
		return // refused within the handshake (TLS 1.2)
	}
	// TLS 1.3: the server's verdict on the certificate comes with the
	// first read.
	if _, err := tc.Read(make([]byte, 1)); err == nil {
		t.Fatal("the leaf listener accepted a self-signed certificate")
	}
}

// TestTLSClients: the client port refuses plain text and clients that do
// not trust the CA; a client trusting it connects. With VerifyClients, a
// client also needs a certificate of the CA.
func TestTLSClients(t *testing.T) {
	ca := testenv.NewCA(t)
	files := issue(t, ca, "a")
	srv := startTLS(t, ServerConfig{Site: "a", Listen: freeAddr(t), StoreDir: t.TempDir(),
		User: "agent", Password: "agent-a-password", TLS: files}, testLogger(t))
	checkPlainTextRefused(t, srv.cfg.Listen)
	login := nats.UserInfo("agent", "agent-a-password")
	if nc, err := nats.Connect(srv.ClientURL(), login); err == nil {
		nc.Close()
		t.Fatal("a client without the CA connected")
	}
	nc, err := nats.Connect(srv.ClientURL(), login, nats.RootCAs(ca.File))
	if err != nil {
		t.Fatalf("client trusting the CA: %v", err)
	}
	nc.Close()

	mtls := *files
	mtls.VerifyClients = true
	srv2 := startTLS(t, ServerConfig{Site: "b", Listen: freeAddr(t), StoreDir: t.TempDir(), TLS: &mtls}, testLogger(t))
	if nc, err := nats.Connect(srv2.ClientURL(), nats.RootCAs(ca.File)); err == nil {
		nc.Close()
		t.Fatal("a client without a certificate connected to a VerifyClients server")
	}
	client := issue(t, ca, "client")
	nc, err = nats.Connect(srv2.ClientURL(), nats.RootCAs(ca.File), nats.ClientCert(client.CertFile, client.KeyFile))
	if err != nil {
		t.Fatalf("client with a certificate of the CA: %v", err)
	}
	nc.Close()
	nc, err = srv2.Connect()
	if err != nil {
		t.Fatalf("in-process connection to a TLS server: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// checkPlainTextRefused speaks plain NATS to addr: the server announces
// tls_required and closes the connection without answering the PING.
func checkPlainTextRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	info, err := r.ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("INFO %q (%v): want tls_required", info, err)
	}
	if _, err := io.WriteString(c, "CONNECT {\"user\":\"agent\",\"pass\":\"agent-a-password\"}\r\nPING\r\n"); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("plain-text connection still open after %q", rest)
	}
	if strings.Contains(string(rest), "PONG") {
		t.Fatalf("plain-text client got %q", rest)
	}
}

// TestTLSConfigErrors: unusable TLS files are refused before the server
// starts, naming the problem.
func TestTLSConfigErrors(t *testing.T) {
	ca := testenv.NewCA(t)
	good := issue(t, ca, "a")
	other := issue(t, ca, "b")
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tls  TLSFiles
		want string
	}{
		{"no key", TLSFiles{CertFile: good.CertFile}, "both required"},
		{"missing cert", TLSFiles{CertFile: "/nonexistent/a.pem", KeyFile: good.KeyFile}, "/nonexistent/a.pem"},
		{"missing key", TLSFiles{CertFile: good.CertFile, KeyFile: "/nonexistent/a-key.pem"}, "/nonexistent/a-key.pem"},
		{"mismatched", TLSFiles{CertFile: good.CertFile, KeyFile: other.KeyFile}, "does not match"},
		{"missing CA", TLSFiles{CertFile: good.CertFile, KeyFile: good.KeyFile, CAFile: "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{"empty CA", TLSFiles{CertFile: good.CertFile, KeyFile: good.KeyFile, CAFile: empty}, "no PEM certificate"},
		{"verify without CA", TLSFiles{CertFile: good.CertFile, KeyFile: good.KeyFile, VerifyClients: true}, "needs a CA"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := serverOptions(ServerConfig{Site: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir(), TLS: &c.tls})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
