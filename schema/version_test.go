package schema

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"testing"

	"pgregory.net/rapid"
)

// versionGen draws versions whose ordering fields collide often (small
// ranges), so ties on Rank, TS and Origin are exercised.
func versionGen() *rapid.Generator[Version] {
	return rapid.Custom(func(t *rapid.T) Version {
		origin := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "origin")
		n := rapid.Uint64Range(1, 3).Draw(t, "n")
		key := rapid.SampledFrom([]string{"k1", "k2"}).Draw(t, "key")
		return Version{
			ID:     VersionID(origin, "bkt", key, n),
			Origin: origin,
			Clock:  Clock{origin: n},
			TS:     rapid.Int64Range(-1, 2).Draw(t, "ts"),
			Rank:   rapid.Uint64Range(0, 1).Draw(t, "rank"),
		}
	})
}

func TestVersionLess(t *testing.T) {
	base := Version{ID: "a.x.1", Origin: "a", TS: 10, Rank: 1}
	with := func(f func(*Version)) Version { v := base; f(&v); return v }
	cases := []struct {
		name string
		v, w Version
		want bool
	}{
		{"same version", base, base, false},
		{"lower rank wins over higher ts", with(func(v *Version) { v.Rank = 0; v.TS = 99 }), base, true},
		{"higher rank", with(func(v *Version) { v.Rank = 2; v.TS = 0 }), base, false},
		{"lower ts", with(func(v *Version) { v.TS = 9; v.Origin = "z" }), base, true},
		{"higher ts", with(func(v *Version) { v.TS = 11; v.Origin = "0" }), base, false},
		{"ts tie: origin decides", with(func(v *Version) { v.Origin = "0"; v.ID = "z" }), base, true},
		{"ts tie: origin decides (greater)", with(func(v *Version) { v.Origin = "b"; v.ID = "0" }), base, false},
		{"ts and origin tie: id decides", with(func(v *Version) { v.ID = "a.x.0" }), base, true},
		{"ts and origin tie: id decides (greater)", with(func(v *Version) { v.ID = "a.x.2" }), base, false},
		{"other fields ignored", with(func(v *Version) { v.Deleted = true; v.Size = 5; v.ETag = "e" }), base, false},
		{"negative ts", with(func(v *Version) { v.TS = -1 }), base, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.v.Less(tc.w); got != tc.want {
				t.Fatalf("Less = %v, want %v (v=%+v w=%+v)", got, tc.want, tc.v, tc.w)
			}
		})
	}
}

func TestVersionLessStrictTotalOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vs := rapid.SliceOfNDistinct(versionGen(), 1, 8, func(v Version) string { return v.ID }).Draw(t, "versions")
		for _, a := range vs {
			if a.Less(a) {
				t.Fatalf("irreflexivity: %+v < itself", a)
			}
			for _, b := range vs {
				if a.ID == b.ID {
					continue
				}
				ab, ba := a.Less(b), b.Less(a)
				if ab == ba {
					t.Fatalf("totality/asymmetry: a<b=%v b<a=%v for\n a=%+v\n b=%+v", ab, ba, a, b)
				}
				for _, c := range vs {
					if ab && b.Less(c) && !a.Less(c) {
						t.Fatalf("transitivity: %s < %s < %s but not %s < %s", a.ID, b.ID, c.ID, a.ID, c.ID)
					}
				}
			}
		}
		// Any permutation sorts to the same sequence.
		p := rapid.Permutation(vs).Draw(t, "perm")
		sort.Slice(vs, func(i, j int) bool { return vs[i].Less(vs[j]) })
		sort.Slice(p, func(i, j int) bool { return p[i].Less(p[j]) })
		for i := range vs {
			if vs[i].ID != p[i].ID {
				t.Fatalf("sort depends on input order at %d: %s vs %s", i, vs[i].ID, p[i].ID)
			}
		}
	})
}

