package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/producer"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// trashAll is the bucket of TestTrash whose trash also keeps what peers'
// overwrites replace (trash: all); bucket keeps deletes only (the default).
const trashAll = "trashall"

// trashRetention is TestTrash's trash.retention: long enough for the test
// to look at every entry before it expires, short enough to see the purge.
const trashRetention = 60 * time.Second

// TestTrash: on a real three-site lab, what a peer's delete removes is in
// the other sites' trash with its bytes; `s3mesh trash restore` at one site
// brings the key back at every site; an overwrite is kept under trash: all
// and not under the default; the scanner purges what is past the retention.
func TestTrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *lab.Options) {
		o.Buckets = []string{bucket, trashAll}
		o.Trash = map[string]string{trashAll: "all"}
		o.TrashRetention = trashRetention
	})

	// A delete at b is kept at a and c, with its bytes and whose record it was.
	const key = "trash/doc one.txt"
	doc := object{body: []byte("the only copy of a report"), attrs: s3io.Attrs{ContentType: "text/plain", Meta: map[string]string{"author": "ann"}}}
	e.put(t, "a", key, doc)
	e.waitObject(t, key, doc, time.Minute)
	e.del(t, "b", key)
	e.waitAbsent(t, key, time.Minute)
	for _, s := range []string{"a", "c"} {
		te := e.waitTrashed(t, s, bucket, key, "delete")
		if te.Peer != "b" || te.Size != int64(len(doc.body)) || !strings.HasPrefix(te.VersionID, "a.") {
			t.Fatalf("site %s's trash entry of %q: %+v; want b's delete of a's version, %d bytes", s, key, te, len(doc.body))
		}
		if got := e.readAt(t, s, bucket, te.TrashKey); got != sha256.Sum256(doc.body) {
			t.Fatalf("site %s's trash copy %s does not hold the deleted bytes", s, te.TrashKey)
		}
	}
	// The trash never replicates: once nothing is in flight, each of a and
	// c holds its own one copy, and b, which deleted the key, none.
	e.quiesce(t, time.Minute)
	for s, want := range map[string]int{"a": 1, "b": 0, "c": 1} {
		if es := e.trashList(t, s, bucket); len(es) != want {
			t.Fatalf("site %s's trash holds %d objects, want %d: %+v", s, len(es), want, es)
		}
	}

	// Status counts it (as of the bucket's last look at its trash).
	e.waitTrashStatus(t, "a", "counting the kept object", func(ts producer.TrashStatus) bool {
		return ts.Objects == 1 && ts.Bytes == int64(len(doc.body))
	}, bucket)

	// Restored at a, the key is back at every site, bytes and attributes.
	out, errOut, code := dlqcliRun(t, "trash", "restore", "--lab", e.dlqcliLabJSON(), "--site", "a", "--bucket", bucket, "--key", key)
	if code != 0 {
		t.Fatalf("trash restore: exit %d: %s%s", code, out, errOut)
	}
	e.waitObject(t, key, doc, time.Minute)
	// A second restore would replace what is there now: refused.
	if _, errOut, code := dlqcliRun(t, "trash", "restore", "--lab", e.dlqcliLabJSON(), "--site", "c", "--bucket", bucket, "--key", key); code == 0 || !strings.Contains(errOut, "--force") {
		t.Fatalf("restore over a present object: exit %d, %q; want a refusal naming --force", code, errOut)
	}

	// An overwrite by b: kept at a and c under trash: all, not under the default.
	const ow = "trash/overwritten"
	v1, v2 := []byte("first version"), []byte("second version, from b")
	for _, bk := range []string{bucket, trashAll} {
		e.putIn(t, "a", bk, ow, v1)
	}
	e.waitBytes(t, bucket, ow, v1)
	e.waitBytes(t, trashAll, ow, v1)
	for _, bk := range []string{bucket, trashAll} {
		e.putIn(t, "b", bk, ow, v2)
	}
	e.waitBytes(t, bucket, ow, v2)
	e.waitBytes(t, trashAll, ow, v2)
	for _, s := range []string{"a", "c"} {
		te := e.waitTrashed(t, s, trashAll, ow, "overwrite")
		if te.Peer != "b" || e.readAt(t, s, trashAll, te.TrashKey) != sha256.Sum256(v1) {
			t.Fatalf("site %s kept %+v for b's overwrite, want the first version's bytes", s, te)
		}
		// The copy comes before the replica write, which every site shows
		// by now: none was made under the default.
		for _, te := range e.trashList(t, s, bucket) {
			if te.Key == ow {
				t.Fatalf("site %s kept an overwrite under trash: deletes: %+v", s, te)
			}
		}
	}

	// Past the retention the scanner purges every entry.
	for _, s := range []string{"a", "c"} {
		e.waitTrashStatus(t, s, "empty after the retention", func(ts producer.TrashStatus) bool {
			return ts.Objects == 0 && ts.Bytes == 0
		}, bucket, trashAll)
		if es := append(e.trashList(t, s, bucket), e.trashList(t, s, trashAll)...); len(es) != 0 {
			t.Fatalf("site %s's trash still holds %+v after the retention", s, es)
		}
	}
}

