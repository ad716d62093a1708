package integration

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/schema"
)

// dlqcliEntry is one line of `s3mesh dlq list --json`.
type dlqcliEntry struct {
	ID        uint64 `json:"id"` // DLQ_<site> sequence
	Reason    string `json:"reason"`
	Error     string `json:"error"`
	Attempts  uint64 `json:"attempts"`
	Peer      string `json:"peer"`
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	VersionID string `json:"version_id"`
}

// cli runs the s3mesh binary and returns its stdout, stderr and exit code.
func dlqcliRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctxT(t), testenv.S3meshBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("s3mesh %s: %v", strings.Join(args, " "), err)
	return "", "", -1
}

func (e *env) dlqcliLabJSON() string { return filepath.Join(e.info.Dir, "lab.json") }

// dlqcliList reads site's dead-letter queue through the CLI.
func (e *env) dlqcliList(t *testing.T, site string) []dlqcliEntry {
	t.Helper()
	out, errOut, code := dlqcliRun(t, "dlq", "list", "--lab", e.dlqcliLabJSON(), "--site", site, "--json")
	if code != 0 {
		t.Fatalf("dlq list --site %s: exit %d: %s", site, code, errOut)
	}
	var es []dlqcliEntry
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var d dlqcliEntry
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("dlq list --site %s: line %q: %v", site, line, err)
		}
		es = append(es, d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return es
}

