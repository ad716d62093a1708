package consumer

import (
	"sync"
	"time"
)

// failure is what is known of one message's failed attempts.
type failure struct {
	first, last time.Time
	attempts    uint64
}

// failures keeps the failure record of each message that failed and is not
// yet acknowledged, keyed by stream and stream sequence, so the retry budget
// runs from the first failure however often the message is delivered. An
// entry goes when its message is acknowledged (applied or dead-lettered).
//
// The table is bounded: when full, the entry that failed longest ago goes
// (its message most likely left the stream). It lives in memory only, so
// after an agent restart (or an eviction) a message's budget and attempt
// count start again: that errs towards retrying longer, never towards
// dead-lettering or losing a record early.
type failures struct {
	mu  sync.Mutex
	max int
	m   map[string]failure
}

func newFailures(max int) *failures {
	return &failures{max: max, m: map[string]failure{}}
}

// record notes a failed attempt of message id at now and returns the
// message's failure record. A message without an id (no JetStream
// metadata, which JetStream always sends) is not kept.
func (f *failures) record(id string, now time.Time) failure {
	if id == "" {
		return failure{first: now, last: now, attempts: 1}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[id]
	if !ok {
		if len(f.m) >= f.max {
			f.evictOldest()
		}
		e.first = now
	}
	e.last = now
	e.attempts++
	f.m[id] = e
	return e
}

// forget drops message id's record (the message was acknowledged).
func (f *failures) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, id)
}

func (f *failures) evictOldest() {
	var oldest string
	var at time.Time
	for id, e := range f.m {
		if oldest == "" || e.last.Before(at) {
			oldest, at = id, e.last
		}
	}
	delete(f.m, oldest)
}