// trashList reads site's trash of bkt through the CLI.
func (e *env) trashList(t *testing.T, site, bkt string) []agent.TrashEntry {
	t.Helper()
	out, errOut, code := dlqcliRun(t, "trash", "list", "--lab", e.dlqcliLabJSON(), "--site", site, "--bucket", bkt, "--json")
	if code != 0 {
		t.Fatalf("trash list --site %s: exit %d: %s", site, code, errOut)
	}
	var es []agent.TrashEntry
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var te agent.TrashEntry
		if err := dec.Decode(&te); err != nil {
			t.Fatalf("trash list --site %s: %v in %q", site, err, out)
		}
		es = append(es, te)
	}
	return es
}

// waitTrashed polls site's trash of bkt until it holds an entry of key made
// by op, and returns it.
func (e *env) waitTrashed(t *testing.T, site, bkt, key, op string) agent.TrashEntry {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var seen []agent.TrashEntry
		for _, te := range e.trashList(t, site, bkt) {
			if te.Key == key && te.Op == op {
				return te
			}
			seen = append(seen, te)
		}
		if time.Now().After(deadline) {
			t.Fatalf("site %s's trash of %s has no %s of %q after a minute: %+v", site, bkt, op, key, seen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readAt is the SHA-256 of bkt/key's bytes at site (fails the test if absent).
func (e *env) readAt(t *testing.T, site, bkt, key string) [32]byte {
	t.Helper()
	body, ok := e.bodyAt(t, site, bkt, key)
	if !ok {
		t.Fatalf("%s/%s is absent at %s", bkt, key, site)
	}
	return sha256.Sum256(body)
}

// waitBytes polls every site until bkt/key holds body.
func (e *env) waitBytes(t *testing.T, bkt, key string, body []byte) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, s := range e.names {
		for {
			got, _ := e.bodyAt(t, s, bkt, key)
			if bytes.Equal(got, body) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("site %s: %s/%s holds %q, want %q", s, bkt, key, got, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// waitTrashStatus polls site's status until the trash of each of bkts is
// as ok says (within the retention and two scans).
func (e *env) waitTrashStatus(t *testing.T, site, what string, ok func(producer.TrashStatus) bool, bkts ...string) {
	t.Helper()
	deadline := time.Now().Add(trashRetention + 90*time.Second)
	for {
		st := e.siteStatus(t, site)
		good := 0
		for _, ts := range st.Trash {
			if slices.Contains(bkts, ts.Bucket) && ok(ts) {
				good++
			}
		}
		if good == len(bkts) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("site %s's trash status of %v is not %s: %+v", site, bkts, what, st.Trash)
		}
		time.Sleep(time.Second)
	}
}

// TestTrashVersioned: where the store versions a bucket (site a's
// versitygw, with versioning enabled on the bucket), the agent copies
// nothing to the trash and says so in status; the peer's delete leaves a
// noncurrent version there, which `trash list` shows and `trash restore
// --version` brings back at every site. Site c, unversioned, keeps a trash
// copy as usual.
func TestTrashVersioned(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *lab.Options) {
		o.Buckets = []string{bucket}
		o.Versioning = true
	})
	if _, err := e.sites["a"].raw.PutBucketVersioning(ctxT(t), &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatalf("enable versioning at a: %v", err)
	}
	// The scanner looks at the bucket's versioning at each scan.
	deadline := time.Now().Add(time.Minute)
	for !e.trashVersioned(t, "a") {
		if time.Now().After(deadline) {
			t.Fatalf("site a's status does not say the store versions %s: %+v", bucket, e.siteStatus(t, "a").Trash)
		}
		time.Sleep(time.Second)
	}
	if e.trashVersioned(t, "c") {
		t.Fatalf("site c's status says its store versions %s; only a's does", bucket)
	}

	const key = "versioned/plan.txt"
	doc := object{body: []byte("the plan, version one"), attrs: s3io.Attrs{ContentType: "text/plain", Meta: map[string]string{"owner": "bo"}}}
	e.put(t, "c", key, doc)
	e.waitObject(t, key, doc, time.Minute)
	e.del(t, "b", key)
	e.waitAbsent(t, key, time.Minute)

	// c copied it to its trash; a copied nothing, its store keeps the version.
	e.waitTrashed(t, "c", bucket, key, "delete")
	var old agent.TrashEntry
	for _, te := range e.trashList(t, "a", bucket) {
		if !te.Versioned {
			t.Fatalf("site a made a trash copy in a versioned bucket: %+v", te)
		}
		if te.Key == key {
			old = te
		}
	}
	if err := e.sites["a"].s3.ListPrefix(ctxT(t), bucket, schema.TrashPrefix, func(le s3io.ListEntry) error {
		return fmt.Errorf("site a holds trash object %s in a bucket its store versions", le.Key)
	}); err != nil {
		t.Fatal(err)
	}
	if old.VersionID == "" || old.Size != int64(len(doc.body)) {
		t.Fatalf("site a's trash list shows no noncurrent version of %q: %+v", key, e.trashList(t, "a", bucket))
	}
	out, errOut, code := dlqcliRun(t, "trash", "restore", "--lab", e.dlqcliLabJSON(), "--site", "a", "--bucket", bucket, "--key", key, "--version", old.VersionID)
	if code != 0 {
		t.Fatalf("trash restore --version %s: exit %d: %s%s", old.VersionID, code, out, errOut)
	}
	e.waitObject(t, key, doc, time.Minute)
}

// trashVersioned reports whether site's status says its store versions
// the test bucket.
func (e *env) trashVersioned(t *testing.T, site string) bool {
	t.Helper()
	for _, ts := range e.siteStatus(t, site).Trash {
		if ts.Bucket == bucket {
			return ts.Versioned
		}
	}
	return false
}

// TestTrashCrash: site a's agent is SIGKILLed between the trash copy of a
// key c deleted and the replica delete. The copy is there and the key too
// while a is down; restarted, a deletes the key, and its trash holds the
// deleted bytes (once or, copied again, twice): neither the copy nor the
// write is lost.
func TestTrashCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *lab.Options) { o.Buckets = []string{bucket} })
	const key = "crash/ledger.csv"
	doc := object{body: []byte("date,amount\n2026-12-08,42\n")}
	e.put(t, "b", key, doc)
	e.waitObject(t, key, doc, time.Minute)
	e.setHooks(t, "a", "crash-after-trash=1\n")
	t.Cleanup(func() { e.setHooks(t, "a", "") })
	e.del(t, "c", key)
	if !e.waitAgentDown(t, "a", time.Minute) {
		t.Fatal("the crash-after-trash hook of a never fired")
	}
	trashAt := func() []string {
		var keys []string
		if err := e.sites["a"].s3.ListPrefix(ctxT(t), bucket, schema.TrashPrefix, func(le s3io.ListEntry) error {
			keys = append(keys, le.Key)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if info, err := e.sites["a"].s3.Head(ctxT(t), bucket, key); err != nil || !info.Exists {
		t.Fatalf("a died before its replica delete, yet the key is gone there (err %v)", err)
	}
	if keys := trashAt(); len(keys) != 1 {
		t.Fatalf("a died right after its trash copy, yet its trash holds %q", keys)
	}
	e.setHooks(t, "a", "") // restart on the same state, without the hook
	e.waitAbsent(t, key, time.Minute)
	keys := trashAt()
	if len(keys) < 1 || len(keys) > 2 {
		t.Fatalf("after the restart a's trash holds %q, want the copy (and maybe a second one)", keys)
	}
	for _, k := range keys {
		if e.readAt(t, "a", bucket, k) != sha256.Sum256(doc.body) {
			t.Fatalf("trash copy %s does not hold the deleted bytes", k)
		}
	}
	if te := e.waitTrashed(t, "a", bucket, key, "delete"); te.Peer != "c" {
		t.Fatalf("a's trash entry %+v: want c's delete", te)
	}
}