func TestNextTS(t *testing.T) {
	held := &Version{TS: 1000}
	cases := []struct {
		name string
		wall int64
		held *Version
		want int64
	}{
		{"nothing held: wall time", 500, nil, 500},
		{"wall ahead of held", 1001, held, 1001},
		{"wall far ahead", 5000, held, 5000},
		{"wall equal to held", 1000, held, 1001},
		{"wall behind held (skew)", 10, held, 1001},
		{"wall negative", -5, held, 1001},
		{"held negative, wall zero", 0, &Version{TS: -3}, 0},
		{"held negative, wall lower", -9, &Version{TS: -3}, -2},
		// A held time at the largest value (only a peer's forged time that
		// no receiver's limits stopped gets there): saturate, never wrap.
		{"held at the largest time", 5000, &Version{TS: math.MaxInt64}, math.MaxInt64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := NextTS(tc.wall, tc.held)
			if got != tc.want {
				t.Fatalf("NextTS(%d, %+v) = %d, want %d", tc.wall, tc.held, got, tc.want)
			}
			if tc.held != nil && got <= tc.held.TS && got != math.MaxInt64 {
				t.Fatalf("NextTS %d not after held %d", got, tc.held.TS)
			}
		})
	}
}

func TestNextTSProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		wall := rapid.Int64Range(-1e12, 1e12).Draw(t, "wall")
		ts := rapid.Int64Range(-1e12, 1e12).Draw(t, "held")
		got := NextTS(wall, &Version{TS: ts})
		if got <= ts || got < wall || (got != wall && got != ts+1) {
			t.Fatalf("NextTS(%d, held %d) = %d", wall, ts, got)
		}
	})
}

func TestKeyTag(t *testing.T) {
	hex24 := regexp.MustCompile(`^[0-9a-f]{24}$`)
	cases := []struct{ name, bucket, key string }{
		{"plain", "photos", "2024/cat.jpg"},
		{"unicode", "b", "ключ/日本語/🐈"},
		{"empty key", "b", ""},
		{"spaces and dots", "b", "a b/./../c"},
		{"long key", "b", string(make([]byte, 1024))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tag := KeyTag(tc.bucket, tc.key)
			if !hex24.MatchString(tag) {
				t.Fatalf("KeyTag = %q, want 24 lower-hex chars", tag)
			}
			if again := KeyTag(tc.bucket, tc.key); again != tag {
				t.Fatalf("KeyTag not stable: %q then %q", tag, again)
			}
		})
	}
	t.Run("golden", func(t *testing.T) {
		// Tags are stored in object metadata and record ids: they must never
		// change between builds. sha256("b\x00k")[:12].
		if got, want := KeyTag("b", "k"), "265def662ae3808168044d68"; got != want {
			t.Fatalf("KeyTag(b, k) = %q, want %q", got, want)
		}
	})
	distinct := []struct {
		name string
		b1   string
		k1   string
		b2   string
		k2   string
	}{
		{"dot moves between bucket and key", "a.b", "c", "a", "b.c"},
		{"slash moves between bucket and key", "a/b", "c", "a", "b/c"},
		{"concatenation ambiguity", "ab", "c", "a", "bc"},
		{"bucket vs key swapped", "x", "y", "y", "x"},
		{"case differs", "b", "Key", "b", "key"},
		{"other bucket", "b1", "k", "b2", "k"},
	}
	for _, tc := range distinct {
		t.Run("distinct/"+tc.name, func(t *testing.T) {
			if KeyTag(tc.b1, tc.k1) == KeyTag(tc.b2, tc.k2) {
				t.Fatalf("KeyTag(%q,%q) == KeyTag(%q,%q)", tc.b1, tc.k1, tc.b2, tc.k2)
			}
		})
	}
}

