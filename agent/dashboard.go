package agent

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/schema"
)

// The dashboard: a read-only page at / on the agent's HTTP address, drawn
// by web/app.js from the agent's own JSON API (docs/operations.md,
// Dashboard):
//
//	GET /api/status   the site's Status (what `s3mesh status --json` prints)
//	GET /api/history  per-peer samples of the last 15 minutes (historyWindow)
//	GET /api/recent   dead-letter and conflict counts and the latest entries
//
// Every response forbids framing and anything but same-origin resources
// (dashboardCSP); the page builds its DOM with textContent only.

//go:embed web
var webFiles embed.FS

const (
	// sampleEvery is how often the agent samples every peer for the
	// dashboard's charts, and historyWindow how long it keeps the samples.
	sampleEvery   = 2 * time.Second
	historyWindow = 15 * time.Minute
	// recentEntries is how many of the latest dead letters and conflicts
	// /api/recent returns.
	recentEntries = 10
)

// dashboardCSP allows nothing but the agent's own scripts, styles and API.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// dashboard serves the page and its API. status is Agent.Snapshot; js
// (nil in some tests) reads the DLQ and conflict streams of site.
type dashboard struct {
	site   string
	status func(context.Context) (Status, error)
	js     jetstream.JetStream
	hist   *history
	recent recentCache
}

// serveDashboard registers the dashboard on mux and returns the sampler
// that fills its history until ctx ends (Run runs it).
func (a *Agent) serveDashboard(ctx context.Context, mux *http.ServeMux) func() error {
	d := &dashboard{site: a.cfg.Site, status: a.Snapshot, js: a.js, hist: newHistory(historyWindow, sampleEvery)}
	d.register(mux)
	return func() error { d.sample(ctx); return nil }
}

// DashboardHandler serves the dashboard of site with the given status
// (and, if js is not nil, the site's DLQ and conflict streams read through
// it) and no history: the browser test renders hostile data with it.
func DashboardHandler(site string, status func(context.Context) (Status, error), js jetstream.JetStream) http.Handler {
	d := &dashboard{site: site, status: status, js: js, hist: newHistory(historyWindow, sampleEvery)}
	mux := http.NewServeMux()
	d.register(mux)
	return mux
}

func (d *dashboard) register(mux *http.ServeMux) {
	static, _ := fs.Sub(webFiles, "web")
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", secure(files))
	mux.Handle("GET /static/", secure(http.StripPrefix("/static/", files)))
	mux.Handle("GET /api/status", secure(http.HandlerFunc(d.serveStatus)))
	mux.Handle("GET /api/history", secure(http.HandlerFunc(d.serveHistory)))
	mux.Handle("GET /api/recent", secure(http.HandlerFunc(d.serveRecent)))
}

// secure sets the headers every dashboard response carries.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", dashboardCSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func writeDashboardJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v) // escapes <, > and & as \u003c...: safe anywhere
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}

