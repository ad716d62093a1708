package consumer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// OpenBody returns a reader of rec's bytes: the inline body, or a stream from
// the origin (If-Match its ETag) or from a peer holding that exact version
// (recognised by its replica marker). The reader fails at EOF if the bytes
// are not the version's: their size, and the ETag the origin signed,
// recomputed from the bytes (schema.ETagHash: the MD5 of a single-part
// ETag, or of the parts' MD5s with the record's part layout for a
// multipart one), unless storeChecksMD5 (a single-part ETag, and the store
// the body goes to refuses other bytes itself, see s3io.PutInput.ContentMD5).
//
// Bytes that cannot be checked against the signed ETag (a multipart ETag
// without a part layout: a schema 2 record, or an origin store that could
// not tell its layout) are fetched from the origin only, whose bytes are
// the version by definition: a third site could serve any bytes of the
// right size. A peer whose bytes failed the check for a version is not
// asked for that version again (distrust), so a retry goes to the others.
func (a *Applier) OpenBody(ctx context.Context, rec *schema.Record, storeChecksMD5 bool) (io.ReadCloser, error) {
	v := rec.Version
	if rec.Inline {
		return io.NopCloser(bytes.NewReader(rec.Body)), nil
	}
	_, checkable := schema.NewETagHash(v.ETag, v.Size, rec.Parts)
	var errs, passed []string
	try := func(site string, src Source) io.ReadCloser {
		ifMatch := v.ETag
		if site != v.Origin {
			if !checkable {
				return nil
			}
			if a.distrusted(v.ID, site) {
				passed = append(passed, site)
				return nil
			}
			info, err := src.Head(ctx, rec.Bucket, rec.Key)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", site, err))
				return nil
			}
			pv, ok := schema.Replica(rec.Bucket, rec.Key, info.Meta, info.Size)
			if !info.Exists || !ok || pv.ID != v.ID {
				return nil
			}
			ifMatch = info.ETag
		}
		rc, _, err := src.Get(ctx, rec.Bucket, rec.Key, ifMatch)
		if err != nil {
			if c := s3io.Classify(err); c != s3io.Precondition && c != s3io.NotFound {
				errs = append(errs, fmt.Sprintf("%s: %v", site, err))
			}
			return nil
		}
		vr := &verifier{rc: rc, want: v.Size, site: site, origin: v.Origin}
		if h, ok := schema.NewETagHash(v.ETag, v.Size, rec.Parts); ok && !(storeChecksMD5 && schema.PlainMD5(v.ETag)) {
			vr.hash = h
		}
		if site != v.Origin {
			vr.mismatch = func(err error) {
				a.distrust(v.ID, site)
				a.Log.Warn("a peer served other bytes than the origin signed: not asked for this version again",
					"bucket", rec.Bucket, "key", rec.Key, "version", v.ID, "peer", site, "origin", v.Origin, "err", err)
			}
		}
		return vr
	}
	if src, ok := a.Sources[v.Origin]; ok {
		if rc := try(v.Origin, src); rc != nil {
			return rc, nil
		}
	}
	peers := make([]string, 0, len(a.Sources))
	for p := range a.Sources {
		if p != v.Origin {
			peers = append(peers, p)
		}
	}
	sort.Strings(peers)
	for _, p := range peers {
		if rc := try(p, a.Sources[p]); rc != nil {
			return rc, nil
		}
	}
	if len(passed) > 0 {
		errs = append(errs, fmt.Sprintf("not asked: %s (served other bytes for this version)", strings.Join(passed, ", ")))
	}
	if !checkable && len(errs) > 0 {
		why := "not an MD5 or multipart ETag"
		if _, _, mp := schema.MultipartETag(v.ETag); mp {
			why = "a multipart ETag and the record has no part layout"
		}
		errs = append(errs, fmt.Sprintf("no other site asked: the bytes cannot be checked against ETag %q (%s), so only origin %s serves it", v.ETag, why, v.Origin))
	}
	if len(errs) > 0 {
		// Some site could not be asked: a transient failure, retried.
		return nil, fmt.Errorf("fetch %s/%s version %s: %s", rec.Bucket, rec.Key, v.ID, strings.Join(errs, "; "))
	}
	return nil, fmt.Errorf("fetch %s/%s version %s: %w", rec.Bucket, rec.Key, v.ID, ErrBodyUnavailable)
}

