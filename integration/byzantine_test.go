package integration

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
)

// TestByzantineSite: acting as a compromised site b — its broker
// credentials and its record signing key from lab.json — b publishes
// validly signed records whose content is dishonest. Each attack beside a
// positive control (the same record made honestly applies), and after each
// an honest write of the key reaches every honest site (a and c). A lab of
// its own: b's store and state do not hold what the test publishes as b.
// c checks record times against a clock 3 s behind a's (a test hook), as a
// site whose clock lags does.
func TestByzantineSite(t *testing.T) {
	t.Parallel() // a lab of its own: see parallelTests
	// Records whose third-site counters are not proved wait this long
	// for that site's records before they go to the DLQ.
	e := newEnv(t, func(o *lab.Options) {
		o.ProofWait = 5 * time.Second
		if err := os.WriteFile(filepath.Join(o.Dir, "hooks", "c"), []byte("record-clock-skew=-3s\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	ctx := ctxT(t)
	a, b := e.sites["a"], e.sites["b"]
	seed, err := os.ReadFile(e.siteInfo(t, "b").SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := config.ParseSeed(string(seed))
	if err != nil {
		t.Fatal(err)
	}
	honest := []string{"a", "c"}
	var clockAt func(t *testing.T, site, bucket, key string) schema.Clock
	nextB := lifecycle.IncarnationFloor(uint64(time.Now().Unix()))
	var lastSeq uint64 // of the last record forged, in CHANGES_b (and its mirrors)
	// forgeAt publishes, as b, a record of bucket/key over clock with body
	// and origin time ts.
	forgeAt := func(t *testing.T, bucket, key string, clock schema.Clock, rank uint64, body string, ts int64) *schema.Record {
		t.Helper()
		nextB++
		clock = clock.Clone()
		clock["b"] = nextB
		sum := md5.Sum([]byte(body))
		now := time.Now().UnixMilli()
		rec := &schema.Record{Schema: schema.RecordSchema, Bucket: bucket, Key: key, Inline: true, Body: []byte(body), MadeAt: now,
			Attrs: schema.Attrs{ContentType: "text/plain"},
			Version: schema.Version{ID: schema.VersionID("b", bucket, key, nextB), Origin: "b", Clock: clock, TS: ts,
				Rank: rank, Size: int64(len(body)), ETag: hex.EncodeToString(sum[:])}}
		data, err := rec.Sign(keyB)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		ack, err := b.js.Publish(ctx, broker.ChangesSubject("b", schema.Partition(bucket, key, 1)), data, jetstream.WithMsgID(rec.Version.ID))
		if err != nil {
			t.Fatal(err)
		}
		lastSeq = ack.Sequence
		return rec
	}
	// forge publishes, as b, a record of bucket/key over clock with body,
	// made now.
	forge := func(t *testing.T, bucket, key string, clock schema.Clock, rank uint64, body string) *schema.Record {
		t.Helper()
		return forgeAt(t, bucket, key, clock, rank, body, time.Now().UnixMilli())
	}
	// recordAt is the last record site made of bucket/key (in its stream,
	// or a's mirror of it).
	recordAt := func(t *testing.T, site, bucket, key string) *schema.Record {
		t.Helper()
		var got *schema.Record
		err := broker.ReadStream(ctx, a.js, broker.ChangesStream(site), time.Time{}, func(_ uint64, data []byte) error {
			if r, err := schema.Decode(data); err == nil && r.Bucket == bucket && r.Key == key {
				got = r
			}
			return nil
		})
		if err != nil || got == nil {
			t.Fatalf("%s's record of %s/%s: %v", site, bucket, key, err)
		}
		return got
	}
	// recordOf is the last record a made of bucket/key.
	recordOf := func(t *testing.T, bucket, key string) *schema.Record {
		t.Helper()
		return recordAt(t, "a", bucket, key)
	}
	clockAt = func(t *testing.T, site, bucket, key string) schema.Clock {
		t.Helper()
		return recordAt(t, site, bucket, key).Version.Clock
	}
	// clockOf is the clock of the last record a made of bucket/key.
	clockOf := func(t *testing.T, bucket, key string) schema.Clock {
		t.Helper()
		return recordOf(t, bucket, key).Version.Clock
	}
	write := func(t *testing.T, site, bucket, key, body string) {
		t.Helper()
		e.putIn(t, site, bucket, key, []byte(body))
		e.waitAt(t, honest, bucket, key, body, 45*time.Second)
	}
	deadLetter := func(t *testing.T, site, id string, words ...string) {
		t.Helper()
		match := func(d consumer.DeadLetter) bool { return d.VersionID == id }
		e.awaitDeadLetter(t, site, id, match, converge)
		e.waitDeadLetter(t, site, id, match, consumer.ReasonBadRecord, words...)
	}

	t.Run("clock-poisoning", func(t *testing.T) {
		// b claims c's counter for the key is 2^55: applied, every later
		// write of the key at c would look stale at a and be skipped.
		write(t, "a", bucket, "byz/clock", "from a")
		cl := clockOf(t, bucket, "byz/clock")
		poisoned := cl.Clone()
		poisoned["c"] = 1 << 55
		bad := forge(t, bucket, "byz/clock", poisoned, 0, "poison")
		// Positive control: the same write without the forged entry.
		forge(t, bucket, "byz/clock", cl, 0, "b, honestly")
		e.waitAt(t, honest, bucket, "byz/clock", "b, honestly", 45*time.Second)
		// The silent loss the poisoned clock caused: c's next write of the
		// key skipped at a as stale.
		write(t, "c", bucket, "byz/clock", "c after the attack")
		for _, s := range honest {
			deadLetter(t, s, bad.Version.ID, "Version.Clock")
		}
	})

	t.Run("equivocation", func(t *testing.T) {
		// b signs two versions under one version id (other bytes of the
		// same size): the first applies everywhere (positive control); the
		// second, published under another message id so that the broker
		// does not drop it as a duplicate, is refused at a and c as
		// bad-record naming the field that differs, never merged, and the
		// key keeps flowing.
		const key = "byz/equivocation"
		write(t, "a", bucket, key, "from a")
		first := forge(t, bucket, key, clockOf(t, bucket, key), 0, "b's first version")
		e.waitAt(t, honest, bucket, key, "b's first version", 45*time.Second)
		second := *first
		second.Body = []byte("b's other version")
		sum := md5.Sum(second.Body)
		second.Version.ETag, second.Version.TS = hex.EncodeToString(sum[:]), first.Version.TS+1
		data, err := second.Sign(keyB)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.js.Publish(ctx, broker.ChangesSubject("b", schema.Partition(bucket, key, 1)), data, jetstream.WithMsgID(first.Version.ID+"/again")); err != nil {
			t.Fatal(err)
		}
		for _, s := range honest {
			deadLetter(t, s, first.Version.ID, "Version.ETag", "equivocation")
		}
		e.waitAt(t, honest, bucket, key, "b's first version", 45*time.Second)
		write(t, "c", bucket, key, "c after the attack")
	})

	t.Run("clock-poisoning-below-the-ceiling", func(t *testing.T) {
		// b claims c's counter for the key is the first of c's incarnation
		// an hour from now: below the ceiling a's clock allows (24 h and
		// 1024 incarnations ahead), above any counter c made. c refuses it
		// (above any counter c can have made); a, unless it waits for c's
		// own records to prove the claim, applies it, and every later write
		// of the key at c looks stale at a and is skipped.
		write(t, "c", bucket, "byz/proof", "from c")
		cl := clockAt(t, "c", bucket, "byz/proof")
		poisoned := cl.Clone()
		poisoned["c"] = lifecycle.IncarnationFloor(uint64(time.Now().Add(time.Hour).Unix()))
		bad := forge(t, bucket, "byz/proof", poisoned, 0, "poison below the ceiling")
		// Positive control: b's honest record over c's real write applies.
		forge(t, bucket, "byz/proof", cl, 0, "b over c's write")
		e.waitAt(t, honest, bucket, "byz/proof", "b over c's write", 45*time.Second)
		// The silent loss the claim would cause: c's next write of the key
		// skipped at a as stale.
		write(t, "c", bucket, "byz/proof", "c after the attack")
		// a held the forged record back while c's records might still
		// prove it, then dead-lettered it, naming the field and the site.
		deadLetter(t, "a", bad.Version.ID, "Version.Clock", "site c")
		deadLetter(t, "c", bad.Version.ID, "Version.Clock")
	})

	t.Run("honest-claim-waits-for-proof", func(t *testing.T) {
		// The same check on an honest b: with the a–c link cut, b applies
		// c's write and writes the key over it. a cannot have c's record
		// yet, so b's record waits for it, and after records.proof_wait
		// goes to the DLQ; once the link heals and c's record arrives,
		// `dlq retry` applies it.
		const key = "byz/partition"
		write(t, "c", bucket, key, "from c")
		e.mustCtl(t, "cut", "a", "c")
		healed := false
		t.Cleanup(func() {
			if !healed {
				e.mustCtl(t, "heal", "a", "c")
			}
		})
		// A proof is per site: c's counter for the key must get above every
		// counter of c a has seen (c wrote other keys twice), so c writes
		// it four times.
		last := ""
		for i := range 4 {
			last = fmt.Sprintf("c while cut off from a, %d", i)
			e.putIn(t, "c", bucket, key, []byte(last))
			e.waitAt(t, []string{"b"}, bucket, key, last, 45*time.Second)
		}
		e.putIn(t, "b", bucket, key, []byte("b over c's write"))
		e.waitAt(t, []string{"c"}, bucket, key, "b over c's write", 45*time.Second)
		seen := uint64(0)
		err := broker.ReadStream(ctx, a.js, broker.ChangesStream("c"), time.Time{}, func(_ uint64, data []byte) error {
			if r, err := schema.Decode(data); err == nil {
				seen = max(seen, r.Version.Clock["c"])
			}
			return nil
		})
		if claim := clockAt(t, "b", bucket, key)["c"]; err != nil || claim <= seen {
			t.Fatalf("b's record claims c's counter %d, not above the %d a has seen (%v): the test proves nothing", claim, seen, err)
		}
		match := func(d consumer.DeadLetter) bool { return d.Key == key && d.Peer == "b" }
		e.awaitDeadLetter(t, "a", "b's record of "+key, match, converge)
		e.waitDeadLetter(t, "a", "b's record of "+key, match, consumer.ReasonBadRecord, "Version.Clock", "site c")
		if got, _ := e.bodyAt(t, "a", bucket, key); string(got) != "from c" {
			t.Fatalf("a holds %q while its link to c is cut, want c's first write", got)
		}
		e.mustCtl(t, "heal", "a", "c")
		healed = true
		e.waitAt(t, []string{"a"}, bucket, key, last, converge)
		var id string
		for _, d := range e.dlqcliList(t, "a") {
			if d.Key == key && d.Peer == "b" {
				id = strconv.FormatUint(d.ID, 10)
			}
		}
		out, errOut, code := dlqcliRun(t, "dlq", "retry", id, "--lab", e.dlqcliLabJSON(), "--site", "a")
		if code != 0 || !strings.Contains(out, id+": apply") {
			t.Fatalf("dlq retry %s at a: exit %d, stdout %q, stderr %q; want %q", id, code, out, errOut, id+": apply")
		}
		e.waitAt(t, honest, bucket, key, "b over c's write", 45*time.Second)
	})

	t.Run("rank-epoch-at-the-bound", func(t *testing.T) {
		// Under site-priority (b, a, c) b's version at epoch 2^40: valid,
		// applied; a's own next write over it must still be publishable.
		write(t, "a", "prio", "byz/rank", "from a")
		forge(t, "prio", "byz/rank", clockOf(t, "prio", "byz/rank"), schema.MaxRankEpoch<<16|3, "b at epoch 2^40")
		e.waitAt(t, honest, "prio", "byz/rank", "b at epoch 2^40", 45*time.Second)
		write(t, "a", "prio", "byz/rank", "a after the attack")
	})

	t.Run("rank-level-and-flag", func(t *testing.T) {
		write(t, "a", bucket, "byz/level", "from a")
		write(t, "a", "delwins", "byz/flag", "from a")
		level := forge(t, bucket, "byz/level", clockOf(t, bucket, "byz/level"), 5, "b claims level 5 under lww")
		flag := forge(t, "delwins", "byz/flag", clockOf(t, "delwins", "byz/flag"), 1<<8, "a put with the delete's flag")
		// Positive controls: the same records with the ranks the policies give.
		forge(t, bucket, "byz/level", clockOf(t, bucket, "byz/level"), 0, "b, level 0")
		forge(t, "delwins", "byz/flag", clockOf(t, "delwins", "byz/flag"), 0, "b, a put")
		e.waitAt(t, honest, bucket, "byz/level", "b, level 0", 45*time.Second)
		e.waitAt(t, honest, "delwins", "byz/flag", "b, a put", 45*time.Second)
		for _, s := range honest {
			deadLetter(t, s, level.Version.ID, "Version.Rank")
			deadLetter(t, s, flag.Version.ID, "Version.Rank")
		}
		write(t, "c", bucket, "byz/level", "c after the attack")
		write(t, "c", "delwins", "byz/flag", "c after the attack")
	})

	t.Run("origin-time-at-the-bound", func(t *testing.T) {
		// b's version with an origin time just inside a's records.max_future:
		// valid at a, applied. a's next write of the key follows it
		// (origin time b's + 1 ms), so it is past the bound of c, whose
		// clock is 3 s behind: it must reach c all the same, once c's
		// clock catches up with it, not be refused there.
		maxFuture := config.DefaultMaxFuture.Milliseconds()
		write(t, "a", bucket, "byz/ts", "from a")
		near := forgeAt(t, bucket, "byz/ts", clockOf(t, bucket, "byz/ts"), 0, "b, 1 s inside the bound", time.Now().UnixMilli()+maxFuture-1000)
		// Positive control: the attack took hold, a holds b's version and
		// its own next write inherits the far origin time.
		e.waitAt(t, []string{"a"}, bucket, "byz/ts", "b, 1 s inside the bound", 45*time.Second)
		write(t, "a", bucket, "byz/ts", "a after the attack")
		if got := recordOf(t, bucket, "byz/ts").Version.TS; got != near.Version.TS+1 {
			t.Fatalf("a's write over b's version has origin time %d, want b's + 1 (%d)", got, near.Version.TS+1)
		}
		// Two minutes past a's bound, within the early window: it waits at
		// a (no dead letter), and a replay leaves it to the consumer.
		early := forgeAt(t, bucket, "byz/ts-early", schema.Clock{}, 0, "b, 2 m past the bound", time.Now().UnixMilli()+maxFuture+2*time.Minute.Milliseconds())
		earlySeq := lastSeq
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("a's mirror of CHANGES_b holding seq %d", earlySeq), func() error {
			st, err := a.js.Stream(ctx, broker.ChangesStream("b"))
			if err != nil {
				return err
			}
			if got := st.CachedInfo().State.LastSeq; got < earlySeq {
				return fmt.Errorf("last seq %d", got)
			}
			return nil
		})
		out, errOut, code := dlqcliRun(t, "replay", "--lab", e.dlqcliLabJSON(), "--site", "a", "--peer", "b",
			"--from-seq", strconv.FormatUint(earlySeq, 10), "--json") // b's last record: the range is this one
		var rr agent.ReplayResult
		if code != 0 || json.Unmarshal([]byte(out), &rr) != nil {
			t.Fatalf("s3mesh replay of CHANGES_b:%d at a: exit %d: %s%s", earlySeq, code, out, errOut)
		}
		if rr.Read != 1 || rr.Counts.Early != 1 || rr.Counts.DeadLettered != 0 || rr.Counts.Applied != 0 {
			t.Fatalf("replay of an early record at a: %+v, want it read and counted early only", rr)
		}
		// Far beyond the bound (an hour past every site's window): refused
		// everywhere, with the field named; the key keeps flowing.
		far := forgeAt(t, bucket, "byz/ts-far", schema.Clock{}, 0, "b, an hour past the bound", time.Now().UnixMilli()+maxFuture+time.Hour.Milliseconds())
		for _, s := range honest {
			deadLetter(t, s, far.Version.ID, "Version.TS")
		}
		write(t, "c", bucket, "byz/ts-far", "c after the attack")
		for _, s := range honest {
			err := broker.ReadStream(ctx, e.sites[s].js, broker.DLQStream(s), time.Time{}, func(_ uint64, data []byte) error {
				var d consumer.DeadLetter
				if json.Unmarshal(data, &d) == nil && (d.VersionID == early.Version.ID || d.VersionID == near.Version.ID) {
					return fmt.Errorf("%s dead-lettered %s (%s): %s", s, d.VersionID, d.Reason, d.Error)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("forged-incarnation", func(t *testing.T) {
		// a restarts with its own stream empty (as after a week without
		// a write or a lost JetStream store) and asks its peers what they
		// hold of its records. b answers with an unsigned record "of a"
		// claiming a counter of 2^55, which would make a refuse every
		// write of its own.
		for _, s := range []string{"a", "b"} {
			if out, err := e.lab.Ctl("kill", s); err != nil {
				t.Fatalf("kill %s: %v %s", s, err, out)
			}
		}
		sa, err := a.js.Stream(ctx, broker.ChangesStream("a"))
		if err != nil {
			t.Fatal(err)
		}
		if err := sa.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		forged := &schema.Record{Schema: schema.UnsignedSchema, Bucket: bucket, Key: "byz/x", Inline: true, MadeAt: time.Now().UnixMilli(),
			Version: schema.Version{ID: schema.VersionID("a", bucket, "byz/x", 1<<55), Origin: "a", Clock: schema.Clock{"a": 1 << 55}, TS: time.Now().UnixMilli()}}
		data, err := forged.Encode()
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := json.Marshal(agent.PeerRecords{Msgs: 1, FirstSeq: 1, LastSeq: 1, Last: data})
		sub, err := b.nc.Subscribe(broker.RecordsSubject("b", "a"), func(m *nats.Msg) { m.Respond(answer) })
		if err != nil {
			t.Fatal(err)
		}
		if err := b.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		out, err := e.lab.Ctl("start", "a")
		logA, _ := os.ReadFile(e.logOf(t, "a", "agent"))
		if err == nil && !strings.Contains(string(logA), "peer b says its mirror") {
			t.Fatalf("a started on b's forged evidence: %s", out)
		}
		if !strings.Contains(string(logA), "peer b says its mirror of CHANGES_a") || !strings.Contains(string(logA), "not this site's") {
			t.Fatalf("a's agent log does not say why it stopped (peer b's evidence):\n%s", tail(string(logA), 2000))
		}
		// Positive control: with b's honest agent back, a starts (c's and
		// b's answers verify) and its writes reach every honest site.
		sub.Unsubscribe()
		for _, s := range []string{"b", "a"} {
			if out, err := e.lab.Ctl("start", s); err != nil {
				t.Fatalf("start %s: %v %s", s, err, out)
			}
		}
		write(t, "a", bucket, "byz/after-incarnation", "a after the attack")
	})
}

// awaitDeadLetter polls DLQ_<site> until it holds an entry match selects.
// It reads the stream message by message: a consumer per poll (as
// waitDeadLetter makes) would reach the account's consumer limit in a wait
// of seconds.
func (e *env) awaitDeadLetter(t *testing.T, site, what string, match func(consumer.DeadLetter) bool, timeout time.Duration) {
	t.Helper()
	ctx := ctxT(t)
	next := uint64(1)
	testenv.Eventually(t, timeout, fmt.Sprintf("dead letter of %s at %s", what, site), func() error {
		s, err := e.sites[site].js.Stream(ctx, broker.DLQStream(site))
		if err != nil {
			return err
		}
		st := s.CachedInfo().State
		for seq := max(next, st.FirstSeq); st.Msgs > 0 && seq <= st.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			var d consumer.DeadLetter
			if json.Unmarshal(m.Data, &d) == nil && match(d) {
				return nil
			}
			next = seq + 1
		}
		return fmt.Errorf("none yet (%d entries)", st.Msgs)
	})
}

// waitAt polls sites until each holds body under bucket/key.
func (e *env) waitAt(t *testing.T, sites []string, bucket, key, body string, timeout time.Duration) {
	t.Helper()
	for _, s := range sites {
		testenv.Eventually(t, timeout, fmt.Sprintf("%s/%s at %s holding %q", bucket, key, s, body), func() error {
			got, ok := e.bodyAt(t, s, bucket, key)
			if !ok || string(got) != body {
				return fmt.Errorf("holds %q (present: %v)", got, ok)
			}
			return nil
		})
	}
}

// logOf is the path of a lab process's log at site.
func (e *env) logOf(t *testing.T, site, proc string) string {
	t.Helper()
	return filepath.Join(e.siteInfo(t, site).LogDir, proc+".log")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
