package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/schema"
)

// Tests of the checker itself: it must fail on fabricated histories that
// break a rule, and pass the true ones.

// cloneWorkload copies w's record (for fabricated variants).
func cloneWorkload(w *Workload) *Workload {
	c := &Workload{Opts: w.Opts, Sites: w.Sites, Keys: w.Keys, Contended: w.Contended, Start: w.Start, End: w.End}
	c.Ops = w.all()
	return c
}

func cloneObserved(o *Observed) *Observed {
	c := *o
	c.Versions = slices.Clone(o.Versions)
	c.Conflicts = slices.Clone(o.Conflicts)
	return &c
}

func hasProblem(probs []string, substrs ...string) bool {
	return slices.ContainsFunc(probs, func(p string) bool {
		for _, s := range substrs {
			if !strings.Contains(p, s) {
				return false
			}
		}
		return true
	})
}

// The checker must be able to fail: against a real lab (contended keys
// written carefully at every site, so there are real conflicts), a
// workload record with an acknowledged write that never happened is
// reported as lost; with a real write left out, its record is reported as
// an echo or invented change; with a real DELETE left out, its tombstone is
// reported as invented; a record published twice is reported; the true
// record passes.
func TestCheckerDetectsFabricatedLossAndEcho(t *testing.T) {
	e := labEnv(t)
	w := e.RunWorkload(t, context.Background(), WorkloadOptions{
		Duration: 2 * time.Second, Keys: 6, ContendedFraction: 0.5, Careful: true, ContendedPutsOnly: true, DeleteFraction: 0.15, Writers: 1,
		Prefix: fmt.Sprintf("chk-%d/", time.Now().UnixNano()),
	})
	e.quiesce(t, 2*time.Minute)
	ctx := ctxT(t)
	o, err := e.observe(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	rep := runChecks(w, o)
	t.Log(rep.Summary)
	if len(rep.Problems) > 0 {
		t.Fatalf("the true workload record fails the checker:\n%s", strings.Join(rep.Problems, "\n"))
	}

	// An acknowledged PUT that never happened: a made-up MD5 at a real key,
	// after every real write (an earlier one would count as overwritten
	// locally by the next real write at that site, which the rule allows).
	lost := cloneWorkload(w)
	key := w.Keys[0]
	fake := "0123456789abcdef0123456789abcdef"
	lost.Ops = append(lost.Ops, Op{Site: "b", Key: key, Kind: OpPut, Writer: 99, MD5: fake, ETag: fake, Size: 5,
		Start: w.End, End: w.End.Add(time.Millisecond), Acked: true})
	rep = runChecks(lost, o)
	if !hasProblem(rep.Problems, "acknowledged write lost", fmt.Sprintf("%q", key), "md5 01234567") {
		t.Fatalf("the checker did not report the fabricated lost write; problems:\n%s", strings.Join(rep.Problems, "\n"))
	}
	if len(rep.Problems) != 1 {
		t.Errorf("want exactly one problem, got:\n%s", strings.Join(rep.Problems, "\n"))
	}

	// A real acknowledged PUT left out of the record: its change record is
	// then unexplained (as an echo would be).
	echo := cloneWorkload(w)
	var dropped Op
	for i, op := range echo.Ops {
		if op.Acked && op.Kind == OpPut && slices.ContainsFunc(o.Versions, func(v obsVersion) bool { return v.etag() == op.MD5 }) {
			dropped = op
			echo.Ops = slices.Delete(echo.Ops, i, i+1)
			break
		}
	}
	if dropped.MD5 == "" {
		t.Fatal("no published acked PUT to drop")
	}
	rep = runChecks(echo, o)
	if !hasProblem(rep.Problems, "echo or invented change", fmt.Sprintf("%q", dropped.Key), short(dropped.MD5)) {
		t.Fatalf("the checker did not report the unexplained record of %q; problems:\n%s", dropped.Key, strings.Join(rep.Problems, "\n"))
	}

	// The DELETEs of a key at a site that made a tombstone left out of the
	// record: the tombstone is then a delete nobody made, even where other
	// DELETEs of the key at other sites came before it.
	noDel := cloneWorkload(w)
	var tomb obsVersion
	for _, tv := range matchTombstones(noDel.Ops, o).tombOf {
		tomb = tv
		break
	}
	if tomb.V.ID == "" {
		t.Fatal("no DELETE of the workload made a tombstone")
	}
	noDel.Ops = slices.DeleteFunc(noDel.Ops, func(op Op) bool {
		return op.Kind == OpDelete && op.Site == tomb.Stream && op.Key == tomb.Key
	})
	rep = runChecks(noDel, o)
	if !hasProblem(rep.Problems, "invented delete", fmt.Sprintf("CHANGES_%s seq %d", tomb.Stream, tomb.Seq), "no DELETE at") {
		t.Fatalf("the checker did not report the tombstone %s once its DELETE was left out; problems:\n%s", tomb, strings.Join(rep.Problems, "\n"))
	}

	// A real record published a second time, under the next version id.
	dup := cloneObserved(o)
	v := o.Versions[len(o.Versions)-1]
	for _, x := range o.Versions {
		if !x.V.Deleted {
			v = x
			break
		}
	}
	v.Seq += 1 << 40
	v.V.Clock = v.V.Clock.Clone()
	v.V.Clock[v.V.Origin] += 1000 // an id no real write has
	v.V.ID = schema.VersionID(v.V.Origin, o.Bucket, v.Key, v.V.Clock[v.V.Origin])
	dup.Versions = append(dup.Versions, v)
	rep = runChecks(w, dup)
	if !hasProblem(rep.Problems, "two records for one write", v.V.ID) {
		t.Fatalf("the checker did not report %s published twice; problems:\n%s", v, strings.Join(rep.Problems, "\n"))
	}
}

// fab builds a fabricated history for the checker: what a workload did and
// what the sites showed, with no lab. Times are milliseconds after t0; every
// record gets the rank and origin time its origin would give it over its
// predecessor, unless a test changes them.
type fab struct {
	t  *testing.T
	t0 time.Time
	w  *Workload
	o  *Observed
}

func newFab(t *testing.T, pol config.Conflicts, keys ...string) *fab {
	sites := []string{"a", "b", "c"}
	t0 := time.Now().Truncate(time.Second)
	return &fab{t: t, t0: t0,
		w: &Workload{Opts: WorkloadOptions{Prefix: "u/", Bucket: bucket}, Sites: sites, Keys: keys, Contended: map[string]bool{}},
		o: &Observed{Bucket: bucket, Policy: policyOf(pol), Sites: sites, Final: map[string]map[string]finalState{}},
	}
}

func (f *fab) at(ms int) time.Time { return f.t0.Add(time.Duration(ms) * time.Millisecond) }

// put records an acknowledged PUT of a body with MD5 md5, from ms to ms+1.
func (f *fab) put(site, key, md5 string, ms int) {
	f.w.Ops = append(f.w.Ops, Op{Site: site, Key: key, Kind: OpPut, MD5: md5, ETag: md5, Start: f.at(ms), End: f.at(ms + 1), Acked: true})
}

// del records an acknowledged DELETE from ms to ms+1.
func (f *fab) del(site, key string, ms int, preExisted bool) {
	f.w.Ops = append(f.w.Ops, Op{Site: site, Key: key, Kind: OpDelete, PreExisted: preExisted, Start: f.at(ms), End: f.at(ms + 1), Acked: true})
}

// rec adds the record of a version made at site at ms with clock (a
// tombstone when etag is "") to CHANGES_<site>.
func (f *fab) rec(site, key string, clock schema.Clock, etag string, ms int) obsVersion {
	v := obsVersion{Stream: site, Seq: uint64(len(f.o.Versions) + 1), Key: key, MadeAt: f.at(ms).UnixMilli(),
		V: schema.Version{ID: schema.VersionID(site, bucket, key, clock[site]), Origin: site, Clock: clock, ETag: etag, Deleted: etag == "", Size: 3}}
	var held *schema.Version
	if p := predecessor(v, f.o.Versions); p != nil {
		held = &p.V
	}
	v.V.TS = schema.NextTS(v.MadeAt, held)
	v.V.Rank = f.o.Policy.Rank(site, v.V.Deleted, held)
	f.o.Versions = append(f.o.Versions, v)
	return v
}

// set changes a record already added.
func (f *fab) set(id string, change func(*obsVersion)) {
	for i := range f.o.Versions {
		if f.o.Versions[i].V.ID == id {
			change(&f.o.Versions[i])
		}
	}
}

// final makes every site hold md5 at key ("" = absent).
func (f *fab) final(key, md5 string) {
	f.o.Final[key] = map[string]finalState{}
	for _, s := range f.o.Sites {
		f.o.Final[key][s] = finalState{Present: md5 != "", MD5: md5, Size: 3}
	}
}

// conflict logs, at every site, that winner beat loser, the way a consumer
// logs it (schema.LoserKey for the kept copy, when the policy keeps
// losers), and makes every site hold the kept copy.
func (f *fab) conflict(winner, loser obsVersion) {
	for _, s := range f.o.Sites {
		c := schema.ConflictEntry{Site: s, Bucket: bucket, Key: winner.Key, Policy: f.o.Policy.Policy.String(), Outcome: schema.ApplyWinner.String(),
			Winner: schema.InfoOf(winner.V), Loser: schema.InfoOf(loser.V)}
		if f.o.Policy.KeepLosers && !loser.V.Deleted {
			c.LoserKeptAs = schema.LoserKey(f.o.Policy.LosersPrefix, bucket, loser.Key, loser.V)
			f.final(c.LoserKeptAs, loser.etag())
		}
		f.o.Conflicts = append(f.o.Conflicts, c)
	}
}

func (f *fab) check() *CheckReport { return runChecks(f.w, f.o) }

// mustPass fails the test if the fabricated history breaks any rule.
func (f *fab) mustPass(what string) {
	f.t.Helper()
	if rep := f.check(); len(rep.Problems) > 0 {
		f.t.Errorf("%s: a good history fails the checker:\n%s", what, strings.Join(rep.Problems, "\n"))
	}
}

// mustFail fails the test unless a problem contains every one of substrs.
func (f *fab) mustFail(what string, substrs ...string) {
	f.t.Helper()
	rep := f.check()
	if !hasProblem(rep.Problems, substrs...) {
		f.t.Errorf("%s: not reported (want a problem with %q); problems:\n%s", what, substrs, strings.Join(rep.Problems, "\n"))
		return
	}
	f.t.Logf("%s: %d problem(s), the first: %s", what, len(rep.Problems), rep.Problems[0])
}

// Unit-style, no lab: fabricated observations that break I1 and I2 in the
// ways the checker must catch.
func TestCheckerUnitFabricated(t *testing.T) {
	f := newFab(t, config.Conflicts{}, "u/k1", "u/k2")
	f.put("a", "u/k1", "aaaa1111", 0)
	f.put("b", "u/k1", "bbbb2222", 0)
	f.put("a", "u/k2", "cccc3333", 0)
	va := f.rec("a", "u/k1", schema.Clock{"a": 1}, "aaaa1111", 1000)
	vb := f.rec("b", "u/k1", schema.Clock{"b": 1}, "bbbb2222", 1000) // concurrent with a's, and later (same time, site b > a)
	f.rec("a", "u/k2", schema.Clock{"a": 1}, "cccc3333", 1000)
	f.final("u/k1", "bbbb2222")
	f.final("u/k2", "cccc3333")
	f.o.Final["u/k2"]["b"] = finalState{} // not converged
	f.mustFail("divergent key", "I1 not converged", `"u/k2"`)
	f.mustFail("concurrent, unlogged loser", "acknowledged write lost", `"u/k1"`, "a.", "in no conflict log")
	f.final("u/k2", "cccc3333")
	// Logged as a conflict loser (and kept): no longer a loss.
	f.conflict(vb, va)
	f.mustPass("logged and kept loser")
	// The kept copy missing at b: the loser's bytes are gone.
	kept := f.o.Conflicts[0].LoserKeptAs
	f.o.Final[kept]["b"] = finalState{}
	f.mustFail("kept copy missing at b", "conflict loser not kept", kept, "b holds absent")
}

// A tombstone is made by one DELETE at its site, of a version the site held
// after that DELETE began: an earlier DELETE of the key does not explain a
// later tombstone.
func TestCheckerInventedDeletes(t *testing.T) {
	t.Run("a second tombstone wipes a later acked PUT", func(t *testing.T) {
		build := func(secondDelete bool) *fab {
			f := newFab(t, config.Conflicts{}, "u/k")
			f.put("a", "u/k", "aaaa1111", 0)
			f.rec("a", "u/k", schema.Clock{"a": 1}, "aaaa1111", 10)
			f.del("a", "u/k", 100, true)
			f.rec("a", "u/k", schema.Clock{"a": 2}, "", 110)
			f.put("b", "u/k", "bbbb2222", 1000) // after b applied a's tombstone
			f.rec("b", "u/k", schema.Clock{"a": 2, "b": 1}, "bbbb2222", 1010)
			if secondDelete {
				f.del("a", "u/k", 1900, true)
			}
			f.rec("a", "u/k", schema.Clock{"a": 3, "b": 1}, "", 2000) // wipes b's PUT at every site
			f.final("u/k", "")
			return f
		}
		build(true).mustPass("two DELETEs at a, two tombstones")
		build(false).mustFail("one DELETE at a, two tombstones", "invented delete", "CHANGES_a seq 4", "no DELETE at a explains")
	})
	t.Run("a no-op DELETE before the replica arrived", func(t *testing.T) {
		build := func(deleteAfter bool) *fab {
			f := newFab(t, config.Conflicts{}, "u/k")
			ms := 0
			if deleteAfter {
				ms = 500
			}
			f.del("a", "u/k", ms, deleteAfter) // at 0 ms: a did not hold the key yet
			f.put("b", "u/k", "bbbb2222", 5)
			f.rec("b", "u/k", schema.Clock{"b": 1}, "bbbb2222", 10)
			f.rec("a", "u/k", schema.Clock{"a": 1, "b": 1}, "", 1000)
			f.final("u/k", "")
			return f
		}
		build(true).mustPass("a DELETE at a after b's version reached it")
		build(false).mustFail("a DELETE at a before b's version was made", "invented delete", "CHANGES_a seq 2", "no DELETE at a explains")
	})
	t.Run("one DELETE, two tombstones", func(t *testing.T) {
		// b's clock runs ahead, so b's version, made before a's DELETE,
		// beats a's tombstone and a applies it; a second tombstone at a
		// then needs a DELETE of its own, though the first DELETE began
		// after b's version was made.
		build := func(secondDelete bool) *fab {
			f := newFab(t, config.Conflicts{}, "u/k")
			f.put("a", "u/k", "aaaa1111", 0)
			f.rec("a", "u/k", schema.Clock{"a": 1}, "aaaa1111", 10)
			f.put("b", "u/k", "bbbb2222", 50)
			z := f.rec("b", "u/k", schema.Clock{"b": 1}, "bbbb2222", 55)
			f.set(z.V.ID, func(v *obsVersion) { v.V.TS += 5 * 60 * 1000 })
			z.V.TS += 5 * 60 * 1000
			f.del("a", "u/k", 100, true)
			t1 := f.rec("a", "u/k", schema.Clock{"a": 2}, "", 110)
			f.conflict(z, t1)
			if secondDelete {
				f.del("a", "u/k", 900, true)
			}
			f.rec("a", "u/k", schema.Clock{"a": 3, "b": 1}, "", 1000)
			f.final("u/k", "")
			return f
		}
		build(true).mustPass("a DELETE at a for each tombstone")
		build(false).mustFail("a DELETE at a for the first tombstone only", "invented delete", "CHANGES_a seq 4", "no DELETE at a explains")
	})
	t.Run("a DELETE after the tombstone", func(t *testing.T) {
		build := func(ms int) *fab {
			f := newFab(t, config.Conflicts{}, "u/k")
			f.put("a", "u/k", "aaaa1111", 0)
			f.rec("a", "u/k", schema.Clock{"a": 1}, "aaaa1111", 10)
			f.del("a", "u/k", ms, true)
			f.rec("a", "u/k", schema.Clock{"a": 2}, "", 110)
			f.final("u/k", "")
			return f
		}
		build(100).mustPass("the DELETE began before the tombstone was made")
		build(500).mustFail("the DELETE began after the tombstone was made", "invented delete", "CHANGES_a seq 2", "no DELETE at a explains")
	})
	t.Run("a tombstone over nothing", func(t *testing.T) {
		f := newFab(t, config.Conflicts{}, "u/k")
		f.del("a", "u/k", 0, false)
		f.rec("a", "u/k", schema.Clock{"a": 1}, "", 10)
		f.final("u/k", "")
		f.mustFail("a tombstone of a key never written", "invented delete", "over no version")
	})
	t.Run("a refused DELETE explains nothing", func(t *testing.T) {
		build := func(refused bool) *fab {
			f := newFab(t, config.Conflicts{}, "u/k")
			f.put("a", "u/k", "aaaa1111", 0)
			f.rec("a", "u/k", schema.Clock{"a": 1}, "aaaa1111", 10)
			f.w.Ops = append(f.w.Ops, Op{Site: "a", Key: "u/k", Kind: OpDelete, IfMatch: "aaaa1111", Start: f.at(100), End: f.at(101), Refused: refused, Err: "412"})
			f.rec("a", "u/k", schema.Clock{"a": 2}, "", 110)
			f.final("u/k", "")
			return f
		}
		build(false).mustPass("a DELETE that timed out may have happened")
		build(true).mustFail("a DELETE refused by its condition", "invented delete", "no DELETE at a explains")
	})
}

// One write is one record.
func TestCheckerDuplicateRecords(t *testing.T) {
	f := newFab(t, config.Conflicts{}, "u/k")
	f.put("a", "u/k", "aaaa1111", 0)
	f.rec("a", "u/k", schema.Clock{"a": 1}, "aaaa1111", 10)
	f.final("u/k", "aaaa1111")
	f.mustPass("one record")
	f.rec("a", "u/k", schema.Clock{"a": 2}, "aaaa1111", 20)
	f.final("u/k", "aaaa1111")
	f.mustFail("the same write published again under a new id", "I3 two records for one write", "CHANGES_a seq 1", "CHANGES_a seq 2")
}

// A conflict-log entry must pair concurrent versions and pick the one the
// bucket's policy picks, and with keep_losers the loser must be kept at
// schema.LoserKey.
func TestCheckerConflictRules(t *testing.T) {
	// Two concurrent PUTs of u/k at a (earlier) and b (later).
	two := func(pol config.Conflicts) (*fab, obsVersion, obsVersion) {
		f := newFab(t, pol, "u/k")
		f.put("a", "u/k", "aaaa1111", 0)
		f.put("b", "u/k", "bbbb2222", 0)
		va := f.rec("a", "u/k", schema.Clock{"a": 1}, "aaaa1111", 10)
		vb := f.rec("b", "u/k", schema.Clock{"b": 1}, "bbbb2222", 20)
		return f, va, vb
	}
	t.Run("lww picks the later", func(t *testing.T) {
		f, va, vb := two(config.Conflicts{})
		f.final("u/k", "bbbb2222")
		f.conflict(vb, va)
		f.mustPass("b's later version won")
		f, va, vb = two(config.Conflicts{})
		f.final("u/k", "aaaa1111")
		f.conflict(va, vb)
		f.mustFail("a's earlier version won under lww", "winner is not the policy's pick", "winner a.")
	})
	t.Run("winner not concurrent with the loser", func(t *testing.T) {
		// a writes twice; the sites end with a's first version, and a
		// conflict entry claims the second lost to it.
		f := newFab(t, config.Conflicts{}, "u/k")
		f.put("a", "u/k", "aaaa1111", 0)
		f.put("a", "u/k", "aaaa2222", 100)
		v1 := f.rec("a", "u/k", schema.Clock{"a": 1}, "aaaa1111", 10)
		v2 := f.rec("a", "u/k", schema.Clock{"a": 2}, "aaaa2222", 110)
		f.final("u/k", "aaaa1111")
		f.conflict(v1, v2)
		f.mustFail("a loser that causally follows its winner", "conflict loser whose winner was not concurrent with it", "is before the loser's")
	})
	t.Run("site-priority ranks", func(t *testing.T) {
		prio := config.Conflicts{Policy: "site-priority", Priority: []string{"b", "a", "c"}}
		f, va, vb := two(prio)
		f.final("u/k", "bbbb2222")
		f.conflict(vb, va)
		f.mustPass("b, first in the priority list, won")
		// The origins ranked their writes as lww would (rank 0): a's write
		// wins by origin time, against the policy.
		f, va, vb = two(prio)
		f.set(va.V.ID, func(v *obsVersion) { v.V.Rank = 0 })
		f.set(vb.V.ID, func(v *obsVersion) { v.V.Rank = 0 })
		va.V.Rank, vb.V.Rank = 0, 0
		f.set(vb.V.ID, func(v *obsVersion) { v.V.TS = va.V.TS - 1 })
		vb.V.TS = va.V.TS - 1
		f.final("u/k", "aaaa1111")
		f.conflict(va, vb)
		f.mustFail("a beat b under site-priority b,a,c", "has rank 0x0, but policy site-priority gives a write at b", "rank 0x3")
	})
	t.Run("kept copy", func(t *testing.T) {
		f, va, vb := two(config.Conflicts{})
		f.final("u/k", "bbbb2222")
		f.conflict(vb, va)
		for i := range f.o.Conflicts {
			f.o.Conflicts[i].LoserKeptAs = ""
		}
		f.mustFail("keep_losers and no kept copy named", "conflict loser not kept", "names the kept copy \"\"", schema.LoserKey(config.DefaultLosersPrefix, bucket, "u/k", va.V))
		off := false
		f, va, vb = two(config.Conflicts{KeepLosers: &off})
		f.final("u/k", "bbbb2222")
		f.conflict(vb, va)
		f.mustPass("keep_losers off, nothing kept")
		f, va, vb = two(config.Conflicts{})
		f.final("u/k", "bbbb2222")
		f.conflict(vb, va)
		delete(f.o.Final, f.o.Conflicts[0].LoserKeptAs)
		f.mustFail("the kept copy absent everywhere", "conflict loser not kept", "a holds absent")
	})
}
