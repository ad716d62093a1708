// Package producer is where change records are made.
//
// Every local-change hint (a storage event from the NATS subject or the
// webhook, or a difference the scanner found) ends in Producer.Reconcile,
// which confirms it by HEAD, recognises replica writes (no echo), bumps the
// key's vector clock in the state store and publishes a msgpack change record
// to CHANGES_<site>. Events are hints, never facts: versitygw's events can
// name the wrong key, so a hint that changes nothing asks the scanner for a
// prompt rescan of the bucket.
package producer
