package schema

import (
	"strconv"
)

// ReplicaMeta returns the metadata s3mesh adds to an object it writes as a
// replica of v (merged with the user's metadata by the caller).
func ReplicaMeta(bucket, key string, v Version) map[string]string {
	return map[string]string{
		MetaVID:    v.ID,
		MetaKey:    KeyTag(bucket, key),
		MetaClock:  v.Clock.String(),
		MetaTS:     strconv.FormatInt(v.TS, 10),
		MetaOrigin: v.Origin,
		MetaETag:   v.ETag,
		MetaRank:   strconv.FormatUint(v.Rank, 10),
	}
}

// Replica tells whether an object with metadata meta, found at bucket/key,
// is a replica write made by s3mesh for that key, and if so which version.
// An object that carries a replica marker of another key (a user copied a
// replica) is not a replica: it is a new local write.
func Replica(bucket, key string, meta map[string]string, size int64) (Version, bool) {
	id := meta[MetaVID]
	tag := KeyTag(bucket, key)
	if id == "" || meta[MetaKey] != tag {
		return Version{}, false
	}
	origin, idTag, n, err := ParseVersionID(id)
	if err != nil || origin != meta[MetaOrigin] || idTag != tag {
		return Version{}, false
	}
	clock, err := ParseClock(meta[MetaClock])
	if err != nil || clock[origin] != n {
		return Version{}, false
	}
	ts, err := strconv.ParseInt(meta[MetaTS], 10, 64)
	if err != nil {
		return Version{}, false
	}
	rank, err := strconv.ParseUint(meta[MetaRank], 10, 64)
	if err != nil {
		return Version{}, false
	}
	return Version{ID: id, Origin: origin, Clock: clock, TS: ts, Rank: rank, Size: size, ETag: meta[MetaETag]}, true
}
