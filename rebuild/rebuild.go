// Package rebuild restores a site that lost its store, its per-key state or
// both from its peers (`s3mesh rebuild`), while the site's agent is stopped.
//
// For every key of every replicated bucket the peers' per-key states (read
// page by page through their agents) say which version each holds and the
// merged clock of everything each has seen. The target is the greatest
// version any peer holds (schema.Version.Less) with the merge of their
// clocks; it is copied from a peer that holds exactly that version (GET
// If-Match its ETag) into the site with that version's replica marker, and
// the site's state entry is written for it. Objects the site already holds
// in that version are adopted without copying; objects no peer knows are
// kept without an entry (the agent's scanner publishes them); objects that
// differ are replaced only when they are a stale replica (a marker of a
// version the merged clock covers), otherwise kept and reported: the agent
// publishes them as local writes, decided as conflicts.
//
// Listings are merged page by page, copies run in a worker pool, and a
// cursor per bucket in the site's state meta makes an interrupted rebuild
// continue where it stopped.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// Item is what one peer's per-key state says about one key.
type Item struct {
	Key   string
	Held  schema.Version
	Clock schema.Clock
	ETag  string // the peer's own copy ("" if it holds none)
	Attrs string
	Busy  bool // a publish or apply is under way there
	// Proof is the held version's record as its origin signed it
	// (lifecycle.Entry.Proof): the version is adopted only with it.
	Proof []byte
}

// Store is what rebuild needs of an S3 store (*s3io.Client).
type Store interface {
	List(ctx context.Context, bucket, startAfter string, pageSize int32, fn func(s3io.ListEntry) error) error
	Head(ctx context.Context, bucket, key string) (s3io.ObjectInfo, error)
	Get(ctx context.Context, bucket, key, ifMatch string) (io.ReadCloser, s3io.ObjectInfo, error)
	Put(ctx context.Context, in s3io.PutInput) (string, error)
	Delete(ctx context.Context, bucket, key, ifMatch string) error
	BucketExists(ctx context.Context, bucket string) (bool, error)
	EnsureBucket(ctx context.Context, bucket string) error
	CopyIfMatch(ctx context.Context, bucket, srcKey, dstKey, srcETag string) error
}

// Peer is one site to rebuild from.
type Peer struct {
	Name string
	S3   Store
	// Page returns the peer's state entries of bucket after the key after,
	// in key byte order, at most limit; more is true if the page was cut.
	Page func(ctx context.Context, bucket, after string, limit int) (items []Item, more bool, err error)
}

// Options configure Run.
type Options struct {
	Site    string
	Local   Store
	State   *state.Store
	Peers   []Peer
	Buckets []string
	// Workers copy in parallel (default 16). Each holds at most two
	// PartSize buffers at a time (one for bodies up to PartSize).
	Workers  int
	PartSize int64 // default s3io.MinPartSize
	PageSize int   // keys per state page and listing request (default 500)
	// Progress, if set, is called after every batch of keys.
	Progress func(Progress)
	Log      *slog.Logger
	// AfterCopy, if set, is called after each object copied (tests).
	AfterCopy func(bucket, key string)
	// Archive names the buckets this site archives (mode archive): an
	// object there that the peers' version deleted is kept, as the agent
	// keeps it (lifecycle.Entry.Kept), not deleted.
	Archive map[string]bool
	// Keys verify the versions the peers' states name: a version is adopted
	// only with a record its origin signed (Item.Proof, from any peer),
	// within Limits (schema.Record.ValidateFor), and a copy's bytes are
	// checked against the ETag that record signs.
	Keys   schema.Keyring
	Limits schema.Limits
	// TrustUnsigned adopts versions no signed record backs as the peers
	// state them (states written before versions carried their proof).
	TrustUnsigned bool
}

