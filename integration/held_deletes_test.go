package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lab"
)

// heldList runs `s3mesh deletes list --json` at site.
func (e *env) heldList(t *testing.T, site string) []agent.HeldBatch {
	t.Helper()
	out, errOut, code := dlqcliRun(t, "deletes", "list", "--json", "--lab", e.dlqcliLabJSON(), "--site", site)
	if code != 0 {
		t.Fatalf("deletes list at %s: exit %d: %s", site, code, errOut)
	}
	var bs []agent.HeldBatch
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var b agent.HeldBatch
		if err := json.Unmarshal([]byte(line), &b); err != nil {
			t.Fatalf("deletes list at %s: %v: %q", site, err, line)
		}
		bs = append(bs, b)
	}
	return bs
}

// present returns which of keys site's store holds now (HEAD of each).
func (e *env) present(t *testing.T, site string, keys []string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, k := range keys {
		info, err := e.sites[site].s3.Head(ctxT(t), bucket, k)
		if err != nil {
			t.Fatalf("head %q at %s: %v", k, site, err)
		}
		if info.Exists {
			out[k] = true
		}
	}
	return out
}

// A peer deleting most of a bucket through S3 costs the other sites
// nothing until an operator decides: a and c hold b's deletes beyond
// deletes.max_fraction; a releases them (they apply there, into a's trash,
// from which one restored key comes back at every site), c discards
// them (c writes the objects again, and they come back at b and a).
func TestPeerMassDeleteHeldAtReceivers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *lab.Options) {
		o.Buckets = []string{bucket}
		o.Conflicts = nil
		o.Deletes = &config.Deletes{MaxFraction: 0.1, Min: 4}
	})
	const n = 40
	keys := make([]string, n)
	objs := map[string]object{}
	for i := range keys {
		keys[i] = fmt.Sprintf("mass/%02d", i)
		objs[keys[i]] = object{body: []byte("the bytes of " + keys[i])}
		e.put(t, "a", keys[i], objs[keys[i]])
	}
	for _, k := range keys {
		e.waitObject(t, k, objs[k], converge)
	}

	// Positive control: one delete, well under the limit, applies at once.
	e.del(t, "b", keys[0])
	e.waitAbsent(t, keys[0], converge)

	// b deletes 70% of the bucket.
	deleted := keys[1:28]
	for _, k := range deleted {
		e.del(t, "b", k)
	}
	e.quiesce(t, 2*time.Minute)
	if got := e.present(t, "b", deleted); len(got) != 0 {
		t.Fatalf("b still holds %d keys it deleted", len(got))
	}
	held := map[string]map[string]bool{}
	for _, s := range []string{"a", "c"} {
		held[s] = e.present(t, s, deleted)
		// At most the limit (4 in the window, the control delete
		// included) went through; every other key stays.
		if len(held[s]) < len(deleted)-3 {
			t.Fatalf("site %s kept only %d of the %d keys b deleted", s, len(held[s]), len(deleted))
		}
		bs := e.heldList(t, s)
		if len(bs) != 1 || bs[0].Peer != "b" || bs[0].Bucket != bucket || bs[0].Count != len(held[s]) || len(bs[0].FirstKeys) == 0 {
			t.Fatalf("deletes list at %s: %+v, want one batch of b in %s with the %d keys still there", s, bs, bucket, len(held[s]))
		}
		for _, k := range bs[0].FirstKeys {
			if !held[s][k] {
				t.Fatalf("deletes list at %s names %q, which is not there", s, k)
			}
		}
		t.Logf("site %s: %d of b's %d deletes held, listed as %+v", s, len(held[s]), len(deleted), bs[0])
		gauge := `s3mesh_deletes_held{bucket="` + bucket + `",peer="b"}`
		if got := metricValue(t, e.siteInfo(t, s).HTTPAddr, gauge); got != float64(len(held[s])) {
			t.Fatalf("site %s: %s is %v, want %d", s, gauge, got, len(held[s]))
		}
		st := e.siteStatus(t, s)
		if len(st.HeldDeletes) != 1 || st.HeldDeletes[0].Count != len(held[s]) {
			t.Fatalf("status at %s: held deletes %+v, want %d", s, st.HeldDeletes, len(held[s]))
		}
		if !strings.Contains(strings.Join(st.Warnings, "\n"), "deletes from b held") {
			t.Fatalf("status at %s warns nothing of the hold: %q", s, st.Warnings)
		}
	}

	// The hold is durable: c's agent killed and started again still holds
	// the same batch, and its deletes still do not apply.
	e.mustCtl(t, "kill", "c")
	e.mustCtl(t, "start", "c")
	deadline := time.Now().Add(converge)
	for {
		out, _, code := dlqcliRun(t, "deletes", "list", "--json", "--lab", e.dlqcliLabJSON(), "--site", "c")
		if code == 0 && strings.Contains(out, fmt.Sprintf(`"count":%d`, len(held["c"]))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c after a restart: deletes list %q (exit %d), want the batch of %d", out, code, len(held["c"]))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := e.present(t, "c", deleted); len(got) != len(held["c"]) {
		t.Fatalf("c holds %d of the deleted keys after a restart, want %d", len(got), len(held["c"]))
	}

	// a's dashboard shows the batch.
	pg := newPage(t, chromiumPath(t))
	pg.open("http://" + e.siteInfo(t, "a").HTTPAddr + "/")
	pg.waitFor("a's held deletes of b on the dashboard", fmt.Sprintf(
		`(() => { const r = document.querySelector('#held tr[data-peer="b"][data-bucket=%q]'); return !!r && r.children[2].textContent === "%d"; })()`,
		bucket, len(held["a"])), 30*time.Second)
	pg.checkProblems("showing held deletes")

	// Release at a: b's deletes apply there.
	if out, errOut, code := dlqcliRun(t, "deletes", "release", "--peer", "b", "--lab", e.dlqcliLabJSON(), "--site", "a"); code != 0 {
		t.Fatalf("release at a: exit %d: %s %s", code, out, errOut)
	}
	deadline = time.Now().Add(converge)
	for len(e.present(t, "a", deleted)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a still holds %v after the release", e.present(t, "a", deleted))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if bs := e.heldList(t, "a"); len(bs) != 0 {
		t.Fatalf("a still lists held deletes after the release: %+v", bs)
	}
	if got := metricValue(t, e.siteInfo(t, "a").HTTPAddr, `s3mesh_deletes_held{bucket="`+bucket+`",peer="b"}`); got != 0 {
		t.Fatalf("a's s3mesh_deletes_held after the release: %v", got)
	}

	// What the release deleted at a is in a's trash: restored there, one
	// key comes back at every site (a new write of a's).
	var restored string
	for k := range held["a"] {
		restored = k
		break
	}
	e.waitTrashed(t, "a", bucket, restored, "delete")
	if out, errOut, code := dlqcliRun(t, "trash", "restore", "--lab", e.dlqcliLabJSON(), "--site", "a", "--bucket", bucket, "--key", restored); code != 0 {
		t.Fatalf("trash restore of %s at a: exit %d: %s %s", restored, code, out, errOut)
	}
	e.waitObject(t, restored, objs[restored], converge)

	// Discard at c: c writes the objects it held again; they come back
	// at b, which deleted them, and at a, which applied the deletes.
	if out, errOut, code := dlqcliRun(t, "deletes", "discard", "--peer", "b", "--lab", e.dlqcliLabJSON(), "--site", "c"); code != 0 {
		t.Fatalf("discard at c: exit %d: %s %s", code, out, errOut)
	}
	for k := range held["c"] {
		e.waitObject(t, k, objs[k], converge)
	}
	if bs := e.heldList(t, "c"); len(bs) != 0 {
		t.Fatalf("c still lists held deletes after the discard: %+v", bs)
	}
	// The deletes c had applied before the hold stay applied everywhere.
	e.quiesce(t, 2*time.Minute)
	back := maps.Clone(held["c"])
	back[restored] = true
	for _, s := range e.names {
		got := e.present(t, s, keys[:28])
		if len(got) != len(back) {
			t.Fatalf("site %s holds %d of the deleted keys, want the %d c brought back or a restored", s, len(got), len(back))
		}
		for k := range got {
			if !back[k] {
				t.Fatalf("site %s holds %q, which c had let b delete and a did not restore", s, k)
			}
		}
	}
	e.verifyConverged(t, bucket)
}
