package integration

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// TestRebuildHostilePeer: site a loses its disk and is rebuilt while b
// answers as a compromised site would: b's agent is stopped and the test,
// on b's broker, answers `state.page` with b's real page, tampered with.
// c's version of one key comes with c's signed record but b's store serves
// other bytes for it; another key b alone names, a version "of c" that no
// record of c's backs. The rebuild restores c's bytes (from c), leaves b's
// claim out, and reports both; b's own signed version, in the same page,
// is restored (positive control). Afterwards a's agent starts and an
// honest write at a reaches every site.
func TestRebuildHostilePeer(t *testing.T) {
	t.Parallel() // a lab of its own: see parallelTests
	e := newEnv(t, nil)
	ctx := ctxT(t)
	pfx := prefix("rebuild-hostile")
	keyB, keyC, keyOnlyB := pfx+"b", pfx+"c", pfx+"only-b"
	ob, oc := object{body: []byte("b's own version, signed by b")}, object{body: []byte("c's version, signed by c")}
	e.put(t, "b", keyB, ob)
	e.put(t, "c", keyC, oc)
	e.waitObject(t, keyB, ob, converge)
	e.waitObject(t, keyC, oc, converge)
	e.quiesce(t, time.Minute)

	b := e.sites["b"]
	pages := map[string][]agent.StateItem{} // bucket → b's whole page
	for _, bkt := range e.siteBuckets(t, "b") {
		pages[bkt] = statePageOf(t, b.nc, "b", bkt)
	}
	// What b's mirror holds of a's records (the rebuild asks): b's honest
	// answer, replayed.
	records, err := b.nc.Request(broker.RecordsSubject("b", "a"), nil, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e.mustCtl(t, "kill", "b")
	e.mustCtl(t, "wipe", "a")
	recSub, err := b.nc.Subscribe(broker.RecordsSubject("b", "a"), func(m *nats.Msg) { _ = m.Respond(records.Data) })
	if err != nil {
		t.Fatal(err)
	}

	// b's store: other bytes of the same size under c's version's marker.
	info, err := b.s3.Head(ctx, bucket, keyC)
	if err != nil || !info.Exists {
		t.Fatalf("b's replica of %s: %v", keyC, err)
	}
	other := bytes.Repeat([]byte("x"), len(oc.body))
	otherETag, err := b.s3.Put(ctx, s3io.PutInput{Bucket: bucket, Key: keyC, Body: bytes.NewReader(other), Size: int64(len(other)), Attrs: s3io.Attrs{Meta: info.Meta}})
	if err != nil {
		t.Fatal(err)
	}
	var items []agent.StateItem
	for _, it := range pages[bucket] {
		switch it.Key {
		case keyC:
			it.ETag = otherETag
			items = append(items, it)
			// A version "of c" b alone names, with no record of c's.
			forged := it
			forged.Key, forged.Proof = keyOnlyB, nil
			forged.Held.ID = schema.VersionID("c", bucket, keyOnlyB, it.Held.Clock["c"]+1)
			forged.Held.Clock = schema.Clock{"c": it.Held.Clock["c"] + 1}
			forged.Held.ETag = otherETag
			items = append(items, forged)
		default:
			items = append(items, it)
		}
	}
	pages[bucket] = items
	sub, err := b.nc.Subscribe(agent.AdminSubject("b", "state.page"), func(m *nats.Msg) {
		var req agent.AdminRequest
		_ = json.Unmarshal(m.Data, &req)
		page := agent.StatePage{Bucket: req.Bucket, Items: []agent.StateItem{}}
		for _, it := range pages[req.Bucket] {
			if it.Key > req.After && (req.Limit <= 0 || len(page.Items) < req.Limit) {
				page.Items = append(page.Items, it)
			}
		}
		out, _ := json.Marshal(page)
		rep, _ := json.Marshal(agent.AdminReply{OK: true, Outcome: string(out)})
		_ = m.Respond(rep)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	r := e.rebuild(t, "a", nil)
	if r.code != 0 {
		t.Fatalf("rebuild failed: %s", r.stderr)
	}
	for _, want := range []string{"1 with versions no signed record backs", "1 copies refused"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("rebuild summary does not report %q: %s", want, r.stdout)
		}
	}
	for _, want := range []string{"a peer served other bytes than the version's origin signed", "its origin's signature does not back"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("rebuild log does not say %q:\n%s", want, tail(r.stderr, 3000))
		}
	}
	for key, want := range map[string][]byte{keyC: oc.body, keyB: ob.body} {
		if got, ok := e.bodyAt(t, "a", bucket, key); !ok || !bytes.Equal(got, want) {
			t.Errorf("rebuilt a holds %q for %s (present %v), want %q", got, key, ok, want)
		}
	}
	if got, ok := e.bodyAt(t, "a", bucket, keyOnlyB); ok {
		t.Errorf("rebuilt a holds b's unbacked claim %s: %q", keyOnlyB, got)
	}

	// b's honest agent and store back, a started: an honest write at a
	// reaches every site.
	for _, s := range []*nats.Subscription{sub, recSub} {
		if err := s.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.s3.Put(ctx, s3io.PutInput{Bucket: bucket, Key: keyC, Body: bytes.NewReader(oc.body), Size: int64(len(oc.body)), Attrs: s3io.Attrs{Meta: info.Meta}}); err != nil {
		t.Fatal(err)
	}
	e.mustCtl(t, "start", "b")
	e.mustCtl(t, "start", "a")
	after := object{body: []byte("written at the rebuilt a")}
	e.put(t, "a", keyC, after)
	e.waitObject(t, keyC, after, converge)
}

// statePageOf reads site's whole per-key state of bkt through its agent.
func statePageOf(t *testing.T, nc *nats.Conn, site, bkt string) []agent.StateItem {
	t.Helper()
	var items []agent.StateItem
	after := ""
	for {
		req, _ := json.Marshal(agent.AdminRequest{Bucket: bkt, After: after, Limit: agent.MaxStatePageLimit})
		m, err := nc.Request(agent.AdminSubject(site, "state.page"), req, 30*time.Second)
		if err != nil {
			t.Fatalf("state.page of %s at %s: %v", bkt, site, err)
		}
		var rep agent.AdminReply
		var page agent.StatePage
		if err := json.Unmarshal(m.Data, &rep); err != nil || !rep.OK || json.Unmarshal([]byte(rep.Outcome), &page) != nil {
			t.Fatalf("state.page of %s at %s: %v %s", bkt, site, err, rep.Error)
		}
		items = append(items, page.Items...)
		if !page.More || len(page.Items) == 0 {
			return items
		}
		after = page.Items[len(page.Items)-1].Key
	}
}

// siteBuckets is the replicated buckets of site's configuration.
func (e *env) siteBuckets(t *testing.T, site string) []string {
	t.Helper()
	cfg, err := config.Load(e.siteInfo(t, site).Config)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.BucketNames()
}
