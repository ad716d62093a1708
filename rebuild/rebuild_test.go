package rebuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// A wiped site (no bucket, no object, empty state) is rebuilt from two
// peers: every live key is copied with the marker of its target version,
// every tombstone becomes a tombstone entry, the buckets are created, and
// the state is marked rebuilt with no rebuild record left.
func TestWipedSite(t *testing.T) {
	m := newMesh(t, "b", "c")
	b, cc := m.peer("b"), m.peer("c")
	photos, docs := m.bucket(t, false), m.bucket(t, false)
	t0 := now() - time.Hour.Milliseconds()

	type expect struct {
		v     schema.Version
		clock schema.Clock
	}
	wants := map[string]map[string]expect{photos: {}, docs: {}}
	hold := func(bucket, key string, v schema.Version, clock schema.Clock) {
		wants[bucket][key] = expect{v, clock}
	}

	// Written at b, replicated to c.
	k := "b-origin.txt"
	v := version("b", photos, k, c("b", 1), t0)
	b.hold(t, photos, k, v)
	cc.hold(t, photos, k, v)
	hold(photos, k, v, c("b", 1))

	// Written at c, replicated to b; a key that needs URL encoding.
	k = "dir/c origin ü+%.txt"
	v = version("c", photos, k, c("c", 1), t0+1)
	cc.hold(t, photos, k, v)
	b.hold(t, photos, k, v)
	hold(photos, k, v, c("c", 1))

	// Written at a before it was lost (over b's first write), replicated
	// to both: the site gets its own version back, as a replica.
	k = "a-origin.txt"
	v = version("a", photos, k, c("a", 1, "b", 1), t0+2)
	b.hold(t, photos, k, v)
	cc.hold(t, photos, k, v)
	hold(photos, k, v, c("a", 1, "b", 1))

	// Deleted at b, the tombstone replicated to c.
	k = "deleted.txt"
	v = tombstone("b", photos, k, c("b", 2), t0+3)
	b.hold(t, photos, k, v)
	cc.hold(t, photos, k, v)
	hold(photos, k, v, c("b", 2))

	// Deleted at b, c still holding the version before.
	k = "deleted-at-b.txt"
	v = tombstone("b", photos, k, c("b", 2), t0+5)
	b.hold(t, photos, k, v)
	cc.hold(t, photos, k, version("b", photos, k, c("b", 1), t0+4))
	hold(photos, k, v, c("b", 2))

	// Only b has it (c has not applied it yet, nor seen it).
	k = "only-at-b.txt"
	v = version("b", photos, k, c("b", 1), t0+6)
	b.hold(t, photos, k, v)
	hold(photos, k, v, c("b", 1))

	// An empty object.
	k = "empty"
	v = emptyVersion("c", photos, k, c("c", 1), t0+7)
	cc.hold(t, photos, k, v)
	b.hold(t, photos, k, v)
	hold(photos, k, v, c("c", 1))

	// c's merged clock saw a concurrent write of b that lost to c's: no
	// record signed by b backs that entry of the peers' (unsigned) clocks,
	// so the entry gets the signed clock only (b's record, if it comes
	// again, is decided again).
	k = "merged-clock.txt"
	v = version("c", photos, k, c("c", 1), t0+9)
	cc.hold(t, photos, k, v, c("b", 1))
	b.hold(t, photos, k, v, c("b", 1))
	hold(photos, k, v, c("c", 1))

	// A second bucket: enough keys for several pages and batches.
	for i := range 70 {
		k := "doc-" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		origin := []string{"b", "c"}[i%2]
		v := version(origin, docs, k, c(origin, 1), t0+int64(i))
		b.hold(t, docs, k, v)
		cc.hold(t, docs, k, v)
		hold(docs, k, v, c(origin, 1))
	}

	st := freshState(t)
	o := m.options(st, photos, docs)
	var progress []Progress
	o.Progress = func(p Progress) { progress = append(progress, p) }
	start := now()
	stats := run(t, o)
	end := now()

	var want Stats
	want.Buckets = 2
	for _, keys := range wants {
		for _, w := range keys {
			want.Keys++
			if w.v.Deleted {
				want.Tombstones++
			} else {
				want.Copied++
				want.Bytes += w.v.Size
			}
		}
	}
	wantStats(t, stats, want)

	for bucket, keys := range wants {
		var live []string
		for k, w := range keys {
			if w.v.Deleted {
				m.site.wantAbsent(t, bucket, k)
				wantEntry(t, st, bucket, k, w.v, w.clock, "", "")
				continue
			}
			live = append(live, k)
			etag := m.site.wantReplica(t, bucket, k, w.v)
			wantEntry(t, st, bucket, k, w.v, w.clock, etag, digestOf(attrsOfVersion(w.v)))
			m.wantQuiet(t, st, bucket, k) // the agent finds what its state says
		}
		slices.Sort(live)
		if got := m.site.keys(t, bucket); !slices.Equal(got, live) {
			t.Errorf("site keys of %s: %q, want %q", bucket, got, live)
		}
		if n := entries(t, st, bucket); n != len(keys) {
			t.Errorf("state of %s has %d entries, want %d", bucket, n, len(keys))
		}
	}

	meta, ok, err := st.SiteMeta()
	if err != nil || !ok {
		t.Fatalf("site meta: %v %v", ok, err)
	}
	if meta.Site != siteName || meta.RebuiltAt < start || meta.RebuiltAt > end {
		t.Errorf("site meta %+v: want site %s rebuilt between %d and %d", meta, siteName, start, end)
	}
	for _, name := range []string{state.RebuildRunningMeta, cursorMeta(photos), cursorMeta(docs)} {
		if has, err := st.HasMeta(name); err != nil || has {
			t.Errorf("meta %s left after the rebuild (%v)", name, err)
		}
	}
	// Progress: after every batch, in order, ending with everything.
	if len(progress) < 3 { // photos: 1 batch; docs: 70 keys in batches of 64
		t.Fatalf("%d progress reports, want at least 3", len(progress))
	}
	last := progress[len(progress)-1]
	if last.Bucket != docs || last.Total != want || last.InBucket.Keys != 70 {
		t.Errorf("last progress %+v, want bucket %s, 70 keys in it, total %+v", last, docs, want)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i].Total.Keys <= progress[i-1].Total.Keys {
			t.Errorf("progress %d: total keys %d after %d", i, progress[i].Total.Keys, progress[i-1].Total.Keys)
		}
	}

	// A second run on the rebuilt site adopts everything and copies nothing.
	again := run(t, m.options(st, photos, docs))
	wantStats(t, again, Stats{Keys: want.Keys, Adopted: want.Copied, Tombstones: want.Tombstones})
}

