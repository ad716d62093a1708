package agent

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"
)

// GaugeInterval is how often the agent refreshes the gauges it derives
// from its status (updateGauges).
const GaugeInterval = 5 * time.Second

// runGauges sets the status gauges at once and then every GaugeInterval
// until ctx ends.
func (a *Agent) runGauges(ctx context.Context) {
	a.M.BuildInfo.WithLabelValues(a.cfg.Site, version(), runtime.Version()).Set(1)
	t := time.NewTicker(GaugeInterval)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, GaugeInterval)
		st, err := a.Snapshot(sctx)
		cancel()
		if err == nil {
			a.setGauges(st)
		} else if ctx.Err() == nil {
			a.log.Debug("status for the gauges", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// setGauges publishes st (and the clock offset estimates) as gauges.
func (a *Agent) setGauges(st Status) {
	m := a.M
	for _, p := range st.Peers {
		m.PeerSilent.WithLabelValues(p.Peer).Set(p.SilentFor)
		m.PeerMirrorLag.WithLabelValues(p.Peer).Set(float64(p.Lag))
		m.PeerSkipped.WithLabelValues(p.Peer).Set(float64(p.SkippedRecords))
		m.PeerPending.WithLabelValues(p.Peer).Set(float64(p.PendingApply))
		if p.Watermark.IsZero() {
			m.PeerWatermark.DeleteLabelValues(p.Peer)
			m.PeerWatermarkAge.DeleteLabelValues(p.Peer)
		} else {
			m.PeerWatermark.WithLabelValues(p.Peer).Set(float64(p.Watermark.UnixMilli()) / 1000)
			m.PeerWatermarkAge.WithLabelValues(p.Peer).Set(p.WatermarkAgeSeconds)
		}
		caught := 0.0
		if p.CaughtUp {
			caught = 1
		}
		m.PeerCaughtUp.WithLabelValues(p.Peer).Set(caught)
		if off, ok := m.Clock.Estimate(p.Peer, st.Time); ok {
			m.PeerClockOffset.WithLabelValues(p.Peer).Set(off.Seconds())
		} else {
			m.PeerClockOffset.DeleteLabelValues(p.Peer)
		}
	}
	m.DeadLetters.Set(float64(st.DeadLetters))
	setStreamGauges(m, st.Streams)
	for _, b := range st.Buckets {
		if !b.LastScan.IsZero() {
			m.ScanLastSuccess.WithLabelValues(b.Bucket).Set(float64(b.LastScan.UnixMilli()) / 1000)
		}
	}
}

// version is the module version the binary was built from ("devel" for a
// build from a working tree), with the VCS revision when it is known.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}