// CheckedBody returns rc checked as it streams, as OpenBody checks a body
// from a third site: it fails at EOF unless the bytes have version v's size
// and the ETag its origin signed, recomputed with the signed part layout
// parts (schema.ETagHash). ok is false when that ETag cannot be recomputed
// (a multipart ETag without a layout): the reader then checks the size
// only, and only the origin's bytes are the version's.
// A mismatch is passed to mismatch (if set) before the reader returns it.
func CheckedBody(rc io.ReadCloser, v schema.Version, parts *schema.Parts, site string, mismatch func(error)) (body io.ReadCloser, ok bool) {
	vr := &verifier{rc: rc, want: v.Size, site: site, origin: v.Origin, mismatch: mismatch}
	vr.hash, ok = schema.NewETagHash(v.ETag, v.Size, parts)
	if !ok {
		vr.hash = nil
	}
	return vr, ok
}

// verifier checks, as the body streams, that it has the expected size and
// (hash set) the origin's ETag; it reports a mismatch instead of EOF, so
// the PUT it feeds fails rather than storing wrong bytes.
type verifier struct {
	rc           io.ReadCloser
	want, n      int64
	hash         *schema.ETagHash
	site, origin string
	mismatch     func(error) // called once on a mismatch (nil: nothing to note)
	err          error       // the mismatch, returned by every later Read
}

// bodyMD5 returns the MD5 (lower-case hex) a single-part ETag says the
// body has; false for a multipart ETag ("…-N") or anything else.
func bodyMD5(etag string) (string, bool) {
	if !schema.PlainMD5(etag) {
		return "", false
	}
	return strings.ToLower(etag), true
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		// A reader that got the mismatch alongside the last bytes may read
		// again: it gets the mismatch again, never a clean EOF.
		return 0, v.err
	}
	n, err := v.rc.Read(p)
	v.n += int64(n)
	if v.hash != nil {
		v.hash.Write(p[:n])
	}
	if v.n > v.want {
		return n, v.fail(fmt.Errorf("body from %s longer than the record's %d bytes", v.site, v.want))
	}
	if err == io.EOF {
		if v.n != v.want {
			return n, v.fail(fmt.Errorf("body from %s of %d bytes, record says %d", v.site, v.n, v.want))
		}
		if v.hash != nil && !v.hash.Matches() {
			return n, v.fail(fmt.Errorf("body from %s differs from the %s origin %s signed", v.site, v.hash, v.origin))
		}
	}
	return n, err
}

func (v *verifier) fail(err error) error {
	if v.mismatch != nil {
		v.mismatch(err)
	}
	v.err = err
	return err
}

func (v *verifier) Close() error { return v.rc.Close() }

// maxDistrusted bounds the versions whose untrustworthy peers are
// remembered (the set starts over when full: at worst a peer is asked
// again, and refused again).
const maxDistrusted = 4096

// distrust notes that site served other bytes than version id's.
func (a *Applier) distrust(id, site string) {
	a.badMu.Lock()
	defer a.badMu.Unlock()
	if a.bad == nil || len(a.bad) >= maxDistrusted {
		a.bad = make(map[string]map[string]bool)
	}
	if a.bad[id] == nil {
		a.bad[id] = make(map[string]bool)
	}
	a.bad[id][site] = true
}

func (a *Applier) distrusted(id, site string) bool {
	a.badMu.Lock()
	defer a.badMu.Unlock()
	return a.bad[id][site]
}

// badSources is the applier's memory of peers that served wrong bytes.
type badSources struct {
	badMu sync.Mutex
	bad   map[string]map[string]bool // version id → peers
}
