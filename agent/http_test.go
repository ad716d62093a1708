package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/producer"
	"github.com/s3mesh/s3mesh/s3io"
)

const httpTestToken = "http-test-token-0123456789"

// httpTestEvent is one S3 event notification (AWS form) for bucket demo.
const httpTestEvent = `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",` +
	`"eventTime":"2026-01-02T03:04:05.000Z","eventName":"s3:ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0",` +
	`"bucket":{"name":"demo","arn":"arn:aws:s3:::demo"},"object":{"key":"k","size":1,"sequencer":"0055AED6DCD90281E5"}}}]}`

// httpAgent is a running agent of site a (embedded broker, versitygw, a
// webhook source named webhook) serving HTTP on a loopback port.
type httpAgent struct {
	a    *Agent
	addr string // host:port
}

// startHTTPAgent runs an agent with the HTTP limits l and waits until its
// /healthz answers 200.
func startHTTPAgent(t *testing.T, l httpLimits) *httpAgent {
	t.Helper()
	v := testenv.StartVersity(t)
	s3, err := s3io.New(s3io.Endpoint{URL: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: v.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.EnsureBucket(context.Background(), "demo"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(secret, []byte(v.SecretKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte(httpTestToken), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Site{
		Site:     "a",
		S3:       config.S3{Endpoint: v.Endpoint, Region: "us-east-1", AccessKey: v.AccessKey, SecretKey: config.Secret{File: secret}},
		Buckets:  []config.Bucket{{Name: "demo"}},
		StateDir: filepath.Join(dir, "state"),
		HTTPAddr: "127.0.0.1:0",
		Events:   []config.EventSource{{Type: "webhook", Name: "webhook", KeyEncoding: "url", Token: config.Secret{File: token}}},
		NATS: config.NATS{Embedded: &config.Embedded{Listen: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
			StoreDir: filepath.Join(dir, "nats")}},
		Scan:    config.Scan{Interval: ptr(time.Duration(0)), MaxDeleteFraction: 1},
		Signing: func() config.Signing { s, _ := testSigning(t, dir, "a"); return s["a"] }(),
	}
	raw, _ := yamlOf(cfg)
	parsed, err := config.Parse(raw)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, raw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, parsed, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if a.httpLimits != defaultHTTPLimits {
		t.Errorf("New set HTTP limits %+v, want defaultHTTPLimits %+v", a.httpLimits, defaultHTTPLimits)
	}
	a.httpLimits = l
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		a.Close()
	})
	h := &httpAgent{a: a, addr: a.httpLn.Addr().String()}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := http.Get("http://" + h.addr + "/healthz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not 200 after 30 s: %v %v", r, err)
		}
		time.Sleep(50 * time.Millisecond) // polling /healthz until it answers 200
	}
}

// lastEvent is the sequence of the last message EVENTS_a captured (the
// stream is a work queue: its message count drops as events are taken).
func (h *httpAgent) lastEvent(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.a.js.Stream(ctx, broker.EventsStream("a"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// do sends one request; contentLength -1 sends the body chunked.
func (h *httpAgent) do(t *testing.T, method, path, auth string, body []byte, contentLength int64) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+h.addr+path, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = contentLength
	if body == nil {
		req.Body = nil
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// testHTTPLimits are short enough for a test and far enough apart to tell
// which one closed a connection.
var testHTTPLimits = httpLimits{ReadHeader: 500 * time.Millisecond, Read: 3 * time.Second, Write: 6 * time.Second, Idle: time.Second}

// trickle writes prefix, then one byte of pad every 50 ms until a write
// fails or stop is closed: a client that never finishes its request.
func trickle(conn net.Conn, prefix string, stop <-chan struct{}) {
	if _, err := io.WriteString(conn, prefix); err != nil {
		return
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
		}
	}
}

// closedAfter sends a never-finished request to addr and returns how long
// the server took to close the connection (and what it answered, if
// anything). The test fails if the connection is still open after 15 s.
func closedAfter(t *testing.T, addr, prefix string) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stop := make(chan struct{})
	defer close(stop)
	go trickle(conn, prefix, stop)
	conn.SetReadDeadline(start.Add(15 * time.Second))
	got, err := io.ReadAll(conn) // until the server closes (EOF, or a reset: it closed with unread input)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v (received %q)", time.Since(start), got)
	}
	return time.Since(start), string(got)
}

// TestHTTPSlowClientsDisconnected: a client that trickles its headers is
// cut at ReadHeaderTimeout, one that trickles a webhook body at
// ReadTimeout (and nothing is captured), and a kept-alive connection with
// no next request at IdleTimeout.
func TestHTTPSlowClientsDisconnected(t *testing.T) {
	l := testHTTPLimits
	h := startHTTPAgent(t, l)
	before := h.lastEvent(t)

	t.Run("headers trickled", func(t *testing.T) {
		took, got := closedAfter(t, h.addr, "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: ")
		if took < l.ReadHeader || took >= l.Read {
			t.Errorf("closed after %v, want ReadHeaderTimeout (%v) and well under ReadTimeout (%v)", took, l.ReadHeader, l.Read)
		}
		if strings.Contains(got, " 200 ") {
			t.Errorf("answered %q", got)
		}
	})

	t.Run("webhook body trickled", func(t *testing.T) {
		req := "POST /events/webhook HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + httpTestToken +
			"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + httpTestEvent[:20]
		took, got := closedAfter(t, h.addr, req)
		if took < l.Read || took >= l.Read+3*time.Second {
			t.Errorf("closed after %v, want ReadTimeout (%v)", took, l.Read)
		}
		if strings.Contains(got, " 200 ") {
			t.Errorf("answered %q", got)
		}
		if after := h.lastEvent(t); after != before {
			t.Errorf("EVENTS_a last sequence %d -> %d: a never-finished body was captured", before, after)
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		r, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK || r.Close {
			t.Fatalf("GET /healthz: %s, Connection: close %v (want 200 kept alive)", r.Status, r.Close)
		}
		start := time.Now()
		conn.SetReadDeadline(start.Add(15 * time.Second))
		n, err := br.Read(make([]byte, 1))
		took := time.Since(start)
		if n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection: read %d bytes, %v after %v (want EOF)", n, err, took)
		}
		// The server's idle clock started just before the response reached us.
		if took < l.Idle/2 || took >= l.Idle+3*time.Second {
			t.Errorf("idle connection closed after %v, want IdleTimeout (%v)", took, l.Idle)
		}
	})
}

// TestHTTPBodyLimits: a webhook body over producer.MaxEventBytes is
// answered 413 and not captured (the token is still checked first); one of
// exactly MaxEventBytes and an ordinary event are stored; the endpoints
// that take no body answer 413 to one over maxNoBodyBytes, sent with a
// length or chunked, and ignore a small one.
func TestHTTPBodyLimits(t *testing.T) {
	h := startHTTPAgent(t, defaultHTTPLimits)
	bearer := "Bearer " + httpTestToken
	event := []byte(httpTestEvent)
	padded := append([]byte(httpTestEvent), bytes.Repeat([]byte(" "), producer.MaxEventBytes-len(httpTestEvent))...)
	over := append([]byte(httpTestEvent), bytes.Repeat([]byte(" "), producer.MaxEventBytes+1-len(httpTestEvent))...)
	tests := []struct {
		name    string
		method  string
		path    string
		auth    string
		body    []byte
		chunked bool
		want    int
		say     string // in the answer
		stored  bool
	}{
		{name: "event", method: "POST", path: "/events/webhook", auth: bearer, body: event, want: 200, say: "stored", stored: true},
		{name: "event of exactly MaxEventBytes", method: "POST", path: "/events/webhook", auth: bearer, body: padded, want: 200, say: "stored", stored: true},
		{name: "event over MaxEventBytes", method: "POST", path: "/events/webhook", auth: bearer, body: over, want: 413, say: fmt.Sprintf("larger than %d bytes", producer.MaxEventBytes)},
		{name: "event over MaxEventBytes, chunked", method: "POST", path: "/events/webhook", auth: bearer, body: over, chunked: true, want: 413, say: "larger than"},
		{name: "event over MaxEventBytes, no token", method: "POST", path: "/events/webhook", body: over, want: 401, say: "unauthorized"},
		{name: "event, no token", method: "POST", path: "/events/webhook", body: event, want: 401, say: "unauthorized"},
		{name: "healthz, small body", method: "GET", path: "/healthz", body: bytes.Repeat([]byte("x"), maxNoBodyBytes), want: 200, say: "ok"},
		{name: "healthz, body over the limit", method: "GET", path: "/healthz", body: bytes.Repeat([]byte("x"), maxNoBodyBytes+1), want: 413, say: "only POST /events/<source> takes a body"},
		{name: "healthz, chunked body over the limit", method: "GET", path: "/healthz", body: bytes.Repeat([]byte("x"), maxNoBodyBytes+1), chunked: true, want: 413, say: "only POST /events/<source> takes a body"},
		{name: "metrics, body of 1 MiB", method: "POST", path: "/metrics", body: bytes.Repeat([]byte("x"), 1<<20), want: 413, say: "request body over"},
		{name: "dashboard API, chunked body of 1 MiB", method: "GET", path: "/api/status", body: bytes.Repeat([]byte("x"), 1<<20), chunked: true, want: 413, say: "request body over"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.lastEvent(t)
			n := int64(len(tc.body))
			if tc.chunked {
				n = -1
			}
			got, body := h.do(t, tc.method, tc.path, tc.auth, tc.body, n)
			if got != tc.want || !strings.Contains(body, tc.say) {
				if len(body) > 300 {
					body = body[:300] + "..."
				}
				t.Errorf("%s %s: %d %q, want %d saying %q", tc.method, tc.path, got, strings.TrimSpace(body), tc.want, tc.say)
			}
			want := before
			if tc.stored {
				want++
			}
			if after := h.lastEvent(t); after != want {
				t.Errorf("EVENTS_a last sequence %d -> %d, want %d", before, after, want)
			}
		})
	}
}

// TestHTTPDefaultLimits: every timeout is set, the webhook's worst honest
// request (its body at the pace Read allows, then a publish of up to 10 s)
// fits in Write, and the body limits are the ones docs/operations.md documents.
func TestHTTPDefaultLimits(t *testing.T) {
	if producer.MaxEventBytes != 1<<20 || maxNoBodyBytes != 4<<10 {
		t.Errorf("body limits %d and %d bytes; docs/operations.md says 1 MiB and 4 KiB", producer.MaxEventBytes, maxNoBodyBytes)
	}
	l := defaultHTTPLimits
	srv := newHTTPServer(http.NotFoundHandler(), l)
	if srv.ReadHeaderTimeout != l.ReadHeader || srv.ReadTimeout != l.Read || srv.WriteTimeout != l.Write || srv.IdleTimeout != l.Idle {
		t.Fatalf("server %v/%v/%v/%v, want %+v", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, l)
	}
	if l.ReadHeader <= 0 || l.Read < l.ReadHeader || l.Idle <= 0 {
		t.Errorf("limits %+v", l)
	}
	if l.Write < l.Read+10*time.Second {
		t.Errorf("WriteTimeout %v is under ReadTimeout %v plus the webhook's 10 s publish", l.Write, l.Read)
	}
}
