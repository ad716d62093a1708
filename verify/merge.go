package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// ErrUnsorted is returned (wrapped, naming the site, bucket and keys) when a
// site's listing is not in strictly increasing UTF-8 byte order. The
// merge-join needs sorted listings; comparing anyway would report keys as
// missing that are not.
var ErrUnsorted = errors.New("listing not in UTF-8 binary order")

// listing is one site's listing of one bucket, produced page by page by a
// goroutine and consumed one key at a time by the merger. The channel holds
// at most one page, so a fast site runs at most a page ahead of the merge.
type listing struct {
	site, bucket string
	ch           chan s3io.ListEntry
	err          error // written before ch is closed

	head    s3io.ListEntry // current key, valid while ok
	ok      bool
	started bool
}

// listFunc lists a bucket, calling fn for every entry in order.
type listFunc func(ctx context.Context, fn func(s3io.ListEntry) error) error

// startListing runs list in a goroutine tracked by wg. The goroutine ends
// when the listing does or when ctx is cancelled.
func startListing(ctx context.Context, wg *sync.WaitGroup, site, bucket string, buffer int, list listFunc) *listing {
	l := &listing{site: site, bucket: bucket, ch: make(chan s3io.ListEntry, buffer)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(l.ch)
		l.err = list(ctx, func(e s3io.ListEntry) error {
			select {
			case l.ch <- e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return l
}

// s3List lists bucket at c with pageSize keys per request, leaving out
// the agent's store-probe objects (s3io.ProbePrefix) and each site's own
// trash (schema.TrashPrefix): they are never replicated, and an agent
// killed while probing leaves some behind.
func s3List(c *s3io.Client, bucket string, pageSize int32) listFunc {
	return func(ctx context.Context, fn func(s3io.ListEntry) error) error {
		return c.List(ctx, bucket, "", pageSize, func(e s3io.ListEntry) error {
			if strings.HasPrefix(e.Key, s3io.ProbePrefix) || schema.IsTrashKey(e.Key) {
				return nil
			}
			return fn(e)
		})
	}
}

// advance moves to the next key, checking the order.
func (l *listing) advance() error {
	e, ok := <-l.ch
	if !ok {
		l.ok = false
		if l.err != nil {
			return fmt.Errorf("site %s: bucket %s: %w", l.site, l.bucket, l.err)
		}
		return nil
	}
	if l.started && e.Key <= l.head.Key {
		return fmt.Errorf("site %s: bucket %s: %w: %q listed after %q", l.site, l.bucket, ErrUnsorted, e.Key, l.head.Key)
	}
	l.head, l.ok, l.started = e, true, true
	return nil
}

// merged is one key of the union of all listings; at[i] is site i's entry,
// nil where the site did not list the key.
type merged struct {
	key string
	at  []*s3io.ListEntry
}

// merger is a k-way merge-join of sorted listings by key.
type merger struct {
	ls     []*listing
	primed bool
}

func newMerger(ls []*listing) *merger { return &merger{ls: ls} }

// next returns the next key in byte order and which sites hold it; ok is
// false once every listing is exhausted.
func (m *merger) next() (k merged, ok bool, err error) {
	if !m.primed {
		m.primed = true
		for _, l := range m.ls {
			if err := l.advance(); err != nil {
				return merged{}, false, err
			}
		}
	}
	// k is small (the number of sites): a linear scan for the smallest
	// head is cheaper than a heap.
	first := true
	for _, l := range m.ls {
		if l.ok && (first || l.head.Key < k.key) {
			k.key, first = l.head.Key, false
		}
	}
	if first {
		return merged{}, false, nil
	}
	k.at = make([]*s3io.ListEntry, len(m.ls))
	for i, l := range m.ls {
		if l.ok && l.head.Key == k.key {
			e := l.head
			k.at[i] = &e
			if err := l.advance(); err != nil {
				return merged{}, false, err
			}
		}
	}
	return k, true, nil
}
