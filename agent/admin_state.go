package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// Limits of one state.page answer: a NATS message is at most 1 MiB by
// default, and keys are up to 1 KiB.
const (
	DefaultStatePageLimit = 500
	MaxStatePageLimit     = 2000
	maxStatePageBytes     = 512 << 10
)

// StateItem is what a site's per-key state says about one key: the version
// it holds, the merged clock of everything it has seen, and the ETag of its
// own copy. `s3mesh rebuild` restores a lost site from these.
type StateItem struct {
	Key   string         `json:"key"`
	Held  schema.Version `json:"held"`
	Clock schema.Clock   `json:"clock"`
	ETag  string         `json:"etag,omitempty"`  // the local object's ETag ("" if absent)
	Attrs string         `json:"attrs,omitempty"` // digest of the held version's attributes
	// Busy: a publish or an apply of the key is under way at the site; Held
	// is the version before it.
	Busy bool `json:"busy,omitempty"`
	// Proof is the held version's record as its origin signed it (bodyless,
	// or small; lifecycle.Entry.Proof): a rebuild adopts the version only
	// when it verifies with the origin's key.
	Proof []byte `json:"proof,omitempty"`
}

// StatePage is the answer of state.page (JSON in AdminReply.Outcome): the
// entries of Bucket after After in key byte order. More is true when the
// page was cut short; ask again after the last item's key.
type StatePage struct {
	Bucket string      `json:"bucket"`
	Items  []StateItem `json:"items"`
	More   bool        `json:"more"`
}

// statePage answers state.page: a page of the per-key state of one
// replicated bucket, read from pebble without locks (a consistent enough
// view: an entry that changes meanwhile is read either before or after).
func (a *Agent) statePage(ctx context.Context, req AdminRequest) (string, error) {
	if !slices.Contains(a.cfg.BucketNames(), req.Bucket) {
		return "", fmt.Errorf("state.page: bucket %q is not replicated here", req.Bucket)
	}
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultStatePageLimit
	}
	limit = min(limit, MaxStatePageLimit)
	page := StatePage{Bucket: req.Bucket, Items: []StateItem{}}
	size := 0
	errFull := errors.New("page full")
	err := a.Store.Scan(req.Bucket, req.After, func(key string, e state.Entry) error {
		if len(page.Items) == limit || size > maxStatePageBytes {
			page.More = true
			return errFull
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Held.ID == "" { // an intent for a key never held: nothing to restore
			return nil
		}
		it := StateItem{Key: key, Held: e.Held, Clock: e.Clock, ETag: e.LocalETag, Attrs: e.Attrs, Busy: e.Outstanding(), Proof: e.Proof}
		page.Items = append(page.Items, it)
		size += 6*len(key) + 64*len(e.Clock) + 256 + len(e.Proof)*4/3 // JSON escapes at most 6x; a proof is base64
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return "", err
	}
	b, err := json.Marshal(page)
	if err != nil {
		return "", fmt.Errorf("state.page: %w", err)
	}
	return string(b), nil
}
