package schema

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TrashPrefix is where a site keeps what a peer's record deleted or
// replaced, in the same bucket. Keys under it belong to the site that made
// them: they are never replicated, never counted by the delete guards and
// never expected at other sites.
const TrashPrefix = ".s3mesh-trash/"

// TrashHashedPrefix holds the trash of keys whose own name cannot stand in
// a trash key (too long for the store, or a path the store would rewrite):
// <TrashHashedPrefix><KeyTag>/<time>-<version id>, the original key in the
// object's metadata.
const TrashHashedPrefix = TrashPrefix + ".hashed/"

// IsTrashKey reports whether key is a trash object's key.
func IsTrashKey(key string) bool { return strings.HasPrefix(key, TrashPrefix) }

// trashTimeFormat names the time a version was trashed: sorts in time order.
const trashTimeFormat = "20060102T150405.000Z"

// maxSegment is the longest path segment some stores hold (a file name on
// a POSIX file system: versitygw's posix backend).
const maxSegment = 255

// TrashKey is the key under which the version replaced (its id) of
// bucket/key is kept when trashed at unix ms at:
// <TrashPrefix><key>/<time>-<replaced>, so every trashed version of a key
// has its own name and they list in time order. A key that would make the
// name longer than maxLen bytes (the store's key limit; <= 0: S3's 1024),
// or that is not a clean path (an empty, "." or ".." segment, or a segment
// over 255 bytes, which file-system stores rewrite or refuse), is named by
// its tag instead: <TrashHashedPrefix><KeyTag>/<time>-<replaced>.
func TrashKey(bucket, key string, at int64, replaced string, maxLen int) string {
	if maxLen <= 0 || maxLen > 1024 {
		maxLen = 1024
	}
	leaf := "/" + time.UnixMilli(at).UTC().Format(trashTimeFormat) + "-" + replaced
	if k := TrashPrefix + key + leaf; len(k) <= maxLen && cleanPath(key) {
		return k
	}
	return TrashHashedPrefix + KeyTag(bucket, key) + leaf
}

// TrashDirs are the prefixes under which the trash of bucket/key can be:
// the one named after the key, and the one named after its tag.
func TrashDirs(bucket, key string) []string {
	return []string{TrashPrefix + key + "/", TrashHashedPrefix + KeyTag(bucket, key) + "/"}
}

// cleanPath reports whether key, used as a path, is stored as written by
// a store that keeps objects as files.
func cleanPath(key string) bool {
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || len(seg) > maxSegment {
			return false
		}
	}
	return true
}

// Metadata keys of a trash object (besides the user metadata of the
// version it keeps).
const (
	MetaTrashKey   = "s3mesh-trash-key"   // the original key, URL-escaped (left out when too long)
	MetaTrashTag   = "s3mesh-trash-tag"   // KeyTag of bucket/key: always there
	MetaTrashVID   = "s3mesh-trash-vid"   // id of the version kept
	MetaTrashClock = "s3mesh-trash-clock" // its clock
	MetaTrashBy    = "s3mesh-trash-by"    // id of the record that deleted or replaced it
	MetaTrashPeer  = "s3mesh-trash-peer"  // that record's origin
	MetaTrashAt    = "s3mesh-trash-at"    // when it was trashed, unix ms
	MetaTrashOp    = "s3mesh-trash-op"    // "delete" or "overwrite"
)

// Trash operations (MetaTrashOp).
const (
	TrashOpDelete    = "delete"
	TrashOpOverwrite = "overwrite"
)

// TrashInfo is what a trash object's metadata says about it.
type TrashInfo struct {
	Key   string `json:"key"` // "" when the metadata could not hold it
	Tag   string `json:"tag"`
	VID   string `json:"version_id"`
	Clock Clock  `json:"clock,omitempty"`
	By    string `json:"replaced_by"`
	Peer  string `json:"peer"`
	At    int64  `json:"at"` // unix ms
	Op    string `json:"op"`
}

