package lifecycle_test

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
)

// The simulation's outside world: an in-memory S3 bucket per site with
// conditional writes, and a durable entry store that keeps entries
// msgpack-encoded like state.Store.

// simMutKind says who made a store's state of a key.
type simMutKind int

const (
	simNever   simMutKind = iota // the key was never written
	simUser                      // a user's PUT or DELETE (simMut.write)
	simReplica                   // a replica write of the consumer (simMut.vid)
	simCopy                      // a conflict loser's copy (simMut.vid: the loser)
)

// simMut is one write to a key of a site's store.
type simMut struct {
	kind  simMutKind
	write int    // simUser: index in simWorld.writes
	vid   string // simReplica, simCopy: the version
	del   bool
}

func (m simMut) String() string {
	switch m.kind {
	case simUser:
		return fmt.Sprintf("user write #%d", m.write)
	case simReplica:
		if m.del {
			return "replica delete " + m.vid
		}
		return "replica put " + m.vid
	case simCopy:
		return "loser copy of " + m.vid
	}
	return "nothing"
}

// simObject is one object of a store.
type simObject struct {
	body  []byte
	etag  string
	ctype string
	meta  map[string]string // user metadata as stored (lower-case), s3mesh's marker included
	mod   int64             // Last-Modified, unix ms with S3's 1 s resolution
	by    simMut
}

// simStore is one site's bucket.
type simStore struct {
	objs map[string]*simObject
	hist map[string][]simMut // per key, every write in order
}

func newSimStore() *simStore {
	return &simStore{objs: map[string]*simObject{}, hist: map[string][]simMut{}}
}

// Errors of conditional writes.
var (
	errSimPrecondition = errors.New("412 precondition failed")
	errSimNotFound     = errors.New("404 not found")
)

func simETag(body []byte) string {
	h := md5.Sum(body)
	return hex.EncodeToString(h[:])
}

func simMeta(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// last is the write that made the key's present state.
func (s *simStore) last(k string) simMut {
	h := s.hist[k]
	if len(h) == 0 {
		return simMut{}
	}
	return h[len(h)-1]
}

// head is a HEAD of k as the producer turns it into an Object.
func (s *simStore) head(k string) lifecycle.Object {
	o := s.objs[k]
	if o == nil {
		return lifecycle.Object{}
	}
	return lifecycle.Object{
		Exists: true, ETag: o.etag, Size: int64(len(o.body)), LastModified: o.mod, Meta: maps.Clone(o.meta),
		Attrs: schema.Attrs{ContentType: o.ctype, Meta: schema.UserMeta(o.meta)},
	}
}

// put stores o at k like S3: If-Match ifMatch (412 if another object, 404
// if none), If-None-Match: * when ifNoneMatch (412 if any), else
// unconditionally.
func (s *simStore) put(k string, o *simObject, ifMatch string, ifNoneMatch bool) error {
	cur := s.objs[k]
	switch {
	case ifNoneMatch && cur != nil:
		return errSimPrecondition
	case ifMatch != "" && cur == nil:
		return errSimNotFound
	case ifMatch != "" && cur.etag != ifMatch:
		return errSimPrecondition
	}
	s.objs[k] = o
	s.hist[k] = append(s.hist[k], o.by)
	return nil
}

// remove deletes k like versitygw: If-Match ifMatch (412 if another
// object), and success on an absent key (which changes nothing).
func (s *simStore) remove(k, ifMatch string, by simMut) error {
	cur := s.objs[k]
	if cur == nil {
		return nil
	}
	if ifMatch != "" && cur.etag != ifMatch {
		return errSimPrecondition
	}
	delete(s.objs, k)
	by.del = true
	s.hist[k] = append(s.hist[k], by)
	return nil
}

// describe renders the store for comparisons and logs.
func (s *simStore) describe() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(s.objs)) {
		o := s.objs[k]
		fmt.Fprintf(&b, "%s=%s ct=%q meta=%v; ", k, o.etag, o.ctype, o.meta)
	}
	return b.String()
}

// Durable entries, encoded as state.Store encodes them.

func simEncode(e lifecycle.Entry) []byte {
	b, err := msgpack.Marshal(&e)
	if err != nil {
		panic(fmt.Sprintf("encode entry: %v", err))
	}
	return b
}

func simDecode(b []byte) lifecycle.Entry {
	var e lifecycle.Entry
	if err := msgpack.Unmarshal(b, &e); err != nil {
		panic(fmt.Sprintf("decode entry: %v", err))
	}
	return e
}

// simCanon renders an entry so that equal entries render alike (an empty
// clock and a nil one, an empty list and a nil one).
func simCanon(e lifecycle.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "clock=%s held=%s etag=%q attrs=%q dead=%v upd=%d", e.Clock, simV(e.Held), e.LocalETag, e.Attrs, e.Dead, e.Updated)
	if p := e.Pending; p != nil {
		fmt.Fprintf(&b, " pending=%s/%s %s attrs=%s inline=%v body=%d made=%d", p.Bucket, p.Key, simV(p.Version), p.Attrs.Digest(), p.Inline, len(p.Body), p.MadeAt)
	}
	if a := e.Applying; a != nil {
		fmt.Fprintf(&b, " applying=%s copy=%q", simV(*a), e.LoserCopy)
	}
	return b.String()
}

func simV(v schema.Version) string {
	if v.ID == "" {
		return "-"
	}
	return fmt.Sprintf("%s{%s ts=%d rank=%#x del=%v size=%d etag=%.6s}", simID(v.ID), v.Clock, v.TS, v.Rank, v.Deleted, v.Size, v.ETag)
}

// simID shortens a version id for logs: origin:n@tag (4 hex digits).
func simID(id string) string {
	origin, tag, n, err := schema.ParseVersionID(id)
	if err != nil {
		return id
	}
	return fmt.Sprintf("%s:%d@%.4s", origin, n, tag)
}