// When the peers hold different versions of a key, the greatest one
// (schema.Version.Less: rank, then time, then origin) is the target, with
// the merge of every peer's clock; it is copied from a peer holding it,
// never from one holding another version.
func TestPeersDisagree(t *testing.T) {
	m := newMesh(t, "b", "c")
	b, cc := m.peer("b"), m.peer("c")
	t0 := now() - time.Hour.Milliseconds()
	cases := []struct {
		name string
		// setup makes b and c hold key and returns the target and the
		// merged clock.
		setup func(bucket, key string) (schema.Version, schema.Clock)
	}{
		{"the origin is ahead of its replica", func(bucket, key string) (schema.Version, schema.Clock) {
			v1 := version("b", bucket, key, c("b", 1), t0)
			v2 := version("b", bucket, key, c("b", 2), t0+1)
			b.hold(t, bucket, key, v2)
			cc.hold(t, bucket, key, v1)
			return v2, c("b", 2)
		}},
		{"a replica is ahead of an older origin copy", func(bucket, key string) (schema.Version, schema.Clock) {
			v1 := version("b", bucket, key, c("b", 1), t0)
			v2 := version("a", bucket, key, c("a", 1, "b", 1), t0+1)
			b.hold(t, bucket, key, v1)
			cc.hold(t, bucket, key, v2)
			return v2, c("a", 1, "b", 1)
		}},
		{"concurrent versions: the later one", func(bucket, key string) (schema.Version, schema.Clock) {
			vb := version("b", bucket, key, c("b", 1), t0+10)
			vc := version("c", bucket, key, c("c", 1), t0+20)
			b.hold(t, bucket, key, vb)
			cc.hold(t, bucket, key, vc)
			return vc, c("b", 1, "c", 1)
		}},
		{"concurrent versions: rank before time", func(bucket, key string) (schema.Version, schema.Clock) {
			vb := version("b", bucket, key, c("b", 1), t0+10)
			vb.Rank = 1
			vc := version("c", bucket, key, c("c", 1), t0+20)
			b.hold(t, bucket, key, vb)
			cc.hold(t, bucket, key, vc)
			return vb, c("b", 1, "c", 1)
		}},
		{"concurrent versions at the same time: origin order", func(bucket, key string) (schema.Version, schema.Clock) {
			vb := version("b", bucket, key, c("b", 1), t0)
			vc := version("c", bucket, key, c("c", 1), t0)
			b.hold(t, bucket, key, vb)
			cc.hold(t, bucket, key, vc)
			return vc, c("b", 1, "c", 1)
		}},
		{"a tombstone ahead of a version", func(bucket, key string) (schema.Version, schema.Clock) {
			v1 := version("c", bucket, key, c("c", 1), t0)
			del := tombstone("c", bucket, key, c("c", 2), t0+1)
			b.hold(t, bucket, key, v1)
			cc.hold(t, bucket, key, del)
			return del, c("c", 2)
		}},
		{"a version ahead of a tombstone", func(bucket, key string) (schema.Version, schema.Clock) {
			del := tombstone("c", bucket, key, c("c", 1), t0)
			v2 := version("b", bucket, key, c("b", 1, "c", 1), t0+1)
			b.hold(t, bucket, key, v2)
			cc.hold(t, bucket, key, del)
			return v2, c("b", 1, "c", 1)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bucket := m.bucket(t, false)
			const key = "k"
			target, clock := tc.setup(bucket, key)
			st := freshState(t)
			stats := run(t, m.options(st, bucket))
			if target.Deleted {
				wantStats(t, stats, Stats{Keys: 1, Tombstones: 1, Buckets: 1})
				m.site.wantAbsent(t, bucket, key)
				wantEntry(t, st, bucket, key, target, clock, "", "")
				return
			}
			wantStats(t, stats, Stats{Keys: 1, Copied: 1, Bytes: target.Size, Buckets: 1})
			etag := m.site.wantReplica(t, bucket, key, target)
			wantEntry(t, st, bucket, key, target, clock, etag, digestOf(attrsOfVersion(target)))
		})
	}
}

