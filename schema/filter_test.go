package schema

import (
	"errors"
	"testing"
)

func TestFilterMatch(t *testing.T) {
	f := Filter{Include: []string{"img/", "doc/"}, Exclude: []string{"img/tmp/"}}
	for key, want := range map[string]bool{
		"img/a.jpg": true, "doc/x": true, "img/tmp/a": false, "video/a": false, "im": false, "img": false,
	} {
		if got := f.Match(key); got != want {
			t.Errorf("Match(%q) = %v, want %v", key, got, want)
		}
	}
	if !(Filter{}).Match("anything") {
		t.Error("the empty filter refused a key")
	}
	if (Filter{Exclude: []string{"a"}}).Match("abc") || !(Filter{Exclude: []string{"a"}}).Match("b") {
		t.Error("an exclude-only filter is wrong")
	}
}

func TestFilterDigest(t *testing.T) {
	f := Filter{Include: []string{"b/", "a/"}, Exclude: []string{"a/tmp/"}}
	d := f.Digest()
	if !validFilterDigest(d) {
		t.Fatalf("Digest = %q, not %d hex digits", d, FilterDigestLen)
	}
	if (Filter{}).Digest() != "" {
		t.Error("the empty filter has a digest")
	}
	same := Filter{Include: []string{"a/", "b/", "a/"}, Exclude: []string{"a/tmp/"}}
	if same.Digest() != d {
		t.Error("order or repetition of prefixes changed the digest")
	}
	for name, g := range map[string]Filter{
		"an include less":     {Include: []string{"a/"}, Exclude: []string{"a/tmp/"}},
		"no exclude":          {Include: []string{"a/", "b/"}},
		"include as exclude":  {Exclude: []string{"a/", "b/", "a/tmp/"}},
		"prefixes joined":     {Include: []string{"a/b/"}, Exclude: []string{"a/tmp/"}},
		"exclude moved first": {Include: []string{"a/tmp/"}, Exclude: []string{"a/", "b/"}},
	} {
		if g.Digest() == d {
			t.Errorf("%s: same digest as %+v", name, f)
		}
	}
}

// A record of a filtered bucket is schema 4 with its origin's digest,
// signed and read back; the digest goes only in schema 4, and schema 4
// always has one.
func TestFilterRecord(t *testing.T) {
	key := testKey(1)
	r := validRecord()
	r.Schema, r.Filter = FilterSchema, Filter{Include: []string{"2024/"}}.Digest()
	b, err := r.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ringFor(key).Open(b, "a")
	if err != nil || got.Schema != FilterSchema || got.Filter != r.Filter {
		t.Fatalf("Open: %+v, %v", got, err)
	}
	r.Parts, r.Inline, r.Body = &Parts{Size: 5 << 20}, false, nil
	r.Version.Size, r.Version.ETag = 6<<20, "0123456789abcdef0123456789abcdef-2"
	if _, err := r.Sign(key); err != nil {
		t.Errorf("schema 4 with a part layout: %v", err)
	}
	for name, mod := range map[string]func(*Record){
		"schema 4 without a digest":    func(r *Record) { r.Filter = "" },
		"schema 4 with a short digest": func(r *Record) { r.Filter = r.Filter[:10] },
		"schema 4 with capitals":       func(r *Record) { r.Filter = "ABCDEF0123456789ABCDEF01" },
		"schema 2 with a digest":       func(r *Record) { r.Schema = RecordSchema },
		"schema 3 with a digest":       func(r *Record) { r.Schema = PartsSchema },
	} {
		r := validRecord()
		r.Schema, r.Filter = FilterSchema, Filter{Include: []string{"2024/"}}.Digest()
		mod(&r)
		if _, err := r.Sign(key); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
