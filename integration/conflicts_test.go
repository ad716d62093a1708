package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

func (e *env) putIn(t *testing.T, site, bkt, key string, body []byte) {
	t.Helper()
	if _, err := e.sites[site].s3.Put(ctxT(t), s3io.PutInput{Bucket: bkt, Key: key, Body: bytes.NewReader(body), Size: int64(len(body))}); err != nil {
		t.Fatalf("put %s/%s at %s: %v", bkt, key, site, err)
	}
}

// bodyAt returns the bytes at site (nil, false if absent).
func (e *env) bodyAt(t *testing.T, site, bkt, key string) ([]byte, bool) {
	t.Helper()
	// A read racing an overwrite in a store whose overwrites are not
	// atomic (rclone serve s3) ends early: read again, a few times.
	for attempt := 1; ; attempt++ {
		rc, _, err := e.sites[site].s3.Get(ctxT(t), bkt, key, "")
		if s3io.Classify(err) == s3io.NotFound {
			return nil, false
		}
		if err != nil {
			t.Fatalf("get %s/%s at %s: %v", bkt, key, site, err)
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(rc)
		rc.Close()
		if err == nil {
			return buf.Bytes(), true
		}
		if attempt == 5 {
			t.Fatalf("get %s/%s at %s: %v (5 attempts)", bkt, key, site, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agreed waits until every site holds the same bytes for key (or none) and
// returns them.
func (e *env) agreed(t *testing.T, bkt, key string, timeout time.Duration) ([]byte, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		first, ok := e.bodyAt(t, e.names[0], bkt, key)
		same := true
		var diff string
		for _, s := range e.names[1:] {
			b, ok2 := e.bodyAt(t, s, bkt, key)
			if ok2 != ok || !bytes.Equal(b, first) {
				same = false
				diff = fmt.Sprintf("%s has %q (exists %v), %s has %q (exists %v)", e.names[0], first, ok, s, b, ok2)
				break
			}
		}
		if same {
			return first, ok
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s: sites disagree after %v: %s", bkt, key, timeout, diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) cutAll(t *testing.T, do string) {
	t.Helper()
	for i, x := range e.names {
		for _, y := range e.names[i+1:] {
			if out, err := e.lab.Ctl(do, x, y); err != nil {
				t.Fatalf("%s %s %s: %v %s", do, x, y, err, out)
			}
		}
	}
}

// waitPublished waits until each site published n more records than before.
func (e *env) waitPublished(t *testing.T, before map[string]uint64, n map[string]int) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for _, s := range e.names {
		for e.changesSeq(t, s) < before[s]+uint64(n[s]) {
			if time.Now().After(deadline) {
				t.Fatalf("site %s published %d records, want %d", s, e.changesSeq(t, s)-before[s], n[s])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// conflictLog reads site's conflict log entries for bkt/key prefix.
func (e *env) conflictLog(t *testing.T, site, bkt, prefix string) []schema.ConflictEntry {
	t.Helper()
	out, err := exec.Command(testenv.S3meshBin(t), "conflicts", "list", "--lab", e.info.Dir+"/lab.json", "--site", site, "--bucket", bkt, "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("conflicts list at %s: %v\n%s", site, err, out)
	}
	var es []schema.ConflictEntry
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var c schema.ConflictEntry
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("conflicts list output %q: %v", line, err)
		}
		for _, f := range []string{`"bucket"`, `"key"`, `"policy"`, `"winner"`, `"loser"`, `"decided_at"`} {
			if !strings.Contains(line, f) {
				t.Fatalf("conflicts list JSON lacks %s: %s", f, line)
			}
		}
		if strings.HasPrefix(c.Key, prefix) {
			es = append(es, c)
		}
	}
	return es
}

// Three sites cut off from each other write different content to the same
// keys; after the heal every site holds the same bytes, every site's log
// names the same final winner, and each losing version is kept as an object
// (written once, by its origin) that replicates everywhere.
func TestConcurrentWritesConvergeLWWAndKeepLosers(t *testing.T) {
	testConcurrentWritesConvergeLWWAndKeepLosers(t, labEnv(t))
}

func testConcurrentWritesConvergeLWWAndKeepLosers(t *testing.T, e *env) {
	keys := []string{"conf/k1", "conf/k2", "conf/dir/k3"}
	before := e.seqs(t)
	e.cutAll(t, "cut")
	for _, k := range keys {
		for _, s := range []string{"c", "b", "a"} {
			e.putIn(t, s, bucket, k, []byte(k+" written at "+s))
		}
	}
	e.waitPublished(t, before, map[string]int{"a": 3, "b": 3, "c": 3})
	e.cutAll(t, "heal")
	e.quiesce(t, converge)
	for _, k := range keys {
		final, ok := e.agreed(t, bucket, k, converge)
		if !ok {
			t.Fatalf("%s vanished", k)
		}
		winner := string(final[len(final)-1])
		for _, s := range e.names {
			log := e.conflictLog(t, s, bucket, k)
			var last *schema.ConflictEntry
			for i := range log {
				if log[i].Key == k {
					last = &log[i]
				}
			}
			if last == nil {
				t.Fatalf("site %s logged no conflict for %s", s, k)
			}
			if last.Winner.Origin != winner || last.Policy != "lww" {
				t.Errorf("site %s: last conflict for %s names winner %s (policy %s), the sites hold %s's version", s, k, last.Winner.Origin, last.Policy, winner)
			}
		}
		// Every losing version is in some log and kept as an object at every site.
		for _, loser := range e.names {
			if loser == winner {
				continue
			}
			kept := ""
			for _, s := range e.names {
				for _, c := range e.conflictLog(t, s, bucket, k) {
					if c.Key == k && c.Loser.Origin == loser && c.LoserKeptAs != "" {
						kept = c.LoserKeptAs
					}
				}
			}
			if kept == "" {
				t.Fatalf("%s's version of %s is in no conflict log as a kept loser", loser, k)
			}
			e.waitObjectIn(t, bucket, kept, []byte(k+" written at "+loser))
		}
	}
}

func (e *env) waitObjectIn(t *testing.T, bkt, key string, want []byte) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for _, s := range e.names {
		for {
			b, ok := e.bodyAt(t, s, bkt, key)
			if ok && bytes.Equal(b, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("site %s: %s/%s holds %q (exists %v), want %q", s, bkt, key, b, ok, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Under site-priority [b, a, c], b's version wins although it is not the
// newest.
func TestSitePriorityWins(t *testing.T) { testSitePriorityWins(t, labEnv(t)) }

func testSitePriorityWins(t *testing.T, e *env) {
	before := e.seqs(t)
	e.cutAll(t, "cut")
	e.putIn(t, "b", "prio", "p/k", []byte("from b, first"))
	e.putIn(t, "c", "prio", "p/k", []byte("from c, second"))
	e.putIn(t, "a", "prio", "p/k", []byte("from a, last"))
	e.waitPublished(t, before, map[string]int{"a": 1, "b": 1, "c": 1})
	e.cutAll(t, "heal")
	e.quiesce(t, converge)
	got, ok := e.agreed(t, "prio", "p/k", converge)
	if !ok || string(got) != "from b, first" {
		t.Fatalf("sites hold %q, want b's version", got)
	}
	for _, s := range e.names {
		for _, c := range e.conflictLog(t, s, "prio", "p/k") {
			if c.Policy != "site-priority" {
				t.Errorf("site %s logged policy %q", s, c.Policy)
			}
		}
	}
}

// delete-vs-put both ways: with delete-wins the delete beats a later put,
// with put-wins the put beats a later delete.
func TestDeleteVersusPut(t *testing.T) { testDeleteVersusPut(t, labEnv(t)) }

func testDeleteVersusPut(t *testing.T, e *env) {
	for _, bkt := range []string{"delwins", "putwins"} {
		e.putIn(t, "a", bkt, "dv/k", []byte("original"))
		e.waitObjectIn(t, bkt, "dv/k", []byte("original"))
	}
	e.quiesce(t, converge)
	before := e.seqs(t)
	e.cutAll(t, "cut")
	// delete-wins: a deletes first, b puts later.
	if err := e.sites["a"].s3.Delete(ctxT(t), "delwins", "dv/k", ""); err != nil {
		t.Fatal(err)
	}
	e.putIn(t, "b", "delwins", "dv/k", []byte("put at b after the delete"))
	// put-wins: b puts first, a deletes later.
	e.putIn(t, "b", "putwins", "dv/k", []byte("put at b before the delete"))
	if err := e.sites["a"].s3.Delete(ctxT(t), "putwins", "dv/k", ""); err != nil {
		t.Fatal(err)
	}
	e.waitPublished(t, before, map[string]int{"a": 2, "b": 2})
	e.cutAll(t, "heal")
	e.quiesce(t, converge)
	if b, ok := e.agreed(t, "delwins", "dv/k", converge); ok {
		t.Errorf("delete-wins: sites hold %q, want the key deleted", b)
	}
	if b, ok := e.agreed(t, "putwins", "dv/k", converge); !ok || string(b) != "put at b before the delete" {
		t.Errorf("put-wins: sites hold %q (exists %v), want b's put", b, ok)
	}
}

// Under manual, a conflict is parked in the DLQ and nothing changes until an
// operator picks a version with `s3mesh dlq resolve`; then every site
// converges on it and the remaining entries retry as superseded.
func TestManualConflictParkedThenResolved(t *testing.T) {
	testManualConflictParkedThenResolved(t, labEnv(t))
}

func testManualConflictParkedThenResolved(t *testing.T, e *env) {
	e.putIn(t, "a", "manual", "m/k", []byte("v1"))
	e.waitObjectIn(t, "manual", "m/k", []byte("v1"))
	e.quiesce(t, converge)
	before := e.seqs(t)
	e.cutAll(t, "cut")
	e.putIn(t, "a", "manual", "m/k", []byte("v2 at a"))
	e.putIn(t, "b", "manual", "m/k", []byte("v2 at b"))
	e.waitPublished(t, before, map[string]int{"a": 1, "b": 1})
	e.cutAll(t, "heal")
	e.quiesce(t, converge)
	if b, _ := e.bodyAt(t, "a", "manual", "m/k"); string(b) != "v2 at a" {
		t.Fatalf("a's object changed to %q while the conflict is parked", b)
	}
	if b, _ := e.bodyAt(t, "b", "manual", "m/k"); string(b) != "v2 at b" {
		t.Fatalf("b's object changed to %q while the conflict is parked", b)
	}
	id := e.parkedID(t, "a", "m/k")
	out, err := exec.Command(testenv.S3meshBin(t), "dlq", "resolve", fmt.Sprint(id), "--pick", "b", "--lab", e.info.Dir+"/lab.json", "--site", "a").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "resolved as a.") {
		t.Fatalf("dlq resolve: %v\n%s", err, out)
	}
	got, ok := e.agreed(t, "manual", "m/k", converge)
	if !ok || string(got) != "v2 at b" {
		t.Fatalf("after resolve the sites hold %q", got)
	}
	e.quiesce(t, converge)
	// Retry the parked entries of m/k (a shared lab's DLQ may hold others
	// that stay, such as a key a store cannot hold).
	for _, s := range []string{"b", "c"} {
		for _, l := range e.dlqList(t, s) {
			if l.Key != "m/k" || l.Bucket != "manual" {
				continue
			}
			out, err := exec.Command(testenv.S3meshBin(t), "dlq", "retry", fmt.Sprint(l.ID), "--lab", e.info.Dir+"/lab.json", "--site", s).CombinedOutput()
			if err != nil {
				t.Fatalf("dlq retry %d at %s: %v\n%s", l.ID, s, err, out)
			}
		}
	}
	for _, s := range e.names {
		if n := e.parkedCount(t, s, "m/k"); n != 0 {
			t.Errorf("site %s still has %d parked entries for m/k", s, n)
		}
	}
}

type dlqLine struct {
	ID     uint64 `json:"id"`
	Reason string `json:"reason"`
	Key    string `json:"key"`
	Bucket string `json:"bucket"`
}

func (e *env) dlqList(t *testing.T, site string) []dlqLine {
	t.Helper()
	out, err := exec.Command(testenv.S3meshBin(t), "dlq", "list", "--json", "--lab", e.info.Dir+"/lab.json", "--site", site).CombinedOutput()
	if err != nil {
		t.Fatalf("dlq list at %s: %v\n%s", site, err, out)
	}
	var ls []dlqLine
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var l dlqLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("dlq list output %q: %v", line, err)
		}
		ls = append(ls, l)
	}
	return ls
}

func (e *env) parkedID(t *testing.T, site, key string) uint64 {
	t.Helper()
	for _, l := range e.dlqList(t, site) {
		if l.Key == key && l.Reason == "manual-conflict" {
			return l.ID
		}
	}
	t.Fatalf("site %s has no parked conflict for %s: %+v", site, key, e.dlqList(t, site))
	return 0
}

func (e *env) parkedCount(t *testing.T, site, key string) int {
	n := 0
	for _, l := range e.dlqList(t, site) {
		if l.Key == key && l.Bucket == "manual" {
			n++
		}
	}
	return n
}
