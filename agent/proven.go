package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// loadProven reads what each peer's own records proved it made
// (consumer.Proven) from the state, and seeds a peer with nothing proved:
// from the last record of this site's mirror of the peer's stream, which
// must verify with the peer's keys, be of the peer's origin and keep the
// bounds every record keeps; and, when the state holds no proven counters
// at all (its first start with them, a fresh or rebuilt state), from the
// peer's own entry in the versions of it the state holds. A claim within
// a key's own clock needs no proof (consumer: validateOverKey), so a
// peer's honest claim over what this site has seen applies; a claim over
// what the third site made since waits for its records (which follow in
// the mirror).
func (a *Agent) loadProven(ctx context.Context) (*consumer.Proven, error) {
	peers := a.cfg.PeerNames()
	p, found, err := consumer.LoadProven(a.Store, peers)
	if err != nil {
		return nil, err
	}
	if !found {
		clocks, err := heldProven(a.Store, a.cfg.BucketNames())
		if err != nil {
			return nil, fmt.Errorf("seed proven counters: %w", err)
		}
		for _, peer := range peers {
			if err := p.Raise(peer, clocks[peer]); err != nil {
				return nil, err
			}
		}
	}
	keys := a.keyring()
	for _, peer := range peers {
		if p.Get(peer) > 0 {
			continue
		}
		r := a.peerRecordsHere(ctx, peer)
		if len(r.Last) == 0 {
			continue
		}
		n, err := provenBy(keys, peer, r.Last, time.Now(), a.cfg.Records.MaxFuture)
		if err != nil {
			a.log.Warn("the last record of this site's mirror of a peer's stream is no proof of that peer's counters; not used", "peer", peer, "seq", r.LastSeq, "err", err)
			continue
		}
		if err := p.Raise(peer, n); err != nil {
			return nil, err
		}
	}
	a.log.Info("proven counters of the peers", "proven", p.Counters(), "seeded", !found)
	return p, nil
}

// provenBy is the counter of peer's own entry in data, which must be a
// record of peer's origin that verifies with peer's keys and keeps the
// bounds a received record keeps (no counter from an incarnation that has
// not started by now).
func provenBy(keys schema.Keyring, peer string, data []byte, now time.Time, maxFuture time.Duration) (uint64, error) {
	rec, err := keys.Open(data, peer)
	if err != nil {
		return 0, err
	}
	if rec.Version.Origin != peer {
		return 0, fmt.Errorf("it claims origin %q", rec.Version.Origin)
	}
	if err := rec.ValidateFor(schema.NewLimits(nil, now, maxFuture)); err != nil {
		return 0, err
	}
	return rec.Version.Clock[peer], nil
}

// heldProven is, per site, the highest counter of its own entry in the
// versions of it the state holds in buckets: each came in a record that
// site signed. (The merged clocks are no proof: they hold what peers
// claimed.)
func heldProven(st *state.Store, buckets []string) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, b := range buckets {
		err := st.Scan(b, "", func(_ string, e state.Entry) error {
			if o := e.Held.Origin; o != "" {
				out[o] = max(out[o], e.Held.Clock[o])
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