func TestVersionID(t *testing.T) {
	cases := []struct {
		name        string
		origin, b   string
		key         string
		n           uint64
		wantPattern string
	}{
		{"simple", "a", "bkt", "k", 1, `^a\.[0-9a-f]{24}\.1$`},
		{"dashed site", "site-2", "bkt", "dir/file.txt", 42, `^site-2\.[0-9a-f]{24}\.42$`},
		{"unicode key", "z9", "bkt", "日本/ключ.bin", 7, `^z9\.[0-9a-f]{24}\.7$`},
		{"max n", "a", "bkt", "k", ^uint64(0), `^a\.[0-9a-f]{24}\.18446744073709551615$`},
		{"zero n", "a", "bkt", "k", 0, `^a\.[0-9a-f]{24}\.0$`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := VersionID(tc.origin, tc.b, tc.key, tc.n)
			if !regexp.MustCompile(tc.wantPattern).MatchString(id) {
				t.Fatalf("VersionID = %q, want %s", id, tc.wantPattern)
			}
			if id != VersionID(tc.origin, tc.b, tc.key, tc.n) {
				t.Fatal("VersionID not deterministic")
			}
			o, tag, n, err := ParseVersionID(id)
			if err != nil {
				t.Fatalf("ParseVersionID(%q): %v", id, err)
			}
			if o != tc.origin || tag != KeyTag(tc.b, tc.key) || n != tc.n {
				t.Fatalf("ParseVersionID(%q) = %q, %q, %d", id, o, tag, n)
			}
		})
	}
	t.Run("distinct per origin, key and n", func(t *testing.T) {
		seen := map[string]string{}
		for _, o := range []string{"a", "b"} {
			for _, k := range []string{"k1", "k2"} {
				for n := uint64(1); n <= 3; n++ {
					id := VersionID(o, "bkt", k, n)
					what := fmt.Sprint(o, k, n)
					if prev, dup := seen[id]; dup {
						t.Fatalf("id %q for %s and %s", id, prev, what)
					}
					seen[id] = what
				}
			}
		}
	})
}

func TestParseVersionIDErrors(t *testing.T) {
	tag := KeyTag("b", "k")
	cases := []struct{ name, id string }{
		{"empty", ""},
		{"one part", "a"},
		{"two parts", "a." + tag},
		{"four parts (dot in origin)", "a.b." + tag + ".1"},
		{"empty origin", "." + tag + ".1"},
		{"short tag", "a.abc.1"},
		{"long tag", "a." + tag + "0.1"},
		{"empty n", "a." + tag + "."},
		{"negative n", "a." + tag + ".-1"},
		{"non-numeric n", "a." + tag + ".one"},
		{"n overflow", "a." + tag + ".18446744073709551616"},
		{"trailing dot", "a." + tag + ".1."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, tg, n, err := ParseVersionID(tc.id)
			if err == nil {
				t.Fatalf("ParseVersionID(%q) = %q, %q, %d, want an error", tc.id, o, tg, n)
			}
		})
	}
}

func TestVersionIDRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		origin := rapid.StringMatching(`[a-z0-9][a-z0-9-]{0,31}`).Draw(t, "origin")
		bucket := rapid.StringN(1, 20, -1).Draw(t, "bucket")
		key := rapid.StringN(1, 50, -1).Draw(t, "key")
		n := rapid.Uint64().Draw(t, "n")
		o, tag, m, err := ParseVersionID(VersionID(origin, bucket, key, n))
		if err != nil || o != origin || tag != KeyTag(bucket, key) || m != n {
			t.Fatalf("round trip: %q %q %d %v", o, tag, m, err)
		}
	})
}

func TestPartition(t *testing.T) {
	cases := []struct {
		name string
		n    int
	}{
		{"negative", -3}, {"zero", 0}, {"one", 1}, {"two", 2}, {"seven", 7}, {"large", 1 << 20},
	}
	keys := []string{"", "a", "b", "dir/file", "日本語", "a.b"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range keys {
				p := Partition("bkt", k, tc.n)
				if tc.n <= 1 {
					if p != 0 {
						t.Fatalf("Partition(%q, n=%d) = %d, want 0", k, tc.n, p)
					}
					continue
				}
				if p < 0 || p >= tc.n {
					t.Fatalf("Partition(%q, n=%d) = %d out of range", k, tc.n, p)
				}
				if p != Partition("bkt", k, tc.n) {
					t.Fatalf("Partition(%q) not stable", k)
				}
			}
		})
	}
	t.Run("spreads keys", func(t *testing.T) {
		const n = 8
		hit := map[int]bool{}
		for i := range 200 {
			hit[Partition("bkt", fmt.Sprintf("key-%d", i), n)] = true
		}
		if len(hit) != n {
			t.Fatalf("200 keys hit only %d of %d partitions", len(hit), n)
		}
	})
	t.Run("range property", rapid.MakeCheck(func(t *rapid.T) {
		n := rapid.IntRange(-5, 1000).Draw(t, "n")
		b, k := rapid.String().Draw(t, "bucket"), rapid.String().Draw(t, "key")
		p := Partition(b, k, n)
		if p < 0 || (n > 1 && p >= n) || (n <= 1 && p != 0) {
			t.Fatalf("Partition(n=%d) = %d", n, p)
		}
	}))
}
