package verify

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/s3io"
)

const bucket = "demo"

// getCounter counts object GETs (not listings) into n.
type getCounter struct {
	inner *http.Client
	n     *atomic.Int32
}

func (c getCounter) Do(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && !strings.Contains(r.URL.RawQuery, "list-type") {
		c.n.Add(1)
	}
	return c.inner.Do(r)
}

type lab struct {
	t     *testing.T
	ctx   context.Context
	sites []Site
	gets  atomic.Int32 // object GETs, all sites
}

// newLab starts one versitygw per name, each with bucket demo.
func newLab(t *testing.T, names ...string) *lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	l := &lab{t: t, ctx: ctx}
	for _, name := range names {
		v := testenv.StartVersity(t)
		c, err := s3io.New(s3io.Endpoint{URL: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: v.SecretKey},
			s3io.WithHTTPClient(getCounter{inner: &http.Client{}, n: &l.gets}))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.EnsureBucket(ctx, bucket); err != nil {
			t.Fatal(err)
		}
		l.sites = append(l.sites, Site{Name: name, S3: c})
	}
	return l
}

func (l *lab) site(name string) *s3io.Client {
	for _, s := range l.sites {
		if s.Name == name {
			return s.S3
		}
	}
	l.t.Fatalf("no site %s", name)
	return nil
}

type object struct {
	key      string
	body     []byte
	attrs    s3io.Attrs
	partSize int64
}

func (l *lab) put(site string, o object) string {
	l.t.Helper()
	etag, err := l.site(site).Put(l.ctx, s3io.PutInput{Bucket: bucket, Key: o.key, Body: bytes.NewReader(o.body),
		Size: int64(len(o.body)), Attrs: o.attrs, PartSize: o.partSize})
	if err != nil {
		l.t.Fatalf("put %q at %s: %v", o.key, site, err)
	}
	return etag
}

func (l *lab) del(site, key string) {
	l.t.Helper()
	if err := l.site(site).Delete(l.ctx, bucket, key, ""); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) run(o Options) Report {
	l.t.Helper()
	if o.Buckets == nil {
		o.Buckets = []string{bucket}
	}
	o.pageSize = 2 // every bucket spans several pages: exercises the merge across pages
	rep, err := Run(l.ctx, l.sites, o)
	if err != nil {
		l.t.Fatalf("Run: %v", err)
	}
	return rep
}

func sixMiB() []byte {
	b := make([]byte, 6<<20)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
}

func fixture() []object {
	meta := map[string]string{"owner": "ops", "s3mesh-origin": "a"}
	return []object{
		{key: "plain.txt", body: []byte("hello"), attrs: s3io.Attrs{ContentType: "text/plain", Meta: meta}},
		{key: "with space.txt", body: []byte("spaces")},
		{key: "unicodé/ключ/鍵", body: []byte("unicode")},
		{key: "a+b", body: []byte("plus!")},
		{key: "100%", body: []byte("percent")},
		{key: "empty", body: nil},
		{key: "dir/", body: nil},
		{key: ".s3mesh-conflicts/plan.txt/a-20261125T194920.000Z", body: []byte("draft from a")},
		{key: "styled.html", body: []byte("<p>"), attrs: s3io.Attrs{ContentType: "text/html", CacheControl: "max-age=60",
			ContentEncoding: "identity", ContentDisposition: `attachment; filename="x.html"`}},
		// Explicit: versitygw defaults the Content-Type of a multipart
		// upload to binary/octet-stream, of a PUT to application/octet-stream
		// (see the "default content types" case).
		{key: "big", body: sixMiB(), attrs: s3io.Attrs{ContentType: "application/octet-stream"}},
		{key: "z", body: []byte("last")},
	}
}