// Stats count what a rebuild did.
type Stats struct {
	Keys       int64 `json:"keys" msgpack:"keys"`             // keys examined (union of peers and site)
	Copied     int64 `json:"copied" msgpack:"copied"`         // objects copied from a peer
	Bytes      int64 `json:"bytes" msgpack:"bytes"`           // bytes copied
	Adopted    int64 `json:"adopted" msgpack:"adopted"`       // already held in the target version
	Replaced   int64 `json:"replaced" msgpack:"replaced"`     // stale replicas overwritten (or deleted, for a tombstone)
	Tombstones int64 `json:"tombstones" msgpack:"tombstones"` // tombstone entries written
	LocalOnly  int64 `json:"local_only" msgpack:"local_only"` // objects no peer knows: kept, published by the agent
	Differing  int64 `json:"differing" msgpack:"differing"`   // objects differing from the peers' version: the newer one kept (see differing)
	Changed    int64 `json:"changed" msgpack:"changed"`       // changed at every holder while copying: they arrive through the mirrors
	Unverified int64 `json:"unverified" msgpack:"unverified"` // keys where a peer named a version no record of its origin backs: not adopted from it
	Refused    int64 `json:"refused" msgpack:"refused"`       // copies refused: a peer served other bytes than the origin signed
	Buckets    int   `json:"buckets_created" msgpack:"buckets_created"`
}

func (s *Stats) add(o *Stats) {
	s.Keys += o.Keys
	s.Copied += o.Copied
	s.Bytes += o.Bytes
	s.Adopted += o.Adopted
	s.Replaced += o.Replaced
	s.Tombstones += o.Tombstones
	s.LocalOnly += o.LocalOnly
	s.Differing += o.Differing
	s.Changed += o.Changed
	s.Unverified += o.Unverified
	s.Refused += o.Refused
	s.Buckets += o.Buckets
}

// Progress is reported after every batch.
type Progress struct {
	Bucket   string
	After    string // last key done
	InBucket Stats  // this bucket so far (resumed counts included)
	Total    Stats  // all buckets so far
}

// cursor is the saved position of an interrupted rebuild of one bucket.
type cursor struct {
	After string `msgpack:"after"`
	Done  bool   `msgpack:"done"`
	Stats Stats  `msgpack:"stats"`
}

// RunningMeta is the state meta record present while a rebuild is under
// way or was interrupted: the state is partial until it is gone.
const RunningMeta = state.RebuildRunningMeta

func cursorMeta(bucket string) string { return "rebuild.cursor/" + bucket }

// Running is the content of RunningMeta.
type Running struct {
	Site    string `msgpack:"site"`
	Started int64  `msgpack:"started"` // unix ms of the first attempt
}

