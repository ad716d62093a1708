package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Topology counts what bucket modes (replica, archive) and prefix filters
// did at this site, as metrics and as the per-bucket figures status shows.
type Topology struct {
	Drift          *prometheus.CounterVec // by bucket: local writes not replicated (replica, archive)
	DeletesKept    *prometheus.CounterVec // by bucket, peer: peers' deletes an archive did not carry out
	Filtered       *prometheus.CounterVec // by bucket, peer: peers' records outside this site's filter, not applied
	FilterMismatch *prometheus.GaugeVec   // by bucket, peer: 1 while the peer's records carry another filter

	mu      sync.Mutex
	buckets map[string]*TopologyCounts
}

// TopologyCounts are one bucket's figures since the agent started.
type TopologyCounts struct {
	Drift       uint64    `json:"drift"`                  // local writes not replicated
	LastDrift   string    `json:"last_drift,omitempty"`   // the key of the last one
	LastDriftAt time.Time `json:"last_drift_at,omitzero"` //
	DeletesKept uint64    `json:"deletes_kept"`           // peers' deletes not carried out (archive)
	Filtered    uint64    `json:"filtered"`               // peers' records outside the filter
	// PeerFilters is the filter digest of each peer's last record of the
	// bucket ("" for none), for the peers whose digest differs from this
	// site's.
	PeerFilters map[string]string `json:"peer_filters_differ,omitempty"`
}

func newTopology(r *prometheus.Registry) *Topology {
	t := &Topology{
		Drift: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_drift_total",
			Help: "Local writes at a site whose bucket publishes nothing (mode replica or archive): recorded, never replicated, by bucket."}, []string{"bucket"}),
		DeletesKept: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_deletes_kept_total",
			Help: "Peers' deletes an archive site did not carry out (the object stays), by bucket and peer."}, []string{"bucket", "peer"}),
		Filtered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_records_filtered_total",
			Help: "Peers' records of keys outside this site's prefix filter: acknowledged, not applied, by bucket and peer."}, []string{"bucket", "peer"}),
		FilterMismatch: gauge("s3mesh_filter_mismatch", "1 while the peer's last record of the bucket carried another prefix filter than this site's: the sites replicate different keys.", "bucket", "peer"),
		buckets:        map[string]*TopologyCounts{},
	}
	r.MustRegister(t.Drift, t.DeletesKept, t.Filtered, t.FilterMismatch)
	return t
}

func (t *Topology) counts(bucket string) *TopologyCounts {
	c := t.buckets[bucket]
	if c == nil {
		c = &TopologyCounts{}
		t.buckets[bucket] = c
	}
	return c
}

// NoteDrift counts a local write of bucket/key that is not replicated.
func (t *Topology) NoteDrift(bucket, key string, at time.Time) {
	t.Drift.WithLabelValues(bucket).Inc()
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.counts(bucket)
	c.Drift++
	c.LastDrift, c.LastDriftAt = key, at.UTC()
}

// NoteKept counts a delete of peer's that an archive did not carry out.
func (t *Topology) NoteKept(bucket, peer string) {
	t.DeletesKept.WithLabelValues(bucket, peer).Inc()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts(bucket).DeletesKept++
}

// NoteFiltered counts a record of peer's outside this site's filter.
func (t *Topology) NoteFiltered(bucket, peer string) {
	t.Filtered.WithLabelValues(bucket, peer).Inc()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts(bucket).Filtered++
}

// NotePeerFilter records the filter digest theirs of a record of peer's
// against this site's own; it reports whether they differ in another way
// than the peer's last record said (a difference to log).
func (t *Topology) NotePeerFilter(bucket, peer, theirs, own string) bool {
	differ := theirs != own
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.counts(bucket)
	last, was := c.PeerFilters[peer]
	if differ && was && last == theirs {
		return false
	}
	if differ {
		if c.PeerFilters == nil {
			c.PeerFilters = map[string]string{}
		}
		c.PeerFilters[peer] = theirs
		t.FilterMismatch.WithLabelValues(bucket, peer).Set(1)
	} else if _, was := c.PeerFilters[peer]; was {
		delete(c.PeerFilters, peer)
		t.FilterMismatch.WithLabelValues(bucket, peer).Set(0)
	}
	return differ
}

// Counts returns a copy of bucket's figures.
func (t *Topology) Counts(bucket string) TopologyCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := *t.counts(bucket)
	if c.PeerFilters != nil {
		pf := make(map[string]string, len(c.PeerFilters))
		for k, v := range c.PeerFilters {
			pf[k] = v
		}
		c.PeerFilters = pf
	}
	return c
}
