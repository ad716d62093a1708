package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/schema"
)

// hostileKey is a key that would break a page or JSON built by string
// concatenation: markup, quotes, a line separator, unicode, a tab.
const hostileKey = "</script><script>alert(1)</script><img src=x onerror=alert(2)>\"'&\u2028ünï\tcode+%"

// dashboardServer serves a dashboard of site a whose DLQ and conflict
// streams live on an in-process broker; status returns st.
func dashboardServer(t *testing.T, st Status) (*httptest.Server, *dashboard, jetstream.JetStream) {
	t.Helper()
	srv, err := broker.StartServer(broker.ServerConfig{Site: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := broker.EnsureStreams(ctx, js, broker.Topology{Site: "a", Peers: []string{"b", "c"}}); err != nil {
		t.Fatal(err)
	}
	d := &dashboard{site: "a", js: js, hist: newHistory(time.Minute, 10*time.Second),
		status: func(context.Context) (Status, error) { return st, nil }}
	mux := http.NewServeMux()
	d.register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs, d, js
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, string(b)
}

func checkHeaders(t *testing.T, path string, r *http.Response, contentType string) {
	t.Helper()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, r.Status)
	}
	if got := r.Header.Get("Content-Security-Policy"); got != dashboardCSP || !strings.HasPrefix(got, "default-src 'self'") {
		t.Errorf("GET %s: Content-Security-Policy %q", path, got)
	}
	if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("GET %s: headers %v", path, r.Header)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, contentType) {
		t.Errorf("GET %s: Content-Type %q, want %s", path, ct, contentType)
	}
}

// TestDashboardPage: the page and its assets are served from the binary,
// with a strict CSP, no inline script, and a script that never parses data
// as HTML.
func TestDashboardPage(t *testing.T) {
	hs, _, _ := dashboardServer(t, Status{Site: "a"})
	r, page := get(t, hs.URL+"/")
	checkHeaders(t, "/", r, "text/html")
	for _, want := range []string{`<script src="static/app.js" defer></script>`, `href="static/style.css"`, `id="mesh"`, `id="peers"`, `id="charts"`, `id="dlq"`, `id="conflicts"`, `id="held"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if inline := regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>|<script>|\son[a-z]+=|style=`).FindString(page); inline != "" {
		t.Errorf("page has inline script or style: %q", inline)
	}
	for path, ct := range map[string]string{"/static/app.js": "text/javascript", "/static/style.css": "text/css", "/static/favicon.svg": "image/svg+xml"} {
		r, body := get(t, hs.URL+path)
		checkHeaders(t, path, r, ct)
		if path == "/static/app.js" {
			body = strings.ReplaceAll(body, `"http://www.w3.org/2000/svg"`, "") // the SVG namespace, not a URL fetched
			if bad := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|https?://`).FindString(body); bad != "" {
				t.Errorf("app.js uses %q: data must reach the DOM through textContent, and nothing may come from elsewhere", bad)
			}
		}
	}
	for _, path := range []string{"/static/nope.js", "/nope", "/api/nope"} {
		if r, _ := get(t, hs.URL+path); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, r.Status)
		}
	}
	r2, err := http.Post(hs.URL+"/api/status", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/status: %s, want 405 (read-only)", r2.Status)
	}
}

