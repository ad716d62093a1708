// Package metrics holds s3mesh's Prometheus metrics (client_golang). The
// agent serves them at /metrics on its http_addr.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the counters and gauges of one agent. Each agent owns its own
// registry so tests can run several agents in one process.
type Metrics struct {
	Registry         *prometheus.Registry
	EventsReceived   *prometheus.CounterVec // by source
	EventsMalformed  *prometheus.CounterVec // by source
	Reconciles       *prometheus.CounterVec // by result
	RecordsPublished prometheus.Counter
	RecordsApplied   *prometheus.CounterVec // by peer, outcome
	ApplyErrors      *prometheus.CounterVec // by peer, class
	Conflicts        prometheus.Counter
	DeadLettered     *prometheus.CounterVec // by reason
	AckFailures      *prometheus.CounterVec // by op: ack, nak, in_progress, term
	Scans            *prometheus.CounterVec // by bucket
	ApplyLag         prometheus.Histogram   // seconds from record made to applied
	HeldBuckets      *prometheus.GaugeVec   // 1 while a bucket's deletes are held
	S3Requests       *prometheus.CounterVec // by store (local or a peer's name) and operation
}

// New creates and registers the metrics.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry:         r,
		EventsReceived:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_events_received_total", Help: "Storage event messages received, by source."}, []string{"source"}),
		EventsMalformed:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_events_malformed_total", Help: "Storage event messages rejected as malformed, by source."}, []string{"source"}),
		Reconciles:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_reconciles_total", Help: "Local-change hints confirmed, by result."}, []string{"result"}),
		RecordsPublished: prometheus.NewCounter(prometheus.CounterOpts{Name: "s3mesh_records_published_total", Help: "Change records published by this site."}),
		RecordsApplied:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_records_applied_total", Help: "Peer change records handled, by peer and outcome."}, []string{"peer", "outcome"}),
		ApplyErrors:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_apply_errors_total", Help: "Failed apply attempts, by peer and error class."}, []string{"peer", "class"}),
		Conflicts:        prometheus.NewCounter(prometheus.CounterOpts{Name: "s3mesh_conflicts_total", Help: "Concurrent versions decided at this site."}),
		DeadLettered:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_dead_lettered_total", Help: "Records sent to the dead-letter queue, by reason."}, []string{"reason"}),
		AckFailures:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_ack_failures_total", Help: "Acknowledgements of peer records and storage events that could not be sent, by op (ack, nak, in_progress, term); the message is redelivered after the ack wait."}, []string{"op"}),
		Scans:            prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_scans_total", Help: "Completed bucket scans."}, []string{"bucket"}),
		HeldBuckets:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "s3mesh_bucket_deletes_held", Help: "1 while a scan holds a bucket's deletes for an operator (too many keys missing)."}, []string{"bucket"}),
		S3Requests:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_s3_requests_total", Help: "HTTP requests sent to S3 (retries included), by store (local, or the peer whose store it is) and operation."}, []string{"store", "op"}),
		ApplyLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "s3mesh_apply_lag_seconds", Help: "Time from a record being made at its origin to being applied here.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
	}
	r.MustRegister(m.EventsReceived, m.EventsMalformed, m.Reconciles, m.RecordsPublished, m.RecordsApplied,
		m.ApplyErrors, m.Conflicts, m.DeadLettered, m.AckFailures, m.Scans, m.ApplyLag, m.HeldBuckets, m.S3Requests,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