// Run rebuilds every bucket of o.Buckets and marks the state rebuilt. An
// interrupted Run resumes from its cursors when run again.
func Run(ctx context.Context, o Options) (Stats, error) {
	var total Stats // this run's
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.PartSize == 0 {
		o.PartSize = s3io.MinPartSize
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if len(o.Peers) == 0 {
		return total, errors.New("rebuild: no peers to rebuild from")
	}
	var run Running
	ok, err := o.State.GetMeta(RunningMeta, &run)
	if err != nil {
		return total, err
	}
	if ok && run.Site != o.Site {
		return total, fmt.Errorf("rebuild: the state holds an unfinished rebuild of site %q, not %q", run.Site, o.Site)
	}
	if !ok {
		run = Running{Site: o.Site, Started: time.Now().UnixMilli()}
		if err := o.State.PutMeta(RunningMeta, &run); err != nil {
			return total, err
		}
	} else {
		o.Log.Info("resuming an interrupted rebuild", "started", time.UnixMilli(run.Started).UTC().Format(time.RFC3339))
	}
	var sofar Stats // every bucket so far, earlier runs included (progress)
	for _, b := range o.Buckets {
		st, done, err := o.bucket(ctx, b, &sofar)
		total.add(&st)
		sofar.add(&done)
		if err != nil {
			return total, err
		}
	}
	if err := o.State.MarkRebuilt(o.Site, time.Now().UnixMilli()); err != nil {
		return total, err
	}
	for _, b := range o.Buckets {
		if err := o.State.PutMeta(cursorMeta(b), nil); err != nil {
			return total, err
		}
	}
	return total, o.State.PutMeta(RunningMeta, nil)
}

// bucket rebuilds one bucket from its cursor on. It returns this run's
// Stats (what it did, an interrupted batch included) and the bucket's
// with the earlier runs' (for progress; sofar holds the earlier buckets').
func (o *Options) bucket(ctx context.Context, bucket string, sofar *Stats) (st, done Stats, err error) {
	var cur cursor
	if _, err := o.State.GetMeta(cursorMeta(bucket), &cur); err != nil {
		return st, done, err
	}
	if cur.Done {
		o.Log.Info("bucket already rebuilt by an earlier run", "bucket", bucket)
		return st, cur.Stats, nil
	}
	held := 0
	for _, p := range o.Peers {
		ok, err := p.S3.BucketExists(ctx, bucket)
		if err != nil {
			return st, done, fmt.Errorf("peer %s: bucket %s: %w", p.Name, bucket, err)
		}
		if ok {
			held++
		} else {
			o.Log.Warn("a peer lacks the bucket", "peer", p.Name, "bucket", bucket)
		}
	}
	if held == 0 {
		return st, done, fmt.Errorf("bucket %s is missing at every peer: nothing to rebuild it from (is it replicated?)", bucket)
	}
	exists, err := o.Local.BucketExists(ctx, bucket)
	if err != nil {
		return st, done, fmt.Errorf("site %s: bucket %s: %w", o.Site, bucket, err)
	}
	if !exists {
		if err := o.Local.EnsureBucket(ctx, bucket); err != nil {
			return st, done, fmt.Errorf("site %s: create bucket %s: %w", o.Site, bucket, err)
		}
		st.Buckets = 1
		o.Log.Info("bucket created", "bucket", bucket)
	}
	if cur.After != "" {
		o.Log.Info("resuming bucket", "bucket", bucket, "after", cur.After, "keys_done", cur.Stats.Keys)
	}
	done = cur.Stats // this bucket, earlier runs included
	done.add(&st)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	srcs := make([]*source, 0, len(o.Peers)+1)
	for _, p := range o.Peers {
		srcs = append(srcs, startPeer(ctx, &wg, p, bucket, cur.After, o.PageSize))
	}
	srcs = append(srcs, startLocal(ctx, &wg, o.Site, o.Local, bucket, cur.After, o.PageSize))
	m := &merger{srcs: srcs}

	batchSize := max(o.Workers*8, 64)
	batch := make([]key, 0, batchSize)
	for {
		k, ok, err := m.next()
		if err != nil {
			return st, done, err
		}
		if ok {
			batch = append(batch, k)
		}
		if len(batch) == batchSize || (!ok && len(batch) > 0) {
			var bs Stats
			err := o.runBatch(ctx, bucket, batch, &bs)
			st.add(&bs) // done, when interrupted too: this run did it
			if err != nil {
				return st, done, err
			}
			done.add(&bs)
			after := batch[len(batch)-1].name
			if err := o.State.PutMeta(cursorMeta(bucket), &cursor{After: after, Stats: done}); err != nil {
				return st, done, err
			}
			if o.Progress != nil {
				t := *sofar
				t.add(&done)
				o.Progress(Progress{Bucket: bucket, After: after, InBucket: done, Total: t})
			}
			batch = batch[:0]
		}
		if !ok {
			break
		}
	}
	return st, done, o.State.PutMeta(cursorMeta(bucket), &cursor{After: cur.After, Done: true, Stats: done})
}

// runBatch settles every key of batch with o.Workers workers and returns
// the first error (the batch is then not recorded as done).
func (o *Options) runBatch(ctx context.Context, bucket string, batch []key, st *Stats) error {
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
		shared Stats
	)
	for range min(o.Workers, len(batch)) {
		wg.Go(func() {
			var local Stats
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batch) || ctx.Err() != nil {
					break
				}
				if err := o.settle(ctx, bucket, batch[i], &local); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					break
				}
			}
			mu.Lock()
			shared.add(&local)
			mu.Unlock()
		})
	}
	wg.Wait()
	*st = shared
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// settle restores one key.
func (o *Options) settle(ctx context.Context, bucket string, k key, st *Stats) error {
	st.Keys++
	// Only what the versions' origins signed counts: the target is the
	// greatest signed version, the clock the merge of the signed clocks.
	signed, cut, unverified := o.verify(bucket, k)
	for {
		// The greatest candidate; one whose proof is cut is proved with
		// its bytes first, or left out.
		best := -1
		for i, it := range k.peers {
			if it != nil && (signed[i] != nil || cut[i] != nil) && (best < 0 || k.peers[best].Held.Less(it.Held)) {
				best = i
			}
		}
		if best < 0 || signed[best] != nil {
			break
		}
		r := o.prove(ctx, bucket, &k, best, cut[best], st)
		if r == nil && o.TrustUnsigned {
			r = &schema.Record{Schema: schema.RecordSchema, Bucket: bucket, Key: k.name, Version: k.peers[best].Held}
		}
		for j, it := range k.peers {
			if it != nil && it.Held.ID == k.peers[best].Held.ID {
				cut[j] = nil
				if r != nil && r.Version.CheckSame(it.Held) == nil {
					signed[j] = r
				}
			}
		}
		if r == nil {
			unverified = true
			o.Log.Warn("no holder's bytes complete the signed record of a peer's version: not adopted",
				"bucket", bucket, "key", k.name, "version", k.peers[best].Held.ID)
		}
	}
	if unverified {
		st.Unverified++
	}
	var target *Item
	var proof *schema.Record
	merged := schema.Clock{}
	for i, it := range k.peers {
		if it == nil || signed[i] == nil {
			continue
		}
		merged = merged.Merge(signed[i].Version.Clock)
		if o.TrustUnsigned {
			merged = merged.Merge(it.Clock)
		}
		if target == nil || target.Held.Less(it.Held) {
			target, proof = it, signed[i]
		}
	}
	if target == nil && k.local == nil { // only unverified versions: nothing adopted
		return nil
	}
	if target == nil { // only the site has it: the agent's scanner publishes it
		st.LocalOnly++
		o.Log.Info("object no peer knows kept: the agent will publish it", "bucket", bucket, "key", k.name)
		return nil
	}
	v := target.Held
	k.proof = proof
	var local s3io.ObjectInfo
	if k.local != nil {
		var err error
		if local, err = o.Local.Head(ctx, bucket, k.name); err != nil {
			return fmt.Errorf("site %s: %w", o.Site, err)
		}
	}
	e := state.Entry{Held: v, Clock: merged, Updated: time.Now().UnixMilli(), Proof: schema.ProofOf(proof)}
	if local.Exists && v.Deleted && o.Archive[bucket] {
		e.Kept, e.LocalETag, e.Attrs = true, local.ETag, attrsOf(local).Digest()
		st.Adopted++
		return o.put(bucket, k.name, e)
	}
	if local.Exists {
		rv, marked := schema.Replica(bucket, k.name, local.Meta, local.Size)
		switch {
		// A marker is trusted only with the bytes it names (any S3 user
		// can copy one): size and, where both are plain MD5s, the ETag.
		case marked && rv.ID == v.ID && !v.Deleted && v.Matches(local.Size, local.ETag),
			!marked && v.Origin == o.Site && !v.Deleted && local.ETag == v.ETag:
			e.LocalETag, e.Attrs = local.ETag, attrsOf(local).Digest()
			if !marked && target.Attrs != "" {
				// The site's own version, known by its ETag: the entry takes
				// the version's attributes, so that a metadata-only
				// overwrite the lost state never published is seen by the
				// agent and published, not taken for the version.
				e.Attrs = target.Attrs
			}
			st.Adopted++
			return o.put(bucket, k.name, e)
		case marked && covered(rv.Clock, merged) && rv.Matches(local.Size, local.ETag):
			// A stale replica: the peers' version follows it (counted as
			// replaced once it did, not when the key was left for the
			// agent or the mirrors).
			if v.Deleted {
				if err := o.Local.Delete(ctx, bucket, k.name, local.ETag); err != nil {
					return o.raced(bucket, k.name, err, st)
				}
				st.Replaced++
				st.Tombstones++
				return o.put(bucket, k.name, e)
			}
			copied := st.Copied
			err := o.copy(ctx, bucket, k, v, e, local.ETag, st)
			if st.Copied > copied {
				st.Replaced++
			}
			return err
		default:
			return o.differing(ctx, bucket, k, v, e, local, st)
		}
	}
	if v.Deleted {
		st.Tombstones++
		return o.put(bucket, k.name, e)
	}
	return o.copy(ctx, bucket, k, v, e, "", st)
}