// Objects the site already holds in the target version are adopted
// without a write: a replica whose marker names the target, or a plain
// object of the site's own version with its ETag.
func TestAdopted(t *testing.T) {
	m := newMesh(t, "b", "c")
	b, cc := m.peer("b"), m.peer("c")
	t0 := now() - time.Hour.Milliseconds()
	cases := []struct {
		name string
		// The site's attributes differ from the target's: the agent
		// publishes them over it.
		attrsChanged bool
		setup        func(bucket, key string) schema.Version // returns the target
	}{
		{name: "a replica of the target", setup: func(bucket, key string) schema.Version {
			v := version("b", bucket, key, c("b", 3), t0)
			b.hold(t, bucket, key, v)
			cc.hold(t, bucket, key, v)
			m.site.putReplica(t, bucket, key, v)
			return v
		}},
		{name: "a replica of the target, held by one peer only", setup: func(bucket, key string) schema.Version {
			v := version("c", bucket, key, c("b", 1, "c", 1), t0)
			b.hold(t, bucket, key, version("b", bucket, key, c("b", 1), t0-1))
			cc.hold(t, bucket, key, v)
			m.site.putReplica(t, bucket, key, v)
			return v
		}},
		{name: "the site's own write", setup: func(bucket, key string) schema.Version {
			v := version("a", bucket, key, c("a", 2, "c", 1), t0)
			b.hold(t, bucket, key, v)
			cc.hold(t, bucket, key, v)
			m.site.putOrigin(t, bucket, key, v)
			return v
		}},
		{name: "the site's own empty object", setup: func(bucket, key string) schema.Version {
			v := emptyVersion("a", bucket, key, c("a", 1), t0)
			b.hold(t, bucket, key, v)
			m.site.putOrigin(t, bucket, key, v)
			return v
		}},
		{name: "the site's own write, its attributes overwritten since", attrsChanged: true, setup: func(bucket, key string) schema.Version {
			v := version("a", bucket, key, c("a", 1), t0)
			b.hold(t, bucket, key, v)
			cc.hold(t, bucket, key, v)
			// A metadata-only overwrite the lost state never published:
			// same bytes, same ETag.
			m.site.put(t, bucket, key, bodyOf(v), s3io.Attrs{ContentType: "text/changed", Meta: map[string]string{"new": "attrs"}})
			return v
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bucket := m.bucket(t, true)
			const key = "adopt/me"
			v := tc.setup(bucket, key)
			before := m.site.wantBody(t, bucket, key, bodyOf(v))
			st := freshState(t)
			o := m.options(st, bucket)
			h := &hookStore{Store: m.site.s3}
			o.Local = h
			stats := run(t, o)
			wantStats(t, stats, Stats{Keys: 1, Adopted: 1})
			if n := h.puts.Load() + h.deletes.Load() + h.copies.Load(); n != 0 {
				t.Errorf("%d writes at the site, want none", n)
			}
			after := m.site.wantBody(t, bucket, key, bodyOf(v))
			if !after.LastModified.Equal(before.LastModified) || after.ETag != before.ETag {
				t.Errorf("object rewritten: %v %s, was %v %s", after.LastModified, after.ETag, before.LastModified, before.ETag)
			}
			// The entry has the version's attributes: the agent compares the
			// object's with them.
			wantEntry(t, st, bucket, key, v, v.Clock, before.ETag, digestOf(attrsOfVersion(v)))
			if !tc.attrsChanged {
				m.wantQuiet(t, st, bucket, key)
				return
			}
			if r := m.wantPublishedOver(t, st, bucket, key, v, v.Clock); r != nil && r.Attrs.ContentType != "text/changed" {
				t.Errorf("the agent publishes attributes %+v, want the site's", r.Attrs)
			}
		})
	}
}

