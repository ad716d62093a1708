package consumer

import "github.com/s3mesh/s3mesh/schema"

// Replicated reports whether bucket is replicated at this site.
func (a *Applier) Replicated(bucket string) bool {
	_, ok := a.Buckets[bucket]
	return ok
}

// KeyClock is the merged clock this site holds for bucket/key (nil if it
// never saw the key). Read without the key's lock: clocks only grow (and a
// collected tombstone's entry goes), so an entry read here is at most what
// the key holds when the record applies.
func (a *Applier) KeyClock(bucket, key string) (schema.Clock, error) {
	e, _, err := a.Store.Get(bucket, key)
	return e.Clock, err
}
