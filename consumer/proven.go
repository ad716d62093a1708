package consumer

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// ProvenMeta names the state meta record that holds Proven's counters.
const ProvenMeta = "proven"

// DefaultProofWait is how long a record whose clock claims a third site's
// counter that site has not yet proved here waits for the proof before it
// goes to the DLQ as bad-record (Runner.ProofWait).
const DefaultProofWait = time.Hour

// provenStore keeps Proven's counters (state.Store).
type provenStore interface {
	GetMeta(name string, v any) (bool, error)
	PutMetaLazy(name string, v any) error
}

// Proven is, per peer W, the highest counter of W's own entry in any record
// signed by W (verified, origin W) that this site has checked: what W has
// proved it made (schema.Limits.Proven). A record's entry for W from
// another peer above it is forged, or ahead of W's records on their way
// here; the consumer holds it back until W's records prove it.
//
// The counters only rise. Each rise is written to the state store lazily
// in the order it happens; the record that raised it is acknowledged only
// after the write is durable (Applier.AfterSync), so a crash loses no
// proof whose record does not come again.
type Proven struct {
	mu    sync.Mutex
	m     map[string]uint64
	store provenStore // nil: kept in memory only
}

// LoadProven reads the counters kept in store (nil: none kept) for peers;
// found says whether the store held any. A peer the store holds nothing of
// starts at 0, which holds back every claim on it until its records arrive
// or Raise seeds it.
func LoadProven(store provenStore, peers []string) (p *Proven, found bool, err error) {
	p = &Proven{m: map[string]uint64{}, store: store}
	if store != nil {
		if found, err = store.GetMeta(ProvenMeta, &p.m); err != nil {
			return nil, false, fmt.Errorf("proven counters: %w", err)
		}
		if p.m == nil {
			p.m = map[string]uint64{}
		}
	}
	for _, s := range peers {
		p.m[s] += 0 // checked from now on
	}
	for s := range p.m {
		if !slices.Contains(peers, s) {
			delete(p.m, s) // a former peer: its entries are not checked
		}
	}
	return p, found, nil
}

// Get is site's counter.
func (p *Proven) Get(site string) uint64 {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[site]
}

// Raise notes that site signed a record whose own entry is n.
// A nil Proven notes nothing.
func (p *Proven) Raise(site string, n uint64) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur, ok := p.m[site]
	if !ok || n <= cur {
		return nil // not a peer, or nothing new
	}
	p.m[site] = n
	if p.store == nil {
		return nil
	}
	if err := p.store.PutMetaLazy(ProvenMeta, p.m); err != nil {
		p.m[site] = cur
		return fmt.Errorf("proven counter of %s: %w", site, err)
	}
	return nil
}

// Counters is a copy of the counters, for schema.Limits.Proven.
func (p *Proven) Counters() map[string]uint64 {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.m)
}
