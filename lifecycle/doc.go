// Package lifecycle is the per-key state machine of a site, in the style of
// etcd's raft: a pure function (Machine.Step) takes the key's current Entry
// and one Input — a local observation, an incoming change record, the
// outcome of an effect, a recovery after a restart — plus the time, and
// returns the next Entry and the Effects to carry out, in order.
//
// The producer and the consumer are executors: they persist the returned
// entry when Step says so, carry out the effects in the order given (publish
// a record, a conditional PUT or DELETE, copy a conflict loser, log a
// conflict, park a record), and feed each outcome back in as the next input.
// Nothing here does I/O, reads a clock or logs; Notes are what an executor
// may log.
//
// The crash-safety rule of the design (I5) is a property of Step's output:
// every effect that changes the outside world is preceded, in the same Step,
// by a persisted entry that records it as an intent (Entry.Pending for a
// publish, Entry.Applying for a replica write), so a crash between any two
// effects leaves an entry that Recover settles.
//
// The package imports only the standard library and schema.
package lifecycle
