package schema

import (
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// siteGen draws site names as config.ValidSiteName allows them
// ([a-z0-9][a-z0-9-]{0,31}), from a small pool so that clocks overlap.
func siteGen() *rapid.Generator[string] {
	return rapid.OneOf(
		rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "site-1", "0"}),
		rapid.StringMatching(`[a-z0-9][a-z0-9-]{0,31}`),
	)
}

// clockGen draws clocks with small counters, and sometimes explicit zero
// entries (which must behave exactly like absent ones).
func clockGen() *rapid.Generator[Clock] {
	return rapid.Custom(func(t *rapid.T) Clock {
		m := rapid.MapOfN(siteGen(), rapid.Uint64Range(0, 4), 0, 5).Draw(t, "entries")
		return Clock(m)
	})
}

// nonZero returns c without zero entries, for comparing clocks by content.
func nonZero(c Clock) Clock {
	m := Clock{}
	for k, v := range c {
		if v > 0 {
			m[k] = v
		}
	}
	return m
}

func sameClock(a, b Clock) bool { return reflect.DeepEqual(nonZero(a), nonZero(b)) }

func TestClockCompare(t *testing.T) {
	cases := []struct {
		name string
		a, b Clock
		want Order
	}{
		{"both nil", nil, nil, Equal},
		{"nil vs empty", nil, Clock{}, Equal},
		{"same entries", Clock{"a": 1, "b": 2}, Clock{"a": 1, "b": 2}, Equal},
		{"zero entry equals absent", Clock{"a": 1, "b": 0}, Clock{"a": 1}, Equal},
		{"absent equals zero entry", Clock{"a": 1}, Clock{"a": 1, "b": 0}, Equal},
		{"only zeros vs nil", Clock{"a": 0, "z": 0}, nil, Equal},
		{"before: one entry smaller", Clock{"a": 1, "b": 1}, Clock{"a": 2, "b": 1}, Before},
		{"before: entry missing on left", Clock{"a": 1}, Clock{"a": 1, "b": 1}, Before},
		{"before: empty vs non-empty", Clock{}, Clock{"a": 1}, Before},
		{"before: zero entry vs positive", Clock{"b": 0}, Clock{"b": 3}, Before},
		{"after: one entry larger", Clock{"a": 3, "b": 1}, Clock{"a": 2, "b": 1}, After},
		{"after: entry missing on right", Clock{"a": 1, "b": 1}, Clock{"a": 1}, After},
		{"after: non-empty vs nil", Clock{"a": 1}, nil, After},
		{"concurrent: disjoint sites", Clock{"a": 1}, Clock{"b": 1}, Concurrent},
		{"concurrent: crossed entries", Clock{"a": 2, "b": 1}, Clock{"a": 1, "b": 2}, Concurrent},
		{"concurrent: missing on each side", Clock{"a": 1, "c": 1}, Clock{"a": 1, "b": 1}, Concurrent},
		{"concurrent: zero vs missing mixed", Clock{"a": 1, "b": 0}, Clock{"b": 1}, Concurrent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Compare(tc.b); got != tc.want {
				t.Fatalf("%v.Compare(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestOrderString(t *testing.T) {
	for o, want := range map[Order]string{Equal: "equal", Before: "before", After: "after", Concurrent: "concurrent"} {
		if got := o.String(); got != want {
			t.Errorf("Order(%d).String() = %q, want %q", int(o), got, want)
		}
	}
}

func TestClockMerge(t *testing.T) {
	cases := []struct {
		name string
		a, b Clock
		want Clock
	}{
		{"nil and nil", nil, nil, Clock{}},
		{"nil and clock", nil, Clock{"a": 1}, Clock{"a": 1}},
		{"clock and nil", Clock{"a": 1}, nil, Clock{"a": 1}},
		{"entry-wise max", Clock{"a": 3, "b": 1}, Clock{"a": 1, "b": 2}, Clock{"a": 3, "b": 2}},
		{"disjoint union", Clock{"a": 1}, Clock{"b": 2}, Clock{"a": 1, "b": 2}},
		{"zero entries dropped", Clock{"a": 0, "b": 1}, Clock{"c": 0}, Clock{"b": 1}},
		{"equal clocks", Clock{"a": 2}, Clock{"a": 2}, Clock{"a": 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a0, b0 := tc.a.Clone(), tc.b.Clone()
			got := tc.a.Merge(tc.b)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%v.Merge(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if !sameClock(tc.a, a0) || !sameClock(tc.b, b0) {
				t.Fatalf("Merge mutated its inputs: %v, %v", tc.a, tc.b)
			}
			if got == nil {
				t.Fatal("Merge returned a nil map")
			}
			got["fresh"] = 9 // the result must be a new map
			if tc.a["fresh"] != 0 || tc.b["fresh"] != 0 {
				t.Fatal("Merge result aliases an input")
			}
		})
	}
}

func TestClockBump(t *testing.T) {
	cases := []struct {
		name string
		c    Clock
		site string
		want Clock
	}{
		{"nil clock", nil, "a", Clock{"a": 1}},
		{"new site", Clock{"a": 2}, "b", Clock{"a": 2, "b": 1}},
		{"existing site", Clock{"a": 2, "b": 1}, "a", Clock{"a": 3, "b": 1}},
		{"zero entry", Clock{"a": 0}, "a", Clock{"a": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.c.Clone()
			got := tc.c.Bump(tc.site)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%v.Bump(%q) = %v, want %v", tc.c, tc.site, got, tc.want)
			}
			if !sameClock(tc.c, before) {
				t.Fatalf("Bump mutated its receiver: now %v, was %v", tc.c, before)
			}
			if tc.c != nil && tc.c[tc.site] != before[tc.site] {
				t.Fatalf("Bump changed receiver entry %q", tc.site)
			}
			if o := got.Compare(tc.c); o != After {
				t.Fatalf("Bump result is %v the original, want after", o)
			}
		})
	}
}

func TestClockClone(t *testing.T) {
	c := Clock{"a": 1, "b": 2}
	d := c.Clone()
	d["a"] = 7
	if c["a"] != 1 {
		t.Fatal("Clone shares storage with the original")
	}
}

func TestClockString(t *testing.T) {
	cases := []struct {
		name string
		c    Clock
		want string
	}{
		{"nil", nil, ""},
		{"empty", Clock{}, ""},
		{"only zeros", Clock{"a": 0}, ""},
		{"one entry", Clock{"a": 1}, "a:1"},
		{"sorted by site", Clock{"c": 3, "a": 1, "b": 2}, "a:1,b:2,c:3"},
		{"zero entries omitted", Clock{"a": 1, "b": 0, "c": 2}, "a:1,c:2"},
		{"max counter", Clock{"x-1": ^uint64(0)}, "x-1:18446744073709551615"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
			back, err := ParseClock(tc.want)
			if err != nil {
				t.Fatalf("ParseClock(%q): %v", tc.want, err)
			}
			if !sameClock(back, tc.c) {
				t.Fatalf("ParseClock(%q) = %v, want %v", tc.want, back, tc.c)
			}
		})
	}
}

func TestParseClock(t *testing.T) {
	ok := []struct {
		name string
		in   string
		want Clock
	}{
		{"empty string", "", Clock{}},
		{"one entry", "a:1", Clock{"a": 1}},
		{"several", "a:1,b:22", Clock{"a": 1, "b": 22}},
		{"unsorted accepted", "b:2,a:1", Clock{"a": 1, "b": 2}},
		{"zero entry dropped", "a:0,b:1", Clock{"b": 1}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClock(tc.in)
			if err != nil {
				t.Fatalf("ParseClock(%q): %v", tc.in, err)
			}
			if got == nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseClock(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
		})
	}
	bad := []struct{ name, in string }{
		{"no colon", "a1"},
		{"empty site", ":1"},
		{"empty counter", "a:"},
		{"negative counter", "a:-1"},
		{"non-numeric counter", "a:x"},
		{"overflow", "a:18446744073709551616"},
		{"trailing comma", "a:1,"},
		{"leading comma", ",a:1"},
		{"double comma", "a:1,,b:2"},
		{"duplicate site", "a:1,a:2"},
		{"extra colon", "a:1:2"},
		{"space", "a: 1"},
		{"lone comma", ","},
	}
	for _, tc := range bad {
		t.Run("error/"+tc.name, func(t *testing.T) {
			got, err := ParseClock(tc.in)
			if err == nil {
				t.Fatalf("ParseClock(%q) = %v, want an error", tc.in, got)
			}
			if got != nil {
				t.Fatalf("ParseClock(%q) returned %v with its error", tc.in, got)
			}
		})
	}
}

func TestClockProperties(t *testing.T) {
	t.Run("compare antisymmetric", rapid.MakeCheck(func(t *rapid.T) {
		a, b := clockGen().Draw(t, "a"), clockGen().Draw(t, "b")
		ab, ba := a.Compare(b), b.Compare(a)
		want := map[Order]Order{Equal: Equal, Before: After, After: Before, Concurrent: Concurrent}[ab]
		if ba != want {
			t.Fatalf("a.Compare(b) = %v but b.Compare(a) = %v", ab, ba)
		}
		if (ab == Equal) != sameClock(a, b) {
			t.Fatalf("Compare = %v but clocks %v, %v differ=%v", ab, a, b, !sameClock(a, b))
		}
	}))
	t.Run("compare reflexive", rapid.MakeCheck(func(t *rapid.T) {
		a := clockGen().Draw(t, "a")
		if o := a.Compare(a.Clone()); o != Equal {
			t.Fatalf("a.Compare(a) = %v", o)
		}
	}))
	t.Run("merge commutative", rapid.MakeCheck(func(t *rapid.T) {
		a, b := clockGen().Draw(t, "a"), clockGen().Draw(t, "b")
		if ab, ba := a.Merge(b), b.Merge(a); !reflect.DeepEqual(ab, ba) {
			t.Fatalf("a∨b = %v, b∨a = %v", ab, ba)
		}
	}))
	t.Run("merge associative", rapid.MakeCheck(func(t *rapid.T) {
		a, b, c := clockGen().Draw(t, "a"), clockGen().Draw(t, "b"), clockGen().Draw(t, "c")
		if l, r := a.Merge(b).Merge(c), a.Merge(b.Merge(c)); !reflect.DeepEqual(l, r) {
			t.Fatalf("(a∨b)∨c = %v, a∨(b∨c) = %v", l, r)
		}
	}))
	t.Run("merge idempotent", rapid.MakeCheck(func(t *rapid.T) {
		a := clockGen().Draw(t, "a")
		if m := a.Merge(a); !sameClock(m, a) || m.Compare(a) != Equal {
			t.Fatalf("a∨a = %v, a = %v", m, a)
		}
		b := clockGen().Draw(t, "b")
		ab := a.Merge(b)
		if abb := ab.Merge(b); !reflect.DeepEqual(abb, ab) {
			t.Fatalf("(a∨b)∨b = %v, a∨b = %v", abb, ab)
		}
	}))
	t.Run("merge dominates inputs", rapid.MakeCheck(func(t *rapid.T) {
		a, b := clockGen().Draw(t, "a"), clockGen().Draw(t, "b")
		m := a.Merge(b)
		for _, in := range []Clock{a, b} {
			if o := m.Compare(in); o != After && o != Equal {
				t.Fatalf("a∨b = %v is %v input %v", m, o, in)
			}
		}
		// And it is the least such clock: every entry comes from an input.
		for k, v := range m {
			if v != a[k] && v != b[k] {
				t.Fatalf("merged entry %s:%d is in neither input", k, v)
			}
		}
	}))
	t.Run("bump is after and pure", rapid.MakeCheck(func(t *rapid.T) {
		a := clockGen().Draw(t, "a")
		site := siteGen().Draw(t, "site")
		before := a.String()
		b := a.Bump(site)
		if o := b.Compare(a); o != After {
			t.Fatalf("%v.Bump(%q) = %v is %v the original", a, site, b, o)
		}
		if o := a.Compare(b); o != Before {
			t.Fatalf("original is %v its bump", o)
		}
		if a.String() != before {
			t.Fatalf("Bump mutated receiver: %s -> %s", before, a)
		}
		if b[site] != a[site]+1 {
			t.Fatalf("bumped entry %d, want %d", b[site], a[site]+1)
		}
	}))
	t.Run("string parse round trip", rapid.MakeCheck(func(t *rapid.T) {
		a := clockGen().Draw(t, "a")
		s := a.String()
		back, err := ParseClock(s)
		if err != nil {
			t.Fatalf("ParseClock(%q): %v", s, err)
		}
		if !reflect.DeepEqual(back, nonZero(a)) || back.Compare(a) != Equal {
			t.Fatalf("ParseClock(%q) = %v, want %v", s, back, a)
		}
		if back.String() != s {
			t.Fatalf("String not canonical: %q then %q", s, back.String())
		}
	}))
}
