package state

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"

	"github.com/s3mesh/s3mesh/schema"
)

func TestPutGetScanReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "a b", "a/b", "ключ", "z\x00?", strings.Repeat("x", 1024)}
	for i, k := range keys {
		e := Entry{Clock: schema.Clock{"a": uint64(i + 1)}, LocalETag: "e" + k,
			Held: schema.Version{ID: schema.VersionID("a", "bkt.x", k, uint64(i+1)), Origin: "a"}}
		if err := s.Put("bkt.x", k, e); err != nil {
			t.Fatal(err)
		}
	}
	// A key in a bucket whose name is a prefix of another must not leak.
	if err := s.Put("bkt", "other", Entry{LocalETag: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, k := range keys {
		e, ok, err := s.Get("bkt.x", k)
		if err != nil || !ok {
			t.Fatalf("get %q: ok=%v err=%v", k, ok, err)
		}
		if e.Clock["a"] != uint64(i+1) || e.LocalETag != "e"+k || !e.Present() {
			t.Fatalf("get %q: %+v", k, e)
		}
	}
	if _, ok, _ := s.Get("bkt.x", "missing"); ok {
		t.Fatal("missing key found")
	}
	var got []string
	if err := s.Scan("bkt.x", "", func(k string, e Entry) error { got = append(got, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keys) {
		t.Fatalf("scan got %d keys %q, want %d", len(got), got, len(keys))
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Fatalf("scan not in byte order: %q", got)
		}
	}
	got = nil
	if err := s.Scan("bkt.x", "a b", func(k string, e Entry) error { got = append(got, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keys)-2 || got[0] != "a/b" {
		t.Fatalf("scan after %q: %q", "a b", got)
	}
}

func TestLockSerialisesOneKey(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan struct{})
	for w := 0; w < 8; w++ {
		go func() {
			for i := 0; i < 100; i++ {
				unlock := s.Lock("b", "k")
				e, _, err := s.Get("b", "k")
				if err == nil {
					e.Clock = e.Clock.Bump("a")
					err = s.Put("b", "k", e)
				}
				unlock()
				if err != nil {
					t.Error(err)
				}
			}
			done <- struct{}{}
		}()
	}
	for w := 0; w < 8; w++ {
		<-done
	}
	e, _, _ := s.Get("b", "k")
	if e.Clock["a"] != 800 {
		t.Fatalf("lost updates: counter %d, want 800", e.Clock["a"])
	}
}

func TestSiteMetaAndEmpty(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if empty, err := s.Empty(); err != nil || !empty {
		t.Fatalf("a new store is empty: %v %v", empty, err)
	}
	if _, ok, err := s.SiteMeta(); ok || err != nil {
		t.Fatalf("a new store has no site record: %v %v", ok, err)
	}
	if err := s.PutMeta("cursor", 1); err != nil {
		t.Fatal(err)
	}
	if empty, _ := s.Empty(); !empty {
		t.Fatal("meta records are not per-key entries")
	}
	if err := s.Put("b", "k", Entry{LocalETag: "x"}); err != nil {
		t.Fatal(err)
	}
	if empty, _ := s.Empty(); empty {
		t.Fatal("a store with an entry is not empty")
	}
	if err := s.PutSiteMeta(SiteMeta{Site: "a", Incarnation: 9}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRebuilt("a", 123); err != nil {
		t.Fatal(err)
	}
	if m, ok, _ := s.SiteMeta(); !ok || m.Incarnation != 9 || m.RebuiltAt != 123 {
		t.Fatalf("site record %+v", m)
	}
	if err := s.MarkRebuilt("b", 124); err == nil {
		t.Fatal("a state of site a must not be marked rebuilt for site b")
	}
}

// A lazy write is not on disk until a sync; AfterSync runs only once it
// is, so a crash after AfterSync's callback keeps the write.
func TestPutLazyAndAfterSync(t *testing.T) {
	fs := vfs.NewStrictMem()
	// The directory itself must be durable, as on a real disk after mkdir
	// and a sync of its parent.
	if err := fs.MkdirAll("state", 0o755); err != nil {
		t.Fatal(err)
	}
	if d, err := fs.OpenDir(""); err != nil || d.Sync() != nil {
		t.Fatal("sync the root of the memory file system:", err)
	}
	open := func() *Store {
		st, err := Open("state", Options{Sync: true, FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	crash := func(st *Store) *Store {
		fs.SetIgnoreSyncs(true) // nothing from here on reaches the "disk"
		close(st.stop)          // a killed process: no flush of the memtable
		<-st.stopped
		st.db.Close()
		fs.ResetToSyncedState()
		fs.SetIgnoreSyncs(false)
		return open()
	}
	entry := func(id string) Entry { return Entry{Held: schema.Version{ID: id}, LocalETag: id} }
	st := open()
	ran := false
	st.AfterSync(func() { ran = true })
	if !ran {
		t.Fatal("AfterSync with no lazy write did not run its callback at once")
	}
	if err := st.Put("b", "durable", entry("1")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutLazy("b", "lazy", entry("2")); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := st.Get("b", "lazy"); !ok || e.Held.ID != "2" {
		t.Fatalf("a lazy write is not readable at once: %+v %v", e, ok)
	}
	st = crash(st)
	if _, ok, _ := st.Get("b", "durable"); !ok {
		t.Fatal("a synced write was lost by a crash")
	}
	if _, ok, _ := st.Get("b", "lazy"); ok {
		t.Fatal("a lazy write with no sync after it survived a crash: PutLazy waited for the disk")
	}
	if err := st.PutLazy("b", "acked", entry("3")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	st.AfterSync(func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("AfterSync's callback never ran")
	}
	st = crash(st)
	if e, ok, _ := st.Get("b", "acked"); !ok || e.Held.ID != "3" {
		t.Fatalf("a lazy write AfterSync reported durable was lost by a crash: %+v %v", e, ok)
	}
	// A lazy meta record likewise: gone in a crash without a sync, kept
	// once AfterSync ran.
	var got map[string]uint64
	if err := st.PutMetaLazy("m", map[string]uint64{"c": 1}); err != nil {
		t.Fatal(err)
	}
	st = crash(st)
	if ok, _ := st.GetMeta("m", &got); ok {
		t.Fatal("a lazy meta write with no sync after it survived a crash")
	}
	if err := st.PutMetaLazy("m", map[string]uint64{"c": 2}); err != nil {
		t.Fatal(err)
	}
	synced := make(chan struct{})
	st.AfterSync(func() { close(synced) })
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("AfterSync's callback never ran after a lazy meta write")
	}
	st = crash(st)
	if ok, _ := st.GetMeta("m", &got); !ok || got["c"] != 2 {
		t.Fatalf("a lazy meta write AfterSync reported durable was lost by a crash: %v %v", got, ok)
	}
	// Close runs what still waits.
	if err := st.PutLazy("b", "late", entry("4")); err != nil {
		t.Fatal(err)
	}
	var closed atomic.Bool
	st.AfterSync(func() { closed.Store(true) })
	st.Close()
	if !closed.Load() {
		t.Fatal("Close did not run a waiting AfterSync callback")
	}
}
