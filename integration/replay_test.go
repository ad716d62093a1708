package integration

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/lab"
)

// Site c's configuration leaves bucket demo out, so a's records of it go to
// c's DLQ as not-replicated. Once c replicates the bucket again, `s3mesh
// replay` takes them from c's mirror of CHANGES_a: a dry run foresees what
// the replay does and writes nothing; the replay applies them (c holds a's
// bytes) and settles their dead letters, in requests of two records; a
// second replay skips them all.
func TestReplayAfterWrongBucketConfiguration(t *testing.T) {
	t.Parallel() // a lab of its own: see parallelTests
	e := newEnv(t, func(o *lab.Options) {
		o.Buckets = []string{bucket, "other"}
		o.Conflicts = nil
	})
	var cfgPath string
	for _, s := range e.info.Sites {
		if s.Name == "c" {
			cfgPath = s.Config
		}
	}
	good, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^[ \t]*- name: ` + bucket + `\n`)
	if n := len(line.FindAll(good, -1)); n != 1 {
		t.Fatalf("%s: %d lines naming bucket %s, want 1:\n%s", cfgPath, n, bucket, good)
	}
	restartC := func(cfg []byte) {
		t.Helper()
		if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, verb := range []string{"kill", "start"} {
			if out, err := e.lab.Ctl(verb, "c"); err != nil {
				t.Fatalf("lab ctl %s c: %v %s", verb, err, out)
			}
		}
	}
	restartC(line.ReplaceAll(good, nil))

	// Five records: k0 twice (the second write once b holds the first), k1..k3 once.
	from := e.changesSeq(t, "a") + 1
	final := map[string][]byte{}
	write := func(key, body string) {
		t.Helper()
		e.put(t, "a", key, object{body: []byte(body)})
		final[key] = []byte(body)
		e.replayWaitAt(t, "b", key, final[key])
	}
	write("replay/k0", "k0 first")
	for i := range 4 {
		write(fmt.Sprintf("replay/k%d", i), fmt.Sprintf("k%d from a", i))
	}
	const records = 5
	ours := func(es []dlqcliEntry) (n int) {
		for _, d := range es {
			if d.Stream == broker.ChangesStream("a") && d.Seq >= from && d.Reason == "not-replicated" && d.Bucket == bucket {
				n++
			}
		}
		return n
	}
	e.dlqcliWait(t, "c", converge, "a's 5 records as not-replicated", func(es []dlqcliEntry) bool { return ours(es) == records })
	if got := e.changesSeq(t, "a") - from + 1; got != records {
		t.Fatalf("a published %d records for the 5 writes, want %d", got, records)
	}
	absentAtC := func(when string) {
		t.Helper()
		for key := range final {
			if info, err := e.sites["c"].s3.Head(ctxT(t), bucket, key); err != nil || info.Exists {
				t.Fatalf("%s: %s at c: exists %v, err %v; want absent", when, key, info.Exists, err)
			}
		}
	}
	absentAtC("while c does not replicate " + bucket)
	restartC(good)

	lj := e.dlqcliLabJSON()
	args := []string{"replay", "--lab", lj, "--site", "c", "--peer", "a", "--from-seq", strconv.FormatUint(from, 10)}
	replay := func(extra ...string) agent.ReplayResult {
		t.Helper()
		start := time.Now()
		out, errOut, code := dlqcliRun(t, append(append(args, extra...), "--json")...)
		t.Logf("s3mesh replay %v: %v", extra, time.Since(start).Round(time.Millisecond))
		if code != 0 {
			t.Fatalf("s3mesh replay %v: exit %d: %s", extra, code, errOut)
		}
		var r agent.ReplayResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("s3mesh replay %v: %v in %q", extra, err, out)
		}
		if !r.Done || r.Read != records || r.FromSeq != from || r.Stream != "CHANGES_a" || r.Site != "c" {
			t.Errorf("s3mesh replay %v: %+v; want done, %d records from CHANGES_a:%d at c", extra, r, records, from)
		}
		return r
	}

	dry := replay("--dry-run")
	if want := (agent.ReplayCounts{Applied: records, Settled: records}); !reflect.DeepEqual(dry.Counts, want) || !dry.DryRun {
		t.Errorf("dry run: %+v (dry_run %v), want %+v", dry.Counts, dry.DryRun, want)
	}
	absentAtC("after the dry run")
	if n := ours(e.dlqcliList(t, "c")); n != records {
		t.Errorf("after the dry run c's DLQ holds %d of the dead letters, want all %d", n, records)
	}

	got := replay("--batch", "2") // three requests: the CLI continues where each stops
	if !reflect.DeepEqual(got.Counts, dry.Counts) || got.DryRun {
		t.Errorf("replay: %+v, want what the dry run foresaw: %+v", got.Counts, dry.Counts)
	}
	for key, body := range final {
		sum, _, info, err := e.read(ctxT(t), "c", key)
		if err != nil || !info.Exists || sum != sha256.Sum256(body) {
			t.Errorf("%s at c after the replay: exists %v, a's bytes %v, err %v", key, info.Exists, sum == sha256.Sum256(body), err)
		}
	}
	if n := ours(e.dlqcliList(t, "c")); n != 0 {
		t.Errorf("after the replay c's DLQ still holds %d of the dead letters", n)
	}

	// Idempotent: everything is held now, and a dry run says so first.
	if dry := replay("--dry-run"); !reflect.DeepEqual(dry.Counts, agent.ReplayCounts{Skipped: records}) {
		t.Errorf("second dry run: %+v, want %d skipped", dry.Counts, records)
	}
	out, errOut, code := dlqcliRun(t, "replay", "--lab", lj, "--site", "c", "--peer", "a", "--since", "1h", "--dry-run", "--json")
	var since agent.ReplayResult
	if err := json.Unmarshal([]byte(out), &since); code != 0 || err != nil || since.FromSeq != from || !reflect.DeepEqual(since.Counts, agent.ReplayCounts{Skipped: records}) {
		t.Errorf("dry run --since 1h: exit %d, %+v (%v), stderr %s; want the %d records from seq %d, skipped", code, since, err, errOut, records, from)
	}
	out, errOut, code = dlqcliRun(t, args...)
	for _, row := range []string{`applied\s+0`, `skipped\s+` + strconv.Itoa(records), `dead-lettered\s+0`} {
		if !regexp.MustCompile(`(?m)^\s+` + row + `$`).MatchString(out) {
			t.Errorf("second replay: exit %d, output lacks %q:\n%s%s", code, row, out, errOut)
		}
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--lab", lj, "--site", "c", "--peer", "zz", "--from-seq", "1"}, `no peer "zz"`},
		{[]string{"replay", "--lab", lj, "--site", "c", "--peer", "a", "--from-seq", "1000000"}, "beyond the end of CHANGES_a"},
		{[]string{"replay", "--lab", lj, "--site", "c", "--peer", "a", "--since", "yesterday"}, "--since"},
		{[]string{"replay", "--lab", lj, "--site", "c", "--peer", "a"}, "--from-seq N or --since"},
	} {
		if out, errOut, code := dlqcliRun(t, c.args...); code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("s3mesh %s: exit %d, stdout %q, stderr %q; want an error naming %q", strings.Join(c.args[1:], " "), code, out, errOut, c.want)
		}
	}
}

// replayWaitAt polls site until key holds body.
func (e *env) replayWaitAt(t *testing.T, site, key string, body []byte) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for {
		sum, _, info, err := e.read(ctxT(t), site, key)
		if err == nil && info.Exists && sum == sha256.Sum256(body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %q at %s (exists %v, err %v)", key, body, site, info.Exists, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
