// Package consumer is where change records are applied.
//
// Runner reads every peer's CHANGES stream (a local mirror, fed over the
// leaf-node link) with a durable consumer and hands each record to a worker
// chosen by its key, so records of one key apply in order and different keys
// apply in parallel. Applier compares the record's clock with the site's
// state (schema.Decide), fetches the body (inline, or streamed from a site
// that holds that version), writes it with a conditional PUT or DELETE so a
// racing local write is never overwritten silently, then updates the state;
// only then is the record acknowledged (I5). Records that cannot be applied
// go to DLQ_<site> with their reason.
package consumer
