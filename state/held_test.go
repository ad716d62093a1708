package state

import (
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/schema"
)

func tomb(bucket, key, origin string, n uint64) *schema.Record {
	c := schema.Clock{origin: n}
	return &schema.Record{Schema: schema.RecordSchema, Bucket: bucket, Key: key,
		Version: schema.Version{ID: schema.VersionID(origin, bucket, key, n), Origin: origin, Clock: c, Deleted: true}}
}

func TestHeldDeletes(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// Keys that are prefixes of each other, and one of another bucket.
	for _, r := range []*schema.Record{tomb("b1", "k", "b", 1), tomb("b1", "k2", "b", 2), tomb("b1", "a/k", "b", 3), tomb("b2", "k", "b", 4), tomb("b1", "k", "c", 1)} {
		peer := r.Version.Origin
		if _, added, err := s.HoldDelete(peer, r, now); err != nil || !added {
			t.Fatal(added, err)
		}
	}
	if _, _, err := s.HoldDelete("b", &schema.Record{Bucket: "b1", Key: "x"}, now); err == nil {
		t.Fatal("held a record that is no tombstone")
	}
	list := func(peer, bucket string) []string {
		var out []string
		if err := s.ScanHeld(peer, bucket, func(h HeldDelete) error {
			out = append(out, h.Peer+":"+h.Record.Bucket+"/"+h.Record.Key)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := list("b", "b1"); len(got) != 3 || got[0] != "b:b1/k" || got[1] != "b:b1/k2" || got[2] != "b:b1/a/k" {
		t.Fatalf("held of b in b1, in order held: %v", got)
	}
	if got := list("", ""); len(got) != 5 {
		t.Fatalf("all held: %v", got)
	}
	hs, err := s.HeldFor("b1", "k")
	if err != nil || len(hs) != 2 {
		t.Fatalf("held for b1/k: %v %v", hs, err)
	}
	// A newer delete of the same key from the same peer replaces the older.
	if _, added, err := s.HoldDelete("b", tomb("b1", "k", "b", 9), now); err != nil || added {
		t.Fatalf("a newer delete of a held key: added %v, %v", added, err)
	}
	if got := list("b", "b1"); len(got) != 3 || got[2] != "b:b1/k" {
		t.Fatalf("after a newer delete of b1/k: %v", got)
	}
	// An older one arriving late does not replace it.
	if h, added, err := s.HoldDelete("b", tomb("b1", "k", "b", 5), now); err != nil || added || h.Record.Version.Clock["b"] != 9 {
		t.Fatalf("an older delete held over the newer: %+v %v", h.Record.Version, err)
	}
	if got := list("b", "b1"); len(got) != 3 || got[2] != "b:b1/k" {
		t.Fatalf("after an older delete of b1/k: %v", got)
	}
	// Survives a reopen; dropping forgets it in both places.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{Sync: true}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs, err = s.HeldFor("b1", "k")
	if err != nil || len(hs) != 2 {
		t.Fatalf("held for b1/k after reopen: %v %v", hs, err)
	}
	for _, h := range hs {
		if h.Peer == "b" && h.Record.Version.Clock["b"] != 9 {
			t.Fatalf("b's held delete of b1/k is %v, want the newer one", h.Record.Version.Clock)
		}
		if gone, err := s.DropHeld(h); err != nil || !gone {
			t.Fatal(gone, err)
		}
		if gone, err := s.DropHeld(h); err != nil || gone {
			t.Fatalf("dropped twice: %v %v", gone, err)
		}
	}
	if hs, _ := s.HeldFor("b1", "k"); len(hs) != 0 {
		t.Fatalf("dropped, still held: %v", hs)
	}
	if got := list("", ""); len(got) != 3 {
		t.Fatalf("after dropping b1/k: %v", got)
	}
}
