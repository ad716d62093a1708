package producer

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/broker"
)

// TestWebhookFullEventsStream: once EVENTS_<site> is at its limit
// (nats.limits.events) the webhook answers 503 (the store retries) and
// stores nothing; the events it stored before stay; with room again it
// answers 200.
func TestWebhookFullEventsStream(t *testing.T) {
	env := newWebhookEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	topo := broker.Topology{Site: testSite, Limits: broker.Limits{Events: broker.StreamLimit{MaxMsgs: 2}}}
	if err := broker.EnsureStreams(ctx, env.js, topo); err != nil {
		t.Fatal(err)
	}
	post := func(key string) int {
		code, _ := env.do(t, "POST", "/events/webhook", "Bearer "+testToken, []byte(awsEvent("demo", "s3:ObjectCreated:Put", key)))
		return code
	}
	for _, k := range []string{"k1", "k2"} {
		if code := post(k); code != http.StatusOK {
			t.Fatalf("event %s: %d, want 200", k, code)
		}
	}
	if code := post("k3"); code != http.StatusServiceUnavailable {
		t.Fatalf("event into a full EVENTS stream: %d, want 503", code)
	}
	if n := env.storedMsgs(t); n != 2 {
		t.Fatalf("%d events stored, want the 2 acknowledged", n)
	}
	st, err := env.js.Stream(ctx, broker.EventsStream(testSite))
	if err != nil {
		t.Fatal(err)
	}
	if s := st.CachedInfo().State; s.FirstSeq != 1 || s.LastSeq != 2 {
		t.Fatalf("EVENTS holds %d..%d, want 1..2", s.FirstSeq, s.LastSeq)
	}
	topo.Limits.Events.MaxMsgs = 10
	if err := broker.EnsureStreams(ctx, env.js, topo); err != nil {
		t.Fatal(err)
	}
	if code := post("k3"); code != http.StatusOK {
		t.Fatalf("event with room again: %d, want 200", code)
	}
	if n := env.storedMsgs(t); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
}
