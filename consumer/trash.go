package consumer

import (
	"context"
	"fmt"
	"maps"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// TrashStore is a LocalStore that can keep trash copies: a server-side
// copy, conditional on the source's ETag, with new metadata.
type TrashStore interface {
	CopyReplace(ctx context.Context, bucket, srcKey, srcVersion, dstKey, srcETag string, a s3io.Attrs) error
}

// policy is bucket's policy with what the store says of its versioning.
func (a *Applier) policy(bucket string) BucketPolicy {
	pol := a.Buckets[bucket]
	if a.Versioned != nil {
		pol.Versioned = a.Versioned(bucket)
	}
	return pol
}

// maxMetaBytes is S3's limit on an object's user metadata (keys and values).
const maxMetaBytes = 2048

// trash keeps the local object in the site's trash before a peer's record
// deletes or replaces it (lifecycle.Trash): a copy of exactly the bytes
// the write removes (x-amz-copy-source-if-match), its attributes and user
// metadata, marked with where it came from. An object that is not the one
// the entry holds refuses the apply (a local write got there first).
func (a *Applier) trash(ctx context.Context, k lifecycle.Key, t lifecycle.Trash) error {
	ts, ok := a.S3.(TrashStore)
	if !ok {
		return fmt.Errorf("trash %s/%s: the local store cannot make trash copies", k.Bucket, k.Key)
	}
	info, err := a.S3.Head(ctx, k.Bucket, k.Key)
	if err != nil {
		return fmt.Errorf("trash %s/%s: %w", k.Bucket, k.Key, err)
	}
	if !info.Exists || info.ETag != t.IfMatch {
		return errRefused
	}
	if info.Size > s3io.MaxCopySize {
		a.Log.Warn("not trashed: the object is larger than one server-side copy can take; the peer's write replaces it",
			"bucket", k.Bucket, "key", k.Key, "size", info.Size, "version", t.Replaced.ID, "by", t.By.ID)
		return nil
	}
	limit := 0
	if a.KeyLimit != nil {
		limit = a.KeyLimit()
	}
	to := schema.TrashKey(k.Bucket, k.Key, t.At, t.Replaced.ID, limit)
	ti := schema.TrashInfo{Key: k.Key, Tag: schema.KeyTag(k.Bucket, k.Key), VID: t.Replaced.ID, Clock: t.Replaced.Clock,
		By: t.By.ID, Peer: t.By.Origin, At: t.At, Op: t.Op()}
	meta, dropped := trashMeta(info.Meta, ti)
	if len(dropped) > 0 {
		a.Log.Warn("trash copy: the object's metadata and the trash's do not fit S3's 2 KiB together; left out of the copy",
			"bucket", k.Bucket, "key", k.Key, "dropped", dropped)
	}
	at := info.Attrs
	at.Meta = meta
	err = refusal(ts.CopyReplace(ctx, k.Bucket, k.Key, "", to, t.IfMatch, at))
	if err != nil && err != errRefused && s3io.Classify(err) == s3io.Permanent {
		// A store that refuses new metadata on a copy: keep the bytes with
		// the object's own metadata (the trash key's name still says what
		// they are: schema.ParseTrashKey).
		a.Log.Warn("trash copy with its marks refused by the store; copying the object as it is", "bucket", k.Bucket, "key", k.Key, "as", to, "err", err)
		err = refusal(a.S3.CopyIfMatch(ctx, k.Bucket, k.Key, to, t.IfMatch))
	}
	if err != nil {
		if err == errRefused {
			return err
		}
		return fmt.Errorf("trash %s/%s as %s: %w", k.Bucket, k.Key, to, err)
	}
	a.Log.Info("kept in the trash", "bucket", k.Bucket, "key", k.Key, "op", t.Op(), "version", t.Replaced.ID, "by", t.By.ID, "as", to)
	if h := a.Hooks.AfterTrash; h != nil {
		h(k.Bucket, k.Key)
	}
	return nil
}

// trashMeta is the metadata of a trash copy: the object's user metadata
// (s3mesh's own markers removed: the copy is no replica of anything) and
// the trash marks. Within S3's limit the trash marks win: the original key
// goes first (the tag and the name still find it), then user metadata.
func trashMeta(obj map[string]string, ti schema.TrashInfo) (map[string]string, []string) {
	m := maps.Clone(schema.UserMeta(obj))
	if m == nil {
		m = map[string]string{}
	}
	tm := ti.Meta()
	maps.Copy(m, tm)
	var dropped []string
	size := func() int {
		n := 0
		for k, v := range m {
			n += len(k) + len(v)
		}
		return n
	}
	if size() > maxMetaBytes {
		if _, ok := m[schema.MetaTrashKey]; ok {
			delete(m, schema.MetaTrashKey)
			dropped = append(dropped, schema.MetaTrashKey)
		}
	}
	for k := range m {
		if size() <= maxMetaBytes {
			break
		}
		if _, own := tm[k]; !own {
			delete(m, k)
			dropped = append(dropped, k)
		}
	}
	return m, dropped
}
