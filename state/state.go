package state

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/s3mesh/s3mesh/lifecycle"
)

// Entry is the state of one key at this site; its meaning and every change
// to it belong to the per-key state machine in package lifecycle.
type Entry = lifecycle.Entry

// Store is the pebble-backed state of one site.
type Store struct {
	db    *pebble.DB
	sync  bool
	locks [512]sync.Mutex

	// Lazy writes and what waits for them (see PutLazy and AfterSync).
	lazyMu  sync.Mutex
	written uint64   // lazy writes made
	synced  uint64   // lazy writes known durable
	waiting []waiter // to run once the writes before them are durable
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

// Options tunes the store.
type Options struct {
	// Sync makes every write durable before it returns. Without it pebble
	// hands the write-ahead log to a background flusher, so even a process
	// crash (SIGKILL) can lose the last writes — which breaks the publish
	// and apply intents (found by the crash tests: a lost intent let a
	// restarted producer reuse a version id for other content). The agent
	// always syncs; concurrent writes share fsyncs (group commit).
	Sync bool
	// FS replaces the file system (tests: vfs.NewStrictMem to model a
	// crash that loses what was not synced). nil: the disk.
	FS vfs.FS
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("state store closed")

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}, FS: o.FS})
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", dir, err)
	}
	st := &Store{db: db, sync: o.Sync, kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go st.syncer()
	return st, nil
}

// Close flushes and closes the store. Whatever waits in AfterSync runs
// first (its writes are durable once the store is flushed).
func (s *Store) Close() error {
	close(s.stop)
	<-s.stopped
	if err := s.db.Flush(); err != nil {
		s.db.Close()
		return fmt.Errorf("close state: %w", err)
	}
	return s.db.Close()
}

const entryPrefix = 'k'

// dbKey is "k" + bucket + 0x00 + key: bucket names cannot hold 0x00, so keys
// of one bucket are contiguous and sorted by key bytes.
func dbKey(bucket, key string) []byte {
	b := make([]byte, 0, 2+len(bucket)+len(key))
	b = append(b, entryPrefix)
	b = append(b, bucket...)
	b = append(b, 0)
	return append(b, key...)
}

// Lock takes the in-process lock that makes the caller the only writer of
// bucket/key until unlock is called. Locks are striped: never hold two.
func (s *Store) Lock(bucket, key string) (unlock func()) {
	h := fnv.New32a()
	h.Write([]byte(bucket))
	h.Write([]byte{0})
	h.Write([]byte(key))
	m := &s.locks[h.Sum32()%uint32(len(s.locks))]
	m.Lock()
	return m.Unlock
}

