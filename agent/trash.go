package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/producer"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// The site's trash (schema.TrashPrefix in each bucket): what a peer's record
// deleted or replaced here, kept for trash.retention. The consumer makes the
// copies (lifecycle.Trash), the scanner purges and counts them
// (producer.Trash), and the admin verbs below list and restore them.

// trashIgnore keeps the trash out of replication: its keys are never
// published, never counted by the delete guards, never expected at peers.
var trashIgnore = regexp.MustCompile("^" + regexp.QuoteMeta(schema.TrashPrefix))

// trashMode is a bucket's configured trash mode for the lifecycle core.
func trashMode(mode string) lifecycle.TrashMode {
	switch mode {
	case config.TrashAll:
		return lifecycle.TrashAll
	case config.TrashNone:
		return lifecycle.TrashNone
	}
	return lifecycle.TrashDeletes
}

// newTrash is the scanner's keeper of the site's trash.
func (a *Agent) newTrash() *producer.Trash {
	modes := map[string]string{}
	for _, b := range a.cfg.Buckets {
		modes[b.Name] = b.Trash
	}
	return &producer.Trash{S3: a.local, Retention: a.cfg.Trash.Retention, Modes: modes, M: a.M, Log: a.log.With("part", "trash")}
}

// keyLimit is the longest key the store was seen to hold (0: not probed).
func (a *Agent) keyLimit() int {
	if c := a.caps.Load(); c != nil {
		return c.KeyBytes
	}
	return 0
}

func (a *Agent) trashHandlers() map[string]func(context.Context, AdminRequest) (string, error) {
	return map[string]func(context.Context, AdminRequest) (string, error){
		"trash.list":    a.trashList,
		"trash.restore": a.trashRestore,
	}
}

// TrashEntry is one object of a site's trash, or, in a bucket the store
// versions, one noncurrent version.
type TrashEntry struct {
	Bucket string    `json:"bucket"`
	Key    string    `json:"key"` // the original key ("" if its metadata could not hold it: see Tag)
	Tag    string    `json:"tag,omitempty"`
	When   time.Time `json:"when"` // when it was deleted or replaced here
	Size   int64     `json:"size"`
	// VersionID is the version that was removed: s3mesh's id of it, or in
	// a versioned bucket the store's version id (what --version takes).
	VersionID  string `json:"version_id"`
	Peer       string `json:"peer,omitempty"`        // whose record removed it
	ReplacedBy string `json:"replaced_by,omitempty"` // that record's version id
	Op         string `json:"op,omitempty"`          // delete or overwrite
	TrashKey   string `json:"trash_key,omitempty"`   // where it is kept
	Versioned  bool   `json:"versioned,omitempty"`   // a noncurrent version the store keeps
	Error      string `json:"error,omitempty"`       // its marks could not be read
}

// TrashPage is the answer of trash.list: one page of one bucket's trash, or
// (no bucket asked) the replicated buckets.
type TrashPage struct {
	Buckets   []string     `json:"buckets,omitempty"`
	Bucket    string       `json:"bucket,omitempty"`
	Versioned bool         `json:"versioned,omitempty"`
	Entries   []TrashEntry `json:"entries"`
	Next      string       `json:"next,omitempty"` // After of the next page ("" at the end)
	// Truncated: a versioned bucket's noncurrent versions go on past this
	// page, which holds the first trashPageMax (they are not paged).
	Truncated bool `json:"truncated,omitempty"`
}

// trashPageMax bounds one page of trash.list (each entry costs a HEAD).
const trashPageMax = 200

func (a *Agent) replicatedBucket(b string) error {
	if b == "" {
		return errors.New("a bucket is required")
	}
	if _, ok := a.Applier.Buckets[b]; !ok {
		return fmt.Errorf("bucket %q is not replicated at site %s", b, a.cfg.Site)
	}
	return nil
}

