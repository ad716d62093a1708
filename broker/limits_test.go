package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// startSite runs one embedded server for site with no peers and returns
// its JetStream context.
func startSite(t *testing.T, site string) jetstream.JetStream {
	t.Helper()
	s, err := StartServer(ServerConfig{Site: site, Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// sent is a message a stream acknowledged.
type sent struct {
	seq  uint64
	data string
}

// publishUntilRefused publishes body(first), body(first+1), ... to
// subject until the stream refuses one, at most max times; it returns what
// was acknowledged and the refusal.
func publishUntilRefused(ctx context.Context, t *testing.T, js jetstream.JetStream, subject string, body func(i int) []byte, first, max int) ([]sent, error) {
	t.Helper()
	var acked []sent
	for i := first; i < first+max; i++ {
		data := body(i)
		ack, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(subject+"-"+strconv.Itoa(i)))
		if err != nil {
			return acked, err
		}
		if ack.Duplicate {
			t.Fatalf("%s: publish %d taken for a duplicate", subject, i)
		}
		acked = append(acked, sent{ack.Sequence, string(data)})
	}
	t.Fatalf("%s: %d publishes, none refused", subject, max)
	return nil, nil
}

// sameAsAcked checks that stream holds exactly what was acknowledged, at
// the same sequences, from sequence 1. It reads by sequence, which works on
// a work queue too.
func sameAsAcked(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string, acked []sent) {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	st := s.CachedInfo().State
	if st.Msgs != uint64(len(acked)) || (len(acked) > 0 && (st.FirstSeq != 1 || st.LastSeq != acked[len(acked)-1].seq)) {
		t.Fatalf("%s holds %d messages, %d..%d; acknowledged were %d, 1..%v", stream, st.Msgs, st.FirstSeq, st.LastSeq, len(acked), acked)
	}
	for _, a := range acked {
		m, err := s.GetMsg(ctx, a.seq)
		if err != nil {
			t.Fatalf("%s seq %d (acknowledged): %v", stream, a.seq, err)
		}
		if string(m.Data) != a.data {
			t.Fatalf("%s seq %d holds %q, acknowledged %q", stream, a.seq, m.Data, a.data)
		}
	}
}

// TestStreamLimitsRefuseNew: EVENTS, CHANGES, CONFLICTS and DLQ refuse a
// publish at their message limit and at their byte limit, and keep every
// message they acknowledged; a limit raised in place by EnsureStreams
// takes publishes again.
func TestStreamLimitsRefuseNew(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js := startSite(t, "a")
	tiny := StreamLimit{MaxBytes: 8 << 10, MaxMsgs: 5}
	topo := Topology{Site: "a", Limits: Limits{Changes: tiny, Events: tiny, Conflicts: tiny, DLQ: tiny}}
	if err := EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	streams := []struct{ name, subject string }{
		{EventsStream("a"), EventsSubject("a", "nats")},
		{ChangesStream("a"), ChangesSubject("a", 0)},
		{ConflictsStream("a"), ConflictsSubject("a")},
		{DLQStream("a"), DLQSubject("a", "apply")},
	}
	small := func(i int) []byte { return fmt.Appendf(nil, "small %d", i) }
	acked := map[string][]sent{}
	for _, s := range streams {
		got, err := publishUntilRefused(ctx, t, js, s.subject, small, 0, 20)
		if err == nil || !strings.Contains(err.Error(), "maximum messages exceeded") {
			t.Fatalf("%s: publish %d refused with %v, want maximum messages exceeded", s.name, len(got)+1, err)
		}
		if len(got) != 5 {
			t.Fatalf("%s: %d publishes acknowledged before the refusal, want 5", s.name, len(got))
		}
		sameAsAcked(ctx, t, js, s.name, got)
		acked[s.name] = got
	}

	// Raised in place (messages only): publishes resume up to the bytes.
	tiny.MaxMsgs = 1000
	topo.Limits = Limits{Changes: tiny, Events: tiny, Conflicts: tiny, DLQ: tiny}
	changes, err := ensureStreams(ctx, js, topo, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 4 {
		t.Fatalf("raising max_msgs changed %q, want the 4 streams", changes)
	}
	for _, c := range changes {
		if !strings.HasSuffix(c, "updated [max_msgs]") {
			t.Fatalf("raising max_msgs: %q", c)
		}
	}
	big := func(i int) []byte { return bytes.Repeat([]byte{byte('A' + i%26)}, 1000) }
	for _, s := range streams {
		got, err := publishUntilRefused(ctx, t, js, s.subject, big, 100, 20)
		if err == nil || !strings.Contains(err.Error(), "maximum bytes exceeded") {
			t.Fatalf("%s: publish refused with %v, want maximum bytes exceeded", s.name, err)
		}
		if len(got) == 0 || len(got) > 8 {
			t.Fatalf("%s: %d 1000-byte publishes fit in 8 KiB", s.name, len(got))
		}
		all := append(acked[s.name], got...)
		sameAsAcked(ctx, t, js, s.name, all)
		st, err := js.Stream(ctx, s.name)
		if err != nil {
			t.Fatal(err)
		}
		if b := st.CachedInfo().State.Bytes; b > uint64(tiny.MaxBytes) {
			t.Fatalf("%s holds %d bytes, over its limit %d", s.name, b, tiny.MaxBytes)
		}
		us, err := Usage(ctx, js, topo)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			if u.Stream == s.name && (u.Fill() < 0.85 || u.Fill() > 1 || u.DiscardOld || u.MaxBytes != tiny.MaxBytes || u.Msgs != uint64(len(all))) {
				t.Fatalf("usage of a refusing stream: %+v (fill %.2f)", u, u.Fill())
			}
		}
	}
}

// TestStreamLimitsAddedInPlace: streams made before s3mesh set limits (no
// limits, discard old) get them from EnsureStreams without losing a
// record; a limit below what a stream holds is refused, naming the stream
// and field, and changes nothing.
func TestStreamLimitsAddedInPlace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := startSite(t, "a")
	topo := Topology{Site: "a", Peers: []string{"b"}}
	for _, c := range streamConfigs(topo) {
		c.MaxBytes, c.MaxMsgs, c.Discard = 0, 0, jetstream.DiscardOld
		if _, err := js.CreateStream(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	var acked []sent
	for i := range 3 {
		data := fmt.Sprintf("record %d", i)
		ack, err := js.Publish(ctx, ChangesSubject("a", i), []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, sent{ack.Sequence, data})
	}
	changes, err := ensureStreams(ctx, js, topo, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"EVENTS_a: updated [discard max_bytes max_msgs]",
		"CHANGES_a: updated [discard max_bytes max_msgs]",
		"CONFLICTS_a: updated [discard max_bytes max_msgs]",
		"DLQ_a: updated [discard max_bytes max_msgs]",
		"CHANGES_a/MIRROR_b: created",
		"CHANGES_b: updated [max_bytes max_msgs]",
	}
	if strings.Join(changes, "|") != strings.Join(want, "|") {
		t.Fatalf("changes\n %q\nwant\n %q", changes, want)
	}
	us, err := Usage(ctx, js, topo)
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultLimits
	wantLimits := map[string]StreamLimit{"EVENTS_a": d.Events, "CHANGES_a": d.Changes, "CONFLICTS_a": d.Conflicts, "DLQ_a": d.DLQ, "CHANGES_b": d.Changes}
	if len(us) != len(wantLimits) {
		t.Fatalf("usage of %d streams, want %d: %v", len(us), len(wantLimits), us)
	}
	for _, u := range us {
		l := wantLimits[u.Stream]
		if u.Error != "" || u.MaxBytes != l.MaxBytes || u.MaxMsgs != l.MaxMsgs || u.DiscardOld != (u.Kind == KindMirror) {
			t.Errorf("after the update: %+v, want limits %+v", u, l)
		}
	}
	sameAsAcked(ctx, t, js, ChangesStream("a"), acked)

	// Lower than what CHANGES_a holds: refused, nothing changed.
	low := topo
	low.Limits.Changes.MaxMsgs = 2
	err = EnsureStreams(ctx, js, low)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Stream != ChangesStream("a") || ce.Field != "max_msgs" || !strings.Contains(err.Error(), "3 messages held") {
		t.Fatalf("max_msgs 2 on a stream of 3: %v, want a ConfigError on CHANGES_a max_msgs", err)
	}
	st, err := js.Stream(ctx, ChangesStream("a"))
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.MaxMsgs != d.Changes.MaxMsgs {
		t.Fatalf("refused update changed max_msgs to %d", c.MaxMsgs)
	}
	sameAsAcked(ctx, t, js, ChangesStream("a"), acked)
	if changes, err := ensureStreams(ctx, js, topo, nil); err != nil || len(changes) != 0 {
		t.Fatalf("EnsureStreams again: %v, %v; want no changes", changes, err)
	}
}

// mirrorHoldsOrigin checks that every record of the mirror of origin at
// site is the origin's record at the same sequence, that the mirror has no
// hole, and returns its first and last sequence.
func (m *mesh) mirrorHoldsOrigin(ctx context.Context, origin, at string) (first, last uint64) {
	m.t.Helper()
	orig := map[uint64]record{}
	for _, r := range readAll(ctx, m.t, m.sites[origin].js, ChangesStream(origin)) {
		orig[r.seq] = r
	}
	got := readAll(ctx, m.t, m.sites[at].js, ChangesStream(origin))
	for i, r := range got {
		if o, ok := orig[r.seq]; !ok || o != r {
			m.t.Fatalf("%s at %s: seq %d holds %+v, the origin %+v (held %v)", ChangesStream(origin), at, r.seq, r, o, ok)
		}
		if i > 0 && r.seq != got[i-1].seq+1 {
			m.t.Fatalf("%s at %s: hole between %d and %d", ChangesStream(origin), at, got[i-1].seq, r.seq)
		}
	}
	if len(got) == 0 {
		return 0, 0
	}
	return got[0].seq, got[len(got)-1].seq
}

// TestMirrorLimits: with the same limits at both sites, the origin refuses
// its own records at its limit before the mirror of it fills, and once the
// origin has room again (its oldest records gone, as by age) the mirror
// gets every new record with no hole. A peer exceeding this site's limit
// (as a compromised one would) only makes the mirror drop that peer's
// oldest records: the mirror stays within its limit, keeps the origin's
// sequences, does not stall, and the site's own stream takes records.
func TestMirrorLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lim := Limits{Changes: StreamLimit{MaxBytes: 1 << 20, MaxMsgs: 5}}
	m := newMeshWith(t, nil, "a", "b")
	for _, n := range m.names {
		m.sites[n].topo.Limits = lim
	}
	m.ensureAll(ctx)
	a, b := m.sites["a"], m.sites["b"]

	m.publish(ctx, "a", 0, 5)
	if _, err := a.js.Publish(ctx, ChangesSubject("a", 0), payload("a", 5), jetstream.WithMsgID("a-5")); err == nil || !strings.Contains(err.Error(), "maximum messages exceeded") {
		t.Fatalf("6th record at an origin limited to 5: %v, want maximum messages exceeded", err)
	}
	m.waitSeq(ctx, "b", ChangesStream("a"), 5, 10*time.Second)
	m.sameRecords(ctx, "a")
	// The mirror counts the same bytes as its origin, so a byte limit
	// binds both alike too.
	ob, err := a.js.Stream(ctx, ChangesStream("a"))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := b.js.Stream(ctx, ChangesStream("a"))
	if err != nil {
		t.Fatal(err)
	}
	if o, mi := ob.CachedInfo().State.Bytes, mb.CachedInfo().State.Bytes; o != mi || o == 0 {
		t.Fatalf("origin holds %d bytes, its mirror %d for the same records", o, mi)
	}

	// Room at the origin again: its two oldest go (as age removes them).
	origin, err := a.js.Stream(ctx, ChangesStream("a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{1, 2} {
		if err := origin.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	m.publish(ctx, "a", 5, 2)
	m.waitSeq(ctx, "b", ChangesStream("a"), 7, 10*time.Second)
	if first, last := m.mirrorHoldsOrigin(ctx, "a", "b"); first != 3 || last != 7 {
		t.Fatalf("mirror holds %d..%d, want the origin's 3..7", first, last)
	}
	m.sameRecords(ctx, "a")

	// The origin takes more than b's limit (a compromised peer ignores
	// limits; here its own is raised).
	big := lim
	big.Changes.MaxMsgs = 100
	a.topo.Limits = big
	if err := EnsureStreams(ctx, a.js, a.topo); err != nil {
		t.Fatal(err)
	}
	m.publish(ctx, "a", 7, 10)
	m.waitSeq(ctx, "b", ChangesStream("a"), 17, 10*time.Second)
	if first, last := m.mirrorHoldsOrigin(ctx, "a", "b"); first != 13 || last != 17 {
		t.Fatalf("over-full mirror holds %d..%d, want the newest 5, 13..17", first, last)
	}
	eventually(t, 10*time.Second, "b's mirror of a caught up", func() error {
		st, err := Mirrors(ctx, b.js, b.topo)
		if err != nil {
			return err
		}
		if s := st[0]; s.Stalled || s.Lag != 0 || s.Skipped != 0 || s.LastSeq != 17 {
			return fmt.Errorf("%v", s)
		}
		return nil
	})
	us, err := Usage(ctx, b.js, b.topo)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		if u.Stream == ChangesStream("a") && (u.Kind != KindMirror || !u.DiscardOld || u.Msgs != 5 || u.Fill() != 1) {
			t.Fatalf("usage of the full mirror: %+v", u)
		}
	}
	// b's own replication is untouched.
	m.publish(ctx, "b", 0, 3)
	m.waitSeq(ctx, "a", ChangesStream("b"), 3, 10*time.Second)
	m.sameRecords(ctx, "b")
}

// TestMirrorAtDiscardNewLimitLosesRecords pins the nats-server (2.15.3)
// behaviour that makes mirrors drop their oldest records at their limit
// rather than refuse new ones (see Limits): a durable-sourced mirror at a
// DiscardNew limit refuses a record, then acknowledges it to the origin's
// consumer with the next flow-control reply, so it is never sent again;
// and once the mirror has room, the next record is stored under the
// refused one's sequence. If this test fails, nats-server changed: check
// whether DiscardNew has become safe for mirrors.
func TestMirrorAtDiscardNewLimitLosesRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m := newMesh(t, "a", "b")
	m.ensureAll(ctx)
	a, b := m.sites["a"], m.sites["b"]
	mirror, err := b.js.Stream(ctx, ChangesStream("a"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := mirror.CachedInfo().Config
	cfg.Discard, cfg.MaxMsgs = jetstream.DiscardNew, 5
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	m.publish(ctx, "a", 0, 5)
	m.waitSeq(ctx, "b", ChangesStream("a"), 5, 10*time.Second)
	m.publish(ctx, "a", 5, 1) // origin seq 6: refused by the full mirror
	eventually(t, 10*time.Second, "the refused record acknowledged to the origin's consumer", func() error {
		c, err := a.js.PushConsumer(ctx, ChangesStream("a"), a.topo.MirrorConsumer("a", "b"))
		if err != nil {
			return err
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if ci.AckFloor.Stream < 6 {
			return fmt.Errorf("ack floor %d", ci.AckFloor.Stream)
		}
		return nil
	})
	if last, err := lastSeq(ctx, b.js, ChangesStream("a")); err != nil || last != 5 {
		t.Fatalf("mirror last seq %d (%v), want 5: the refused record is not there", last, err)
	}
	cfg.MaxMsgs = 100
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	m.publish(ctx, "a", 6, 1) // origin seq 7
	m.waitSeq(ctx, "b", ChangesStream("a"), 6, 10*time.Second)
	got, err := mirror.GetMsg(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	if id := got.Header.Get(jetstream.MsgIDHeader); id != "a-6" {
		t.Fatalf("mirror seq 6 holds %q; nats-server used to store the origin's seq 7 (a-6) there", id)
	}
	t.Log("as measured: the refused record (origin seq 6, a-5) is lost, and the origin's seq 7 is stored as the mirror's seq 6")
}
