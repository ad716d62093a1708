package rebuild

// The harness of the rebuild tests: real versitygw stores (one per site),
// real pebble states, and peers whose Page reads their state the way the
// agent's state.page verb does. Nothing of S3 is faked: the only wrapper
// (hookStore) passes every call to the real client, counting calls and
// running a hook after HEAD.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// siteName is the site every test rebuilds.
const siteName = "a"

// node is one site: its store and its per-key state.
type node struct {
	name string
	s3   *s3io.Client
	st   *state.Store

	mu    sync.Mutex
	pages []string // the after argument of every Page call
}

// mesh is the site being rebuilt and its peers. Tests share one mesh
// between their cases: each case has a bucket of its own (see bucket) and
// rebuilds into a state of its own (see freshState).
type mesh struct {
	site  *node
	peers []*node
	n     int
}

func newNode(t *testing.T, name string) *node {
	t.Helper()
	v := testenv.StartVersity(t)
	c, err := s3io.New(s3io.Endpoint{URL: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: v.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return &node{name: name, s3: c, st: freshState(t)}
}

// newMesh starts the stores of site a and of the named peers.
func newMesh(t *testing.T, peers ...string) *mesh {
	t.Helper()
	m := &mesh{site: newNode(t, siteName)}
	for _, p := range peers {
		m.peers = append(m.peers, newNode(t, p))
	}
	return m
}

// freshState opens an empty per-key state (a lost one, for the site).
func freshState(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// bucket creates a new bucket at every peer and, if atSite, at the site.
func (m *mesh) bucket(t *testing.T, atSite bool) string {
	t.Helper()
	m.n++
	b := fmt.Sprintf("case%02d", m.n)
	nodes := m.peers
	if atSite {
		nodes = append(slices.Clone(nodes), m.site)
	}
	for _, n := range nodes {
		if err := n.s3.EnsureBucket(testCtx(t), b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func (m *mesh) peer(name string) *node {
	for _, p := range m.peers {
		if p.name == name {
			return p
		}
	}
	panic("no peer " + name)
}

// options rebuilds buckets of site a into st from every peer.
func (m *mesh) options(st *state.Store, buckets ...string) Options {
	o := Options{Site: siteName, Local: m.site.s3, State: st, Buckets: buckets, Workers: 4, PageSize: 3,
		Keys: testKeys(), Limits: schema.NewLimits(testSites, time.Now(), 0)}
	for _, p := range m.peers {
		o.Peers = append(o.Peers, p.peer())
	}
	return o
}

// peer is n as a rebuild source. Page reads n's state as the agent's
// state.page verb does (entries never held are skipped, more is set when
// an entry was left out) and passes the page through JSON, as the answer
// crosses NATS.
func (n *node) peer() Peer {
	return Peer{Name: n.name, S3: n.s3, Page: func(ctx context.Context, bucket, after string, limit int) ([]Item, bool, error) {
		n.mu.Lock()
		n.pages = append(n.pages, after)
		n.mu.Unlock()
		var items []Item
		more := false
		errFull := errors.New("page full")
		err := n.st.Scan(bucket, after, func(key string, e state.Entry) error {
			if len(items) == limit {
				more = true
				return errFull
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if e.Held.ID == "" {
				return nil
			}
			items = append(items, Item{Key: key, Held: e.Held, Clock: e.Clock, ETag: e.LocalETag, Attrs: e.Attrs, Busy: e.Outstanding(), Proof: e.Proof})
			return nil
		})
		if err != nil && !errors.Is(err, errFull) {
			return nil, false, err
		}
		b, err := json.Marshal(items)
		if err != nil {
			return nil, false, err
		}
		var out []Item
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, false, err
		}
		return out, more, nil
	}}
}

func (n *node) pageCalls() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.pages)
}

// testSites are the sites of the rebuild tests' mesh.
var testSites = []string{"a", "b", "c", "d"}

// siteKey is site's record signing key in these tests.
func siteKey(site string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("rebuild test signing key of " + site))
	return ed25519.NewKeyFromSeed(seed[:])
}

// testKeys verify every test site's records.
func testKeys() schema.Keyring {
	k := schema.Keyring{Keys: map[string][]ed25519.PublicKey{}}
	for _, s := range testSites {
		k.Keys[s] = []ed25519.PublicKey{siteKey(s).Public().(ed25519.PublicKey)}
	}
	return k
}

// proofOf is the proof of v its origin keeps (schema.Record.SignProof).
func proofOf(t *testing.T, bucket, key string, v schema.Version) []byte {
	t.Helper()
	r := schema.Record{Schema: schema.RecordSchema, Bucket: bucket, Key: key, Version: v, MadeAt: v.TS}
	b, err := r.SignProof(siteKey(v.Origin))
	if err != nil || b == nil {
		t.Fatalf("proof of %s: %v", v.ID, err)
	}
	return b
}

// version is the n-th write of bucket/key at origin (n = clock[origin]),
// with the body bodyOf gives it.
func version(origin, bucket, key string, clock schema.Clock, ts int64) schema.Version {
	v := schema.Version{ID: schema.VersionID(origin, bucket, key, clock[origin]), Origin: origin, Clock: clock, TS: ts}
	b := bodyOf(v)
	v.Size, v.ETag = int64(len(b)), md5hex(b)
	return v
}

// tombstone is the delete of bucket/key at origin with clock.
func tombstone(origin, bucket, key string, clock schema.Clock, ts int64) schema.Version {
	return schema.Version{ID: schema.VersionID(origin, bucket, key, clock[origin]), Origin: origin, Clock: clock, TS: ts, Deleted: true}
}

// bodyOf is the content of version v: distinct for every version.
func bodyOf(v schema.Version) []byte {
	if v.Size == 0 && v.ETag == md5hex(nil) {
		return nil
	}
	return []byte("the bytes of version " + v.ID + "\n")
}

// emptyVersion is version with an empty body.
func emptyVersion(origin, bucket, key string, clock schema.Clock, ts int64) schema.Version {
	v := version(origin, bucket, key, clock, ts)
	v.Size, v.ETag = 0, md5hex(nil)
	return v
}

// attrsOfVersion is the attributes version v was written with.
func attrsOfVersion(v schema.Version) s3io.Attrs {
	return s3io.Attrs{ContentType: "text/x-s3mesh", CacheControl: "max-age=" + fmt.Sprint(len(v.ID)),
		Meta: map[string]string{"written-as": v.ID}}
}

func digestOf(a s3io.Attrs) string {
	return schema.Attrs{ContentType: a.ContentType, CacheControl: a.CacheControl, ContentEncoding: a.ContentEncoding,
		ContentDisposition: a.ContentDisposition, Meta: schema.UserMeta(a.Meta)}.Digest()
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func now() int64 { return time.Now().UnixMilli() }

// put writes an object at n and returns its ETag.
func (n *node) put(t *testing.T, bucket, key string, body []byte, at s3io.Attrs) string {
	t.Helper()
	etag, err := n.s3.Put(testCtx(t), s3io.PutInput{Bucket: bucket, Key: key, Body: bytes.NewReader(body), Size: int64(len(body)), Attrs: at})
	if err != nil {
		t.Fatal(err)
	}
	return etag
}

// putReplica writes v at n as the consumer applies it: its bytes and
// attributes with v's replica marker.
func (n *node) putReplica(t *testing.T, bucket, key string, v schema.Version) string {
	t.Helper()
	at := attrsOfVersion(v)
	for mk, mv := range schema.ReplicaMeta(bucket, key, v) {
		at.Meta[mk] = mv
	}
	etag := n.put(t, bucket, key, bodyOf(v), at)
	if etag != v.ETag {
		t.Fatalf("%s: replica of %s has ETag %s, want %s", n.name, v.ID, etag, v.ETag)
	}
	return etag
}

// putOrigin writes v at n as the user wrote it there (no marker).
func (n *node) putOrigin(t *testing.T, bucket, key string, v schema.Version) string {
	t.Helper()
	etag := n.put(t, bucket, key, bodyOf(v), attrsOfVersion(v))
	if etag != v.ETag {
		t.Fatalf("%s: object of %s has ETag %s, want %s", n.name, v.ID, etag, v.ETag)
	}
	return etag
}

// hold makes n hold v as the agent leaves it: the object (plain where n
// is v's origin, a replica elsewhere, none for a tombstone) and the state
// entry with v held, the merged clock (v's, merged with seen) and the
// object's ETag and attributes.
func (n *node) hold(t *testing.T, bucket, key string, v schema.Version, seen ...schema.Clock) {
	t.Helper()
	e := state.Entry{Held: v, Clock: v.Clock.Clone(), Updated: now(), Proof: proofOf(t, bucket, key, v)}
	for _, c := range seen {
		e.Clock = e.Clock.Merge(c)
	}
	switch {
	case v.Deleted:
		if err := n.s3.Delete(testCtx(t), bucket, key, ""); err != nil {
			t.Fatal(err)
		}
	case v.Origin == n.name:
		e.LocalETag, e.Attrs = n.putOrigin(t, bucket, key, v), digestOf(attrsOfVersion(v))
	default:
		e.LocalETag, e.Attrs = n.putReplica(t, bucket, key, v), digestOf(attrsOfVersion(v))
	}
	unlock := n.st.Lock(bucket, key)
	defer unlock()
	if err := n.st.Put(bucket, key, e); err != nil {
		t.Fatal(err)
	}
}

// object reads bucket/key at n; ok is false if absent.
func (n *node) object(t *testing.T, bucket, key string) (body []byte, info s3io.ObjectInfo, ok bool) {
	t.Helper()
	rc, info, err := n.s3.Get(testCtx(t), bucket, key, "")
	if s3io.Classify(err) == s3io.NotFound {
		return nil, info, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	body, err = io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return body, info, true
}

func (n *node) keys(t *testing.T, bucket string) []string {
	t.Helper()
	var keys []string
	if err := n.s3.List(testCtx(t), bucket, "", 100, func(e s3io.ListEntry) error {
		keys = append(keys, e.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// wantReplica checks that n holds v at bucket/key as a replica: v's
// bytes and attributes and v's marker. It returns the object's ETag.
func (n *node) wantReplica(t *testing.T, bucket, key string, v schema.Version) string {
	t.Helper()
	body, info, ok := n.object(t, bucket, key)
	if !ok {
		t.Fatalf("%s: %s/%s absent, want a replica of %s", n.name, bucket, key, v.ID)
	}
	if !bytes.Equal(body, bodyOf(v)) {
		t.Errorf("%s: %s/%s holds %q, want the bytes of %s", n.name, bucket, key, trim(body), v.ID)
	}
	rv, marked := schema.Replica(bucket, key, info.Meta, info.Size)
	switch {
	case !marked:
		t.Errorf("%s: %s/%s carries no replica marker (meta %v), want %s", n.name, bucket, key, info.Meta, v.ID)
	case !sameVersion(rv, v):
		t.Errorf("%s: %s/%s marker is %+v, want %+v", n.name, bucket, key, rv, v)
	}
	want := attrsOfVersion(v)
	if info.ContentType != want.ContentType || info.CacheControl != want.CacheControl || info.Meta["written-as"] != v.ID {
		t.Errorf("%s: %s/%s attributes %+v, want those of %s (%+v)", n.name, bucket, key, info.Attrs, v.ID, want)
	}
	return info.ETag
}

// wantBody checks that n holds exactly body at bucket/key and returns
// its info.
func (n *node) wantBody(t *testing.T, bucket, key string, body []byte) s3io.ObjectInfo {
	t.Helper()
	got, info, ok := n.object(t, bucket, key)
	if !ok {
		t.Fatalf("%s: %s/%s absent, want %q", n.name, bucket, key, trim(body))
	}
	if !bytes.Equal(got, body) {
		t.Errorf("%s: %s/%s holds %q, want %q", n.name, bucket, key, trim(got), trim(body))
	}
	return info
}

func (n *node) wantAbsent(t *testing.T, bucket, key string) {
	t.Helper()
	if body, _, ok := n.object(t, bucket, key); ok {
		t.Errorf("%s: %s/%s holds %q, want it absent", n.name, bucket, key, trim(body))
	}
}

func trim(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// sameVersion compares versions field by field (clocks by content).
func sameVersion(a, b schema.Version) bool {
	return a.ID == b.ID && a.Origin == b.Origin && a.Clock.Compare(b.Clock) == schema.Equal && a.TS == b.TS &&
		a.Rank == b.Rank && a.Deleted == b.Deleted && a.Size == b.Size && a.ETag == b.ETag
}

// wantEntry checks the state entry of bucket/key.
func wantEntry(t *testing.T, st *state.Store, bucket, key string, held schema.Version, clock schema.Clock, localETag, attrs string) {
	t.Helper()
	e, ok, err := st.Get(bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Errorf("state: no entry for %s/%s, want %s held", bucket, key, held.ID)
		return
	}
	if !sameVersion(e.Held, held) {
		t.Errorf("state %s/%s: held %+v, want %+v", bucket, key, e.Held, held)
	}
	if e.Clock.Compare(clock) != schema.Equal {
		t.Errorf("state %s/%s: clock %v, want %v", bucket, key, e.Clock, clock)
	}
	if e.LocalETag != localETag {
		t.Errorf("state %s/%s: local ETag %q, want %q", bucket, key, e.LocalETag, localETag)
	}
	if e.Attrs != attrs {
		t.Errorf("state %s/%s: attrs digest %q, want %q", bucket, key, e.Attrs, attrs)
	}
	if e.Pending != nil || e.Applying != nil {
		t.Errorf("state %s/%s: intents left: pending %v applying %v", bucket, key, e.Pending, e.Applying)
	}
}

func wantNoEntry(t *testing.T, st *state.Store, bucket, key string) {
	t.Helper()
	if e, ok, err := st.Get(bucket, key); err != nil {
		t.Fatal(err)
	} else if ok {
		t.Errorf("state: entry for %s/%s (%+v), want none", bucket, key, e)
	}
}

// entries counts the state entries of bucket.
func entries(t *testing.T, st *state.Store, bucket string) int {
	t.Helper()
	n := 0
	if err := st.Scan(bucket, "", func(string, state.Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// hookStore is the site's real client, counting the writes rebuild makes
// and running afterHead after every HEAD and afterList after every listed
// key (to change the object under the rebuild, as a stray writer would).
type hookStore struct {
	Store
	afterHead             func(bucket, key string)
	afterList             func(bucket, key string) // after the listing handed key on
	puts, deletes, copies atomic.Int64
}

func (h *hookStore) List(ctx context.Context, bucket, startAfter string, pageSize int32, fn func(s3io.ListEntry) error) error {
	return h.Store.List(ctx, bucket, startAfter, pageSize, func(e s3io.ListEntry) error {
		err := fn(e)
		if h.afterList != nil {
			h.afterList(bucket, e.Key)
		}
		return err
	})
}

func (h *hookStore) Head(ctx context.Context, bucket, key string) (s3io.ObjectInfo, error) {
	info, err := h.Store.Head(ctx, bucket, key)
	if h.afterHead != nil {
		h.afterHead(bucket, key)
	}
	return info, err
}

func (h *hookStore) Put(ctx context.Context, in s3io.PutInput) (string, error) {
	h.puts.Add(1)
	return h.Store.Put(ctx, in)
}

func (h *hookStore) Delete(ctx context.Context, bucket, key, ifMatch string) error {
	h.deletes.Add(1)
	return h.Store.Delete(ctx, bucket, key, ifMatch)
}

func (h *hookStore) CopyIfMatch(ctx context.Context, bucket, srcKey, dstKey, srcETag string) error {
	h.copies.Add(1)
	return h.Store.CopyIfMatch(ctx, bucket, srcKey, dstKey, srcETag)
}

// run rebuilds o and fails the test on an error.
func run(t *testing.T, o Options) Stats {
	t.Helper()
	st, err := Run(testCtx(t), o)
	if err != nil {
		t.Fatalf("rebuild: %v (so far: %s)", err, st.Describe())
	}
	return st
}

func wantStats(t *testing.T, got, want Stats) {
	t.Helper()
	if got != want {
		t.Errorf("stats:\n got %+v\nwant %+v", got, want)
	}
}

// c builds a clock from site, count pairs.
func c(kv ...any) schema.Clock {
	clock := schema.Clock{}
	for i := 0; i < len(kv); i += 2 {
		clock[kv[i].(string)] = uint64(kv[i+1].(int))
	}
	return clock
}

// published is what site a's agent does when its scanner comes to
// bucket/key after the rebuild (the lifecycle machine's answer to an
// Observe of the site's object with the rebuilt entry): the record it
// publishes, nil if none.
func (m *mesh) published(t *testing.T, st *state.Store, bucket, key string) *schema.Record {
	t.Helper()
	info, err := m.site.s3.Head(testCtx(t), bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := st.Get(bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	o := lifecycle.Object{Exists: info.Exists, ETag: info.ETag, Size: info.Size, Meta: info.Meta, Attrs: attrsOf(info)}
	if !info.LastModified.IsZero() {
		o.LastModified = info.LastModified.UnixMilli()
	}
	step := lifecycle.Machine{Site: siteName}.Step(lifecycle.Key{Bucket: bucket, Key: key}, e, lifecycle.Observe{Object: o}, now())
	if step.Err != nil {
		t.Fatalf("agent at %s/%s: %v", bucket, key, step.Err)
	}
	for _, ef := range step.Effects {
		if p, ok := ef.(lifecycle.Publish); ok {
			return p.Record
		}
	}
	return nil
}

// wantQuiet checks that the agent publishes nothing for bucket/key.
func (m *mesh) wantQuiet(t *testing.T, st *state.Store, bucket, key string) {
	t.Helper()
	if r := m.published(t, st, bucket, key); r != nil {
		t.Errorf("the agent publishes %s/%s as %+v, want nothing", bucket, key, r.Version)
	}
}

// wantPublishedOver checks that the agent publishes the site's object at
// bucket/key as a new version that wins over v (with a clock after
// clock), and returns the record.
func (m *mesh) wantPublishedOver(t *testing.T, st *state.Store, bucket, key string, v schema.Version, clock schema.Clock) *schema.Record {
	t.Helper()
	r := m.published(t, st, bucket, key)
	if r == nil {
		t.Errorf("the agent publishes nothing for %s/%s, want a write over %s", bucket, key, v.ID)
		return nil
	}
	if r.Version.Origin != siteName || !v.Less(r.Version) || r.Version.Clock.Compare(clock) != schema.After {
		t.Errorf("the agent publishes %s/%s as %+v, want a write of %s over %+v (clock %v)", bucket, key, r.Version, siteName, v, clock)
	}
	return r
}