// Get returns the entry for bucket/key; ok is false if the site never saw it.
func (s *Store) Get(bucket, key string) (e Entry, ok bool, err error) {
	v, closer, err := s.db.Get(dbKey(bucket, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("state get %s/%s: %w", bucket, key, err)
	}
	defer closer.Close()
	if err := msgpack.Unmarshal(v, &e); err != nil {
		return Entry{}, false, fmt.Errorf("state get %s/%s: decode: %w", bucket, key, err)
	}
	return e, true, nil
}

// Put stores the entry for bucket/key. Callers hold Lock(bucket, key).
func (s *Store) Put(bucket, key string, e Entry) error {
	opt := pebble.NoSync
	if s.sync {
		opt = pebble.Sync
	}
	return s.set(bucket, key, e, opt)
}

func (s *Store) set(bucket, key string, e Entry, opt *pebble.WriteOptions) error {
	b, err := msgpack.Marshal(&e)
	if err != nil {
		return fmt.Errorf("state put %s/%s: %w", bucket, key, err)
	}
	if err := s.db.Set(dbKey(bucket, key), b, opt); err != nil {
		return fmt.Errorf("state put %s/%s: %w", bucket, key, err)
	}
	return nil
}

// PutLazy stores the entry without waiting for the disk: it is durable at
// the latest with the next synced write of any key (pebble's write-ahead
// log keeps writes in order) — for an entry a crash may lose because the
// durable intent before it leads to the same entry on recovery
// (lifecycle.Step.Lazy). Whatever must not happen before the entry is
// durable (acknowledging the message it settles) goes through AfterSync.
// Callers hold Lock(bucket, key).
func (s *Store) PutLazy(bucket, key string, e Entry) error {
	if !s.sync {
		return s.Put(bucket, key, e)
	}
	s.lazyMu.Lock() // counted under the lock the syncer reads the count with
	defer s.lazyMu.Unlock()
	if err := s.set(bucket, key, e, pebble.NoSync); err != nil {
		return err
	}
	s.written++
	return nil
}

type waiter struct {
	upTo uint64 // the lazy writes that must be durable first
	fn   func()
}

// AfterSync runs fn once every write made before the call is durable: at
// once if every lazy write is already synced, else from the store's syncer
// after its next sync, which one fsync serves for every waiter (group
// commit). fn must not block for long.
func (s *Store) AfterSync(fn func()) {
	s.lazyMu.Lock()
	if s.synced == s.written {
		s.lazyMu.Unlock()
		fn()
		return
	}
	s.waiting = append(s.waiting, waiter{upTo: s.written, fn: fn})
	s.lazyMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// syncer makes lazy writes durable whenever something waits for them.
func (s *Store) syncer() {
	defer close(s.stopped)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			s.syncOnce()
			return
		}
		s.syncOnce()
	}
}

