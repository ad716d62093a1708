package schema

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTrashKeyLayout(t *testing.T) {
	at := time.Date(2026, 12, 8, 3, 4, 5, 678e6, time.UTC).UnixMilli()
	const vid = "a.0123456789abcdef01234567.7"
	long := strings.Repeat("x/", 500) + "end" // 1003 bytes
	cases := []struct {
		name, key string
		maxLen    int
		want      string // "" = hashed
	}{
		{"plain", "docs/plan.txt", 0, ".s3mesh-trash/docs/plan.txt/20261208T030405.678Z-" + vid},
		{"unicode and spaces", "ä b+c", 0, ".s3mesh-trash/ä b+c/20261208T030405.678Z-" + vid},
		{"too long for S3", long, 0, ""},
		{"too long for the store", strings.Repeat("k", 150), 200, ""},
		{"fits the store", strings.Repeat("k", 100), 200, ".s3mesh-trash/" + strings.Repeat("k", 100) + "/20261208T030405.678Z-" + vid},
		{"trailing slash", "dir/", 0, ""},
		{"double slash", "a//b", 0, ""},
		{"leading slash", "/a", 0, ""},
		{"dot segment", "a/./b", 0, ""},
		{"dot-dot segment", "a/../b", 0, ""},
		{"long segment", strings.Repeat("s", 256), 0, ""},
		{"segment of 255", strings.Repeat("s", 255), 0, ".s3mesh-trash/" + strings.Repeat("s", 255) + "/20261208T030405.678Z-" + vid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := TrashKey("bkt", c.key, at, vid, c.maxLen)
			want := c.want
			if want == "" {
				want = TrashHashedPrefix + KeyTag("bkt", c.key) + "/20261208T030405.678Z-" + vid
			}
			if got != want {
				t.Fatalf("TrashKey(%q) = %q, want %q", c.key, got, want)
			}
			limit := c.maxLen
			if limit <= 0 {
				limit = 1024
			}
			if len(got) > limit || !IsTrashKey(got) {
				t.Fatalf("TrashKey(%q) = %q: %d bytes (limit %d), trash %v", c.key, got, len(got), limit, IsTrashKey(got))
			}
			// The key is found under one of its trash directories.
			found := false
			for _, d := range TrashDirs("bkt", c.key) {
				found = found || strings.HasPrefix(got, d)
			}
			if !found {
				t.Fatalf("%q is under none of %v", got, TrashDirs("bkt", c.key))
			}
		})
	}
}

// Every trashed version of a key has its own name, and names sort in time
// order.
func TestTrashKeyKeepsEveryVersion(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	k1 := TrashKey("b", "k", t0, "a.x.1", 0)
	k2 := TrashKey("b", "k", t0, "a.x.2", 0)
	k3 := TrashKey("b", "k", t0+1, "a.x.1", 0)
	k4 := TrashKey("b", "k", t0+86_400_000, "a.x.1", 0)
	if k1 == k2 || k1 == k3 {
		t.Fatalf("two trashed versions share a name: %q %q %q", k1, k2, k3)
	}
	if !(k1 < k3 && k3 < k4) {
		t.Fatalf("names do not sort in time order: %q %q %q", k1, k3, k4)
	}
}

func TestTrashMetaRoundTrip(t *testing.T) {
	ti := TrashInfo{Key: "dir/ä b%2F+c", Tag: KeyTag("b", "dir/ä b%2F+c"), VID: "a.x.3", Clock: Clock{"a": 3, "b": 1},
		By: "b.x.4", Peer: "b", At: 1765000000123, Op: TrashOpDelete}
	m := ti.Meta()
	for k, v := range m {
		if !IsOwnMeta(k) {
			t.Errorf("metadata key %q is not s3mesh's own", k)
		}
		for _, r := range v {
			if r < 0x20 || r > 0x7e {
				t.Errorf("metadata %s=%q is not printable ASCII", k, v)
			}
		}
	}
	got, err := ParseTrashMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != ti.Key || got.Tag != ti.Tag || got.VID != ti.VID || got.By != ti.By || got.Peer != ti.Peer ||
		got.At != ti.At || got.Op != ti.Op || got.Clock.String() != ti.Clock.String() {
		t.Fatalf("round trip: %+v, want %+v", got, ti)
	}
	// A key too long for the metadata is left out; the rest stays.
	ti.Key = strings.Repeat("é", 400)
	got, err = ParseTrashMeta(ti.Meta())
	if err != nil || got.Key != "" || got.Tag != ti.Tag {
		t.Fatalf("long key: %+v, %v", got, err)
	}
}

func TestParseTrashMetaRejects(t *testing.T) {
	good := TrashInfo{Key: "k", Tag: "t", VID: "a.x.1", By: "b.x.1", Peer: "b", At: 5, Op: TrashOpOverwrite}.Meta()
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name string
		meta map[string]string
		want string
	}{
		{"no trash metadata", map[string]string{"color": "red"}, "not a trash object"},
		{"bad time", with(MetaTrashAt, "soon"), MetaTrashAt},
		{"bad clock", with(MetaTrashClock, "a=x"), MetaTrashClock},
		{"bad key escape", with(MetaTrashKey, "%zz"), MetaTrashKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTrashMeta(c.meta)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one naming %q", err, c.want)
			}
		})
	}
	if _, err := ParseTrashMeta(map[string]string{}); !errors.Is(err, ErrNotTrash) {
		t.Fatalf("empty metadata: %v, want ErrNotTrash", err)
	}
}

func TestTrashExpired(t *testing.T) {
	now := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC).UnixMilli()
	week := 168 * time.Hour
	cases := []struct {
		name      string
		modified  int64
		retention time.Duration
		want      bool
	}{
		{"fresh", now - 1000, week, false},
		{"exactly the retention", now - week.Milliseconds(), week, false},
		{"just past", now - week.Milliseconds() - 1, week, true},
		{"from the future", now + 60_000, week, false},
		{"no retention keeps all", now - 10*week.Milliseconds(), 0, false},
	}
	for _, c := range cases {
		if got := TrashExpired(c.modified, now, c.retention); got != c.want {
			t.Errorf("%s: TrashExpired = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseTrashKey(t *testing.T) {
	at := time.Date(2026, 12, 8, 3, 4, 5, 678e6, time.UTC).UnixMilli()
	for _, key := range []string{"k", "dir/sub/k.txt", "ä b", strings.Repeat("x", 1000), "a//b", "2026-x/y"} {
		name := TrashKey("bkt", key, at, "a.0123456789abcdef01234567.7", 0)
		k, tag, gotAt, vid, ok := ParseTrashKey(name)
		if !ok || gotAt != at || vid != "a.0123456789abcdef01234567.7" {
			t.Fatalf("ParseTrashKey(%q) = %q %q %d %q %v", name, k, tag, gotAt, vid, ok)
		}
		if strings.HasPrefix(name, TrashHashedPrefix) {
			if k != "" || tag != KeyTag("bkt", key) {
				t.Fatalf("hashed %q: key %q tag %q, want the tag of %q", name, k, tag, key)
			}
		} else if k != key || tag != "" {
			t.Fatalf("%q: key %q tag %q, want %q", name, k, tag, key)
		}
	}
	for _, bad := range []string{"k", TrashPrefix, TrashPrefix + "k", TrashPrefix + "/x-y", TrashPrefix + "k/notatime-a.b.1", TrashPrefix + "k/20261208T030405.678Z-"} {
		if _, _, _, _, ok := ParseTrashKey(bad); ok {
			t.Errorf("ParseTrashKey(%q) ok", bad)
		}
	}
}