// trashList answers one page of a bucket's trash (req.Bucket, After,
// Limit), or the list of buckets when no bucket is asked for.
func (a *Agent) trashList(ctx context.Context, req AdminRequest) (string, error) {
	var page TrashPage
	if req.Bucket == "" {
		page.Buckets = a.cfg.BucketNames()
		b, err := json.Marshal(page)
		return string(b), err
	}
	if err := a.replicatedBucket(req.Bucket); err != nil {
		return "", err
	}
	limit := req.Limit
	if limit <= 0 || limit > trashPageMax {
		limit = trashPageMax
	}
	page.Bucket = req.Bucket
	versioned, err := a.local.Versioned(ctx, req.Bucket)
	if err != nil {
		return "", err
	}
	page.Versioned = versioned
	if versioned {
		err = a.listVersions(ctx, req.Bucket, &page, limit)
	} else {
		err = a.listTrash(ctx, req.Bucket, schema.TrashPrefix, req.After, limit, &page, nil)
	}
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(page)
	return string(b), err
}

// errPageFull stops a listing once a page is full.
var errPageFull = errors.New("page full")

// listTrash adds the trash objects under prefix after after to page, at
// most limit (page.Next then names where to go on); keep filters them.
func (a *Agent) listTrash(ctx context.Context, bucket, prefix, after string, limit int, page *TrashPage, keep func(TrashEntry) bool) error {
	err := a.local.ListPrefix(ctx, bucket, prefix, func(le s3io.ListEntry) error {
		if le.Key <= after || (prefix != schema.TrashPrefix && strings.Contains(le.Key[len(prefix):], "/")) {
			return nil // before the page, or (a key's own directory) a longer key's trash
		}
		if len(page.Entries) >= limit {
			return errPageFull
		}
		e := TrashEntry{Bucket: bucket, TrashKey: le.Key, When: le.LastModified.UTC(), Size: le.Size}
		info, err := a.local.Head(ctx, bucket, le.Key)
		switch {
		case err != nil:
			e.Error = err.Error()
		case !info.Exists:
			return nil // purged meanwhile
		default:
			ti, err := schema.ParseTrashMeta(info.Meta)
			switch {
			case errors.Is(err, schema.ErrNotTrash):
				// Kept without its marks (a store that refused them):
				// the name says the key, the time and the version.
				key, tag, at, vid, ok := schema.ParseTrashKey(le.Key)
				if !ok {
					e.Error = err.Error()
					break
				}
				e.Key, e.Tag, e.VersionID, e.When = key, tag, vid, time.UnixMilli(at).UTC()
				if tag == "" {
					e.Tag = schema.KeyTag(bucket, key)
				}
			case err != nil:
				e.Error = err.Error()
				fallthrough
			default:
				e.Key, e.Tag, e.VersionID, e.Peer, e.ReplacedBy, e.Op = ti.Key, ti.Tag, ti.VID, ti.Peer, ti.By, ti.Op
				if ti.At > 0 {
					e.When = time.UnixMilli(ti.At).UTC()
				}
			}
		}
		if keep == nil || keep(e) {
			page.Entries = append(page.Entries, e)
			page.Next = le.Key
		}
		return nil
	})
	if errors.Is(err, errPageFull) {
		return nil
	}
	page.Next = ""
	return err
}

// listVersions adds the noncurrent versions of a versioned bucket's keys
// (s3mesh's own prefixes left out) to page, at most limit.
func (a *Agent) listVersions(ctx context.Context, bucket string, page *TrashPage, limit int) error {
	err := a.local.ListVersions(ctx, bucket, "", func(v s3io.ObjectVersion) error {
		if v.Latest || v.DeleteMarker || strings.HasPrefix(v.Key, schema.TrashPrefix) || strings.HasPrefix(v.Key, s3io.ProbePrefix) {
			return nil
		}
		if len(page.Entries) >= limit {
			page.Truncated = true
			return errPageFull
		}
		when, _ := time.Parse(time.RFC3339, v.LastModified)
		page.Entries = append(page.Entries, TrashEntry{Bucket: bucket, Key: v.Key, When: when, Size: v.Size, VersionID: v.VersionID, Versioned: true})
		return nil
	})
	if errors.Is(err, errPageFull) {
		return nil
	}
	return err
}

