package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
)

// HeldDelete is a peer's delete the receiver's guard holds instead of
// applying (lifecycle.Hold): kept here, durably, until an operator releases
// or refuses it, or a later version of the key supersedes it.
type HeldDelete struct {
	Seq    uint64        `msgpack:"seq"`  // order of holding at this site
	Peer   string        `msgpack:"peer"` // the site whose stream it came from
	Since  int64         `msgpack:"since"`
	Record schema.Record `msgpack:"rec"`
}

// Held deletes are kept under two prefixes:
//
//	'd' peer 0x00 bucket 0x00 seq(8, big-endian) → HeldDelete
//	'e' bucket 0x00 key 0xFF peer                → seq
//
// The first lists a peer's held deletes of a bucket in order; the second
// finds those of one key. UTF-8 never holds the byte 0xFF, so a key's
// index entries share a prefix no other key's have.
const (
	heldPrefix      = 'd'
	heldIndexPrefix = 'e'
)

var (
	heldSeqMu   sync.Mutex
	lastHeldSeq uint64
)

func heldGroupKey(peer, bucket string) []byte {
	b := make([]byte, 0, 3+len(peer)+len(bucket)+8)
	b = append(b, heldPrefix)
	b = append(b, peer...)
	b = append(b, 0)
	b = append(b, bucket...)
	return append(b, 0)
}

func heldKey(peer, bucket string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(heldGroupKey(peer, bucket), seq)
}

func heldIndexKeyPrefix(bucket, key string) []byte {
	b := make([]byte, 0, 3+len(bucket)+len(key)+16)
	b = append(b, heldIndexPrefix)
	b = append(b, bucket...)
	b = append(b, 0)
	b = append(b, key...)
	return append(b, 0xFF)
}

// nextHeldSeq returns a sequence above every one handed out before, in this
// process and (being nanoseconds of the wall clock) before a restart.
func nextHeldSeq() uint64 {
	heldSeqMu.Lock()
	defer heldSeqMu.Unlock()
	lastHeldSeq = max(lastHeldSeq+1, uint64(time.Now().UnixNano()))
	return lastHeldSeq
}

// HoldDelete keeps rec, a tombstone from peer, among the held deletes
// (synced before it returns, so the record may then be acknowledged). One
// delete of a key is held per peer: the peer's newer one (a peer's deletes
// of a key follow each other in the clock) replaces an older one, and an
// older one arriving late (a redelivery out of order) is not kept over the
// newer (the result is then the held newer one). added reports whether
// the number of held deletes grew (no delete of the key from peer was held).
func (s *Store) HoldDelete(peer string, rec *schema.Record, now time.Time) (h HeldDelete, added bool, err error) {
	if rec == nil || !rec.Version.Deleted {
		return HeldDelete{}, false, errors.New("hold delete: not a tombstone")
	}
	h = HeldDelete{Seq: nextHeldSeq(), Peer: peer, Since: now.UnixMilli(), Record: *rec}
	h.Record.Body = nil
	v, err := msgpack.Marshal(&h)
	if err != nil {
		return h, false, fmt.Errorf("hold delete %s/%s: %w", rec.Bucket, rec.Key, err)
	}
	added = true
	idx := append(heldIndexKeyPrefix(rec.Bucket, rec.Key), peer...)
	b := s.db.NewBatch()
	defer b.Close()
	if cur, closer, err := s.db.Get(idx); err == nil {
		var seq uint64
		if len(cur) == 8 {
			seq = binary.BigEndian.Uint64(cur)
		}
		closer.Close()
		old, ok, err := s.getHeld(peer, rec.Bucket, seq)
		if err != nil {
			return h, false, err
		}
		if ok && lifecycle.Superseded(old.Record.Version.Clock, rec.Version) {
			return old, false, nil
		}
		_ = b.Delete(heldKey(peer, rec.Bucket, seq), nil)
		added = !ok
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return h, false, fmt.Errorf("hold delete %s/%s: %w", rec.Bucket, rec.Key, err)
	}
	_ = b.Set(heldKey(peer, rec.Bucket, h.Seq), v, nil)
	_ = b.Set(idx, binary.BigEndian.AppendUint64(nil, h.Seq), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return h, false, fmt.Errorf("hold delete %s/%s: %w", rec.Bucket, rec.Key, err)
	}
	return h, added, nil
}

// HeldFor returns the held deletes of bucket/key (one per peer at most).
func (s *Store) HeldFor(bucket, key string) ([]HeldDelete, error) {
	prefix := heldIndexKeyPrefix(bucket, key)
	upper := append(bytes.Clone(prefix), 0xFF) // peer names are ASCII
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("held deletes of %s/%s: %w", bucket, key, err)
	}
	defer it.Close()
	var out []HeldDelete
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if !bytes.HasPrefix(k, prefix) || len(it.Value()) != 8 {
			continue
		}
		peer := string(k[len(prefix):])
		h, ok, err := s.getHeld(peer, bucket, binary.BigEndian.Uint64(it.Value()))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, h)
		}
	}
	return out, it.Error()
}

func (s *Store) getHeld(peer, bucket string, seq uint64) (HeldDelete, bool, error) {
	var h HeldDelete
	v, closer, err := s.db.Get(heldKey(peer, bucket, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return h, false, nil
	}
	if err != nil {
		return h, false, fmt.Errorf("held delete: %w", err)
	}
	defer closer.Close()
	if err := msgpack.Unmarshal(v, &h); err != nil {
		return h, false, fmt.Errorf("held delete: decode: %w", err)
	}
	return h, true, nil
}

// DropHeld forgets the held delete h (released, refused or superseded);
// gone is false if it was no longer held.
func (s *Store) DropHeld(h HeldDelete) (gone bool, err error) {
	if _, ok, err := s.getHeld(h.Peer, h.Record.Bucket, h.Seq); err != nil || !ok {
		return false, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(heldKey(h.Peer, h.Record.Bucket, h.Seq), nil)
	idx := append(heldIndexKeyPrefix(h.Record.Bucket, h.Record.Key), h.Peer...)
	if cur, closer, err := s.db.Get(idx); err == nil {
		if len(cur) == 8 && binary.BigEndian.Uint64(cur) == h.Seq {
			_ = b.Delete(idx, nil)
		}
		closer.Close()
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return false, fmt.Errorf("drop held delete %s/%s: %w", h.Record.Bucket, h.Record.Key, err)
	}
	return true, nil
}

// ScanHeld calls fn with the held deletes of peer ("" for every peer) in
// bucket ("" for every bucket), each peer's of one bucket in the order
// they were held.
func (s *Store) ScanHeld(peer, bucket string, fn func(HeldDelete) error) error {
	var lower, upper []byte
	switch {
	case peer == "":
		lower, upper = []byte{heldPrefix}, []byte{heldPrefix + 1}
	case bucket == "":
		lower = append([]byte{heldPrefix}, peer...)
		lower = append(lower, 0)
		upper = append([]byte{heldPrefix}, peer...)
		upper = append(upper, 1)
	default:
		lower = heldGroupKey(peer, bucket)
		upper = append(bytes.Clone(lower[:len(lower)-1]), 1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("held deletes: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var h HeldDelete
		if err := msgpack.Unmarshal(it.Value(), &h); err != nil {
			return fmt.Errorf("held deletes: decode: %w", err)
		}
		if bucket != "" && h.Record.Bucket != bucket {
			continue
		}
		if err := fn(h); err != nil {
			return err
		}
	}
	return it.Error()
}