// A replica at the site whose marker names a version the merged clock
// covers is stale: it is replaced by the target (If-Match its ETag), or
// deleted when the target is a tombstone. If the object changes at the
// site meanwhile, the conditional write is refused and the key is left
// for the agent.
func TestStaleReplica(t *testing.T) {
	m := newMesh(t, "b", "c")
	b, cc := m.peer("b"), m.peer("c")
	t0 := now() - time.Hour.Milliseconds()
	stray := []byte("written at the site during the rebuild\n")
	cases := []struct {
		name string
		// setup makes the site hold a stale replica of key and returns the
		// target and the stale version.
		setup func(bucket, key string) (target, stale schema.Version)
		// race writes over the stale replica after rebuild's HEAD.
		race bool
	}{
		{name: "replaced by the next version", setup: func(bucket, key string) (schema.Version, schema.Version) {
			v1 := version("b", bucket, key, c("b", 1), t0)
			v2 := version("b", bucket, key, c("b", 2), t0+1)
			b.hold(t, bucket, key, v2)
			cc.hold(t, bucket, key, v2)
			return v2, v1
		}},
		{name: "replaced by a later version of another origin", setup: func(bucket, key string) (schema.Version, schema.Version) {
			v1 := version("b", bucket, key, c("b", 1), t0)
			v2 := version("c", bucket, key, c("b", 1, "c", 4), t0+1)
			b.hold(t, bucket, key, v1)
			cc.hold(t, bucket, key, v2)
			return v2, v1
		}},
		{name: "a replica of the site's own older write", setup: func(bucket, key string) (schema.Version, schema.Version) {
			v1 := version("a", bucket, key, c("a", 1), t0)
			v2 := version("b", bucket, key, c("a", 1, "b", 1), t0+1)
			b.hold(t, bucket, key, v2)
			cc.hold(t, bucket, key, v2)
			return v2, v1
		}},
		{name: "deleted for a tombstone", setup: func(bucket, key string) (schema.Version, schema.Version) {
			v1 := version("c", bucket, key, c("c", 1), t0)
			del := tombstone("b", bucket, key, c("b", 1, "c", 1), t0+1)
			b.hold(t, bucket, key, del)
			cc.hold(t, bucket, key, del)
			return del, v1
		}},
		{name: "changed at the site before the replacing put", race: true, setup: func(bucket, key string) (schema.Version, schema.Version) {
			v1 := version("b", bucket, key, c("b", 1), t0)
			v2 := version("b", bucket, key, c("b", 2), t0+1)
			b.hold(t, bucket, key, v2)
			cc.hold(t, bucket, key, v2)
			return v2, v1
		}},
		{name: "changed at the site before the delete", race: true, setup: func(bucket, key string) (schema.Version, schema.Version) {
			v1 := version("b", bucket, key, c("b", 1), t0)
			del := tombstone("b", bucket, key, c("b", 2), t0+1)
			b.hold(t, bucket, key, del)
			cc.hold(t, bucket, key, del)
			return del, v1
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bucket := m.bucket(t, true)
			const key = "stale"
			target, stale := tc.setup(bucket, key)
			m.site.putReplica(t, bucket, key, stale)
			st := freshState(t)
			o := m.options(st, bucket)
			h := &hookStore{Store: m.site.s3}
			if tc.race {
				h.afterHead = func(bucket, key string) { m.site.put(t, bucket, key, stray, s3io.Attrs{}) }
			}
			o.Local = h
			stats := run(t, o)
			switch {
			case tc.race:
				// Left for the agent: the stray write stays, no entry.
				wantStats(t, stats, Stats{Keys: 1, Differing: 1})
				m.site.wantBody(t, bucket, key, stray)
				wantNoEntry(t, st, bucket, key)
			case target.Deleted:
				wantStats(t, stats, Stats{Keys: 1, Replaced: 1, Tombstones: 1})
				m.site.wantAbsent(t, bucket, key)
				wantEntry(t, st, bucket, key, target, target.Clock, "", "")
			default:
				wantStats(t, stats, Stats{Keys: 1, Replaced: 1, Copied: 1, Bytes: target.Size})
				etag := m.site.wantReplica(t, bucket, key, target)
				wantEntry(t, st, bucket, key, target, target.Clock, etag, digestOf(attrsOfVersion(target)))
			}
			if got := m.site.keys(t, bucket); len(got) > 1 {
				t.Errorf("site keys %q: a stale replica is not kept aside", got)
			}
		})
	}
}

