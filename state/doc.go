// Package state is a site's per-key state: for every replicated key, the
// version the site holds, the merged vector clock, the object's local ETag,
// and the intents of an in-flight publish or apply.
//
// It lives in an embedded pebble store owned by the agent (NATS KV costs the
// broker ~0.5 GB of memory per million keys; pebble stays flat). There is one
// owner per key inside the process: callers take Lock(bucket, key) around a
// read-modify-write, which makes it a compare-and-set.
//
// The state is a materialised view of what the site holds: it can be rebuilt
// from the bucket listing, the replica metadata on objects and the peers'
// records.
package state
