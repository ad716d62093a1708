package integration

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

const converge = 60 * time.Second

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// seqs snapshots every site's CHANGES sequence, to count the records a test
// caused.
func (e *env) seqs(t *testing.T) map[string]uint64 {
	m := map[string]uint64{}
	for _, n := range e.names {
		m[n] = e.changesSeq(t, n)
	}
	return m
}

// checkPartLayout asserts that site's last record is of key and, if its
// ETag is a multipart one, is schema 3 with parts of partSize bytes
// (otherwise schema 2 without a layout).
func (e *env) checkPartLayout(t *testing.T, site, key string, partSize int64) {
	t.Helper()
	ctx := ctxT(t)
	st, err := e.sites[site].js.Stream(ctx, broker.ChangesStream(site))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, broker.ChangesSubjectFilter(site))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := schema.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	_, _, multipart := schema.MultipartETag(rec.Version.ETag)
	switch {
	case rec.Key != key:
		t.Errorf("%s's last record is of %q, want %q", site, rec.Key, key)
	case multipart && (rec.Schema != schema.PartsSchema || rec.Parts == nil || rec.Parts.Size != partSize):
		t.Errorf("%s's record of %s (ETag %s): schema %d, parts %+v; want schema %d with %d-byte parts", site, key, rec.Version.ETag, rec.Schema, rec.Parts, schema.PartsSchema, partSize)
	case !multipart && (rec.Schema != schema.RecordSchema || rec.Parts != nil):
		t.Errorf("%s's record of %s (ETag %s): schema %d, parts %+v; want schema %d without parts", site, key, rec.Version.ETag, rec.Schema, rec.Parts, schema.RecordSchema)
	}
}

// checkRecords asserts that each site published exactly want[site] records
// since before (no echo: replica writes never become records).
func (e *env) checkRecords(t *testing.T, before map[string]uint64, want map[string]int) {
	t.Helper()
	for _, n := range e.names {
		got := e.changesSeq(t, n) - before[n]
		if got != uint64(want[n]) {
			t.Errorf("site %s published %d records, want %d (one per local write)", n, got, want[n])
		}
	}
}

func TestPutAtEverySiteReplicatesWithAttributes(t *testing.T) {
	testPutAtEverySiteReplicatesWithAttributes(t, labEnv(t))
}

func testPutAtEverySiteReplicatesWithAttributes(t *testing.T, e *env) {
	before := e.seqs(t)
	want := map[string]int{}
	objs := map[string]object{}
	for i, s := range e.names {
		key := fmt.Sprintf("put/from-%s.txt", s)
		o := object{body: []byte(strings.Repeat("hello from "+s+"\n", i+1)), attrs: s3io.Attrs{
			ContentType: "text/plain; charset=utf-8", CacheControl: "max-age=60", ContentEncoding: "identity",
			ContentDisposition: `attachment; filename="from.txt"`, Meta: map[string]string{"owner": "team-" + s, "note": "ünïcødé ok"},
		}}
		e.put(t, s, key, o)
		objs[key] = o
		want[s]++
	}
	// A body above the inline threshold travels by GET from the origin.
	big := object{body: randBytes(600 << 10), attrs: s3io.Attrs{ContentType: "application/x-big"}}
	e.put(t, "b", "put/big-600k.bin", big)
	objs["put/big-600k.bin"] = big
	want["b"]++
	// Zero bytes.
	e.put(t, "c", "put/empty", object{})
	objs["put/empty"] = object{body: []byte{}}
	want["c"]++
	for k, o := range objs {
		e.waitObject(t, k, o, converge)
	}
	e.quiesce(t, converge)
	e.checkRecords(t, before, want)
}

func TestOverwriteAndDeletePropagate(t *testing.T) { testOverwriteAndDeletePropagate(t, labEnv(t)) }