// trashRestore writes a trashed version of req.Key back to the key as a
// new local write of this site (so it replicates everywhere): the newest
// trashed version, or req.Version (s3mesh's version id as trash list shows
// it, or in a versioned bucket the store's version id). An object now at
// the key is not replaced unless req.Force.
func (a *Agent) trashRestore(ctx context.Context, req AdminRequest) (string, error) {
	if err := a.replicatedBucket(req.Bucket); err != nil {
		return "", err
	}
	if req.Key == "" {
		return "", errors.New("a key is required")
	}
	versioned, err := a.local.Versioned(ctx, req.Bucket)
	if err != nil {
		return "", err
	}
	var src, srcVersion, srcETag, from string
	var attrs s3io.Attrs
	if versioned && req.Version != "" {
		info, err := a.local.HeadVersion(ctx, req.Bucket, req.Key, req.Version)
		if err != nil {
			return "", err
		}
		if !info.Exists {
			return "", fmt.Errorf("%s/%s has no version %q in the store", req.Bucket, req.Key, req.Version)
		}
		src, srcVersion, srcETag, attrs = req.Key, req.Version, info.ETag, info.Attrs
		from = "version " + req.Version
	} else {
		e, err := a.newestTrashed(ctx, req.Bucket, req.Key, req.Version)
		if err != nil && versioned {
			return "", fmt.Errorf("%w; the store versions this bucket: give --version with one of the noncurrent versions `trash list` shows", err)
		}
		if err != nil {
			return "", err
		}
		info, err := a.local.Head(ctx, req.Bucket, e.TrashKey)
		if err != nil {
			return "", err
		}
		if !info.Exists {
			return "", fmt.Errorf("%s was purged meanwhile", e.TrashKey)
		}
		src, srcETag, attrs = e.TrashKey, info.ETag, info.Attrs
		from = fmt.Sprintf("%s (version %s, %s by %s's record at %s)", e.TrashKey, e.VersionID, e.Op, e.Peer, e.When.Format(time.RFC3339))
	}
	cur, err := a.local.Head(ctx, req.Bucket, req.Key)
	if err != nil {
		return "", err
	}
	if cur.Exists && !req.Force {
		return "", fmt.Errorf("%s/%s holds an object now (ETag %s, %d bytes): a restore would replace it; add --force to replace it", req.Bucket, req.Key, cur.ETag, cur.Size)
	}
	// The copy carries the user's metadata only: no replica marker, no
	// trash marks. It is a local write, published like any other.
	attrs.Meta = schema.UserMeta(attrs.Meta)
	if err := a.local.CopyReplace(ctx, req.Bucket, src, srcVersion, req.Key, srcETag, attrs); err != nil {
		return "", fmt.Errorf("restore %s/%s from %s: %w", req.Bucket, req.Key, from, err)
	}
	a.log.Warn("restored by an operator: published as a local write", "bucket", req.Bucket, "key", req.Key, "from", from)
	// Published now rather than when the store's event arrives (events are
	// hints, and lossy).
	if _, err := a.Producer.Reconcile(ctx, req.Bucket, req.Key); err != nil {
		return "", fmt.Errorf("restored %s/%s from %s, but publishing it failed (the scanner will): %w", req.Bucket, req.Key, from, err)
	}
	return fmt.Sprintf("restored %s/%s from %s; published as a new local write of site %s", req.Bucket, req.Key, from, a.cfg.Site), nil
}

// newestTrashed is the newest trash entry of bucket/key (of version id
// version, if not "").
func (a *Agent) newestTrashed(ctx context.Context, bucket, key, version string) (TrashEntry, error) {
	tag := schema.KeyTag(bucket, key)
	var page TrashPage
	for _, dir := range schema.TrashDirs(bucket, key) {
		err := a.listTrash(ctx, bucket, dir, "", 1<<30, &page, func(e TrashEntry) bool {
			return e.Error == "" && e.Tag == tag && (e.Key == "" || e.Key == key) && (version == "" || e.VersionID == version)
		})
		if err != nil {
			return TrashEntry{}, err
		}
	}
	if len(page.Entries) == 0 {
		if version != "" {
			return TrashEntry{}, fmt.Errorf("no trashed version %s of %s/%s at site %s", version, bucket, key, a.cfg.Site)
		}
		return TrashEntry{}, fmt.Errorf("nothing of %s/%s in the trash of site %s", bucket, key, a.cfg.Site)
	}
	sort.SliceStable(page.Entries, func(i, j int) bool { return page.Entries[i].When.After(page.Entries[j].When) })
	return page.Entries[0], nil
}