// syncOnce syncs the log and runs what waited for the writes before it.
func (s *Store) syncOnce() {
	s.lazyMu.Lock()
	upTo, pending := s.written, len(s.waiting)
	s.lazyMu.Unlock()
	if pending == 0 {
		return
	}
	// A synced log-only write flushes the log up to here: every lazy write
	// counted in upTo is then on disk.
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		// The store is unusable (disk error): the waiters' messages stay
		// unacknowledged and come again after a restart.
		return
	}
	s.lazyMu.Lock()
	s.synced = max(s.synced, upTo)
	var run []func()
	keep := s.waiting[:0]
	for _, w := range s.waiting {
		if w.upTo <= upTo {
			run = append(run, w.fn)
		} else {
			keep = append(keep, w)
		}
	}
	s.waiting = keep
	more := len(keep) > 0
	s.lazyMu.Unlock()
	for _, fn := range run {
		fn()
	}
	if more {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Delete removes the entry (used when tombstones are collected).
func (s *Store) Delete(bucket, key string) error {
	if err := s.db.Delete(dbKey(bucket, key), pebble.NoSync); err != nil {
		return fmt.Errorf("state delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Scan calls fn for every key of bucket after startAfter (exclusive), in
// key byte order, without holding locks: entries may change meanwhile, so
// callers re-read under Lock before acting.
func (s *Store) Scan(bucket, startAfter string, fn func(key string, e Entry) error) error {
	return s.scan(bucket, startAfter, nil, fn)
}

// ScanRange is Scan limited to keys <= upTo.
func (s *Store) ScanRange(bucket, startAfter, upTo string, fn func(key string, e Entry) error) error {
	upper := append(dbKey(bucket, upTo), 0)
	return s.scan(bucket, startAfter, upper, fn)
}

func (s *Store) scan(bucket, startAfter string, upper []byte, fn func(key string, e Entry) error) error {
	lower := dbKey(bucket, startAfter)
	if startAfter != "" {
		lower = append(lower, 0)
	}
	if upper == nil {
		upper = append([]byte{entryPrefix}, bucket...)
		upper = append(upper, 1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("state scan %s: %w", bucket, err)
	}
	defer it.Close()
	prefixLen := 2 + len(bucket)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < prefixLen || !bytes.Equal(k[1:prefixLen-1], []byte(bucket)) {
			continue
		}
		var e Entry
		if err := msgpack.Unmarshal(it.Value(), &e); err != nil {
			return fmt.Errorf("state scan %s: decode %q: %w", bucket, k[prefixLen:], err)
		}
		if err := fn(string(k[prefixLen:]), e); err != nil {
			return err
		}
	}
	return it.Error()
}

const metaPrefix = 'm'

// SiteMeta is what the state knows of its own site: which site it belongs
// to and the last incarnation the agent started (see
// lifecycle.IncarnationShift). A state without it was never started by an
// agent, or was lost.
type SiteMeta struct {
	Site        string `msgpack:"site"`
	Incarnation uint64 `msgpack:"inc"`
	RebuiltAt   int64  `msgpack:"rebuilt,omitempty"` // unix ms of the last `s3mesh rebuild`
}

const siteMetaKey = "site"

// SiteMeta returns the state's site record; ok is false if it has none.
func (s *Store) SiteMeta() (m SiteMeta, ok bool, err error) {
	ok, err = s.GetMeta(siteMetaKey, &m)
	return m, ok, err
}

// PutSiteMeta stores the state's site record (synced).
func (s *Store) PutSiteMeta(m SiteMeta) error { return s.PutMeta(siteMetaKey, &m) }

// MarkRebuilt records that `s3mesh rebuild` restored this state for site at
// unix ms now, so the agent accepts it as present (keeping the last
// incarnation, if any: the agent starts a higher one).
func (s *Store) MarkRebuilt(site string, now int64) error {
	m, _, err := s.SiteMeta()
	if err != nil {
		return err
	}
	if m.Site != "" && m.Site != site {
		return fmt.Errorf("state belongs to site %q, not %q", m.Site, site)
	}
	m.Site, m.RebuiltAt = site, now
	return s.PutSiteMeta(m)
}

// RebuildRunningMeta is the meta record `s3mesh rebuild` keeps while a
// rebuild is under way or was interrupted: the state is partial until it
// is gone, and the agent refuses to start on it.
const RebuildRunningMeta = "rebuild.running"

// HasMeta reports whether the meta record name exists.
func (s *Store) HasMeta(name string) (bool, error) {
	_, closer, err := s.db.Get(append([]byte{metaPrefix}, name...))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state meta %s: %w", name, err)
	}
	return true, closer.Close()
}

// Empty reports whether the store holds no per-key entry at all.
func (s *Store) Empty() (bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{entryPrefix}, UpperBound: []byte{entryPrefix + 1}})
	if err != nil {
		return false, fmt.Errorf("state: %w", err)
	}
	defer it.Close()
	return !it.First(), it.Error()
}

// GetMeta reads a small record the agent keeps beside the per-key state
// (scan cursors, held buckets) into v; ok is false if absent.
func (s *Store) GetMeta(name string, v any) (ok bool, err error) {
	b, closer, err := s.db.Get(append([]byte{metaPrefix}, name...))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state meta %s: %w", name, err)
	}
	defer closer.Close()
	if err := msgpack.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("state meta %s: %w", name, err)
	}
	return true, nil
}

// PutMeta stores v under name (nil deletes it).
func (s *Store) PutMeta(name string, v any) error {
	k := append([]byte{metaPrefix}, name...)
	if v == nil {
		return s.db.Delete(k, pebble.Sync)
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		return err
	}
	return s.db.Set(k, b, pebble.Sync)
}

// PutMetaLazy stores v under name without waiting for the disk, as
// PutLazy does an entry: it is durable at the latest with the next synced
// write, and AfterSync waits for it.
func (s *Store) PutMetaLazy(name string, v any) error {
	k := append([]byte{metaPrefix}, name...)
	b, err := msgpack.Marshal(v)
	if err != nil {
		return err
	}
	if !s.sync {
		return s.db.Set(k, b, pebble.NoSync)
	}
	s.lazyMu.Lock()
	defer s.lazyMu.Unlock()
	if err := s.db.Set(k, b, pebble.NoSync); err != nil {
		return fmt.Errorf("state meta %s: %w", name, err)
	}
	s.written++
	return nil
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