func testOverwriteAndDeletePropagate(t *testing.T, e *env) {
	before := e.seqs(t)
	e.put(t, "a", "ow/key", object{body: []byte("v1")})
	e.waitObject(t, "ow/key", object{body: []byte("v1")}, converge)
	e.put(t, "b", "ow/key", object{body: []byte("v2 from b")})
	e.waitObject(t, "ow/key", object{body: []byte("v2 from b")}, converge)
	e.put(t, "c", "ow/key", object{body: []byte("v3 from c")})
	e.waitObject(t, "ow/key", object{body: []byte("v3 from c")}, converge)
	// A metadata-only overwrite keeps the bytes (and the ETag) but is a change.
	v4 := object{body: []byte("v3 from c"), attrs: s3io.Attrs{ContentType: "text/x-v4", Meta: map[string]string{"color": "blue"}}}
	e.put(t, "a", "ow/key", v4)
	e.waitObject(t, "ow/key", v4, converge)
	e.del(t, "a", "ow/key")
	e.waitAbsent(t, "ow/key", converge)
	// Re-create after the delete: the tombstone must not hide it.
	e.put(t, "b", "ow/key", object{body: []byte("v5 after delete")})
	e.waitObject(t, "ow/key", object{body: []byte("v5 after delete")}, converge)
	e.quiesce(t, converge)
	e.checkRecords(t, before, map[string]int{"a": 3, "b": 2, "c": 1})
}

func TestCopyMultipartAndMultiDelete(t *testing.T) { testCopyMultipartAndMultiDelete(t, labEnv(t)) }

func testCopyMultipartAndMultiDelete(t *testing.T, e *env) {
	ctx := ctxT(t)
	before := e.seqs(t)
	src := object{body: []byte("copy me"), attrs: s3io.Attrs{ContentType: "text/x-src", Meta: map[string]string{"k": "v"}}}
	e.put(t, "a", "cp/src", src)
	e.waitObject(t, "cp/src", src, converge)
	// A user's CopyObject of a replica (at b) is a local write at b, not an echo.
	if err := e.sites["b"].s3.Copy(ctx, bucket, "cp/src", "cp/copy-of-replica"); err != nil {
		t.Fatal(err)
	}
	// And a CopyObject of a local object at a.
	if err := e.sites["a"].s3.Copy(ctx, bucket, "cp/src", "cp/copy-at-origin"); err != nil {
		t.Fatal(err)
	}
	e.waitObject(t, "cp/copy-of-replica", src, converge)
	e.waitObject(t, "cp/copy-at-origin", src, converge)

	// 20 MiB through CompleteMultipartUpload (5 MiB parts) at c.
	mp := object{body: randBytes(20 << 20), attrs: s3io.Attrs{ContentType: "application/x-mp", Meta: map[string]string{"part": "yes"}}}
	e.put(t, "c", "cp/multipart-20m", mp)
	e.waitObject(t, "cp/multipart-20m", mp, 2*converge)
	// c's record of it carries the part layout its store tells (schema 3),
	// against which a and b checked the bytes; a store that names the
	// upload by its plain MD5 (rclone) needs none.
	e.checkPartLayout(t, "c", "cp/multipart-20m", 5<<20)

	// Multi-object DELETE at b. At a polled site (the mixed lab's rclone)
	// deletes are found by listing, so three of a dozen keys gone at once
	// would be held by the delete guard (docs/operations.md, "Scanner, status and verify"): delete at c then.
	del, want := "b", map[string]int{"a": 5, "b": 4, "c": 1}
	if e.polled("b") {
		del, want = "c", map[string]int{"a": 5, "b": 1, "c": 4}
	}
	for i := 0; i < 3; i++ {
		e.put(t, "a", fmt.Sprintf("cp/md-%d", i), object{body: []byte{byte(i)}})
	}
	for i := 0; i < 3; i++ {
		e.waitObject(t, fmt.Sprintf("cp/md-%d", i), object{body: []byte{byte(i)}}, converge)
	}
	var ids []types.ObjectIdentifier
	for i := 0; i < 3; i++ {
		ids = append(ids, types.ObjectIdentifier{Key: aws.String(fmt.Sprintf("cp/md-%d", i))})
	}
	if _, err := e.sites[del].raw.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		e.waitAbsent(t, fmt.Sprintf("cp/md-%d", i), converge)
	}
	e.quiesce(t, converge)
	e.checkRecords(t, before, want)
}