// dlqcliWait polls site's DLQ (via the CLI) until ok holds for its entries.
func (e *env) dlqcliWait(t *testing.T, site string, timeout time.Duration, what string, ok func([]dlqcliEntry) bool) []dlqcliEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		es := e.dlqcliList(t, site)
		if ok(es) {
			return es
		}
		if time.Now().After(deadline) {
			t.Fatalf("site %s: DLQ never had %s after %v; it holds %+v", site, what, timeout, es)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func dlqcliMD5(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// dlqcliRecord is a valid record of bucket/key made at origin with a clock
// entry n far above any real write.
func dlqcliRecord(origin, bkt, key string, n uint64, body []byte) schema.Record {
	return schema.Record{
		Schema: schema.RecordSchema, Bucket: bkt, Key: key,
		Version: schema.Version{
			ID: schema.VersionID(origin, bkt, key, n), Origin: origin, Clock: schema.Clock{origin: n},
			TS: time.Now().UnixMilli(), Size: int64(len(body)), ETag: dlqcliMD5(body),
		},
		Inline: true, Body: body, MadeAt: time.Now().UnixMilli(),
	}
}

// Records a site cannot apply — not a record at all, a cut-off record, an
// unknown schema, a bucket not replicated there, a record claiming another
// origin than its stream — each go to the DLQ with their reason, and do not
// stop the records behind them. The CLI lists them and drops one only with
// --yes.
func TestPoisonRecordsGoToDLQWithReasons(t *testing.T) {
	e := labEnv(t)
	ctx := ctxT(t)
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	const n = uint64(1) << 40
	body := []byte("poison body " + tag)

	valid := dlqcliRecord("a", bucket, "poison/truncated-"+tag, n, body)
	enc := e.signAs(t, "a", &valid)
	v4 := dlqcliRecord("a", bucket, "poison/schema4-"+tag, n, body)
	v4.Schema = schema.MaxSchema + 1 // a schema no build reads yet
	enc4, err := msgpack.Marshal(&v4)
	if err != nil {
		t.Fatal(err)
	}
	enc4 = e.sealAs(t, "a", enc4)
	nr := dlqcliRecord("a", "not-replicated", "poison/not-replicated-"+tag, n, body)
	encNR := e.signAs(t, "a", &nr)
	forged := dlqcliRecord("b", bucket, "poison/claims-b-"+tag, n, body)
	encForged := e.signAs(t, "a", &forged) // a signs a record claiming b's origin
	// Signatures: unsigned (an earlier build's record), signed by b's key
	// in a's stream, signed by a key no site has, one byte changed.
	v1 := dlqcliRecord("a", bucket, "poison/unsigned-"+tag, n, body)
	v1.Schema = schema.UnsignedSchema
	encV1, err := v1.Encode()
	if err != nil {
		t.Fatal(err)
	}
	byB := dlqcliRecord("a", bucket, "poison/signed-by-b-"+tag, n, body)
	encByB := e.signAs(t, "b", &byB)
	mallory := dlqcliRecord("a", bucket, "poison/signed-by-mallory-"+tag, n, body)
	encMallory, err := mallory.Sign(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	tampered := dlqcliRecord("a", bucket, "poison/tampered-"+tag, n, body)
	encTampered := e.signAs(t, "a", &tampered)
	encTampered[bytes.LastIndex(encTampered, body)] ^= 1

	type poison struct {
		name, reason, bucket, key string
		data                      []byte
	}
	poisons := []poison{
		{name: "garbage", reason: "bad-signature", data: []byte("\xc1\xc1 this is not msgpack " + tag)}, // not signed
		{name: "truncated", reason: "decode", data: enc[:len(enc)/2]},
		{name: "future schema", reason: "unknown-version", data: enc4},
		{name: "unsigned", reason: "bad-signature", data: encV1},
		{name: "signed by b", reason: "bad-signature", data: encByB},
		{name: "signed by an unknown key", reason: "bad-signature", data: encMallory},
		{name: "tampered", reason: "bad-signature", data: encTampered},
		{name: "not replicated", reason: "not-replicated", bucket: nr.Bucket, key: nr.Key, data: encNR},
		{name: "claims origin b", reason: "unauthorized", bucket: forged.Bucket, key: forged.Key, data: encForged},
	}
	bySeq := map[uint64]poison{}
	for _, p := range poisons {
		ack, err := e.sites["a"].js.Publish(ctx, broker.ChangesSubject("a", 0), p.data)
		if err != nil {
			t.Fatalf("publish %s: %v", p.name, err)
		}
		if ack.Stream != broker.ChangesStream("a") || ack.Sequence == 0 {
			t.Fatalf("publish %s: ack %+v", p.name, ack)
		}
		bySeq[ack.Sequence] = p
	}

	// Records behind the poison keep flowing.
	after := object{body: []byte("after the poison " + tag)}
	e.put(t, "a", "poison/after-"+tag, after)
	e.waitObject(t, "poison/after-"+tag, after, converge)

	mine := func(es []dlqcliEntry) map[uint64]dlqcliEntry {
		got := map[uint64]dlqcliEntry{} // by CHANGES_a sequence
		for _, d := range es {
			if d.Stream == broker.ChangesStream("a") {
				if _, ok := bySeq[d.Seq]; ok {
					got[d.Seq] = d
				}
			}
		}
		return got
	}
	for _, site := range []string{"b", "c"} {
		es := e.dlqcliWait(t, site, converge, fmt.Sprintf("the %d poison records", len(poisons)), func(es []dlqcliEntry) bool { return len(mine(es)) == len(poisons) })
		reasons := map[string]int{}
		for seq, d := range mine(es) {
			p := bySeq[seq]
			reasons[d.Reason]++
			if d.Reason != p.reason || d.Peer != "a" || d.Stream != "CHANGES_a" || d.Seq == 0 || d.ID == 0 {
				t.Errorf("site %s, %s (CHANGES_a:%d): reason %q peer %q stream %q seq %d id %d, want reason %q from a",
					site, p.name, seq, d.Reason, d.Peer, d.Stream, d.Seq, d.ID, p.reason)
			}
			if d.Bucket != p.bucket || d.Key != p.key {
				t.Errorf("site %s, %s: bucket/key %q/%q, want %q/%q", site, p.name, d.Bucket, d.Key, p.bucket, p.key)
			}
		}
		want := map[string]int{"bad-signature": 5, "decode": 1, "unknown-version": 1, "not-replicated": 1, "unauthorized": 1}
		if fmt.Sprint(reasons) != fmt.Sprint(want) {
			t.Errorf("site %s: reasons %v, want %v", site, reasons, want)
		}
	}

	// Drop one entry at b: refused without --yes, done with it.
	var victim dlqcliEntry
	for _, d := range mine(e.dlqcliList(t, "b")) {
		if d.Reason == "not-replicated" {
			victim = d
		}
	}
	if victim.ID == 0 {
		t.Fatal("site b: no not-replicated entry to drop")
	}
	listed := func() bool {
		for _, d := range e.dlqcliList(t, "b") {
			if d.ID == victim.ID {
				return true
			}
		}
		return false
	}
	id := strconv.FormatUint(victim.ID, 10)
	out, errOut, code := dlqcliRun(t, "dlq", "drop", id, "--lab", e.dlqcliLabJSON(), "--site", "b")
	if code == 0 || !strings.Contains(errOut, "--yes") {
		t.Errorf("dlq drop %s without --yes: exit %d, stdout %q, stderr %q; want a failure asking for --yes", id, code, out, errOut)
	}
	if !listed() {
		t.Fatalf("dlq drop %s without --yes removed the entry", id)
	}
	out, errOut, code = dlqcliRun(t, "dlq", "drop", id, "--yes", "--lab", e.dlqcliLabJSON(), "--site", "b")
	if code != 0 || !strings.Contains(out, "dropped") {
		t.Fatalf("dlq drop %s --yes: exit %d, stdout %q, stderr %q", id, code, out, errOut)
	}
	if listed() {
		t.Fatalf("dlq drop %s --yes: entry still listed", id)
	}
	// Leave the shared lab's DLQs as they were.
	for _, site := range []string{"b", "c"} {
		for _, d := range mine(e.dlqcliList(t, site)) {
			if _, errOut, code := dlqcliRun(t, "dlq", "drop", strconv.FormatUint(d.ID, 10), "--yes", "--lab", e.dlqcliLabJSON(), "--site", site); code != 0 {
				t.Errorf("cleanup: drop %d at %s: %s", d.ID, site, errOut)
			}
		}
	}
}

// dlqcliTwoSites is a 2-site lab with one lww bucket and a short retry budget.
func dlqcliTwoSites(t *testing.T) *env {
	return newEnv(t, func(o *lab.Options) {
		o.Sites = 2
		o.Buckets = []string{bucket}
		o.Conflicts = nil
		o.RetryBudget = 3 * time.Second
	})
}

// dlqcliDeadBigPut writes a 600 KiB object at a that b cannot fetch (a's S3
// is down when the record reaches b) and waits until b dead-letters it. It
// returns the body and b's DLQ entry; a's S3 is left stopped.
func (e *env) dlqcliDeadBigPut(t *testing.T, key string) ([]byte, dlqcliEntry) {
	t.Helper()
	ctl := func(verb string, args ...string) {
		t.Helper()
		if out, err := e.lab.Ctl(verb, args...); err != nil {
			t.Fatalf("lab ctl %s %v: %v %s", verb, args, err, out)
		}
	}
	body := randBytes(600 << 10) // above the inline threshold: b fetches it from a's S3
	ctl("cut", "a", "b")
	before := e.changesSeq(t, "a")
	e.put(t, "a", key, object{body: body})
	deadline := time.Now().Add(converge)
	for e.changesSeq(t, "a") == before {
		if time.Now().After(deadline) {
			t.Fatalf("a never published a record for %s", key)
		}
		time.Sleep(25 * time.Millisecond)
	}
	ctl("stop-s3", "a")
	ctl("heal", "a", "b")
	start := time.Now()
	var dl dlqcliEntry
	for {
		info, err := e.sites["b"].s3.Head(ctxT(t), bucket, key)
		if err != nil {
			t.Fatalf("head %s at b: %v", key, err)
		}
		if info.Exists {
			t.Fatalf("%s exists at b although a's S3 is down", key)
		}
		found := false
		for _, d := range e.dlqcliList(t, "b") {
			if d.Key == key {
				dl, found = d, true
			}
		}
		if found {
			break
		}
		if time.Since(start) > converge {
			t.Fatalf("b never dead-lettered %s", key)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("b dead-lettered %s after %v: reason %s, attempts %d, error %s", key, time.Since(start).Round(time.Millisecond), dl.Reason, dl.Attempts, dl.Error)
	// a's S3 refuses connections: a transient error from the only source,
	// so the retry budget runs out ("body-unavailable" would mean no site
	// could be asked yet none failed).
	if dl.Reason != "retry-budget" && dl.Reason != "body-unavailable" {
		t.Fatalf("%s dead-lettered at b with reason %q, want retry-budget or body-unavailable", key, dl.Reason)
	}
	if dl.Attempts < 2 || dl.Peer != "a" || dl.Stream != "CHANGES_a" || dl.Seq == 0 || dl.Bucket != bucket {
		t.Fatalf("dead letter %+v: want attempts >= 2 from a's CHANGES_a", dl)
	}
	return body, dl
}

// A body that cannot be fetched within the retry budget (the origin's S3 is
// down) is dead-lettered with reason retry-budget after a few attempts;
// once the S3 is back, `dlq retry --all` applies it and empties the queue.
func TestRetryBudgetThenDLQRetry(t *testing.T) {
	e := dlqcliTwoSites(t)
	const key = "budget/big-600k.bin"
	body, dl := e.dlqcliDeadBigPut(t, key)
	if dl.Reason != "retry-budget" {
		t.Errorf("reason %q, want retry-budget (a's S3 refusing connections is transient)", dl.Reason)
	}
	if out, err := e.lab.Ctl("start-s3", "a"); err != nil {
		t.Fatalf("start-s3 a: %v %s", err, out)
	}
	// Nothing but the retry brings it: the record was acked into the DLQ.
	if info, err := e.sites["b"].s3.Head(ctxT(t), bucket, key); err != nil || info.Exists {
		t.Fatalf("%s at b before the retry: exists %v err %v", key, info.Exists, err)
	}
	out, errOut, code := dlqcliRun(t, "dlq", "retry", "--all", "--lab", e.dlqcliLabJSON(), "--site", "b")
	if code != 0 || !strings.Contains(out, "apply") {
		t.Fatalf("dlq retry --all: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	sum, n, info, err := e.read(ctxT(t), "b", key)
	if err != nil || !info.Exists || sum != sha256.Sum256(body) {
		t.Fatalf("%s at b after retry: exists %v, %d bytes, same sha256 %v, err %v", key, info.Exists, n, sum == sha256.Sum256(body), err)
	}
	if es := e.dlqcliList(t, "b"); len(es) != 0 {
		t.Fatalf("b's DLQ after retry --all: %+v", es)
	}
}

// A later write of a key whose earlier version is dead-lettered is not
// blocked: it applies (it causally follows the dead one), the agent warns
// that the dead version is superseded, and retrying the dead letter then
// reports skip and removes it.
func TestDeadLetteredVersionSupersededByLaterWrite(t *testing.T) {
	e := dlqcliTwoSites(t)
	const key = "superseded/k"
	_, dl := e.dlqcliDeadBigPut(t, key)
	v1 := dl.VersionID
	if origin, tag, _, err := schema.ParseVersionID(v1); err != nil || origin != "a" || tag != schema.KeyTag(bucket, key) {
		t.Fatalf("dead letter version %q, want a version of %s written at a (%v)", v1, key, err)
	}
	if out, err := e.lab.Ctl("start-s3", "a"); err != nil {
		t.Fatalf("start-s3 a: %v %s", err, out)
	}
	v2 := object{body: []byte("v2, small and inline")}
	e.put(t, "a", key, v2)
	e.waitObject(t, key, v2, converge)

	var logPath string
	for _, s := range e.info.Sites {
		if s.Name == "b" {
			logPath = filepath.Join(s.LogDir, "agent.log")
		}
	}
	deadline := time.Now().Add(converge)
	for {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "dead-lettered version of this key is superseded") && strings.Contains(line, v1) {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no warning that dead-lettered %s is superseded", logPath, v1)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var entry dlqcliEntry
	for _, d := range e.dlqcliList(t, "b") {
		if d.VersionID == v1 {
			entry = d
		}
	}
	if entry.ID == 0 {
		t.Fatalf("b's DLQ lost the entry of %s once v2 applied", v1)
	}
	id := strconv.FormatUint(entry.ID, 10)
	out, errOut, code := dlqcliRun(t, "dlq", "retry", id, "--lab", e.dlqcliLabJSON(), "--site", "b")
	if code != 0 || strings.TrimSpace(out) != id+": skip" {
		t.Fatalf("dlq retry %s: exit %d, stdout %q, stderr %q; want %q", id, code, out, errOut, id+": skip")
	}
	for _, d := range e.dlqcliList(t, "b") {
		if d.ID == entry.ID {
			t.Fatalf("dlq retry %s reported skip but the entry stays", id)
		}
	}
	sum, _, info, err := e.read(ctxT(t), "b", key)
	if err != nil || !info.Exists || sum != sha256.Sum256(v2.body) {
		t.Fatalf("%s at b after the retry: exists %v, holds v2 %v, err %v", key, info.Exists, sum == sha256.Sum256(v2.body), err)
	}
}

func TestDLQCLIErrors(t *testing.T) {
	e := labEnv(t)
	lj := e.dlqcliLabJSON()
	cases := []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"show unknown id", []string{"dlq", "show", "999999", "--lab", lj, "--site", "a"}, []string{"no dead letter 999999", "site a"}},
		{"resolve without --pick", []string{"dlq", "resolve", "1", "--lab", lj, "--site", "a"}, []string{"--pick"}},
		{"list without a target", []string{"dlq", "list"}, []string{"--lab", "--config"}},
		{"conflicts of an unknown site", []string{"conflicts", "list", "--lab", lj, "--site", "zz"}, []string{"no site", "zz"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := dlqcliRun(t, c.args...)
			if code == 0 {
				t.Fatalf("s3mesh %s: exit 0 (stdout %q), want an error", strings.Join(c.args, " "), out)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("s3mesh %s: stderr %q lacks %q", strings.Join(c.args, " "), errOut, w)
				}
			}
		})
	}
}