// An object at the site that is neither the target nor a stale replica is
// a local write whose history died with the state: ordered against the
// target by time. A newer one stays and its entry makes the agent publish
// it over the target; an older one is kept under KeptPrefix and replaced.
func TestDiffering(t *testing.T) {
	m := newMesh(t, "b", "c")
	b, cc := m.peer("b"), m.peer("c")
	past := now() - time.Hour.Milliseconds()
	future := now() + time.Hour.Milliseconds()
	local := []byte("a local write of site a the peers never saw\n")
	localAttrs := s3io.Attrs{ContentType: "application/x-local", Meta: map[string]string{"mine": "yes"}}
	stray := []byte("written at the site during the rebuild\n")
	cases := []struct {
		name  string
		newer bool // the site's object is newer than the target
		// setup makes the peers hold key and the site hold its object;
		// it returns the target.
		setup func(bucket, key string) schema.Version
		race  bool // the object changes at the site after rebuild's HEAD
	}{
		{name: "a plain object newer than the target", newer: true, setup: func(bucket, key string) schema.Version {
			v := version("b", bucket, key, c("b", 1), past)
			b.hold(t, bucket, key, v)
			cc.hold(t, bucket, key, v)
			m.site.put(t, bucket, key, local, localAttrs)
			return v
		}},
		{name: "a plain object newer than a tombstone", newer: true, setup: func(bucket, key string) schema.Version {
			del := tombstone("b", bucket, key, c("b", 2), past)
			b.hold(t, bucket, key, del)
			cc.hold(t, bucket, key, del)
			m.site.put(t, bucket, key, local, localAttrs)
			return del
		}},
		{name: "the site's own later write (its version's ETag differs)", newer: true, setup: func(bucket, key string) schema.Version {
			v := version("a", bucket, key, c("a", 1), past)
			b.hold(t, bucket, key, v)
			cc.hold(t, bucket, key, v)
			m.site.put(t, bucket, key, local, localAttrs)
			return v
		}},
		{name: "the target's bytes without its marker", newer: true, setup: func(bucket, key string) schema.Version {
			v := version("b", bucket, key, c("b", 1), past)
			b.hold(t, bucket, key, v)
			cc.hold(t, bucket, key, v)
			local = bodyOf(v) // same bytes, same ETag: still a local write
			m.site.put(t, bucket, key, local, localAttrs)
			return v
		}},
		{name: "the target's marker copied onto other bytes", newer: true, setup: func(bucket, key string) schema.Version {
			v := version("b", bucket, key, c("b", 1), past)
			b.hold(t, bucket, key, v)
			cc.hold(t, bucket, key, v)
			// Any S3 user can write s3mesh's metadata: a marker on bytes
			// that are not the version's is no replica of it.
			localAttrs = s3io.Attrs{Meta: schema.ReplicaMeta(bucket, key, v)}
			m.site.put(t, bucket, key, local, localAttrs)
			return v
		}},
		{name: "a plain object older than the target", newer: false, setup: func(bucket, key string) schema.Version {
			v := version("b", bucket, key, c("b", 1), future)
			b.hold(t, bucket, key, v)
			cc.hold(t, bucket, key, v)
			m.site.put(t, bucket, key, local, localAttrs)
			return v
		}},
		{name: "a plain object older than a tombstone", newer: false, setup: func(bucket, key string) schema.Version {
			del := tombstone("c", bucket, key, c("c", 1), future)
			b.hold(t, bucket, key, del)
			cc.hold(t, bucket, key, del)
			m.site.put(t, bucket, key, local, localAttrs)
			return del
		}},
		{name: "a replica of a concurrent version, older than the target", newer: false, setup: func(bucket, key string) schema.Version {
			v := version("b", bucket, key, c("b", 1), future)
			b.hold(t, bucket, key, v)
			cc.hold(t, bucket, key, v)
			// A replica of site d's version the peers never saw (their
			// clock does not cover d:1).
			d := version("d", bucket, key, c("d", 1), past)
			m.site.putReplica(t, bucket, key, d)
			local, localAttrs = bodyOf(d), attrsOfVersion(d)
			return v
		}},
		{name: "an older object changed before it is kept aside", race: true, setup: func(bucket, key string) schema.Version {
			v := version("b", bucket, key, c("b", 1), future)
			b.hold(t, bucket, key, v)
			m.site.put(t, bucket, key, local, localAttrs)
			return v
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			local = []byte("a local write of site a the peers never saw\n")
			localAttrs = s3io.Attrs{ContentType: "application/x-local", Meta: map[string]string{"mine": "yes"}}
			bucket := m.bucket(t, true)
			const key = "docs/report.txt"
			target := tc.setup(bucket, key)
			before := m.site.wantBody(t, bucket, key, local)
			st := freshState(t)
			o := m.options(st, bucket)
			if tc.race {
				h := &hookStore{Store: m.site.s3}
				h.afterHead = func(bucket, key string) { m.site.put(t, bucket, key, stray, s3io.Attrs{}) }
				o.Local = h
			}
			stats := run(t, o)
			kept := schema.LoserKey(KeptPrefix, bucket, key, schema.Version{Origin: siteName, TS: before.LastModified.UnixMilli()})
			if tc.race {
				// Left for the agent, counted once.
				wantStats(t, stats, Stats{Keys: 1, Differing: 1})
				m.site.wantBody(t, bucket, key, stray)
				wantNoEntry(t, st, bucket, key)
				if got := m.site.keys(t, bucket); !slices.Equal(got, []string{key}) {
					t.Errorf("site keys %q, want only %q", got, key)
				}
				return
			}
			if tc.newer {
				wantStats(t, stats, Stats{Keys: 1, Differing: 1})
				after := m.site.wantBody(t, bucket, key, local)
				if after.ETag != before.ETag || !after.LastModified.Equal(before.LastModified) {
					t.Errorf("newer object rewritten: %s %v, was %s %v", after.ETag, after.LastModified, before.ETag, before.LastModified)
				}
				// The target held with no local copy: the agent sees a
				// local write over it and publishes it.
				wantEntry(t, st, bucket, key, target, target.Clock, "", "")
				if got := m.site.keys(t, bucket); !slices.Equal(got, []string{key}) {
					t.Errorf("site keys %q, want only %q", got, key)
				}
				if r := m.wantPublishedOver(t, st, bucket, key, target, target.Clock); r != nil && r.Version.ETag != before.ETag {
					t.Errorf("the agent publishes ETag %s, want the site's %s", r.Version.ETag, before.ETag)
				}
				return
			}
			// The older object is kept under a new key, bytes and attributes.
			info := m.site.wantBody(t, bucket, kept, local)
			if info.ContentType != localAttrs.ContentType || digestOf(info.Attrs) != digestOf(localAttrs) {
				t.Errorf("kept copy attributes %+v, want %+v", info.Attrs, localAttrs)
			}
			wantNoEntry(t, st, bucket, kept)
			if r := m.published(t, st, bucket, kept); r == nil || r.Version.ETag != info.ETag {
				t.Errorf("the agent publishes the kept copy as %+v, want a new write of it", r)
			}
			if target.Deleted {
				wantStats(t, stats, Stats{Keys: 1, Differing: 1, Tombstones: 1})
				m.site.wantAbsent(t, bucket, key)
				wantEntry(t, st, bucket, key, target, target.Clock, "", "")
			} else {
				wantStats(t, stats, Stats{Keys: 1, Differing: 1, Copied: 1, Bytes: target.Size})
				etag := m.site.wantReplica(t, bucket, key, target)
				wantEntry(t, st, bucket, key, target, target.Clock, etag, digestOf(attrsOfVersion(target)))
			}
			m.wantQuiet(t, st, bucket, key)
		})
	}
}

// Objects only the site has are kept with no state entry (the agent's
// scanner publishes them), whatever they carry, among keys the peers know.
func TestLocalOnly(t *testing.T) {
	m := newMesh(t, "b")
	b := m.peer("b")
	bucket := m.bucket(t, true)
	t0 := now() - time.Hour.Milliseconds()
	var want Stats
	for i, k := range []string{"k1", "k3", "k5"} {
		v := version("b", bucket, k, c("b", 1), t0+int64(i))
		b.hold(t, bucket, k, v)
		want.Keys++
		want.Copied++
		want.Bytes += v.Size
	}
	mine := map[string][]byte{"k0": []byte("zero"), "k2": []byte("two"), "k9": nil}
	for k, body := range mine {
		m.site.put(t, bucket, k, body, s3io.Attrs{})
		want.Keys++
		want.LocalOnly++
	}
	// A replica of a key the peers no longer know (its tombstone was
	// collected) is kept too: with no entry to trust its marker, the agent
	// publishes it like any local write.
	gone := version("b", bucket, "k4", c("b", 1), t0)
	m.site.putReplica(t, bucket, "k4", gone)
	mine["k4"] = bodyOf(gone)
	want.Keys++
	want.LocalOnly++

	st := freshState(t)
	o := m.options(st, bucket)
	o.PageSize = 1
	wantStats(t, run(t, o), want)
	for k, body := range mine {
		m.site.wantBody(t, bucket, k, body)
		wantNoEntry(t, st, bucket, k)
		if m.published(t, st, bucket, k) == nil {
			t.Errorf("the agent does not publish %s, only the site has it", k)
		}
	}
	if n := entries(t, st, bucket); n != 3 {
		t.Errorf("%d state entries, want 3 (the peers' keys)", n)
	}
}

