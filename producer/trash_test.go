package producer

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// TestTrashPass: on a real versitygw, a pass counts the trash and its
// bytes, leaves what is within the retention and the bucket's other keys
// alone, and purges what is past it.
func TestTrashPass(t *testing.T) {
	f := newVersityFixture(t, 7)
	put := func(key, body string) {
		t.Helper()
		if _, err := f.s3.Put(f.ctx, s3io.PutInput{Bucket: "demo", Key: key, Body: bytes.NewReader([]byte(body)), Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	put(schema.TrashKey("demo", "k1", now.UnixMilli(), "b.x.1", 0), "12345")
	put(schema.TrashKey("demo", "dir/k2", now.UnixMilli(), "b.x.2", 0), "123")
	put(".s3mesh-trashy", "not trash")
	put("k1", "a user's object")
	m := metrics.New()
	tr := &Trash{S3: f.s3, Retention: time.Hour, Modes: map[string]string{"demo": "deletes"}, M: m,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := tr.Pass(f.ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	st := tr.Status()
	if len(st) != 1 || st[0].Objects != 2 || st[0].Bytes != 8 || st[0].Purged != 0 || st[0].Mode != "deletes" || st[0].Versioned {
		t.Fatalf("within the retention: %+v, want 2 objects of 8 bytes kept", st)
	}
	if got := testutil.ToFloat64(m.TrashBytes.WithLabelValues("demo")); got != 8 {
		t.Fatalf("s3mesh_trash_bytes = %v, want 8", got)
	}
	// Looked at again at once, nothing is listed (a polled store is
	// scanned every few seconds).
	put(schema.TrashKey("demo", "k3", now.UnixMilli(), "b.x.3", 0), "1")
	if err := tr.Pass(f.ctx, "demo"); err != nil || tr.Status()[0].Objects != 2 {
		t.Fatalf("a second pass at once: %+v, %v; want the first one's counts", tr.Status(), err)
	}
	// An hour and a minute later, all three are past the retention.
	tr.Now = func() time.Time { return now.Add(time.Hour + time.Minute) }
	if err := tr.Pass(f.ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if st := tr.Status()[0]; st.Objects != 0 || st.Bytes != 0 || st.Purged != 3 {
		t.Fatalf("past the retention: %+v, want all three purged", st)
	}
	if got := testutil.ToFloat64(m.TrashObjects.WithLabelValues("demo")); got != 0 {
		t.Fatalf("s3mesh_trash_objects = %v, want 0", got)
	}
	var left []string
	if err := f.s3.List(f.ctx, "demo", "", 0, func(le s3io.ListEntry) error { left = append(left, le.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0] != ".s3mesh-trashy" || left[1] != "k1" {
		t.Fatalf("the bucket holds %q, want only the two keys outside the trash", left)
	}
}
