package broker

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lines is a slog handler that keeps every message with its level.
type lines struct {
	mu   sync.Mutex
	msgs []slog.Record
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r)
	return nil
}
func (l *lines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lines) WithGroup(string) slog.Handler      { return l }

// count returns how many messages containing s were logged at level
// lvl and how many at any level.
func (l *lines) count(s string, lvl slog.Level) (atLevel, all int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.msgs {
		if strings.Contains(r.Message, s) {
			all++
			if r.Level == lvl {
				atLevel++
			}
		}
	}
	return atLevel, all
}

// A leaf link whose peer is down is redialled every 250–500 ms (so a
// mirror resumes soon after a heal), and the failed dials do not fill the
// log: the first is an error, the next ones are debug lines only.
func TestDownPeerIsRedialledOftenAndLoggedOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nobody listens there any more: every dial is refused

	h := &lines{}
	srv, err := StartServer(ServerConfig{Site: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
		LeafRemotes: []string{"nats-leaf://" + down}}, slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()

	const failed = "Error trying to connect as leafnode"
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	for {
		if _, all := h.count(failed, slog.LevelDebug); all >= 5 {
			break
		}
		if time.Now().After(deadline) {
			_, all := h.count(failed, slog.LevelDebug)
			t.Fatalf("%d dials of the down peer in %v, want 5 by then", all, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	errs, all := h.count(failed, slog.LevelError)
	t.Logf("%d dials of the down peer in %v, %d logged as errors", all, took.Round(10*time.Millisecond), errs)
	if errs != 1 {
		t.Errorf("%d of %d failed dials logged as errors, want the first only", errs, all)
	}
	// 5 dials at the server default (1 s + up to 1 s of jitter) take at
	// least 4 s.
	if took >= 4*time.Second {
		t.Errorf("5 dials took %v: the link is not redialled every 250–500 ms", took)
	}
}