// A holder whose object changed since its state page was read fails the
// GET If-Match (412) or finds it gone (404): another holder is tried, and
// if none is left the key is counted as changed and left to the mirrors.
func TestHolderChanged(t *testing.T) {
	m := newMesh(t, "b", "c")
	b, cc := m.peer("b"), m.peer("c")
	t0 := now() - time.Hour.Milliseconds()
	changed := []byte("b's object, overwritten after its state page\n")
	overwrite := func(n *node) func(bucket, key string) {
		return func(bucket, key string) { n.put(t, bucket, key, changed, s3io.Attrs{}) }
	}
	remove := func(n *node) func(bucket, key string) {
		return func(bucket, key string) {
			if err := n.s3.Delete(testCtx(t), bucket, key, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name    string
		change  []func(bucket, key string)
		stale   bool // the site holds a stale replica to replace
		copied  bool
		changed bool
	}{
		{name: "the first holder overwritten", change: []func(string, string){overwrite(b)}, copied: true},
		{name: "the first holder deleted", change: []func(string, string){remove(b)}, copied: true},
		{name: "the second holder overwritten", change: []func(string, string){overwrite(cc)}, copied: true},
		{name: "every holder changed", change: []func(string, string){overwrite(b), remove(cc)}, changed: true},
		{name: "every holder changed, over a stale replica", change: []func(string, string){overwrite(b), overwrite(cc)}, stale: true, changed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bucket := m.bucket(t, true)
			const key = "moving"
			v1 := version("b", bucket, key, c("b", 1), t0)
			v := version("b", bucket, key, c("b", 2), t0+1)
			b.hold(t, bucket, key, v)
			cc.hold(t, bucket, key, v)
			for _, f := range tc.change {
				f(bucket, key)
			}
			if tc.stale {
				m.site.putReplica(t, bucket, key, v1)
			}
			st := freshState(t)
			stats := run(t, m.options(st, bucket))
			switch {
			case tc.copied:
				wantStats(t, stats, Stats{Keys: 1, Copied: 1, Bytes: v.Size})
				etag := m.site.wantReplica(t, bucket, key, v)
				wantEntry(t, st, bucket, key, v, v.Clock, etag, digestOf(attrsOfVersion(v)))
			case tc.stale:
				wantStats(t, stats, Stats{Keys: 1, Changed: 1})
				m.site.wantReplica(t, bucket, key, v1)
				wantNoEntry(t, st, bucket, key)
			default:
				wantStats(t, stats, Stats{Keys: 1, Changed: 1})
				m.site.wantAbsent(t, bucket, key)
				wantNoEntry(t, st, bucket, key)
			}
		})
	}
}

// An object listed at the site but gone by its HEAD is copied as if it
// had never been there (If-None-Match).
func TestGoneAfterListing(t *testing.T) {
	m := newMesh(t, "b")
	b := m.peer("b")
	bucket := m.bucket(t, true)
	const key = "fleeting"
	v := version("b", bucket, key, c("b", 2), now())
	b.hold(t, bucket, key, v)
	m.site.putReplica(t, bucket, key, version("b", bucket, key, c("b", 1), 0))
	st := freshState(t)
	o := m.options(st, bucket)
	h := &hookStore{Store: m.site.s3, afterList: func(bucket, key string) {
		if err := m.site.s3.Delete(testCtx(t), bucket, key, ""); err != nil {
			t.Error(err)
		}
	}}
	o.Local = h
	wantStats(t, run(t, o), Stats{Keys: 1, Copied: 1, Bytes: v.Size})
	etag := m.site.wantReplica(t, bucket, key, v)
	wantEntry(t, st, bucket, key, v, v.Clock, etag, digestOf(attrsOfVersion(v)))
}

// A rebuild cancelled half-way leaves its cursor and the running record;
// run again, it continues after the cursor and adopts what the first run
// copied past it: every object is copied exactly once over both runs.
func TestResume(t *testing.T) {
	m := newMesh(t, "b", "c")
	b, cc := m.peer("b"), m.peer("c")
	bucket := m.bucket(t, false)
	t0 := now() - time.Hour.Milliseconds()
	const n, stopAfter = 150, 100
	var keys []string
	for i := range n {
		k := "obj-" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		keys = append(keys, k)
		v := version("b", bucket, k, c("b", 1), t0+int64(i))
		b.hold(t, bucket, k, v)
		if i%3 != 0 {
			cc.hold(t, bucket, k, v)
		}
	}

	st := freshState(t)
	copies := map[string]int{}
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(testCtx(t))
	o := m.options(st, bucket)
	// One worker: the hook's cancel stops the run with no copy in flight,
	// so every copy is seen by it.
	o.Workers = 1
	o.AfterCopy = func(_, key string) {
		mu.Lock()
		defer mu.Unlock()
		copies[key]++
		if len(copies) == stopAfter {
			cancel()
		}
	}
	first, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want it cancelled", err)
	}
	const batch = 64 // max(Workers*8, 64)
	if len(copies) != stopAfter {
		t.Fatalf("first run copied %d objects, want %d", len(copies), stopAfter)
	}
	size := version("b", bucket, keys[0], c("b", 1), 0).Size // every body has this size
	// The first run reports what it did, the interrupted batch included.
	wantStats(t, first, Stats{Keys: stopAfter, Copied: stopAfter, Bytes: stopAfter * size, Buckets: 1})

	var cur cursor
	if ok, err := st.GetMeta(cursorMeta(bucket), &cur); err != nil || !ok {
		t.Fatalf("no cursor after the interrupted run (%v)", err)
	}
	if cur.Done || cur.After != keys[batch-1] || cur.Stats.Keys != batch || cur.Stats.Copied != batch {
		t.Errorf("cursor %+v, want after %q with %d keys copied", cur, keys[batch-1], batch)
	}
	if has, _ := st.HasMeta(state.RebuildRunningMeta); !has {
		t.Error("no running record after the interrupted run")
	}
	if _, ok, _ := st.SiteMeta(); ok {
		t.Error("the state is marked rebuilt after an interrupted run")
	}

	pagesBefore := len(b.pageCalls())
	o.Workers = 4
	second := run(t, o)
	if got := b.pageCalls()[pagesBefore]; got != cur.After {
		t.Errorf("second run read b's state after %q, want after the cursor %q", got, cur.After)
	}
	// Keys up to the cursor are not looked at again; those the first run
	// copied after it are adopted.
	wantStats(t, second, Stats{Keys: n - batch, Copied: n - stopAfter, Adopted: stopAfter - batch, Bytes: (n - stopAfter) * size})
	total := 0
	for _, k := range keys {
		if copies[k] != 1 {
			t.Errorf("%s copied %d times", k, copies[k])
		}
		total += copies[k]
		v := version("b", bucket, k, c("b", 1), 0)
		etag := m.site.wantBody(t, bucket, k, bodyOf(v)).ETag
		e, ok, err := st.Get(bucket, k)
		if err != nil || !ok || e.LocalETag != etag || e.Held.ID != v.ID {
			t.Errorf("state of %s: %+v %v %v, want %s held with ETag %s", k, e, ok, err, v.ID, etag)
		}
	}
	if total != n {
		t.Errorf("%d copies over both runs, want %d", total, n)
	}
	if _, ok, _ := st.SiteMeta(); !ok {
		t.Error("the state is not marked rebuilt after the second run")
	}
	for _, name := range []string{state.RebuildRunningMeta, cursorMeta(bucket)} {
		if has, _ := st.HasMeta(name); has {
			t.Errorf("meta %s left after the rebuild", name)
		}
	}
}