// awkwardKeys are keys that break naive encodings in subjects, URLs, event
// JSON and file paths.
func awkwardKeys() []string {
	seg := strings.Repeat("s", 254)
	long := strings.Join([]string{seg, seg, seg, seg}, "/") // 4*254+3 = 1019 bytes
	long += "/" + strings.Repeat("z", 1024-len(long)-1)
	return []string{
		"awk/with space", "awk/ünïcødé/ключ/鍵", "awk/a+b", "awk/100%", "awk/%2F-not-a-slash",
		"awk/tab\there", `awk/quote"d`, "awk/it's", "awk/emoji-🚀", "awk/semi;colon=eq&amp",
		"awk/" + long[4:],
	}
}

func TestAwkwardKeysReplicate(t *testing.T) { testAwkwardKeysReplicate(t, labEnv(t)) }

func testAwkwardKeysReplicate(t *testing.T, e *env) {
	keys := awkwardKeys()
	if n := len(keys[len(keys)-1]); n != 1024 {
		t.Fatalf("long key is %d bytes, want 1024", n)
	}
	for i, k := range keys {
		site := e.names[i%len(e.names)]
		e.put(t, site, k, object{body: []byte("key " + k)})
	}
	// Every site whose store holds the key gets it; one that cannot hold
	// it under its exact name (rclone: a tab) dead-letters it, with the
	// reason, and holds nothing under another name.
	var caps []*s3io.Capabilities
	for _, n := range e.names {
		caps = append(caps, e.siteStatus(t, n).Store)
	}
	for _, k := range keys {
		var at []string
		for i, n := range e.names {
			if caps[i] != nil && caps[i].Unrepresentable(k) != "" {
				e.waitDeadLetter(t, n, fmt.Sprintf("%q", k), func(d consumer.DeadLetter) bool { return d.Key == k }, consumer.ReasonUnrepresentable)
				continue
			}
			at = append(at, n)
		}
		if len(at) == len(e.names) {
			e.waitObject(t, k, object{body: []byte("key " + k)}, converge)
		} else {
			e.waitAt(t, at, bucket, k, "key "+k, converge)
		}
	}
	// Deleted at every site but a polled one, whose deletes of a third of
	// the keys at once the delete guard would hold (docs/operations.md, "Scanner, status and verify").
	var deleters []string
	for _, n := range e.names {
		if !e.polled(n) {
			deleters = append(deleters, n)
		}
	}
	for i, k := range keys {
		e.del(t, deleters[(i+1)%len(deleters)], k)
	}
	for _, k := range keys {
		e.waitAbsent(t, k, converge)
	}
}

// A key the target store cannot hold (versitygw: a file "x" and a key under
// "x/") is dead-lettered with a clear reason, not retried forever, and does
// not block the records behind it.
func TestUnstorableKeyGoesToDLQ(t *testing.T) {
	e := labEnv(t)
	ctx := ctxT(t)
	dlqBefore := e.dlqCount(ctx, t, "a")
	e.put(t, "a", "clash/x", object{body: []byte("file x at a")})
	e.put(t, "b", "clash/x/child", object{body: []byte("child at b")})
	e.put(t, "b", "clash/after", object{body: []byte("behind it")})
	e.waitObject(t, "clash/after", object{body: []byte("behind it")}, converge)
	deadline := time.Now().Add(converge)
	for e.dlqCount(ctx, t, "a") == dlqBefore {
		if time.Now().After(deadline) {
			t.Fatal("site a never dead-lettered clash/x/child")
		}
		time.Sleep(100 * time.Millisecond)
	}
	dl := e.lastDLQ(ctx, t, "a")
	if dl.Key != "clash/x/child" || dl.Reason != "rejected" || !strings.Contains(dl.Error, "409") || dl.Peer != "b" || dl.Seq == 0 {
		t.Fatalf("dead letter: key %q reason %q error %q peer %q seq %d", dl.Key, dl.Reason, dl.Error, dl.Peer, dl.Seq)
	}
	// Clean up so later convergence checks see a consistent bucket.
	e.del(t, "b", "clash/x/child")
	e.del(t, "a", "clash/x")
	e.waitAbsent(t, "clash/x", converge)
	e.waitAbsent(t, "clash/x/child", converge)
}
