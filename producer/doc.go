// Package producer is where change records are made.
//
// Every local-change hint (a storage event from the NATS subject or the
// webhook, or a difference the scanner found) ends in Producer.Reconcile,
// which confirms it by HEAD and hands what it saw to the per-key lifecycle
// core (lifecycle.Machine.Step): the core recognises replica writes (no echo)
// and decides the key's next vector clock; the producer carries out its
// effects, persisting the entry in the state store and publishing the msgpack
// change record to CHANGES_<site>. Events are hints, never facts: versitygw's events can
// name the wrong key, so a hint that changes nothing asks the scanner for a
// prompt rescan of the bucket.
package producer