// A finished bucket is not rebuilt again by a resumed run; one rebuild's
// running record refuses another site's.
func TestResumeAcrossBuckets(t *testing.T) {
	m := newMesh(t, "b")
	b := m.peer("b")
	one, two := m.bucket(t, false), m.bucket(t, false)
	t0 := now() - time.Hour.Milliseconds()
	for _, bucket := range []string{one, two} {
		for i, k := range []string{"x", "y", "z"} {
			b.hold(t, bucket, k, version("b", bucket, k, c("b", 1), t0+int64(i)))
		}
	}
	st := freshState(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	o := m.options(st, one, two)
	o.Workers = 1
	o.AfterCopy = func(bucket, _ string) {
		if bucket == two {
			cancel()
		}
	}
	first, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want it cancelled", err)
	}
	// All of one, and the first key of two.
	size := version("b", one, "x", c("b", 1), 0).Size // every body has this size
	wantStats(t, first, Stats{Keys: 4, Copied: 4, Bytes: 4 * size, Buckets: 2})
	var cur cursor
	if ok, err := st.GetMeta(cursorMeta(one), &cur); err != nil || !ok || !cur.Done {
		t.Fatalf("cursor of %s: %+v %v %v, want done", one, cur, ok, err)
	}

	other := m.options(st, one, two)
	other.Site = "z"
	if _, err := Run(testCtx(t), other); err == nil || !strings.Contains(err.Error(), `unfinished rebuild of site "a"`) {
		t.Errorf("rebuilding site z over a's unfinished rebuild: %v, want a refusal", err)
	}

	o.AfterCopy = nil
	pages := len(b.pageCalls())
	second := run(t, o)
	for _, after := range b.pageCalls()[pages:] {
		if after != "" && after != "x" && after != "y" {
			t.Errorf("second run read b's state after %q", after)
		}
	}
	// What this run did: only bucket two, again from its start (its only
	// batch was interrupted), adopting what the first run copied.
	wantStats(t, second, Stats{Keys: 3, Copied: 2, Adopted: 1, Bytes: 2 * size})
}

