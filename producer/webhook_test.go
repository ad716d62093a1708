package producer

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
)

const (
	testSite  = "a"
	testToken = "t0ken-for-tests"
)

// jsEvents is the production-shaped EventPublisher: a JetStream publish to
// the source's events subject, returning once the stream has acknowledged.
type jsEvents struct {
	site string
	js   jetstream.JetStream
}

func (p jsEvents) PublishEvent(ctx context.Context, source string, data []byte) error {
	_, err := p.js.Publish(ctx, broker.EventsSubject(p.site, source), data)
	return err
}

// badCounter records OnBad calls (made on the server's goroutines).
type badCounter struct {
	mu   sync.Mutex
	srcs []string
}

func (b *badCounter) add(s string) { b.mu.Lock(); b.srcs = append(b.srcs, s); b.mu.Unlock() }

func (b *badCounter) get() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.srcs...)
}

type webhookEnv struct {
	srv  *broker.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	http *httptest.Server
	bad  *badCounter
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError + 1}))
}

// newWebhookEnv starts an embedded broker for site "a" with its streams, a
// TCP client connection (opts added) and the webhook in front of it.
func newWebhookEnv(t *testing.T, opts ...nats.Option) *webhookEnv {
	t.Helper()
	srv, err := broker.StartServer(broker.ServerConfig{Site: testSite, Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := broker.EnsureStreams(ctx, js, broker.Topology{Site: testSite}); err != nil {
		t.Fatal(err)
	}
	bad := &badCounter{}
	wh := &Webhook{
		Sources: map[string]WebhookSource{"webhook": {Name: "webhook", Token: testToken, Encoding: KeysURL}},
		Pub:     jsEvents{site: testSite, js: js},
		Log:     testLog(t),
		OnBad:   bad.add,
	}
	hs := httptest.NewServer(wh)
	t.Cleanup(hs.Close)
	return &webhookEnv{srv: srv, nc: nc, js: js, http: hs, bad: bad}
}

// do sends one request; auth "" sends no Authorization header.
func (e *webhookEnv) do(t *testing.T, method, path, auth string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.http.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *webhookEnv) storedMsgs(t *testing.T) uint64 {
	t.Helper()
	st, err := e.js.Stream(t.Context(), broker.EventsStream(testSite))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestWebhookRejects(t *testing.T) {
	env := newWebhookEnv(t)
	valid := []byte(awsEvent("demo", "s3:ObjectCreated:Put", "k"))
	big := append([]byte(`{"Records":[],"pad":"`), bytes.Repeat([]byte("x"), MaxEventBytes)...)
	big = append(big, `"}`...)
	tests := []struct {
		name    string
		method  string
		path    string
		auth    string
		body    []byte
		want    int
		wantBad bool
	}{
		{name: "no Authorization", method: "POST", path: "/events/webhook", body: valid, want: http.StatusUnauthorized},
		{name: "wrong token", method: "POST", path: "/events/webhook", auth: "Bearer wrong", body: valid, want: http.StatusUnauthorized},
		{name: "token prefix only", method: "POST", path: "/events/webhook", auth: "Bearer " + testToken[:4], body: valid, want: http.StatusUnauthorized},
		{name: "token without Bearer", method: "POST", path: "/events/webhook", auth: testToken, body: valid, want: http.StatusUnauthorized},
		{name: "basic auth scheme", method: "POST", path: "/events/webhook", auth: "Basic " + testToken, body: valid, want: http.StatusUnauthorized},
		{name: "empty bearer", method: "POST", path: "/events/webhook", auth: "Bearer ", body: valid, want: http.StatusUnauthorized},
		{name: "basic auth, wrong password", method: "POST", path: "/events/webhook", auth: basic("s3mesh", "wrong"), body: valid, want: http.StatusUnauthorized},
		{name: "basic auth, token as user", method: "POST", path: "/events/webhook", auth: basic(testToken, ""), body: valid, want: http.StatusUnauthorized},
		{name: "GET", method: "GET", path: "/events/webhook", auth: "Bearer " + testToken, want: http.StatusMethodNotAllowed},
		{name: "PUT", method: "PUT", path: "/events/webhook", auth: "Bearer " + testToken, body: valid, want: http.StatusMethodNotAllowed},
		{name: "unknown source", method: "POST", path: "/events/nope", auth: "Bearer " + testToken, body: valid, want: http.StatusNotFound},
		{name: "empty source", method: "POST", path: "/events/", auth: "Bearer " + testToken, body: valid, want: http.StatusNotFound},
		{name: "source with sub-path", method: "POST", path: "/events/webhook/x", auth: "Bearer " + testToken, body: valid, want: http.StatusNotFound},
		{name: "malformed JSON", method: "POST", path: "/events/webhook", auth: "Bearer " + testToken, body: []byte(`{"Records":[`), want: http.StatusBadRequest, wantBad: true},
		{name: "record without key", method: "POST", path: "/events/webhook", auth: "Bearer " + testToken, body: []byte(awsEvent("demo", "s3:ObjectCreated:Put", "")), want: http.StatusBadRequest, wantBad: true},
		{name: "bad url escape", method: "POST", path: "/events/webhook", auth: "Bearer " + testToken, body: []byte(awsEvent("demo", "s3:ObjectCreated:Put", "50%zz")), want: http.StatusBadRequest, wantBad: true},
		{name: "body over 1 MiB", method: "POST", path: "/events/webhook", auth: "Bearer " + testToken, body: big, want: http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(env.bad.get())
			got, body := env.do(t, tc.method, tc.path, tc.auth, tc.body)
			if got != tc.want {
				t.Errorf("status = %d (%q), want %d", got, strings.TrimSpace(body), tc.want)
			}
			bad := env.bad.get()[before:]
			if tc.wantBad && (len(bad) != 1 || bad[0] != "webhook") {
				t.Errorf("OnBad calls = %q, want [webhook]", bad)
			}
			if !tc.wantBad && len(bad) != 0 {
				t.Errorf("OnBad called %q for a request rejected before parsing", bad)
			}
			if n := env.storedMsgs(t); n != 0 {
				t.Errorf("EVENTS_%s holds %d messages after a rejected request, want 0", testSite, n)
			}
		})
	}
}

func TestWebhookStoresEvent(t *testing.T) {
	// An event padded with whitespace to exactly MaxEventBytes is accepted.
	padded := []byte(versityEvent)
	padded = append(padded, bytes.Repeat([]byte(" "), MaxEventBytes-len(padded))...)
	tests := []struct {
		name string
		body []byte
	}{
		{"AWS event", []byte(awsEvent("demo", "s3:ObjectCreated:Put", "dir/hello+world%2B%C3%BC.txt", "s3:ObjectRemoved:Delete", "gone"))},
		{"versitygw event", []byte(versityEvent)},
		{"exactly MaxEventBytes", padded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newWebhookEnv(t)
			got, body := env.do(t, "POST", "/events/webhook", "Bearer "+testToken, tc.body)
			if got != http.StatusOK {
				t.Fatalf("status %d: %s", got, body)
			}
			// The token as the basic-auth password (versitygw's webhook sink).
			got, body = env.do(t, "POST", "/events/webhook", basic("s3mesh", testToken), tc.body)
			if got != http.StatusOK {
				t.Fatalf("status = %d (%q), want 200", got, strings.TrimSpace(body))
			}
			if bad := env.bad.get(); len(bad) != 0 {
				t.Errorf("OnBad called %q for a valid event", bad)
			}
			// The 200s came after the publish acks: both messages are there now.
			if n := env.storedMsgs(t); n != 2 {
				t.Fatalf("EVENTS_%s holds %d messages, want 2", testSite, n)
			}
			st, err := env.js.Stream(t.Context(), broker.EventsStream(testSite))
			if err != nil {
				t.Fatal(err)
			}
			msg, err := st.GetMsg(t.Context(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if want := "s3mesh.events.a.webhook"; msg.Subject != want {
				t.Errorf("subject = %q, want %q", msg.Subject, want)
			}
			if !bytes.Equal(msg.Data, tc.body) {
				t.Errorf("stored %d bytes differ from the %d bytes posted", len(msg.Data), len(tc.body))
			}
		})
	}
}

// TestWebhookBrokerDown: an event that was not made durable must not be
// answered 2xx, or the store would never resend it.
func TestWebhookBrokerDown(t *testing.T) {
	tests := []struct {
		name string
		opts func(down chan<- struct{}) []nats.Option
	}{
		{
			name: "connection closed",
			opts: func(down chan<- struct{}) []nats.Option {
				return []nats.Option{nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(down) })}
			},
		},
		{
			name: "connection reconnecting", // waits for the webhook's 10 s publish timeout
			opts: func(down chan<- struct{}) []nats.Option {
				var once sync.Once
				return []nats.Option{nats.MaxReconnects(-1), nats.DisconnectErrHandler(func(*nats.Conn, error) { once.Do(func() { close(down) }) })}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			down := make(chan struct{})
			env := newWebhookEnv(t, tc.opts(down)...)
			env.srv.Shutdown()
			env.srv.WaitForShutdown()
			select {
			case <-down:
			case <-time.After(10 * time.Second):
				t.Fatal("client did not notice the broker shutdown")
			}
			got, body := env.do(t, "POST", "/events/webhook", "Bearer "+testToken, []byte(versityEvent))
			if got != http.StatusServiceUnavailable {
				t.Fatalf("status = %d (%q), want 503", got, strings.TrimSpace(body))
			}
			if bad := env.bad.get(); len(bad) != 0 {
				t.Errorf("OnBad called %q for a valid event", bad)
			}
		})
	}
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}
