package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/schema"
)

// dlqPlant publishes dl straight into site's DLQ (as anyone allowed to
// publish there could) and returns its DLQ sequence.
func (e *env) dlqPlant(ctx context.Context, t *testing.T, site string, dl consumer.DeadLetter) uint64 {
	t.Helper()
	data, err := json.Marshal(dl)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.sites[site].js.Publish(ctx, broker.DLQSubject(site, dl.Reason), data)
	if err != nil {
		t.Fatalf("plant a dead letter at %s: %v", site, err)
	}
	return ack.Sequence
}

// dlqEntry reads DLQ_<site> entry seq in full.
func (e *env) dlqEntry(ctx context.Context, t *testing.T, site string, seq uint64) consumer.DeadLetter {
	t.Helper()
	s, err := e.sites[site].js.Stream(ctx, broker.DLQStream(site))
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatalf("dead letter %d at %s: %v", seq, site, err)
	}
	var dl consumer.DeadLetter
	if err := json.Unmarshal(m.Data, &dl); err != nil {
		t.Fatal(err)
	}
	return dl
}

// A dead letter planted into b's DLQ with a forged record — naming a real
// record of b's mirror of CHANGES_a, or one the mirror does not hold — is
// refused by `dlq retry` (issue 10 §5): the record is read from the mirror
// again and must be the entry's. Nothing of the forged record reaches b.
func TestDLQPlantedEntryRefused(t *testing.T) {
	e := labEnv(t)
	ctx := ctxT(t)
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	real := object{body: []byte("a real write " + tag)}
	realKey := "dlqforge/real-" + tag
	e.put(t, "a", realKey, real)
	e.waitObject(t, realKey, real, converge)
	last, err := e.sites["a"].js.Stream(ctx, broker.ChangesStream("a"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := last.GetLastMsgForSubject(ctx, broker.ChangesSubjectFilter("a"))
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := schema.Decode(m.Data); err != nil || rec.Key != realKey {
		t.Fatalf("CHANGES_a's last record is not the write of %s: %v %v", realKey, rec, err)
	}

	forgedKey := "dlqforge/forged-" + tag
	forged := dlqcliRecord("a", bucket, forgedKey, 1<<40, []byte("forged body "+tag))
	enc := e.signAs(t, "a", &forged) // even a record a did sign is refused unless the mirror holds it
	unsignedRec := forged
	unsignedRec.Schema = schema.UnsignedSchema
	unsigned, err := unsignedRec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	bySiteB := e.signAs(t, "b", &forged)
	plant := func(seq uint64, record []byte) uint64 {
		return e.dlqPlant(ctx, t, "b", consumer.DeadLetter{
			ID: "CHANGES_a:" + strconv.FormatUint(seq, 10), Reason: consumer.ReasonRetryBudget, Error: "planted", Peer: "a",
			Stream: broker.ChangesStream("a"), Seq: seq, Bucket: bucket, Key: forgedKey, VersionID: forged.Version.ID, Record: record,
		})
	}
	lj := e.dlqcliLabJSON()
	cases := []struct {
		name   string
		seq    uint64
		record []byte // nil: enc
		args   []string
		want   string
	}{
		{"names a real record", m.Sequence, nil, nil, "does not match the mirror's record"},
		{"names a record the mirror does not hold", m.Sequence + 1<<30, nil, nil, "--trust-entry"},
		// --trust-entry applies the entry's own bytes only if they verify.
		{"trusted, unsigned", m.Sequence + 1<<30, unsigned, []string{"--trust-entry"}, "bad signature"},
		{"trusted, signed by b", m.Sequence + 1<<30, bySiteB, []string{"--trust-entry"}, "bad signature"},
	}
	for _, c := range cases {
		record := c.record
		if record == nil {
			record = enc
		}
		id := plant(c.seq, record)
		out, errOut, code := dlqcliRun(t, append([]string{"dlq", "retry", strconv.FormatUint(id, 10), "--lab", lj, "--site", "b"}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: dlq retry %d: exit %d, stdout %q, stderr %q; want a refusal mentioning %q", c.name, id, code, out, errOut, c.want)
		}
		// resolve reads the record the same way.
		out, errOut, code = dlqcliRun(t, append([]string{"dlq", "resolve", strconv.FormatUint(id, 10), "--pick", "a", "--lab", lj, "--site", "b"}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: dlq resolve %d: exit %d, stdout %q, stderr %q; want a refusal mentioning %q", c.name, id, code, out, errOut, c.want)
		}
		if e.dlqEntry(ctx, t, "b", id).Key != forgedKey {
			t.Errorf("%s: the refused entry %d is gone", c.name, id)
		}
		if _, errOut, code := dlqcliRun(t, "dlq", "drop", strconv.FormatUint(id, 10), "--yes", "--lab", lj, "--site", "b"); code != 0 {
			t.Errorf("cleanup: drop %d at b: %s", id, errOut)
		}
	}
	if info, err := e.sites["b"].s3.Head(ctx, bucket, forgedKey); err != nil || info.Exists {
		t.Fatalf("the forged record's key at b: exists %v err %v", info.Exists, err)
	}
	if info, err := e.sites["b"].s3.Head(ctx, bucket, realKey); err != nil || !info.Exists {
		t.Fatalf("the real record's key at b: exists %v err %v", info.Exists, err)
	}
}

// A record too large for a dead letter within the broker's payload limit
// (an 800 KiB inline body: base64 in the entry's JSON is over 1 MiB) is
// dead-lettered truncated, with its reference, rather than retried forever;
// resolving the entry reads the whole record from the mirror.
func TestDLQOversizedRecordTruncated(t *testing.T) {
	e := newEnv(t, func(o *lab.Options) {
		o.Sites = 2
		o.Buckets = []string{bucket}
		o.Conflicts = map[string]config.Conflicts{bucket: {Policy: "manual"}}
	})
	ctx := ctxT(t)
	const key = "dlqbig/parked"
	local := object{body: []byte("b's version")}
	e.put(t, "b", key, local)
	e.waitObject(t, key, local, converge)

	// a's record of the key, concurrent with b's, published straight into
	// CHANGES_a: b parks it (manual policy).
	body := randBytes(800 << 10)
	rec := dlqcliRecord("a", bucket, key, 1<<40, body)
	enc := e.signAs(t, "a", &rec)
	ack, err := e.sites["a"].js.Publish(ctx, broker.ChangesSubject("a", 0), enc)
	if err != nil {
		t.Fatal(err)
	}
	es := e.dlqcliWait(t, "b", converge, "the parked 800 KiB record", func(es []dlqcliEntry) bool {
		for _, d := range es {
			if d.Key == key {
				return true
			}
		}
		return false
	})
	var id uint64
	for _, d := range es {
		if d.Key == key {
			id = d.ID
		}
	}
	dl := e.dlqEntry(ctx, t, "b", id)
	if !dl.Truncated || dl.RecordSize != len(enc) || len(dl.Record) >= len(enc) || !bytes.HasPrefix(enc, dl.Record) ||
		dl.Stream != "CHANGES_a" || dl.Seq != ack.Sequence || dl.Reason != consumer.ReasonManual || dl.VersionID != rec.Version.ID {
		t.Fatalf("dead letter %d: truncated %v, record %d of %d bytes, ref %s:%d (want CHANGES_a:%d), reason %s, version %s",
			id, dl.Truncated, len(dl.Record), dl.RecordSize, dl.Stream, dl.Seq, ack.Sequence, dl.Reason, dl.VersionID)
	}
	out, errOut, code := dlqcliRun(t, "dlq", "resolve", strconv.FormatUint(id, 10), "--pick", "a", "--lab", e.dlqcliLabJSON(), "--site", "b")
	if code != 0 || !strings.Contains(out, "resolved") {
		t.Fatalf("dlq resolve %d --pick a: exit %d, stdout %q, stderr %q", id, code, out, errOut)
	}
	e.waitObject(t, key, object{body: body}, converge)
	s, err := e.sites["b"].js.Stream(ctx, broker.DLQStream("b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMsg(ctx, id); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("dead letter %d still stored after the resolve (err %v)", id, err)
	}
}