// differing settles an object at the site that is neither the peers'
// version nor a stale replica of it: a local write whose history the lost
// state knew. Its history is unknown, so the two are ordered by time, as
// lww orders concurrent versions, and both converge everywhere: a newer
// object stays, and the entry (the peers' version, their merged clock)
// makes the agent publish it as a write over that version; an older one
// is kept under KeptPrefix (a new key, which the agent publishes) and the
// peers' version replaces it. Either way the log names both.
func (o *Options) differing(ctx context.Context, bucket string, k key, v schema.Version, e state.Entry, local s3io.ObjectInfo, st *Stats) error {
	// Counted once: where a conditional write is refused, raced counts it.
	if local.LastModified.UnixMilli() > v.TS {
		st.Differing++
		o.Log.Warn("object newer than the peers' version kept: the agent publishes it over that version",
			"bucket", bucket, "key", k.name, "etag", local.ETag, "replaces", v.ID)
		return o.put(bucket, k.name, e)
	}
	kept := schema.LoserKey(KeptPrefix, bucket, k.name, schema.Version{Origin: o.Site, TS: local.LastModified.UnixMilli()})
	if err := o.Local.CopyIfMatch(ctx, bucket, k.name, kept, local.ETag); err != nil {
		return o.raced(bucket, k.name, fmt.Errorf("site %s: keep %s as %s: %w", o.Site, k.name, kept, err), st)
	}
	o.Log.Warn("object older than the peers' version kept under a new key and replaced by that version",
		"bucket", bucket, "key", k.name, "etag", local.ETag, "kept_as", kept, "by", v.ID)
	if v.Deleted {
		if err := o.Local.Delete(ctx, bucket, k.name, local.ETag); err != nil {
			return o.raced(bucket, k.name, err, st)
		}
		st.Differing++
		st.Tombstones++
		return o.put(bucket, k.name, e)
	}
	counted := st.Differing
	err := o.copy(ctx, bucket, k, v, e, local.ETag, st)
	if st.Differing == counted {
		st.Differing++
	}
	return err
}

