package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

func keyRec(key, origin string, c schema.Clock, ts int64, del bool) *schema.Record {
	v := schema.Version{ID: schema.VersionID(origin, "bkt", key, c[origin]), Origin: origin, Clock: c, TS: ts, Deleted: del}
	r := &schema.Record{Schema: schema.RecordSchema, Bucket: "bkt", Key: key, Version: v}
	if !del {
		body := "body of " + key
		r.Version.Size, r.Version.ETag, r.Inline, r.Body = int64(len(body)), "origin-"+key, true, []byte(body)
	}
	return r
}

func guarded(t *testing.T) *rig {
	r := newRig(t, BucketPolicy{})
	r.a.Guard = &DeleteGuard{Fraction: 0.1, Window: 5 * time.Minute, Min: 3, Store: r.st, Log: slog.New(slog.DiscardHandler)}
	if err := r.a.Guard.Load(); err != nil {
		t.Fatal(err)
	}
	return r
}

func heldKeys(t *testing.T, a *Applier, peer string) []string {
	var out []string
	if err := a.HeldDeletes(peer, "bkt", func(h state.HeldDelete) error {
		out = append(out, h.Record.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeleteGuardHoldsAPeersMassDelete(t *testing.T) {
	ctx := context.Background()
	r := guarded(t)
	key := func(i int) string { return fmt.Sprintf("k%02d", i) }
	for i := range 20 {
		r.apply(t, keyRec(key(i), "c", schema.Clock{"c": 1}, 100, false))
	}
	// b deletes half the bucket: the limit is max(min 3, 10% of 20 keys).
	for i := range 10 {
		d, err := r.a.Apply(ctx, keyRec(key(i), "b", schema.Clock{"c": 1, "b": 1}, 300, true))
		if err != nil {
			t.Fatalf("delete %s: %v", key(i), err)
		}
		if want := i < 3; (d.Outcome == schema.Apply && !d.Held) != want || d.Held == want {
			t.Fatalf("delete %s: outcome %v, applied want %v", key(i), d.Outcome, want)
		}
	}
	for i := range 10 {
		_, there := r.s3.objs[key(i)]
		if there != (i >= 3) {
			t.Fatalf("%s present %v after b's deletes, want %v", key(i), there, i >= 3)
		}
	}
	if got := fmt.Sprint(heldKeys(t, r.a, "b")); got != "[k03 k04 k05 k06 k07 k08 k09]" {
		t.Fatalf("held, in order: %s", got)
	}
	// A held delete delivered again is held once.
	if d, err := r.a.Apply(ctx, keyRec(key(3), "b", schema.Clock{"c": 1, "b": 1}, 300, true)); err != nil || !d.Held {
		t.Fatalf("redelivered held delete: %+v %v", d, err)
	}
	if s := r.a.Guard.Summary(); len(s) != 1 || s[0].Peer != "b" || s[0].Count != 7 {
		t.Fatalf("summary %+v", s)
	}
	// Another peer's delete is counted on its own: it applies.
	r.apply(t, keyRec(key(15), "c", schema.Clock{"c": 2}, 300, true))
	if _, there := r.s3.objs[key(15)]; there {
		t.Fatal("c's delete under its own limit was not applied")
	}
	// A later put of b's dominates its held delete: applied, the delete dropped.
	r.apply(t, keyRec(key(5), "b", schema.Clock{"c": 1, "b": 2}, 400, false))
	// A concurrent put of c's is applied; the held delete stays for the decision.
	r.apply(t, keyRec(key(6), "c", schema.Clock{"c": 2}, 400, false))
	if got := fmt.Sprint(heldKeys(t, r.a, "b")); got != "[k03 k04 k06 k07 k08 k09]" {
		t.Fatalf("held after later puts: %s", got)
	}
	// The hold survives a restart of the guard.
	g := &DeleteGuard{Fraction: 0.1, Window: 5 * time.Minute, Min: 3, Store: r.st, Log: slog.New(slog.DiscardHandler)}
	if err := g.Load(); err != nil {
		t.Fatal(err)
	}
	r.a.Guard = g
	if s := g.Summary(); len(s) != 1 || s[0].Count != 6 {
		t.Fatalf("summary after reload %+v", s)
	}
	// Still held: b's next delete is held too.
	if d, _ := r.a.Apply(ctx, keyRec(key(12), "b", schema.Clock{"c": 1, "b": 1}, 300, true)); !d.Held {
		t.Fatal("a delete of a held peer went through")
	}
	res, err := r.a.Release(ctx, "b", "")
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("release: %+v %v", res, err)
	}
	// k06: c's later put wins the conflict with the released delete (lww).
	if res.Done != 7 || res.Applied != 6 || res.Skipped != 1 {
		t.Fatalf("release: %+v, want 7 done, 6 applied, 1 skipped", res)
	}
	for _, i := range []int{3, 4, 7, 8, 9, 12} {
		if _, there := r.s3.objs[key(i)]; there {
			t.Fatalf("%s still present after the release", key(i))
		}
	}
	for _, i := range []int{5, 6} {
		if _, there := r.s3.objs[key(i)]; !there {
			t.Fatalf("%s, written after the delete, is gone", key(i))
		}
	}
	if s := g.Summary(); len(s) != 0 || len(heldKeys(t, r.a, "")) != 0 {
		t.Fatalf("after release: summary %+v", s)
	}
	// Judged afresh after the release: the next delete applies.
	if d, err := r.a.Apply(ctx, keyRec(key(13), "b", schema.Clock{"c": 1, "b": 1}, 300, true)); err != nil || d.Outcome != schema.Apply || d.Held {
		t.Fatalf("delete after the release: %v %v", d.Outcome, err)
	}
}

func TestDeleteGuardSmallBucket(t *testing.T) {
	// A bucket of 4 keys: min (3) lets three deletes through, the fourth is
	// over min and over 10% of 4 keys, so it is held.
	r := guarded(t)
	for i := range 4 {
		r.apply(t, keyRec(fmt.Sprint(i), "c", schema.Clock{"c": 1}, 100, false))
	}
	for i := range 4 {
		r.apply(t, keyRec(fmt.Sprint(i), "b", schema.Clock{"c": 1, "b": 1}, 300, true))
	}
	if got := heldKeys(t, r.a, "b"); len(got) != 1 || got[0] != "3" {
		t.Fatalf("held %v, want the fourth delete only", got)
	}
	// A delete of a key the site does not hold deletes nothing: not counted, never held.
	r2 := guarded(t)
	for i := range 10 {
		r2.apply(t, keyRec(fmt.Sprint(i), "b", schema.Clock{"b": 1}, 300, true))
	}
	if got := heldKeys(t, r2.a, "b"); len(got) != 0 {
		t.Fatalf("deletes of absent keys held: %v", got)
	}
}

func TestDeleteGuardParallelAppliersStopAtTheLimit(t *testing.T) {
	r := guarded(t)
	for i := range 50 {
		v := schema.Version{ID: fmt.Sprint(i), Origin: "c", Clock: schema.Clock{"c": 1}, ETag: "e", Size: 1}
		if err := r.st.Put("bkt", fmt.Sprint(i), state.Entry{Clock: v.Clock, Held: v, LocalETag: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.UnixMilli(1_000_000)
	results := make(chan bool, 40)
	for range 40 {
		go func() {
			hold, _ := r.a.Guard.admit("b", "bkt", now)
			results <- hold
		}()
	}
	admitted := 0
	for range 40 {
		if !<-results {
			admitted++
		}
	}
	// max(min 3, 10% of the 50 keys, plus the deletes counted then).
	if admitted != 5 {
		t.Fatalf("%d of 40 parallel deletes admitted, want 5", admitted)
	}
	// Past the window the count starts again.
	if hold, _ := r.a.Guard.admit("b", "bkt", now.Add(6*time.Minute)); hold {
		t.Fatal("a delete after the window is held")
	}
}
