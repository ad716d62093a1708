package state

import (
	"strings"
	"testing"

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