// MaxTrashKeyMeta bounds the escaped original key kept in MetaTrashKey:
// S3 allows 2 KiB of user metadata in all. A longer one is left out; the
// tag and the trash key's name still find the object.
const MaxTrashKeyMeta = 1024

// Meta is the metadata that marks a trash object.
func (ti TrashInfo) Meta() map[string]string {
	m := map[string]string{
		MetaTrashTag: ti.Tag, MetaTrashVID: ti.VID, MetaTrashBy: ti.By, MetaTrashPeer: ti.Peer,
		MetaTrashAt: strconv.FormatInt(ti.At, 10), MetaTrashOp: ti.Op,
	}
	if len(ti.Clock) > 0 {
		m[MetaTrashClock] = ti.Clock.String()
	}
	if k := strings.ReplaceAll(url.PathEscape(ti.Key), "%2F", "/"); ti.Key != "" && len(k) <= MaxTrashKeyMeta {
		m[MetaTrashKey] = k
	}
	return m
}

// ErrNotTrash: an object under the trash prefix without trash metadata (a
// user's object, or one a store kept without its metadata).
var ErrNotTrash = errors.New("not a trash object")

// ParseTrashMeta reads a trash object's metadata (keys lower-case, without
// x-amz-meta-). A bad value is an error naming it; the object stays
// listable by its name.
func ParseTrashMeta(meta map[string]string) (TrashInfo, error) {
	ti := TrashInfo{Tag: meta[MetaTrashTag], VID: meta[MetaTrashVID], By: meta[MetaTrashBy],
		Peer: meta[MetaTrashPeer], Op: meta[MetaTrashOp]}
	if ti.Tag == "" || ti.VID == "" {
		return ti, ErrNotTrash
	}
	if k, ok := meta[MetaTrashKey]; ok {
		key, err := url.PathUnescape(k)
		if err != nil {
			return ti, fmt.Errorf("%s: %w", MetaTrashKey, err)
		}
		ti.Key = key
	}
	if s := meta[MetaTrashAt]; s != "" {
		at, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return ti, fmt.Errorf("%s: %w", MetaTrashAt, err)
		}
		ti.At = at
	}
	if s := meta[MetaTrashClock]; s != "" {
		c, err := ParseClock(s)
		if err != nil {
			return ti, fmt.Errorf("%s: %w", MetaTrashClock, err)
		}
		ti.Clock = c
	}
	return ti, nil
}

// TrashExpired reports whether a trash object last modified at unix ms
// modified is past retention at now: the scanner purges it. A retention
// <= 0 keeps everything.
func TrashExpired(modified, now int64, retention time.Duration) bool {
	return retention > 0 && now-modified > retention.Milliseconds()
}

// ParseTrashKey reads what a trash key's name says (see TrashKey): the
// original key (or, for a hashed name, only its tag), when it was trashed
// and the version id. ok is false for a name TrashKey does not make. The
// metadata (ParseTrashMeta) says more; the name serves when a store kept
// the copy without it.
func ParseTrashKey(name string) (key, tag string, at int64, vid string, ok bool) {
	rest, found := strings.CutPrefix(name, TrashPrefix)
	i := strings.LastIndexByte(rest, '/')
	if !found || i <= 0 {
		return "", "", 0, "", false
	}
	dir, leaf := rest[:i], rest[i+1:]
	ts, vid, found := strings.Cut(leaf, "-")
	t, err := time.Parse(trashTimeFormat, ts)
	if !found || err != nil || vid == "" {
		return "", "", 0, "", false
	}
	if h, hashed := strings.CutPrefix(name, TrashHashedPrefix); hashed && !strings.Contains(h[:len(h)-len(leaf)-1], "/") {
		return "", dir[len(".hashed/"):], t.UnixMilli(), vid, true
	}
	return dir, "", t.UnixMilli(), vid, true
}
