package consumer

// Replicated reports whether bucket is replicated at this site.
func (a *Applier) Replicated(bucket string) bool {
	_, ok := a.Buckets[bucket]
	return ok
}
