package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// ErrStateLost means the per-key state is missing while the site's own
// records or its store show it was in use: starting would publish clocks
// from zero (see startIncarnation).
var ErrStateLost = errors.New("per-key state lost")

// startIncarnation makes sure this run never publishes a clock the site's
// peers may already dominate. Every start is a new incarnation, numbered
// above the last one the state recorded, above the one of the last record
// in the site's own CHANGES stream, and at least the wall clock in seconds;
// the returned floor (lifecycle.IncarnationFloor) lifts every counter a
// write makes in this run above every counter made before, whatever the
// state remembers. It is persisted before anything is published.
//
// A state with no site record and no entry, at a site whose own stream
// holds records, was lost: the agent refuses to start rather than
// republish every object as a new write; `s3mesh rebuild` restores it.
func (a *Agent) startIncarnation(ctx context.Context) (uint64, error) {
	site := a.cfg.Site
	meta, ok, err := a.Store.SiteMeta()
	if err != nil {
		return 0, err
	}
	if ok && meta.Site != "" && meta.Site != site {
		return 0, fmt.Errorf("state_dir %s belongs to site %q, not %q", a.cfg.StateDir, meta.Site, site)
	}
	if partial, err := a.Store.HasMeta(state.RebuildRunningMeta); err != nil || partial {
		if err == nil {
			err = fmt.Errorf("%w: a rebuild of this site into state_dir %s did not finish: run `s3mesh rebuild --site %s` again (it resumes), then start the agent",
				ErrStateLost, a.cfg.StateDir, site)
		}
		return 0, err
	}
	records, lastInc, err := a.ownRecords(ctx)
	if err != nil {
		return 0, err
	}
	if !ok {
		if err := a.checkNotLost(records); err != nil {
			return 0, err
		}
	}
	inc := max(meta.Incarnation+1, lastInc+1, uint64(time.Now().Unix()))
	meta.Site, meta.Incarnation = site, inc
	if err := a.Store.PutSiteMeta(meta); err != nil {
		return 0, err
	}
	a.log.Info("incarnation started", "incarnation", inc, "own_records", records)
	return lifecycle.IncarnationFloor(inc), nil
}

