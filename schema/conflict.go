package schema

import (
	"strings"
	"time"
)

// VersionInfo describes one version in the conflict log.
type VersionInfo struct {
	ID         string            `json:"id"`
	Origin     string            `json:"origin"`
	ETag       string            `json:"etag"` // without quotes
	Size       int64             `json:"size"`
	OriginTime time.Time         `json:"origin_time"`
	Clock      map[string]uint64 `json:"clock"`
	Deleted    bool              `json:"deleted,omitempty"`
}

// InfoOf describes v for the conflict log.
func InfoOf(v Version) VersionInfo {
	return VersionInfo{ID: v.ID, Origin: v.Origin, ETag: strings.Trim(v.ETag, `"`), Size: v.Size,
		OriginTime: time.UnixMilli(v.TS).UTC(), Clock: v.Clock.Clone(), Deleted: v.Deleted}
}

// ConflictEntry is one entry of a site's conflict log (CONFLICTS_<site>),
// one JSON object per message.
type ConflictEntry struct {
	Site        string      `json:"site"` // the site that decided
	Bucket      string      `json:"bucket"`
	Key         string      `json:"key"`
	Policy      string      `json:"policy"`
	Outcome     string      `json:"outcome"` // apply-winner, keep-local or park
	Winner      VersionInfo `json:"winner"`  // for park: the version left in place
	Loser       VersionInfo `json:"loser"`   // for park: the parked version
	LoserKeptAs string      `json:"loser_kept_as,omitempty"`
	DecidedAt   time.Time   `json:"decided_at"`
}

// LoserKey is the key under which a losing version's bytes are kept:
// <prefix><key>/<origin>-<origin time>. The name is the same at every site,
// and only the loser's origin writes it (it holds the bytes), so kept copies
// never conflict in turn. Keys that would exceed 1024 bytes use the key's
// tag instead of the key.
func LoserKey(prefix, bucket, key string, v Version) string {
	suffix := "/" + v.Origin + "-" + time.UnixMilli(v.TS).UTC().Format("20060102T150405.000Z")
	k := prefix + key + suffix
	if len(k) > 1024 {
		k = prefix + KeyTag(bucket, key) + suffix
	}
	return k
}