// TestDashboardRecentHostileKey: a dead letter and a conflict whose key is
// hostile come back from /api/recent intact, as JSON that holds no raw
// markup.
func TestDashboardRecentHostileKey(t *testing.T) {
	hs, _, js := dashboardServer(t, Status{Site: "a"})
	ctx := context.Background()
	if _, empty := get(t, hs.URL+"/api/recent"); !strings.Contains(empty, `"count":0,"latest":[]`) {
		t.Fatalf("empty streams: %s", empty)
	}
	pub := func(subject string, v any) uint64 {
		b, _ := json.Marshal(v)
		ack, err := js.Publish(ctx, subject, b)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	now := time.Now().UTC().Truncate(time.Second)
	settled := pub(broker.DLQSubject("a", "apply"), consumer.DeadLetter{Reason: "settled", Key: "old"})
	pub(broker.DLQSubject("a", "apply"), consumer.DeadLetter{Reason: consumer.ReasonBadSignature, Error: "error about " + hostileKey,
		Peer: "b", Bucket: "demo", Key: hostileKey, Attempts: 3, LastFailure: now, Record: []byte("record bytes")})
	if _, err := js.Publish(ctx, broker.DLQSubject("a", "apply"), []byte("<not json>")); err != nil {
		t.Fatal(err)
	}
	dlq, err := js.Stream(ctx, broker.DLQStream("a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dlq.DeleteMsg(ctx, settled); err != nil {
		t.Fatal(err)
	}
	pub(broker.ConflictsSubject("a"), schema.ConflictEntry{Site: "a", Bucket: "demo", Key: hostileKey, Policy: "lww", Outcome: "apply-winner",
		Winner: schema.VersionInfo{Origin: "b", ETag: "abc", Size: 5, OriginTime: now}, Loser: schema.VersionInfo{Origin: "a", Deleted: true, OriginTime: now},
		LoserKeptAs: ".s3mesh-losers/" + hostileKey, DecidedAt: now})

	r, body := get(t, hs.URL+"/api/recent")
	checkHeaders(t, "/api/recent", r, "application/json")
	for _, raw := range []string{"<", ">", "\u2028", "record bytes", "cmVjb3JkIGJ5dGVz"} {
		if strings.Contains(body, raw) {
			t.Errorf("/api/recent holds %q raw (or the record's bytes): %s", raw, body)
		}
	}
	var rec Recent
	if err := json.Unmarshal([]byte(body), &rec); err != nil {
		t.Fatalf("/api/recent is not JSON: %v\n%s", err, body)
	}
	d := rec.DeadLetters
	if d.Stream != "DLQ_a" || d.Count != 2 || len(d.Latest) != 2 {
		t.Fatalf("dead letters: %+v", d)
	}
	if d.Latest[0].Undecodable == "" || d.Latest[0].ID != 3 {
		t.Errorf("the latest (undecodable) entry first: %+v", d.Latest[0])
	}
	if e := d.Latest[1]; e.Key != hostileKey || e.Error != "error about "+hostileKey || e.Reason != consumer.ReasonBadSignature ||
		e.Peer != "b" || e.Attempts != 3 || !e.LastFailure.Equal(now) || e.ID != 2 {
		t.Errorf("dead letter: %+v", e)
	}
	c := rec.Conflicts
	if c.Stream != "CONFLICTS_a" || c.Count != 1 || len(c.Latest) != 1 {
		t.Fatalf("conflicts: %+v", c)
	}
	if e := c.Latest[0]; e.Key != hostileKey || e.Winner.Origin != "b" || !e.Loser.Deleted || e.LoserKeptAs != ".s3mesh-losers/"+hostileKey || e.Seq != 1 {
		t.Errorf("conflict: %+v", e)
	}
	// Unchanged streams: the same answer (from the cache).
	if _, again := get(t, hs.URL+"/api/recent"); again != body {
		t.Errorf("second answer differs:\n%s\n%s", body, again)
	}
}

// TestDashboardStatusAndHistory: /api/status is the status JSON
// (re-escaped), and the history keeps the last window of samples oldest
// first, an unknown watermark age as null.
func TestDashboardStatusAndHistory(t *testing.T) {
	st := Status{Site: "a", Warnings: []string{"bucket " + hostileKey}, Peers: []PeerStatus{
		{Peer: "b", PendingApply: 7, SilentFor: 1.5, Lag: 2, WatermarkAgeSeconds: 0.25, CaughtUp: false, Watermark: time.Now().UTC()},
		{Peer: "c", SilentFor: -1, Stalled: true, WatermarkAgeSeconds: -1},
	}}
	hs, d, _ := dashboardServer(t, st)
	r, body := get(t, hs.URL+"/api/status")
	checkHeaders(t, "/api/status", r, "application/json")
	if strings.ContainsAny(body, "<>") {
		t.Errorf("/api/status holds raw markup: %s", body)
	}
	var got Status
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Site != "a" || len(got.Warnings) != 1 || got.Warnings[0] != "bucket "+hostileKey ||
		len(got.Peers) != 2 || got.Peers[0].WatermarkAgeSeconds != 0.25 || !got.Peers[0].Watermark.Equal(st.Peers[0].Watermark) {
		t.Fatalf("/api/status: %v %+v", err, got)
	}
	for _, field := range []string{`"caught_up":false`, `"watermark":"`, `"watermark_age_seconds":0.25`, `"silent_for_seconds":-1`} {
		if !strings.Contains(body, field) {
			t.Errorf("/api/status lacks %s: %s", field, body)
		}
	}

	_, body = get(t, hs.URL+"/api/history")
	if !strings.Contains(body, `"samples":[]`) {
		t.Errorf("empty history: %s", body)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 8 { // the ring holds 6 (1 min of 10 s samples)
		s, _ := d.status(context.Background())
		s.Time = base.Add(time.Duration(i) * 10 * time.Second)
		d.hist.add(s)
	}
	_, body = get(t, hs.URL+"/api/history")
	var h History
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	if h.IntervalSeconds != 10 || h.WindowSeconds != 60 || len(h.Samples) != 6 {
		t.Fatalf("history: %+v", h)
	}
	for i, s := range h.Samples {
		if want := base.Add(time.Duration(i+2) * 10 * time.Second); !s.Time.Equal(want) {
			t.Errorf("sample %d at %s, want %s (oldest first)", i, s.Time, want)
		}
	}
	p := h.Samples[5].Peers
	if len(p) != 2 || p[0].Peer != "b" || p[0].PendingApply != 7 || p[0].SilentFor != 1.5 || p[0].WatermarkAge == nil || *p[0].WatermarkAge != 0.25 {
		t.Errorf("peer b: %+v", p)
	}
	if p[1].Peer != "c" || !p[1].Stalled || p[1].SilentFor != -1 || p[1].WatermarkAge != nil {
		t.Errorf("peer c (never heard, watermark unknown): %+v", p[1])
	}
	if !strings.Contains(body, `"watermark_age_seconds":null`) {
		t.Errorf("an unknown watermark age is null: %s", body)
	}
}
