package agent

import (
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/producer"
)

// gaugeValues is every gauge series of m: name{label values…} → value.
func gaugeValues(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetType().String() != "GAUGE" {
			continue
		}
		for _, s := range f.GetMetric() {
			key := f.GetName()
			for _, l := range s.GetLabel() {
				key += "|" + l.GetValue()
			}
			out[key] = s.GetGauge().GetValue()
		}
	}
	return out
}

func TestSetGauges(t *testing.T) {
	a := &Agent{cfg: &config.Site{Site: "b"}, M: metrics.New()}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	wm := now.Add(-90 * time.Second)
	a.M.ObserveOrigin("a", now.Add(-1200*time.Millisecond), now.Add(-time.Second)) // a sample of -0.2 s
	st := Status{Time: now, DeadLetters: 4,
		Peers: []PeerStatus{
			{Peer: "a", Lag: 2, SilentFor: 0.5, PendingApply: 7, Watermark: wm, WatermarkAgeSeconds: 90},
			{Peer: "c", SilentFor: -1, Stalled: true, SkippedRecords: 3},
			{Peer: "d", SilentFor: 0.2, CaughtUp: true, Watermark: now.Add(-200 * time.Millisecond), WatermarkAgeSeconds: 0.2},
		},
		Buckets: []producer.BucketStatus{{Bucket: "demo", LastScan: now.Add(-time.Minute)}, {Bucket: "never"}},
	}
	a.setGauges(st)
	got := gaugeValues(t, a.M)
	want := map[string]float64{
		"s3mesh_peer_silent_seconds|a": 0.5, "s3mesh_peer_silent_seconds|c": -1,
		"s3mesh_peer_mirror_lag_records|a": 2, "s3mesh_peer_records_pending|a": 7,
		"s3mesh_peer_mirror_skipped_records|a": 0, "s3mesh_peer_mirror_skipped_records|c": 3,
		"s3mesh_peer_watermark_timestamp_seconds|a": float64(wm.Unix()), "s3mesh_peer_watermark_age_seconds|a": 90,
		"s3mesh_peer_caught_up|a": 0, "s3mesh_peer_caught_up|c": 0, "s3mesh_peer_caught_up|d": 1,
		"s3mesh_peer_clock_offset_seconds|a": -0.2,
		"s3mesh_dead_letters":                4, "s3mesh_scan_last_success_timestamp_seconds|demo": float64(now.Add(-time.Minute).Unix()),
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (set %v), want %v", k, g, ok, v)
		}
	}
	for _, absent := range []string{"s3mesh_peer_watermark_timestamp_seconds|c", "s3mesh_peer_watermark_age_seconds|c",
		"s3mesh_peer_clock_offset_seconds|c", "s3mesh_scan_last_success_timestamp_seconds|never"} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s set, want it absent", absent)
		}
	}
	// A peer heard again loses no series; one whose watermark is gone loses it.
	st.Peers[0].Watermark, st.Peers[0].WatermarkAgeSeconds = time.Time{}, -1
	a.setGauges(st)
	if _, ok := gaugeValues(t, a.M)["s3mesh_peer_watermark_age_seconds|a"]; ok {
		t.Error("a watermark gone is still exported")
	}
}