// KeptPrefix is where rebuild keeps a site's object that is older than the
// peers' version of its key (see differing).
const KeptPrefix = ".s3mesh-rebuild-kept/"

// covered reports whether a version with clock c is covered by merged (it
// happened before, or is, what the peers know).
func covered(c, merged schema.Clock) bool {
	ord := c.Compare(merged)
	return ord == schema.Before || ord == schema.Equal
}

// copy fetches version v from a peer that holds it and writes it here with
// its replica marker (over the object with ETag ifMatch, or where none is).
func (o *Options) copy(ctx context.Context, bucket string, k key, v schema.Version, e state.Entry, ifMatch string, st *Stats) error {
	var parts *schema.Parts
	if k.proof != nil {
		parts = k.proof.Parts
	}
	for i, it := range k.peers {
		if it == nil || it.Held.ID != v.ID || it.ETag == "" {
			continue
		}
		p := o.Peers[i]
		if k.refused[p.Name] {
			continue // its bytes were not the version's (prove)
		}
		if _, checkable := schema.NewETagHash(v.ETag, v.Size, parts); !checkable && p.Name != v.Origin {
			continue // bytes that cannot be checked are taken from the origin only
		}
		raw, info, err := p.S3.Get(ctx, bucket, k.name, it.ETag)
		if c := s3io.Classify(err); err != nil && (c == s3io.Precondition || c == s3io.NotFound) {
			continue // changed there since its state was read: try another holder
		}
		if err != nil {
			return fmt.Errorf("peer %s: %w", p.Name, err)
		}
		var mismatch error
		body, _ := consumer.CheckedBody(raw, v, parts, p.Name, func(err error) { mismatch = err })
		at := attrsOf(info)
		meta := map[string]string{}
		for mk, mv := range at.Meta {
			meta[mk] = mv
		}
		for mk, mv := range schema.ReplicaMeta(bucket, k.name, v) {
			meta[mk] = mv
		}
		etag, err := o.Local.Put(ctx, s3io.PutInput{Bucket: bucket, Key: k.name, Body: body, Size: info.Size, PartSize: o.PartSize,
			IfMatch: ifMatch, IfNoneMatch: ifMatch == "",
			Attrs: s3io.Attrs{ContentType: at.ContentType, CacheControl: at.CacheControl, ContentEncoding: at.ContentEncoding,
				ContentDisposition: at.ContentDisposition, Meta: meta}})
		body.Close()
		if mismatch != nil {
			// Not this version: nothing was stored, that peer is not used
			// for it; another holder may serve it.
			st.Refused++
			o.Log.Warn("a peer served other bytes than the version's origin signed: refused, not used for this version",
				"bucket", bucket, "key", k.name, "version", v.ID, "peer", p.Name, "err", mismatch)
			continue
		}
		if err != nil {
			return o.raced(bucket, k.name, fmt.Errorf("site %s: %w", o.Site, err), st)
		}
		st.Copied++
		st.Bytes += info.Size
		e.LocalETag, e.Attrs = etag, at.Digest()
		if err := o.put(bucket, k.name, e); err != nil {
			return err
		}
		if o.AfterCopy != nil {
			o.AfterCopy(bucket, k.name)
		}
		return nil
	}
	st.Changed++
	o.Log.Info("version changed at every peer holding it while rebuilding: the newer one arrives through the mirrors",
		"bucket", bucket, "key", k.name, "version", v.ID)
	return nil
}

