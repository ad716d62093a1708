package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
)

func TestParseWipeArgs(t *testing.T) {
	for _, c := range []struct {
		args   []string
		site   string
		broker bool
		err    string
	}{
		{args: []string{"b"}, site: "b"},
		{args: []string{"b", "--broker"}, site: "b", broker: true},
		{args: []string{"--broker", "b"}, site: "b", broker: true},
		{args: nil, err: "takes a site"},
		{args: []string{"--broker"}, err: "takes a site"},
		{args: []string{"b", "c"}, err: "one site"},
		{args: []string{"b", "--brokers"}, err: "unknown option"},
		{args: []string{"b", "--broker", "--broker"}, err: "twice"},
	} {
		site, broker, err := parseWipeArgs(c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || site != c.site || broker != c.broker {
			t.Errorf("%q = %q, %v, %v", c.args, site, broker, err)
		}
	}
}

// TestLabWipe loses b's disk twice in a three-site lab (real versitygw and
// NATS servers; the agents are the test binary's fake): first the store and
// the state only, then with the broker's JetStream store.
func TestLabWipe(t *testing.T) {
	dir := t.TempDir()
	buckets := []string{"demo", "logs.2024"}
	l, _ := startFakeLab(t, Options{Dir: dir, Sites: 3, Buckets: buckets})
	in := l.Info()
	sa, sb := in.Sites[0], in.Sites[1]
	b := l.byName["b"]
	ctx := context.Background()
	ctl := func(verb string, args ...string) (string, error) { return CtlClient(dir, verb, args...) }
	put := func(si SiteInfo, bucket, key string) {
		t.Helper()
		if _, err := siteClient(si).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("v")}); err != nil {
			t.Fatalf("put %s/%s at %s: %v", bucket, key, si.Name, err)
		}
	}
	bucketsAt := func(si SiteInfo) []string {
		t.Helper()
		out, err := siteClient(si).ListBuckets(ctx, &s3.ListBucketsInput{})
		if err != nil {
			t.Fatalf("list buckets at %s: %v", si.Name, err)
		}
		var names []string
		for _, bk := range out.Buckets {
			names = append(names, aws.ToString(bk.Name))
		}
		return names
	}
	createBuckets := func(si SiteInfo) {
		t.Helper()
		for _, bk := range buckets {
			if err := ensureBucket(ctx, siteClient(si), bk); err != nil {
				t.Fatalf("site %s: %v", si.Name, err)
			}
		}
	}
	stateEntries := func() []os.DirEntry {
		ents, err := os.ReadDir(b.stateDir())
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return ents
	}
	// The other sites' processes must not be touched by a wipe of b.
	type pids struct{ broker, s3, agent int }
	othersBefore := map[string]pids{}
	for _, n := range []string{"a", "c"} {
		s := l.byName[n]
		othersBefore[n] = pids{s.broker.pid(), s.s3.pid(), s.agent.pid()}
	}
	checkOthers := func() {
		t.Helper()
		for n, want := range othersBefore {
			s := l.byName[n]
			if got := (pids{s.broker.pid(), s.s3.pid(), s.agent.pid()}); got != want || !alive(got.agent) {
				t.Errorf("site %s processes changed by the wipe of b: %+v, were %+v", n, got, want)
			}
		}
		if _, err := siteClient(sa).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String("at-a")}); err != nil {
			t.Errorf("site a lost its object: %v", err)
		}
	}

	// b's broker keeps a stream of its own records (the fake broker makes
	// no streams: the test makes one where `s3mesh broker` makes CHANGES_b).
	nb, err := sb.ConnectNATS()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nb)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CHANGES_b", Subjects: []string{"s3mesh.changes.b.>"}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		if _, err := js.Publish(ctx, "s3mesh.changes.b.demo", []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	nb.Close()
	changesB := func() (uint64, error) {
		nc, err := sb.ConnectNATS(nats.Timeout(2 * time.Second))
		if err != nil {
			return 0, err
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := js.Stream(cctx, "CHANGES_b")
		if err != nil {
			return 0, err
		}
		return st.CachedInfo().State.Msgs, nil
	}

	put(sa, "demo", "at-a")
	put(sb, "demo", "k1")
	put(sb, "demo", "dir/sub/k2")
	put(sb, "logs.2024", "k3")
	// An upload in progress is part of the store too.
	if _, err := siteClient(sb).CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("demo"), Key: aws.String("big")}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.stateDir(), "MANIFEST-000001"), []byte("state"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := bucketsAt(sb); len(got) != 2 {
		t.Fatalf("b's buckets before the wipe: %v", got)
	}

	// 1. The store and the state. A lost disk sends no event: deletes
	// through versitygw would reach b's broker as user deletes.
	events, err := sb.ConnectNATS()
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	eventSub, err := events.SubscribeSync(eventsSubject("b"))
	if err != nil {
		t.Fatal(err)
	}
	events.Flush()
	agentPID, agentStarts, s3PID, brokerPID := b.agent.pid(), b.agent.status().Starts, b.s3.pid(), b.broker.pid()
	out, err := ctl("wipe", "b")
	if err != nil {
		t.Fatalf("wipe b: %v (%s)", err, out)
	}
	for _, want := range []string{"site b wiped", "demo, logs.2024", "start b"} {
		if !strings.Contains(out, want) {
			t.Errorf("wipe output lacks %q: %s", want, out)
		}
	}
	if b.agent.running() || alive(agentPID) {
		t.Error("b's agent runs after the wipe")
	}
	if in, _ := ReadInfo(filepath.Join(dir, "lab.json")); in.Sites[1].AgentPID != 0 {
		t.Errorf("lab.json agent_pid of b = %d after the wipe", in.Sites[1].AgentPID)
	}
	if got := bucketsAt(sb); len(got) != 0 {
		t.Errorf("b's store lists buckets %v after the wipe", got)
	}
	if ents := stateEntries(); len(ents) != 0 {
		t.Errorf("b's state directory holds %d entries after the wipe (%s)", len(ents), ents[0].Name())
	}
	if b.broker.pid() != brokerPID {
		t.Error("wipe without --broker restarted b's broker")
	}
	if n, err := changesB(); err != nil || n != 3 {
		t.Errorf("wipe without --broker: CHANGES_b has %d messages (%v), want the 3 it had", n, err)
	}
	if p := b.s3.pid(); p == 0 || p == s3PID {
		t.Errorf("b's versitygw pid %d after the wipe (was %d)", p, s3PID)
	}
	checkOthers()
	// The empty store takes buckets again and its events still flow.
	createBuckets(sb)
	putAndAwaitEvent(t, sb, "demo", "after-wipe")
	for { // every event the wipe could have sent came before after-wipe's
		m, err := eventSub.NextMsg(100 * time.Millisecond)
		if err != nil {
			break
		}
		if strings.Contains(string(m.Data), "ObjectRemoved") {
			t.Errorf("the wipe sent a delete event: %s", m.Data)
		}
	}
	// The agent stays stopped until start b.
	if b.agent.running() {
		t.Fatal("b's agent started by itself")
	}
	if _, err := ctl("start", "b"); err != nil {
		t.Fatalf("start b after the wipe: %v", err)
	}
	if st := b.agent.status(); !st.Running || st.Starts != agentStarts+1 {
		t.Errorf("b's agent after start: %+v (starts were %d)", st, agentStarts)
	}

	// 2. With the broker's JetStream store.
	agentPID, s3PID, brokerPID = b.agent.pid(), b.s3.pid(), b.broker.pid()
	put(sb, "demo", "k4")
	out, err = ctl("wipe", "b", "--broker")
	if err != nil {
		t.Fatalf("wipe b --broker: %v (%s)", err, out)
	}
	if !strings.Contains(out, "JetStream store deleted") {
		t.Errorf("wipe --broker output: %s", out)
	}
	if b.agent.running() || alive(agentPID) {
		t.Error("b's agent runs after wipe --broker")
	}
	if p := b.broker.pid(); p == 0 || p == brokerPID {
		t.Errorf("b's broker pid %d after wipe --broker (was %d)", p, brokerPID)
	}
	if n, err := changesB(); !errors.Is(err, jetstream.ErrStreamNotFound) && (err != nil || n != 0) {
		t.Errorf("after wipe --broker CHANGES_b has %d messages (%v), want none", n, err)
	}
	if got := bucketsAt(sb); len(got) != 0 {
		t.Errorf("b's store lists buckets %v after wipe --broker", got)
	}
	if ents := stateEntries(); len(ents) != 0 {
		t.Errorf("b's state directory holds %d entries after wipe --broker", len(ents))
	}
	if p := b.s3.pid(); p == 0 || p == s3PID {
		t.Errorf("b's versitygw pid %d after wipe --broker (was %d)", p, s3PID)
	}
	checkOthers()
	// The peers' leaf links to the new broker connect again, both ways.
	for _, pair := range [][2]SiteInfo{{sa, sb}, {sb, in.Sites[2]}} {
		if !leafReaches(t, pair[0], pair[1], 20*time.Second) {
			t.Errorf("%s -> %s does not pass over the leaf link after wipe b --broker", pair[0].Name, pair[1].Name)
		}
	}
	// versitygw's event sink is connected to the new broker.
	createBuckets(sb)
	putAndAwaitEvent(t, sb, "demo", "after-wipe-broker")
	if b.agent.running() {
		t.Fatal("b's agent started by itself")
	}
	starts := b.agent.status().Starts
	if _, err := ctl("start", "b"); err != nil {
		t.Fatalf("start b after wipe --broker: %v", err)
	}
	if st := b.agent.status(); !st.Running || st.Starts != starts+1 {
		t.Errorf("b's agent after start: %+v (starts were %d)", st, starts)
	}

	// Errors.
	for _, bad := range [][]string{{"wipe"}, {"wipe", "z"}, {"wipe", "b", "c"}, {"wipe", "b", "--force"}} {
		if out, err := ctl(bad[0], bad[1:]...); err == nil {
			t.Errorf("%v succeeded: %s", bad, out)
		}
	}
	if _, err := ctl("wipe", "z"); err == nil || !strings.Contains(err.Error(), `unknown site "z"`) {
		t.Errorf("wipe z: %v", err)
	}
	if out, _ := ctl("help"); !strings.Contains(out, "wipe X [--broker]") {
		t.Errorf("help lacks wipe:\n%s", out)
	}
	if !b.agent.running() {
		t.Error("a refused wipe stopped b's agent")
	}
	l.Stop()
	if _, err := l.Ctl("wipe", "b"); err == nil || !strings.Contains(err.Error(), "stopping") {
		t.Errorf("wipe after Stop: %v", err)
	}
	if _, err := ctl("wipe", "b"); err == nil || !strings.Contains(err.Error(), "no lab running") {
		t.Errorf("wipe without a lab: %v", err)
	}
}

// leafReaches reports whether a message published at from's broker
// reaches a subscriber at to's within d. It uses the one admin subject a
// confined link lets through (a state page request; no reply is asked).
func leafReaches(t *testing.T, from, to SiteInfo, d time.Duration) bool {
	t.Helper()
	nf, err := from.ConnectNATS()
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	nt, err := to.ConnectNATS()
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	ping := broker.StatePageSubject(to.Name)
	sub, err := nt.SubscribeSync(ping)
	if err != nil {
		t.Fatal(err)
	}
	nt.Flush()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		nf.Publish(ping, []byte("x"))
		nf.Flush()
		if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
			return true
		}
	}
	return false
}