// A large object (above the part size) is copied by multipart upload,
// byte for byte, and the copy's memory does not grow with the object.
func TestLargeObject(t *testing.T) {
	m := newMesh(t, "b")
	b := m.peer("b")
	bucket := m.bucket(t, false)
	const size = 64 << 20
	const key = "big.bin"
	body := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(body)
	at := s3io.Attrs{ContentType: "application/x-big", Meta: map[string]string{"size": "64MiB"}}
	etag := b.put(t, bucket, key, body, at) // multipart at b too (16 MiB parts)
	v := schema.Version{ID: schema.VersionID("b", bucket, key, 1), Origin: "b", Clock: c("b", 1), TS: now(), Size: size, ETag: etag}
	unlock := b.st.Lock(bucket, key)
	err := b.st.Put(bucket, key, state.Entry{Held: v, Clock: v.Clock, LocalETag: etag, Attrs: digestOf(at), Updated: now(), Proof: proofOf(t, bucket, key, v)})
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(body)
	body = nil

	st := freshState(t)
	o := m.options(st, bucket)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	stats := run(t, o)
	runtime.ReadMemStats(&after)
	wantStats(t, stats, Stats{Keys: 1, Copied: 1, Bytes: size, Buckets: 1})
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("copied %d MiB allocating %.1f MiB", size>>20, float64(alloc)/(1<<20))
	// Two part buffers (s3io.MinPartSize) and the clients' own buffers;
	// a body read into memory would be 64 MiB more.
	if alloc > 32<<20 {
		t.Errorf("the copy allocated %d MiB for a %d MiB object", alloc>>20, size>>20)
	}

	rc, info, err := m.site.s3.Get(testCtx(t), bucket, key, "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if n, err := io.Copy(h, rc); err != nil || n != size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Errorf("the copy's sha256 is %x, want %x", got, want)
	}
	parts := (size + s3io.MinPartSize - 1) / s3io.MinPartSize
	if !strings.HasSuffix(info.ETag, fmt.Sprintf("-%d", parts)) {
		t.Errorf("site ETag %s: want a multipart upload of %d parts", info.ETag, parts)
	}
	if rv, ok := schema.Replica(bucket, key, info.Meta, info.Size); !ok || !sameVersion(rv, v) {
		t.Errorf("marker %+v %v, want %+v", rv, ok, v)
	}
	if info.ContentType != at.ContentType || info.Meta["size"] != "64MiB" {
		t.Errorf("attributes %+v, want %+v", info.Attrs, at)
	}
	wantEntry(t, st, bucket, key, v, v.Clock, info.ETag, digestOf(at))
}

// Run refuses what it cannot rebuild from, and stops on a peer's state
// that is not in key order.
func TestRunErrors(t *testing.T) {
	m := newMesh(t, "b")
	b := m.peer("b")
	t0 := now()
	t.Run("no peers", func(t *testing.T) {
		o := m.options(freshState(t), "whatever")
		o.Peers = nil
		if _, err := Run(testCtx(t), o); err == nil {
			t.Error("rebuild from no peers succeeded")
		}
	})
	t.Run("a bucket no peer has", func(t *testing.T) {
		st := freshState(t)
		_, err := Run(testCtx(t), m.options(st, "nowhere"))
		if err == nil || !strings.Contains(err.Error(), "missing at every peer") {
			t.Errorf("rebuild of a bucket no peer has: %v", err)
		}
		if ok, _ := m.site.s3.BucketExists(testCtx(t), "nowhere"); ok {
			t.Error("the bucket was created at the site")
		}
		if _, ok, _ := st.SiteMeta(); ok {
			t.Error("the state was marked rebuilt")
		}
	})
	t.Run("a peer's page out of order", func(t *testing.T) {
		bucket := m.bucket(t, false)
		for i, k := range []string{"a", "b", "c"} {
			b.hold(t, bucket, k, version("b", bucket, k, c("b", 1), t0+int64(i)))
		}
		o := m.options(freshState(t), bucket)
		page := o.Peers[0].Page
		o.Peers[0].Page = func(ctx context.Context, bucket, after string, limit int) ([]Item, bool, error) {
			items, more, err := page(ctx, bucket, after, limit)
			slices.Reverse(items)
			return items, more, err
		}
		if _, err := Run(testCtx(t), o); !errors.Is(err, ErrUnsorted) {
			t.Errorf("rebuild from an unsorted page: %v, want ErrUnsorted", err)
		}
	})
	t.Run("a peer's page is hostile", func(t *testing.T) {
		forge := map[string]func(*Item){
			"a version of another key": func(it *Item) { it.Held.ID = schema.VersionID("b", "other", it.Key, 1) },
			"a size over 5 TiB":        func(it *Item) { it.Held.Size = schema.MaxSize + 1 },
			"a merged counter over the bound": func(it *Item) {
				it.Clock = schema.Clock{"b": schema.MaxCounter + 1}
			},
			"a key with a .. segment": func(it *Item) { it.Key = "x/../y" },
		}
		for name, f := range forge {
			t.Run(name, func(t *testing.T) {
				bucket := m.bucket(t, false)
				b.hold(t, bucket, "k", version("b", bucket, "k", c("b", 1), t0))
				st := freshState(t)
				o := m.options(st, bucket)
				page := o.Peers[0].Page
				o.Peers[0].Page = func(ctx context.Context, bucket, after string, limit int) ([]Item, bool, error) {
					items, more, err := page(ctx, bucket, after, limit)
					for i := range items {
						f(&items[i])
					}
					return items, more, err
				}
				if _, err := Run(testCtx(t), o); !errors.Is(err, schema.ErrMalformed) {
					t.Errorf("rebuild from a hostile page: %v, want a refusal", err)
				}
				if keys := m.site.keys(t, bucket); len(keys) != 0 {
					t.Errorf("a hostile page made the site write %q", keys)
				}
			})
		}
	})
	t.Run("a peer's page fails", func(t *testing.T) {
		bucket := m.bucket(t, false)
		o := m.options(freshState(t), bucket)
		boom := errors.New("boom")
		o.Peers[0].Page = func(context.Context, string, string, int) ([]Item, bool, error) { return nil, false, boom }
		if _, err := Run(testCtx(t), o); !errors.Is(err, boom) {
			t.Errorf("rebuild with a failing peer page: %v, want boom", err)
		}
	})
}