func (d *dashboard) serveStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	st, err := d.status(ctx)
	if err != nil {
		http.Error(w, "status: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeDashboardJSON(w, st)
}

func (d *dashboard) serveHistory(w http.ResponseWriter, _ *http.Request) {
	writeDashboardJSON(w, d.hist.snapshot())
}

func (d *dashboard) serveRecent(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	rec, err := d.readRecent(ctx)
	if err != nil {
		http.Error(w, "recent: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeDashboardJSON(w, rec)
}

// sample adds one sample of every peer to the history every sampleEvery
// until ctx ends.
func (d *dashboard) sample(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, sampleEvery)
		st, err := d.status(sctx)
		cancel()
		if err == nil {
			d.hist.add(st)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// history is a ring of per-peer samples.
type history struct {
	mu       sync.Mutex
	interval time.Duration
	ring     []Sample
	next     int
	full     bool
}

// Sample is one sample of every peer.
type Sample struct {
	Time  time.Time    `json:"time"`
	Peers []peerSample `json:"peers"`
}

// peerSample is one peer's figures at one time (see PeerStatus).
type peerSample struct {
	Peer         string   `json:"peer"`
	PendingApply uint64   `json:"pending_apply"`
	SilentFor    float64  `json:"silent_for_seconds"` // -1: never heard
	Lag          uint64   `json:"lag"`
	Stalled      bool     `json:"stalled"`
	WatermarkAge *float64 `json:"watermark_age_seconds"` // null: unknown
}

// History is what /api/history returns: the samples oldest first.
type History struct {
	IntervalSeconds float64  `json:"interval_seconds"`
	WindowSeconds   float64  `json:"window_seconds"`
	Samples         []Sample `json:"samples"`
}

func newHistory(window, interval time.Duration) *history {
	return &history{interval: interval, ring: make([]Sample, int(window/interval))}
}

// add records a sample of every peer of st.
func (h *history) add(st Status) {
	s := Sample{Time: st.Time, Peers: []peerSample{}}
	if s.Time.IsZero() {
		s.Time = time.Now().UTC()
	}
	for _, p := range st.Peers {
		ps := peerSample{Peer: p.Peer, PendingApply: p.PendingApply, SilentFor: p.SilentFor, Lag: p.Lag, Stalled: p.Stalled}
		if age := p.WatermarkAgeSeconds; age >= 0 {
			ps.WatermarkAge = &age // -1: unknown (null)
		}
		s.Peers = append(s.Peers, ps)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring[h.next] = s
	h.next = (h.next + 1) % len(h.ring)
	if h.next == 0 {
		h.full = true
	}
}

func (h *history) snapshot() History {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := History{IntervalSeconds: h.interval.Seconds(), WindowSeconds: (time.Duration(len(h.ring)) * h.interval).Seconds(),
		Samples: []Sample{}}
	if h.full {
		out.Samples = append(out.Samples, h.ring[h.next:]...)
	}
	out.Samples = append(out.Samples, h.ring[:h.next]...)
	return out
}

// Recent is what /api/recent returns: this site's dead letters and
// conflict decisions, the latest first.
type Recent struct {
	DeadLetters RecentDeadLetters `json:"dead_letters"`
	Conflicts   RecentConflicts   `json:"conflicts"`
}

// RecentDeadLetters are the count and latest entries of DLQ_<site>.
type RecentDeadLetters struct {
	Stream string           `json:"stream"`
	Count  uint64           `json:"count"`
	Latest []DeadLetterView `json:"latest"`
}

// RecentConflicts are the count and latest entries of CONFLICTS_<site>.
type RecentConflicts struct {
	Stream string         `json:"stream"`
	Count  uint64         `json:"count"`
	Latest []ConflictView `json:"latest"`
}

// DeadLetterView is a dead letter without its record's bytes; ID is its
// DLQ sequence, as `s3mesh dlq list` shows it.
type DeadLetterView struct {
	ID          uint64    `json:"id"`
	Reason      string    `json:"reason"`
	Error       string    `json:"error"`
	Peer        string    `json:"peer"`
	Bucket      string    `json:"bucket,omitempty"`
	Key         string    `json:"key,omitempty"`
	VersionID   string    `json:"version_id,omitempty"`
	Attempts    uint64    `json:"attempts"`
	LastFailure time.Time `json:"last_failure"`
	Undecodable string    `json:"undecodable,omitempty"` // the entry is not a dead letter's JSON
}

// ConflictView is a conflict log entry and its sequence in the stream.
type ConflictView struct {
	Seq uint64 `json:"seq"`
	schema.ConflictEntry
	Undecodable string `json:"undecodable,omitempty"`
}

// recentCache keeps the last answer while neither stream changed.
type recentCache struct {
	mu   sync.Mutex
	tag  [4]uint64 // last seq and count of both streams
	last *Recent
}

func (d *dashboard) readRecent(ctx context.Context) (*Recent, error) {
	rec := &Recent{DeadLetters: RecentDeadLetters{Stream: broker.DLQStream(d.site), Latest: []DeadLetterView{}},
		Conflicts: RecentConflicts{Stream: broker.ConflictsStream(d.site), Latest: []ConflictView{}}}
	if d.js == nil {
		return rec, nil
	}
	dlq, dst, err := streamState(ctx, d.js, rec.DeadLetters.Stream)
	if err != nil {
		return nil, err
	}
	cfl, cst, err := streamState(ctx, d.js, rec.Conflicts.Stream)
	if err != nil {
		return nil, err
	}
	tag := [4]uint64{dst.LastSeq, dst.Msgs, cst.LastSeq, cst.Msgs}
	d.recent.mu.Lock()
	defer d.recent.mu.Unlock()
	if d.recent.last != nil && d.recent.tag == tag {
		return d.recent.last, nil
	}
	rec.DeadLetters.Count, rec.Conflicts.Count = dst.Msgs, cst.Msgs
	err = lastMessages(ctx, dlq, dst, recentEntries, func(seq uint64, data []byte) {
		v := DeadLetterView{ID: seq}
		var dl consumer.DeadLetter
		if err := json.Unmarshal(data, &dl); err != nil {
			v.Undecodable = err.Error()
		} else {
			v.Reason, v.Error, v.Peer, v.Bucket, v.Key, v.VersionID, v.Attempts, v.LastFailure =
				dl.Reason, dl.Error, dl.Peer, dl.Bucket, dl.Key, dl.VersionID, dl.Attempts, dl.LastFailure
		}
		rec.DeadLetters.Latest = append(rec.DeadLetters.Latest, v)
	})
	if err != nil {
		return nil, err
	}
	err = lastMessages(ctx, cfl, cst, recentEntries, func(seq uint64, data []byte) {
		v := ConflictView{Seq: seq}
		if err := json.Unmarshal(data, &v.ConflictEntry); err != nil {
			v.Undecodable = err.Error()
		}
		rec.Conflicts.Latest = append(rec.Conflicts.Latest, v)
	})
	if err != nil {
		return nil, err
	}
	d.recent.tag, d.recent.last = tag, rec
	return rec, nil
}

func streamState(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, jetstream.StreamState, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, jetstream.StreamState{}, err
	}
	return s, s.CachedInfo().State, nil
}

// lastMessages calls fn with up to n of the stream's last messages, the
// latest first, skipping deleted ones (a settled dead letter), and looks
// at no more than 4n sequences.
func lastMessages(ctx context.Context, s jetstream.Stream, st jetstream.StreamState, n int, fn func(seq uint64, data []byte)) error {
	found := 0
	for seq, tries := st.LastSeq, 0; seq >= st.FirstSeq && seq > 0 && found < n && tries < 4*n; seq, tries = seq-1, tries+1 {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		fn(seq, m.Data)
		found++
	}
	return nil
}
