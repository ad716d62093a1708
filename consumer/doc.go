// Package consumer is where change records are applied.
//
// Runner reads every peer's CHANGES stream (a local mirror, fed over the
// leaf-node link) with a durable consumer and hands each record to a worker
// chosen by its key, so records of one key apply in order and different keys
// apply in parallel. Each record goes through a handler chain, one concern
// per file: decode and check its origin (handler.go), apply, retry with
// backoff within a budget of elapsed time, or, for an early record, once
// this site's clock reaches it (retry.go, failures.go),
// dead-letter with a reason (poison.go), acknowledge (ack.go).
//
// Applier is the executor of the per-key state machine (package lifecycle)
// for incoming records: the machine decides (skip, apply, conflict, park)
// and returns the effects; the applier persists the entry, fetches the body
// (inline, or streamed from a site that holds that version, fetch.go),
// carries out the conditional PUT or DELETE so a racing local write is never
// overwritten silently (exec.go), and feeds the outcome back. A record is
// acknowledged only once the local store and the state reflect it (I5).
// Records that cannot be applied go to DLQ_<site> with their reason.
package consumer