// raced turns a refused conditional write at the site into a skipped key:
// something wrote the key at the site meanwhile (the agent should be
// stopped), so it is left for the agent to decide.
func (o *Options) raced(bucket, key string, err error, st *Stats) error {
	if c := s3io.Classify(err); c == s3io.Precondition || c == s3io.NotFound {
		st.Differing++
		o.Log.Warn("key written at this site during the rebuild: left for the agent", "bucket", bucket, "key", key)
		return nil
	}
	return err
}

func (o *Options) put(bucket, key string, e state.Entry) error {
	unlock := o.State.Lock(bucket, key)
	defer unlock()
	return o.State.Put(bucket, key, e)
}

// attrsOf is the replicated attributes of an object (as the producer
// computes them).
func attrsOf(info s3io.ObjectInfo) schema.Attrs {
	return schema.Attrs{ContentType: info.ContentType, CacheControl: info.CacheControl,
		ContentEncoding: info.ContentEncoding, ContentDisposition: info.ContentDisposition,
		Meta: schema.UserMeta(info.Meta)}
}

// Describe is a one-line summary of st.
func (s Stats) Describe() string {
	parts := []string{fmt.Sprintf("%d keys", s.Keys), fmt.Sprintf("%d copied (%s)", s.Copied, bytesString(s.Bytes)),
		fmt.Sprintf("%d adopted", s.Adopted), fmt.Sprintf("%d tombstones", s.Tombstones)}
	for _, c := range []struct {
		n    int64
		what string
	}{{s.Replaced, "stale replaced"}, {s.LocalOnly, "local only (kept, to publish)"},
		{s.Differing, "differing (ordered by time: see the log)"}, {s.Changed, "changed meanwhile (via mirrors)"},
		{s.Unverified, "with versions no signed record backs (not adopted: see the log)"}, {s.Refused, "copies refused (other bytes than signed: see the log)"},
		{int64(s.Buckets), "bucket(s) created"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
