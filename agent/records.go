package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
)

// Topology is the broker layout of cfg's site: its streams and their
// limits, its mirrors of its peers' records and the names of the mirror
// consumers of each link.
func Topology(cfg *config.Site) broker.Topology {
	return broker.Topology{Site: cfg.Site, Peers: cfg.PeerNames(), Replicas: cfg.NATS.StreamReplicas, LinkSecrets: cfg.LinkSecrets(),
		Limits: streamLimits(cfg)}
}

// PeerRecords is the answer on broker.RecordsSubject(site, peer): what
// site's mirror holds of peer's own records. It has a fixed shape whatever
// the request says (the request body is not read).
type PeerRecords struct {
	Msgs     uint64 `json:"msgs"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// Last is the last record as stored (unverified: the asking site
	// verifies its own signature), empty if the mirror holds none.
	Last  []byte `json:"last,omitempty"`
	Error string `json:"error,omitempty"`
}

// serveRecords answers each peer's question about its records in this
// site's mirror of them. One subscription per peer, so one peer's
// questions wait only for each other; each answer costs one stream info
// (without deleted details) and one message get.
func (a *Agent) serveRecords(ctx context.Context) ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	for _, p := range a.cfg.PeerNames() {
		sub, err := a.nc.Subscribe(broker.RecordsSubject(a.cfg.Site, p), func(m *nats.Msg) {
			b, _ := json.Marshal(a.peerRecordsHere(ctx, p))
			_ = m.Respond(b)
		})
		if err != nil {
			return subs, fmt.Errorf("records of %s: %w", p, err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

func (a *Agent) peerRecordsHere(ctx context.Context, peer string) PeerRecords {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var r PeerRecords
	s, err := a.js.Stream(ctx, broker.ChangesStream(peer))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	st := s.CachedInfo().State
	r.Msgs, r.FirstSeq, r.LastSeq = st.Msgs, st.FirstSeq, st.LastSeq
	if st.Msgs == 0 {
		return r
	}
	m, err := s.GetMsg(ctx, st.LastSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		r.Error = err.Error()
	default:
		r.Last = m.Data
	}
	return r
}

// AskPeerRecords asks peer's agent, through nc, what its mirror holds of
// site's own records.
func AskPeerRecords(ctx context.Context, nc *nats.Conn, site, peer string) (PeerRecords, error) {
	var r PeerRecords
	m, err := nc.RequestWithContext(ctx, broker.RecordsSubject(peer, site), nil)
	if err != nil {
		return r, fmt.Errorf("peer %s: %w", peer, err)
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return r, fmt.Errorf("peer %s: records answer: %w", peer, err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("peer %s: %s", peer, r.Error)
	}
	return r, nil
}
