package rebuild

import (
	"testing"
	"time"
)

// At an archive site the rebuild keeps an object the peers' version
// deleted, and the entry says so (Kept), as the agent left it; without the
// archive mode the same object is deleted (TestStaleReplica).
func TestArchiveKeepsDeletedObject(t *testing.T) {
	m := newMesh(t, "b")
	b := m.peer("b")
	t0 := now() - time.Hour.Milliseconds()
	bucket := m.bucket(t, true)
	const key = "kept"
	v1 := version("b", bucket, key, c("b", 1), t0)
	del := tombstone("b", bucket, key, c("b", 2), t0+1)
	b.hold(t, bucket, key, del)
	etag := m.site.putReplica(t, bucket, key, v1)
	st := freshState(t)
	o := m.options(st, bucket)
	o.Archive = map[string]bool{bucket: true}
	stats := run(t, o)
	wantStats(t, stats, Stats{Keys: 1, Adopted: 1})
	info := m.site.wantBody(t, bucket, key, bodyOf(v1))
	e, ok, err := st.Get(bucket, key)
	if err != nil || !ok {
		t.Fatalf("entry: %v %v", ok, err)
	}
	if !e.Kept || e.Held.ID != del.ID || e.LocalETag != etag || e.LocalETag != info.ETag || !e.Stored() {
		t.Fatalf("entry %+v, want the tombstone held and the object kept", e)
	}
}
