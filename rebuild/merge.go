package rebuild

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// ErrUnsorted: a peer's state page or the site's listing is not in strictly
// increasing key byte order, which the merge needs.
var ErrUnsorted = errors.New("not in key byte order")

// entry is one key as one source saw it: a peer's state item, or the
// site's listing entry.
type entry struct {
	key   string
	item  *Item
	local *s3io.ListEntry
}

// source is one sorted stream of entries, read by a goroutine at most one
// page ahead of the merge.
type source struct {
	name string
	ch   chan entry
	err  error // set before ch is closed

	head    entry
	ok      bool
	started bool
}

func startPeer(ctx context.Context, wg *sync.WaitGroup, p Peer, bucket, after string, pageSize int) *source {
	s := &source{name: "peer " + p.Name, ch: make(chan entry, pageSize)}
	wg.Go(func() {
		defer close(s.ch)
		for {
			items, more, err := p.Page(ctx, bucket, after, pageSize)
			if err != nil {
				s.err = fmt.Errorf("peer %s: state of bucket %s after %q: %w", p.Name, bucket, after, err)
				return
			}
			for i := range items {
				if err := checkItem(bucket, items[i]); err != nil {
					s.err = fmt.Errorf("peer %s: state of bucket %s: key %q: %w", p.Name, bucket, items[i].Key, err)
					return
				}
				select {
				case s.ch <- entry{key: items[i].Key, item: &items[i]}:
				case <-ctx.Done():
					s.err = ctx.Err()
					return
				}
			}
			if !more || len(items) == 0 {
				return
			}
			after = items[len(items)-1].Key
		}
	})
	return s
}

func startLocal(ctx context.Context, wg *sync.WaitGroup, site string, st Store, bucket, after string, pageSize int) *source {
	s := &source{name: "site " + site, ch: make(chan entry, pageSize)}
	wg.Go(func() {
		defer close(s.ch)
		err := st.List(ctx, bucket, after, int32(pageSize), func(le s3io.ListEntry) error {
			if schema.IsTrashKey(le.Key) {
				return nil // the site's own trash: never replicated, nothing to rebuild
			}
			select {
			case s.ch <- entry{key: le.Key, local: &le}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil {
			s.err = fmt.Errorf("site %s: list bucket %s: %w", site, bucket, err)
		}
	})
	return s
}

func (s *source) advance() error {
	e, ok := <-s.ch
	if !ok {
		s.ok = false
		return s.err
	}
	if s.started && e.key <= s.head.key {
		return fmt.Errorf("%s: %w: %q after %q", s.name, ErrUnsorted, e.key, s.head.key)
	}
	s.head, s.ok, s.started = e, true, true
	return nil
}

// key is one key of the union: peers[i] is peer i's item (nil where it has
// none), local the site's listing entry (nil where it has none).
type key struct {
	name  string
	peers []*Item
	local *s3io.ListEntry
	proof *schema.Record // the signed record of the target version (settle)
	// refused are the peers whose bytes were not the target version's
	// (prove): not asked for it again.
	refused map[string]bool
}

// merger is a k-way merge of the peers' states and the site's listing by
// key; the last source is the site's.
type merger struct {
	srcs   []*source
	primed bool
}

func (m *merger) next() (key, bool, error) {
	if !m.primed {
		m.primed = true
		for _, s := range m.srcs {
			if err := s.advance(); err != nil {
				return key{}, false, err
			}
		}
	}
	var k key
	first := true
	for _, s := range m.srcs {
		if s.ok && (first || s.head.key < k.name) {
			k.name, first = s.head.key, false
		}
	}
	if first {
		return key{}, false, nil
	}
	k.peers = make([]*Item, len(m.srcs)-1)
	for i, s := range m.srcs {
		if !s.ok || s.head.key != k.name {
			continue
		}
		if s.head.local != nil {
			k.local = s.head.local
		} else {
			k.peers[i] = s.head.item
		}
		if err := s.advance(); err != nil {
			return key{}, false, err
		}
	}
	return k, true, nil
}

// checkItem validates a peer's state entry as a record from that peer would
// be before anything is copied by it: the version must be a well-formed
// version of that very key (id, origin, clock and size bounds) and the
// merged clock must keep the counter bound. A peer's state is as hostile as
// its records.
func checkItem(bucket string, it Item) error {
	if err := schema.CheckKey(it.Key); err != nil {
		return err
	}
	r := schema.Record{Schema: schema.RecordSchema, Bucket: bucket, Key: it.Key, Version: it.Held}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("held version: %w", err)
	}
	for site, n := range it.Clock {
		if n > schema.MaxCounter {
			return fmt.Errorf("merged clock entry %s:%d over the bound %d: %w", site, n, schema.MaxCounter, schema.ErrBadRecord)
		}
	}
	return nil
}