// TestRun writes the same content at three sites (the 6 MiB object as a
// two-part upload at a, a single PUT elsewhere), checks it converges, then
// introduces one difference at a time.
func TestRun(t *testing.T) {
	l := newLab(t, "a", "b", "c")
	objs := fixture()
	byKey := map[string]object{}
	for _, o := range objs {
		byKey[o.key] = o
		for _, s := range []string{"a", "b", "c"} {
			o := o
			if o.key == "big" && s == "a" {
				o.partSize = s3io.MinPartSize
			}
			etag := l.put(s, o)
			if o.key == "big" && (s == "a") != strings.HasSuffix(etag, "-2") {
				t.Fatalf("big at %s: ETag %s: the multipart premise does not hold", s, etag)
			}
		}
	}
	l.gets.Store(0)
	var progress, listed atomic.Int32
	rep := l.run(Options{Progress: func(n int) { progress.Store(int32(n)) }, Listed: func(n int) { listed.Store(int32(n)) }})
	if !rep.Converged || rep.Keys != len(objs) || rep.Buckets != 1 || len(rep.Differences) != 0 {
		t.Fatalf("identical sites: %+v", rep)
	}
	if progress.Load() != int32(len(objs)) || listed.Load() != int32(len(objs)) {
		t.Errorf("progress %d, listed %d, want %d", progress.Load(), listed.Load(), len(objs))
	}
	// Only big needs hashing: a (multipart) and one of b, c (same ETag).
	if n := l.gets.Load(); n != 2 {
		t.Errorf("%d object GETs, want 2", n)
	}

	restore := func(site, key string) {
		o := byKey[key]
		if key == "big" && site == "a" {
			o.partSize = s3io.MinPartSize
		}
		l.put(site, o)
	}
	cases := []struct {
		name   string
		change func()
		undo   func()
		kind   string
		detail string
		sites  map[string]string // nil: not checked
	}{
		{"missing", func() { l.del("b", "with space.txt") }, func() { restore("b", "with space.txt") },
			"missing", "missing at b (present at a, c)", map[string]string{"a": "present", "b": "missing", "c": "present"}},
		{"extra key", func() { l.put("c", object{key: "extra", body: []byte("x")}) }, func() { l.del("c", "extra") },
			"missing", "missing at a, b (present at c)", map[string]string{"a": "missing", "b": "missing", "c": "present"}},
		{"same size, other bytes", func() { l.put("c", object{key: "a+b", body: []byte("PLUS!")}) }, func() { restore("c", "a+b") },
			"content", "content differs a,b≠c", nil},
		{"multipart vs other bytes", func() {
			b := sixMiB()
			b[len(b)-1]++
			l.put("c", object{key: "big", body: b})
		}, func() { restore("c", "big") }, "content", "content differs a,b≠c", nil},
		{"default content types", func() {
			l.put("a", object{key: "big", body: sixMiB(), partSize: s3io.MinPartSize})
		}, func() { restore("a", "big") }, "content-type", `content-type "binary/octet-stream" at a; "application/octet-stream" at b, c`, nil},
		{"size", func() { l.put("c", object{key: "plain.txt", body: []byte("hello!!"), attrs: byKey["plain.txt"].attrs}) },
			func() { restore("c", "plain.txt") }, "size", "size 5 at a, b; 7 at c", map[string]string{"a": "5", "b": "5", "c": "7"}},
		{"content type", func() {
			o := byKey["plain.txt"]
			o.attrs.ContentType = "text/markdown"
			l.put("b", o)
		}, func() { restore("b", "plain.txt") }, "content-type", `content-type "text/plain" at a, c; "text/markdown" at b`,
			map[string]string{"a": "text/plain", "b": "text/markdown", "c": "text/plain"}},
		{"cache control", func() {
			o := byKey["styled.html"]
			o.attrs.CacheControl = ""
			l.put("a", o)
		}, func() { restore("a", "styled.html") }, "cache-control", `cache-control (none) at a; "max-age=60" at b, c`, nil},
		{"user metadata", func() {
			l.put("b", object{key: "z", body: []byte("last"), attrs: s3io.Attrs{Meta: map[string]string{"color": "blue"}}})
		}, func() { restore("b", "z") }, "metadata", `metadata "color": (absent) at a, c; "blue" at b`,
			map[string]string{"a": "color=(absent)", "b": `color="blue"`, "c": "color=(absent)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.change()
			rep := l.run(Options{})
			if rep.Converged || len(rep.Differences) != 1 || rep.TotalDifferences != 1 {
				t.Fatalf("want one difference, got %+v", rep)
			}
			d := rep.Differences[0]
			if d.Bucket != bucket || d.Kind != tc.kind || d.Detail != tc.detail {
				t.Errorf("got %s %q %q, want %s %q", d.Kind, d.Key, d.Detail, tc.kind, tc.detail)
			}
			if tc.sites != nil && !mapsEqual(d.Sites, tc.sites) {
				t.Errorf("sites %v, want %v", d.Sites, tc.sites)
			}
			tc.undo()
			if rep := l.run(Options{}); !rep.Converged {
				t.Fatalf("not converged after undo: %+v", rep)
			}
		})
	}

	t.Run("s3mesh metadata is ignored", func(t *testing.T) {
		o := byKey["plain.txt"]
		o.attrs.Meta = map[string]string{"owner": "ops", "s3mesh-origin": "b", "s3mesh-clock": "b:7"}
		l.put("b", o)
		if rep := l.run(Options{}); !rep.Converged {
			t.Fatalf("own metadata reported: %+v", rep.Differences)
		}
	})

	t.Run("max differences", func(t *testing.T) {
		for _, k := range []string{"k1", "k2", "k3"} {
			l.put("a", object{key: k, body: []byte(k)})
			defer l.del("a", k)
		}
		rep := l.run(Options{MaxDifferences: 2})
		if rep.Converged || rep.TotalDifferences != 3 || len(rep.Differences) != 2 ||
			rep.Differences[0].Key != "k1" || rep.Differences[1].Key != "k2" || rep.Keys != len(objs)+3 {
			t.Fatalf("got %+v", rep)
		}
	})

	t.Run("missing bucket is an error", func(t *testing.T) {
		if err := l.site("a").EnsureBucket(l.ctx, "only-a"); err != nil {
			t.Fatal(err)
		}
		_, err := Run(l.ctx, l.sites, Options{Buckets: []string{"only-a"}})
		if !errors.Is(err, s3io.ErrNoSuchBucket) || !strings.Contains(err.Error(), "site b") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestVersityListsNoImplicitDirectories pins why nothing is excluded: a
// listing holds the objects written, never the directories the posix backend
// made for them, even after the objects in them are deleted.
func TestVersityListsNoImplicitDirectories(t *testing.T) {
	l := newLab(t, "a")
	for _, k := range []string{"p/q/r", "gone/x", "dir/"} {
		l.put("a", object{key: k})
	}
	l.del("a", "gone/x")
	var keys []string
	err := l.site("a").List(l.ctx, bucket, "", 0, func(e s3io.ListEntry) error {
		keys = append(keys, e.Key)
		return nil
	})
	if err != nil || !slices.Equal(keys, []string{"dir/", "p/q/r"}) {
		t.Fatalf("listed %q, %v", keys, err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
