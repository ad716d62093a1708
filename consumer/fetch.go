package consumer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// OpenBody returns a reader of rec's bytes: the inline body, or a stream from
// the origin (If-Match its ETag) or from any peer holding that exact version
// (recognised by its replica marker). The reader fails at EOF if the bytes
// are not the version's: their size, and their MD5 where the origin ETag is
// one, unless storeChecksMD5 (the store the body goes to refuses other
// bytes itself, see s3io.PutInput.ContentMD5).
func (a *Applier) OpenBody(ctx context.Context, rec *schema.Record, storeChecksMD5 bool) (io.ReadCloser, error) {
	v := rec.Version
	if rec.Inline {
		return io.NopCloser(bytes.NewReader(rec.Body)), nil
	}
	var errs []string
	try := func(site string, src Source) io.ReadCloser {
		ifMatch := v.ETag
		if site != v.Origin {
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
		return newVerifier(rc, v.Size, v.ETag, !storeChecksMD5)
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
	if len(errs) > 0 {
		// Some site could not be asked: a transient failure, retried.
		return nil, fmt.Errorf("fetch %s/%s version %s: %s", rec.Bucket, rec.Key, v.ID, strings.Join(errs, "; "))
	}
	return nil, fmt.Errorf("fetch %s/%s version %s: %w", rec.Bucket, rec.Key, v.ID, ErrBodyUnavailable)
}

// verifier checks, as the body streams, that it has the expected size and
// (for single-part ETags) MD5; it reports a mismatch instead of EOF, so the
// PUT it feeds fails rather than storing wrong bytes.
type verifier struct {
	rc   io.ReadCloser
	want int64
	n    int64
	md5  hash.Hash
	etag string
}

func newVerifier(rc io.ReadCloser, size int64, etag string, checkMD5 bool) *verifier {
	v := &verifier{rc: rc, want: size}
	if sum, ok := bodyMD5(etag); ok && checkMD5 {
		v.md5, v.etag = md5.New(), sum
	}
	return v
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
	n, err := v.rc.Read(p)
	v.n += int64(n)
	if v.md5 != nil {
		v.md5.Write(p[:n])
	}
	if v.n > v.want {
		return n, fmt.Errorf("body longer than the record's %d bytes", v.want)
	}
	if err == io.EOF {
		if v.n != v.want {
			return n, fmt.Errorf("body of %d bytes, record says %d", v.n, v.want)
		}
		if v.md5 != nil && hex.EncodeToString(v.md5.Sum(nil)) != v.etag {
			return n, fmt.Errorf("body MD5 differs from ETag %s", v.etag)
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.rc.Close() }
