package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// MirrorStallAfter is how long a mirror may go without hearing from its
// origin before it counts as stalled. The durable mirror consumers send a
// heartbeat every second, so a healthy mirror's Active stays well below it.
const MirrorStallAfter = 5 * time.Second

// MirrorStatus is the state of the local mirror of one peer's CHANGES.
//
// Lag alone lies: while the link to the peer is down the mirror does not
// know what it misses and reports Lag 0. Active (time since the mirror
// last heard from the origin, records or heartbeats) is the signal that
// the link or the mirror is wedged.
type MirrorStatus struct {
	Peer string
	// Lag is how many records the origin had that the mirror did not, as
	// of the last contact.
	Lag uint64
	// Active is the time since the mirror last heard from the origin; -1
	// if it never has since this server started.
	Active time.Duration
	// LastSeq is the last origin sequence held locally.
	LastSeq uint64
	// Msgs is the number of records held locally.
	Msgs uint64
	// Skipped is how many sequences between the mirror's first and last
	// record it does not hold. A CHANGES stream only ever loses records
	// from its front (age), so a mirror with a hole skipped records: the
	// origin expired them before the mirror could fetch them (a peer cut
	// off longer than DefaultChangesMaxAge), someone deleted them, or the
	// server wrote them off (nats-server 2.15.2 did after a leaf link
	// died mid-delivery). Those changes never reached this site.
	Skipped uint64
	// Error is the mirror's last setup error, or why the status could not
	// be read ("" = none).
	Error string
	// Stalled is set when the mirror has not heard from its origin for
	// MirrorStallAfter (or never has) or reports an error: the peer is
	// down, the link is cut, or the mirror is stuck.
	Stalled bool
}

func (m MirrorStatus) String() string {
	s := fmt.Sprintf("%s: last_seq=%d lag=%d active=%v", m.Peer, m.LastSeq, m.Lag, m.Active.Round(time.Millisecond))
	if m.Stalled {
		s += " STALLED"
	}
	if m.Skipped > 0 {
		s += fmt.Sprintf(" SKIPPED=%d", m.Skipped)
	}
	if m.Error != "" {
		s += " error=" + m.Error
	}
	return s
}

// Mirrors reports the local mirrors of every peer of t, in the order of
// t.Peers. A mirror that cannot be read gets an Error and Stalled rather
// than failing the call; the error return is for a failing context or an
// invalid topology.
func Mirrors(ctx context.Context, js jetstream.JetStream, t Topology) ([]MirrorStatus, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	out := make([]MirrorStatus, 0, len(t.Peers))
	for _, p := range t.Peers {
		st := MirrorStatus{Peer: p, Active: -1}
		s, err := js.Stream(ctx, ChangesStream(p))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				err = fmt.Errorf("mirror stream %s does not exist (run EnsureStreams)", ChangesStream(p))
			}
			st.Error, st.Stalled = err.Error(), true
			out = append(out, st)
			continue
		}
		info := s.CachedInfo()
		st.LastSeq, st.Msgs = info.State.LastSeq, info.State.Msgs
		st.Skipped = uint64(max(info.State.NumDeleted, 0))
		if m := info.Mirror; m != nil {
			st.Lag, st.Active = m.Lag, m.Active
			if m.Error != nil {
				st.Error = m.Error.Error()
			}
		} else {
			st.Error = "stream " + ChangesStream(p) + " is not a mirror"
		}
		st.Stalled = st.Error != "" || st.Active < 0 || st.Active > MirrorStallAfter
		out = append(out, st)
	}
	return out, nil
}

// LeafLink is one live leaf-node connection of a server.
type LeafLink struct {
	// Peer is the server (= site) name at the other end.
	Peer string
	// Dialled is true when this server dialled the link (a LeafRemote).
	Dialled bool
	RTT     string
}

// LeafLinks lists the live leaf-node connections, sorted by peer.
func (s *Server) LeafLinks() []LeafLink {
	lz, err := s.ns.Leafz(&server.LeafzOptions{})
	if err != nil || lz == nil {
		return nil
	}
	links := make([]LeafLink, 0, len(lz.Leafs))
	for _, l := range lz.Leafs {
		links = append(links, LeafLink{Peer: l.Name, Dialled: l.IsSpoke, RTT: l.RTT})
	}
	sort.Slice(links, func(i, j int) bool { return links[i].Peer < links[j].Peer })
	return links
}
