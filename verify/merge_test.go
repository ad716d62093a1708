package verify

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/s3mesh/s3mesh/s3io"
)

func sliceList(keys ...string) listFunc {
	return func(ctx context.Context, fn func(s3io.ListEntry) error) error {
		for _, k := range keys {
			if err := fn(s3io.ListEntry{Key: k}); err != nil {
				return err
			}
		}
		return nil
	}
}

func mergeAll(t *testing.T, lists ...listFunc) (string, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var ls []*listing
	for i, f := range lists {
		ls = append(ls, startListing(ctx, &wg, string(rune('a'+i)), "demo", 1, f))
	}
	m := newMerger(ls)
	var out []string
	for {
		k, ok, err := m.next()
		if err != nil || !ok {
			return strings.Join(out, " "), err
		}
		mark := ""
		for i, e := range k.at {
			if e != nil {
				mark += string(rune('a' + i))
			}
		}
		out = append(out, k.key+":"+mark)
	}
}

func TestMerge(t *testing.T) {
	got, err := mergeAll(t, sliceList("b", "d", "é"), sliceList(), sliceList("a", "b", "e", "é"))
	if want := "a:c b:ac d:a e:c é:ac"; err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

func TestMergeUnsorted(t *testing.T) {
	for _, keys := range [][]string{{"a", "c", "b"}, {"a", "a"}} {
		_, err := mergeAll(t, sliceList("a", "b", "c"), sliceList(keys...))
		if !errors.Is(err, ErrUnsorted) || !strings.Contains(err.Error(), "site b") {
			t.Fatalf("%q: got %v", keys, err)
		}
	}
}

func TestMergeListError(t *testing.T) {
	boom := errors.New("boom")
	_, err := mergeAll(t, sliceList("a"), func(ctx context.Context, fn func(s3io.ListEntry) error) error {
		_ = fn(s3io.ListEntry{Key: "a"})
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}
