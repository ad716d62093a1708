package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
)

// Version identifies one version (or tombstone) of one key: what a change
// record carries and what a site holds. Fields are the same at every site.
type Version struct {
	ID      string `msgpack:"id"`     // unique: see VersionID
	Origin  string `msgpack:"origin"` // site where the local write happened
	Clock   Clock  `msgpack:"clock"`  // the clock of this write (origin entry bumped)
	TS      int64  `msgpack:"ts"`     // origin time, unix ms; > every predecessor's TS (hybrid)
	Rank    uint64 `msgpack:"rank"`   // policy rank; never lower than a predecessor's
	Deleted bool   `msgpack:"del"`    // tombstone
	Size    int64  `msgpack:"size"`
	ETag    string `msgpack:"etag"` // ETag at the origin, without quotes
}

// Less reports whether v sorts below w in the total order used to decide
// conflicts: Rank, then TS, then Origin, then ID. Two distinct versions are
// never equal.
func (v Version) Less(w Version) bool {
	if v.Rank != w.Rank {
		return v.Rank < w.Rank
	}
	if v.TS != w.TS {
		return v.TS < w.TS
	}
	if v.Origin != w.Origin {
		return v.Origin < w.Origin
	}
	return v.ID < w.ID
}

// NextTS is the origin time of a new local write: its wall-clock time, but
// always after the version it replaces, so that the conflict order agrees
// with causality even when clocks skew. It saturates at the largest time
// rather than wrap: whatever origin time a peer gave the held version, the
// next write gets one (a receiver's limits keep peers' times far below it;
// the clock, not the time, orders the write after the held version).
func NextTS(wallMillis int64, held *Version) int64 {
	if held != nil && wallMillis <= held.TS {
		if held.TS == math.MaxInt64 {
			return held.TS
		}
		return held.TS + 1
	}
	return wallMillis
}

// KeyTag is a short, stable digest of bucket and key, safe in subjects,
// metadata and record ids (object keys are arbitrary UTF-8 up to 1 KiB).
func KeyTag(bucket, key string) string {
	h := sha256.New()
	h.Write([]byte(bucket))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// VersionID is the id of the n-th local write of bucket/key at origin. It is
// deterministic, so a producer that crashes and publishes the same write
// again produces the same id (and JetStream drops the duplicate).
func VersionID(origin, bucket, key string, n uint64) string {
	return origin + "." + KeyTag(bucket, key) + "." + strconv.FormatUint(n, 10)
}

// ParseVersionID splits an id made by VersionID.
func ParseVersionID(id string) (origin, tag string, n uint64, err error) {
	parts := strings.Split(id, ".")
	if len(parts) != 3 || parts[0] == "" || len(parts[1]) != 24 {
		return "", "", 0, fmt.Errorf("version id %q: want origin.tag.n", id)
	}
	n, err = strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		return "", "", 0, fmt.Errorf("version id %q: %w", id, err)
	}
	return parts[0], parts[1], n, nil
}

// Partition maps bucket/key to one of n partitions (per-key order is kept
// within a partition).
func Partition(bucket, key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(bucket))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// Matches reports whether an object of size bytes with ETag etag can hold
// v's bytes: the size must be v's, and the ETag too where both are plain
// MD5s (a multipart ETag depends on the part size of whoever uploaded it).
// A replica marker on an object proves nothing by itself (any S3 user can
// copy it), so code that trusts a marker checks this as well.
func (v Version) Matches(size int64, etag string) bool {
	if size != v.Size {
		return false
	}
	return !PlainMD5(v.ETag) || !PlainMD5(etag) || strings.EqualFold(v.ETag, etag)
}

// PlainMD5 reports whether etag is a single-part ETag (32 hex digits: the
// MD5 of the bytes on S3 and the stores tested here).
func PlainMD5(etag string) bool {
	if len(etag) != 32 {
		return false
	}
	for _, c := range etag {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// CheckSame refuses w when it claims v's version id with other content: a
// version id names one write, so two different versions under one id are
// an origin equivocating (signing different records for one write, for
// different peers). The error is a *FieldError naming the first field that
// differs.
func (v Version) CheckSame(w Version) error {
	if v.ID != w.ID {
		return nil
	}
	for _, f := range []struct {
		name string
		same bool
	}{
		{"Version.Origin", v.Origin == w.Origin},
		{"Version.Clock", v.Clock.Compare(w.Clock) == Equal},
		{"Version.Deleted", v.Deleted == w.Deleted},
		{"Version.Size", v.Size == w.Size},
		{"Version.ETag", v.ETag == w.ETag},
		{"Version.TS", v.TS == w.TS},
		{"Version.Rank", v.Rank == w.Rank},
	} {
		if !f.same {
			return badField(f.name, "version %s is held here with other content: its origin signed two versions under one id (equivocation)", trunc(v.ID))
		}
	}
	return nil
}
