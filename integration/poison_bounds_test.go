package integration

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/schema"
)

// Records that decode but break a bound — a size no S3 object has, a clock
// counter at the top of uint64, a clock naming a site that is not in the
// mesh, an origin time a month ahead, a key with ".." segments — each go to
// the DLQ of every receiving site with reason bad-record and the field
// named, no agent restarts, and a write published behind them applies.
func TestPoisonRecordsOutOfBoundsGoToDLQ(t *testing.T) {
	e := labEnv(t)
	ctx := ctxT(t)
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	const n = uint64(1) << 40

	agents := func() map[string]lab.ProcStatus {
		m := map[string]lab.ProcStatus{}
		for _, s := range e.lab.Status().Sites {
			m[s.Name] = s.Agent
		}
		return m
	}
	before := agents()
	for site, a := range before {
		if !a.Running {
			t.Fatalf("agent %s not running before the test: %+v", site, a)
		}
	}

	rec := func(key string, mut func(*schema.Record)) []byte {
		body := []byte("bound poison " + key)
		r := dlqcliRecord("a", bucket, key, n, body)
		mut(&r)
		b, err := msgpack.Marshal(&r) // not Encode: it would refuse them
		if err != nil {
			t.Fatal(err)
		}
		return e.sealAs(t, "a", b) // signed by a: a signature proves the origin, not that the record is sane
	}
	type poison struct {
		name, field string
		data        []byte
	}
	poisons := []poison{
		{"huge size", "Version.Size", rec("poison/size-"+tag, func(r *schema.Record) {
			r.Inline, r.Body, r.Version.Size = false, nil, 1<<62
		})},
		{"overflowing counter", "Version.Clock", rec("poison/counter-"+tag, func(r *schema.Record) {
			r.Version.Clock["b"] = math.MaxUint64
		})},
		{"unknown site in the clock", "Version.Clock", rec("poison/mallory-"+tag, func(r *schema.Record) {
			r.Version.Clock["mallory"] = 1
		})},
		{"origin time a month ahead", "Version.TS", rec("poison/future-"+tag, func(r *schema.Record) {
			r.Version.TS = time.Now().Add(30 * 24 * time.Hour).UnixMilli()
		})},
		{".. key", "Key", rec("poison/../../escape-"+tag, func(r *schema.Record) {})},
	}
	bySeq := map[uint64]poison{}
	for _, p := range poisons {
		ack, err := e.sites["a"].js.Publish(ctx, broker.ChangesSubject("a", 0), p.data)
		if err != nil {
			t.Fatalf("publish %s: %v", p.name, err)
		}
		bySeq[ack.Sequence] = p
	}

	// A write right behind them applies everywhere.
	after := object{body: []byte("after the bound poison " + tag)}
	e.put(t, "a", "poison/bounds-after-"+tag, after)
	e.waitObject(t, "poison/bounds-after-"+tag, after, converge)

	mine := func(es []dlqcliEntry) map[uint64]dlqcliEntry {
		got := map[uint64]dlqcliEntry{}
		for _, d := range es {
			if _, ok := bySeq[d.Seq]; ok && d.Stream == broker.ChangesStream("a") {
				got[d.Seq] = d
			}
		}
		return got
	}
	for _, site := range []string{"b", "c"} {
		es := e.dlqcliWait(t, site, converge, fmt.Sprintf("the %d out-of-bound records", len(poisons)),
			func(es []dlqcliEntry) bool { return len(mine(es)) == len(poisons) })
		for seq, d := range mine(es) {
			p := bySeq[seq]
			if d.Reason != "bad-record" || d.Peer != "a" || !strings.Contains(d.Error, "field "+p.field) {
				t.Errorf("site %s, %s (CHANGES_a:%d): reason %q peer %q error %q; want bad-record from a naming %s",
					site, p.name, seq, d.Reason, d.Peer, d.Error, p.field)
			}
		}
	}
	for _, d := range mine(e.dlqcliList(t, "c")) {
		t.Logf("c: %s %s:%d %q", d.Reason, d.Stream, d.Seq, d.Error)
	}
	// The ".." key was written nowhere, in the bucket or out of it.
	for _, site := range e.names {
		if _, _, info, err := e.read(ctx, site, "escape-"+tag); err == nil && info.Exists {
			t.Errorf("site %s holds escape-%s", site, tag)
		}
	}

	for site, a := range agents() {
		b := before[site]
		if !a.Running || a.PID != b.PID || a.Starts != b.Starts {
			t.Errorf("agent %s: running %v pid %d starts %d, was pid %d starts %d (last exit %q)",
				site, a.Running, a.PID, a.Starts, b.PID, b.Starts, a.LastExit)
		}
	}
}