// ownRecords returns how many records the site's own CHANGES stream (or,
// if it is empty, its peers' mirrors of it) holds, and the incarnation of
// the last one. A stream whose last message is not a record of this site
// counts as holding none.
func (a *Agent) ownRecords(ctx context.Context) (uint64, uint64, error) {
	site := a.cfg.Site
	var info *jetstream.StreamInfo
	var last *jetstream.RawStreamMsg
	err := broker.Retry(ctx, func(n int, err error) {
		a.log.Warn("own change stream not readable yet, retrying", "attempt", n, "err", err)
	}, func(ctx context.Context) error {
		s, err := a.js.Stream(ctx, broker.ChangesStream(site))
		if err != nil {
			return err
		}
		if info, err = s.Info(ctx); err != nil || info.State.Msgs == 0 {
			return err
		}
		last, err = s.GetMsg(ctx, info.State.LastSeq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			last, err = nil, nil
		}
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", broker.ChangesStream(site), err)
	}
	var lastData []byte
	if last != nil {
		lastData = last.Data
	}
	// The site's own stream: only this site's agent publishes there, but a
	// message that does not verify as this site's record is no evidence.
	inc, err := a.incarnationOf(lastData, time.Now())
	records := info.State.Msgs
	if err != nil && a.cfg.Records.AcceptUnsigned && schema.Unsigned(lastData) {
		// Made by a build from before signed records (the upgrade
		// accept_unsigned is for): the stream shows this site published,
		// and only this site's agent publishes there, but the record is no
		// evidence of an incarnation; the clock gives the next one.
		a.log.Info("the last record of this site's own change stream is unsigned (an earlier build); its incarnation is not used")
		return records, 0, nil
	}
	if err != nil {
		if lastData != nil {
			a.log.Warn("the last message of this site's own change stream is not a record of this site; not used as evidence", "err", err)
		}
		records, inc = 0, 0
	}
	if records == 0 {
		// The site's own stream is empty: new, or its JetStream store was
		// lost too. Its peers' mirrors of it tell.
		return a.peerRecords(ctx)
	}
	return records, inc, nil
}

// ErrPeerEvidence is a peer's answer about this site's own records that
// the start-up check cannot use: its last record does not verify with this
// site's keys, or claims an incarnation that cannot have started.
var ErrPeerEvidence = errors.New("peer's evidence of this site's records is not usable")

// peerRecords asks every peer's agent what its mirror of this site's
// CHANGES stream holds of this site's records (broker.RecordsSubject) and
// reads the incarnation of the last one, which must verify with this
// site's own keys (signing.key, signing.former_public_keys) and have
// started by now: the incarnation lifts every counter this site makes from
// now on, so a value a peer made up would make it refuse its own writes.
// A peer that does not answer within a few seconds is left out (this is
// evidence, not a requirement); a peer whose answer does not verify stops
// the start, naming the peer.
func (a *Agent) peerRecords(ctx context.Context) (records, inc uint64, err error) {
	site := a.cfg.Site
	for _, p := range a.cfg.PeerNames() {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		r, err := AskPeerRecords(pctx, a.nc, site, p)
		cancel()
		if err != nil {
			a.log.Info("peer's mirror of this site's records not readable; left out of the start-up check", "peer", p, "err", err)
			continue
		}
		if r.Msgs == 0 || len(r.Last) == 0 {
			continue
		}
		if a.cfg.Records.AcceptUnsigned && schema.Unsigned(r.Last) {
			// An unsigned record "of this site" proves nothing: any peer can
			// make one. During an upgrade from unsigned records it is
			// expected, so it is left out rather than stopping the start.
			a.log.Warn("peer's mirror of this site's records ends with an unsigned record; its incarnation is not used", "peer", p)
			records = max(records, r.Msgs)
			continue
		}
		i, err := a.incarnationOf(r.Last, time.Now())
		if err != nil {
			return 0, 0, fmt.Errorf("%w: peer %s says its mirror of %s ends with %d: %w. "+
				"If this site rotated its signing key, list the old public key in signing.former_public_keys; "+
				"otherwise peer %s may be compromised: check it, and remove it from peers until then",
				ErrPeerEvidence, p, broker.ChangesStream(site), r.LastSeq, err, p)
		}
		records, inc = max(records, r.Msgs), max(inc, i)
	}
	return records, inc, nil
}

// incarnationOf is the incarnation of data, which must be a record of this
// site that verifies with its own keys and was made in an incarnation that
// has started by now (at most schema.IncarnationHeadroom ahead of the
// clock, as every site's records are bounded).
func (a *Agent) incarnationOf(data []byte, now time.Time) (uint64, error) {
	return OwnIncarnation(a.cfg, data, now)
}

// OwnIncarnation is the incarnation of data, a record of cfg's site that
// must verify with the site's own keys and have started by now; an error
// says why data is no evidence of this site's records.
func OwnIncarnation(cfg *config.Site, data []byte, now time.Time) (uint64, error) {
	if len(data) == 0 {
		return 0, errors.New("no record")
	}
	site := cfg.Site
	// Never an unsigned record, even with records.accept_unsigned on: anyone
	// can make one "of this site", and the incarnation it claims lifts every
	// counter this site makes from now on.
	keys := schema.Keyring{Keys: map[string][]ed25519.PublicKey{site: cfg.OwnKeys()}}
	rec, err := keys.Open(data, site)
	if err != nil {
		return 0, fmt.Errorf("its last record is not this site's (%w)", err)
	}
	if rec.Version.Origin != site {
		return 0, fmt.Errorf("its last record claims origin %q", rec.Version.Origin)
	}
	inc := lifecycle.IncarnationOf(rec.Version.Clock[site])
	if ceiling := uint64(now.Unix()) + schema.IncarnationHeadroom; inc > ceiling {
		return 0, fmt.Errorf("its last record claims incarnation %d, after this site's clock allows (%d)", inc, ceiling)
	}
	return inc, nil
}

// checkNotLost refuses a state that has no site record and no entry while
// the site's own stream, or its peers' mirrors of it, show it published
// before. (An empty state over a
// store that already holds objects is a new deployment: the scanner's
// initial sync publishes them, in a new incarnation.)
func (a *Agent) checkNotLost(records uint64) error {
	empty, err := a.Store.Empty()
	if err != nil || !empty || records == 0 {
		return err // entries without a site record: a state from before site records
	}
	return fmt.Errorf("%w: state_dir %s is empty but %s (here or at its peers) holds %d records this site published: "+
		"run `s3mesh rebuild --site %s` with this site's configuration while the agent is stopped "+
		"(it restores the state from the peers), then start the agent again",
		ErrStateLost, a.cfg.StateDir, broker.ChangesStream(a.cfg.Site), records, a.cfg.Site)
}

// selfMax is the highest counter this site can have made: every counter of
// this run is above the floor and, unless one key is written more than 2^24
// times in this run, below the next incarnation's floor; the headroom of
// 2^10 incarnations covers such keys and costs nothing (schema.MaxCounter
// is far above).
func (a *Agent) selfMax() uint64 {
	return a.floor + lifecycle.IncarnationFloor(1024)
}
