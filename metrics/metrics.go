// Package metrics holds s3mesh's Prometheus metrics (client_golang). The
// agent serves them at /metrics on its http_addr.
package metrics

import (
	"sync"
	"time"

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
	RecordsEarly     *prometheus.CounterVec // by peer: deliveries retried because their times were a little past this site's bound
	AckFailures      *prometheus.CounterVec // by op: ack, nak, in_progress, term
	Scans            *prometheus.CounterVec // by bucket
	ApplyLag         prometheus.Histogram   // seconds from record made to applied
	HeldBuckets      *prometheus.GaugeVec   // 1 while a bucket's deletes are held
	DeletesHeld      *prometheus.GaugeVec   // by peer, bucket: a peer's deletes held at this site
	S3Requests       *prometheus.CounterVec // by store (local or a peer's name) and operation
	ScanFailures     *prometheus.CounterVec // by bucket: scans that ended in an error
	PeerKeyWritable  *prometheus.GaugeVec   // by peer, bucket: 1 the peer's S3 key can write (allowed), 0 read-only, -1 not known

	// Set every few seconds by the agent from its status (agent/gauges.go).
	PeerSilent       *prometheus.GaugeVec // by peer: seconds since the mirror last heard from it (-1: never)
	PeerMirrorLag    *prometheus.GaugeVec // by peer: records the peer had that the mirror lacked, at the last contact
	PeerSkipped      *prometheus.GaugeVec // by peer: sequences the mirror skipped (holes)
	PeerPending      *prometheus.GaugeVec // by peer: records held here, not yet applied
	PeerWatermark    *prometheus.GaugeVec // by peer: unix seconds before which every record of the peer is applied
	PeerWatermarkAge *prometheus.GaugeVec // by peer: now − watermark
	PeerCaughtUp     *prometheus.GaugeVec // by peer: 1 when caught up
	PeerClockOffset  *prometheus.GaugeVec // by peer: see ClockOffsets
	DeadLetters      prometheus.Gauge     // entries in DLQ_<site>
	ScanLastSuccess  *prometheus.GaugeVec // by bucket: unix seconds of the last scan that completed
	BuildInfo        *prometheus.GaugeVec // 1, labelled with the site, version and Go version
	StreamBytes      *prometheus.GaugeVec // by stream, kind: bytes held
	StreamMaxBytes   *prometheus.GaugeVec // by stream, kind: byte limit
	StreamMsgs       *prometheus.GaugeVec // by stream, kind: messages held
	StreamMaxMsgs    *prometheus.GaugeVec // by stream, kind: message limit
	StreamFill       *prometheus.GaugeVec // by stream, kind: the larger of bytes/limit and messages/limit
	TrashObjects     *prometheus.GaugeVec // by bucket: objects in the site's trash (set by each scan)
	TrashBytes       *prometheus.GaugeVec // by bucket: their bytes

	// Clock collects origin-time samples of arriving records (the
	// consumer) for PeerClockOffset.
	Clock *ClockOffsets
	// Topo counts what bucket modes and prefix filters did (topology.go).
	Topo *Topology
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
		RecordsEarly:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_records_early_total", Help: "Deliveries of peer records retried later because their origin time was past this site's clock plus records.max_future by at most the early window (5 m), by peer. Steady growth: this site's clock is behind, or a peer stamps times at the bound."}, []string{"peer"}),
		AckFailures:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_ack_failures_total", Help: "Acknowledgements of peer records and storage events that could not be sent, by op (ack, nak, in_progress, term); the message is redelivered after the ack wait."}, []string{"op"}),
		Scans:            prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_scans_total", Help: "Completed bucket scans."}, []string{"bucket"}),
		HeldBuckets:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "s3mesh_bucket_deletes_held", Help: "1 while a scan holds a bucket's deletes for an operator (too many keys missing)."}, []string{"bucket"}),
		DeletesHeld:      gauge("s3mesh_deletes_held", "Deletes of the peer in the bucket held at this site (too many within deletes.window), waiting for `s3mesh deletes release` or `discard`.", "peer", "bucket"),
		S3Requests:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_s3_requests_total", Help: "HTTP requests sent to S3 (retries included), by store (local, or the peer whose store it is) and operation."}, []string{"store", "op"}),
		ScanFailures:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s3mesh_scan_failures_total", Help: "Bucket scans that ended in an error (listing or state failure; the scanner retries), by bucket."}, []string{"bucket"}),
		PeerKeyWritable:  gauge("s3mesh_peer_s3_key_writable", "1 when this site's S3 key for the peer's store can write there (the agent runs so only with peers[].s3.allow_writable_key), 0 when it is read-only, -1 while not known (store not answering, or an answer the probe cannot read).", "peer", "bucket"),
		PeerSilent:       gauge("s3mesh_peer_silent_seconds", "Seconds since this site's mirror of the peer's records last heard from the peer (records or heartbeats); -1 if never since the broker started. A cut link shows here, not in the lag.", "peer"),
		PeerMirrorLag:    gauge("s3mesh_peer_mirror_lag_records", "Records the peer had that this site's mirror lacked, as of the mirror's last contact (0 while a link is cut: see s3mesh_peer_silent_seconds).", "peer"),
		PeerSkipped:      gauge("s3mesh_peer_mirror_skipped_records", "Sequences of the peer's change records that this site's mirror does not hold between its first and last: changes that never reached this site.", "peer"),
		PeerPending:      gauge("s3mesh_peer_records_pending", "Records of the peer held by this site's mirror and not yet applied here.", "peer"),
		PeerWatermark:    gauge("s3mesh_peer_watermark_timestamp_seconds", "Unix time before which every record the peer made is applied here: the origin time of the oldest record not yet applied, or the mirror's last contact with the peer when none waits.", "peer"),
		PeerWatermarkAge: gauge("s3mesh_peer_watermark_age_seconds", "Seconds since the watermark (how far this site is behind the peer); grows while a link is cut even though the lag reads 0.", "peer"),
		PeerCaughtUp:     gauge("s3mesh_peer_caught_up", "1 when every record of the peer this site holds is applied, none is known missing and the peer was heard from within 5 s; else 0.", "peer"),
		PeerClockOffset:  gauge("s3mesh_peer_clock_offset_seconds", "Lower bound of the peer's clock minus this site's clock: the largest origin time minus receive time of the peer's records received in the last 5 minutes (absent without records). Positive only when the peer's clock runs ahead; a peer running behind shows at the peer, as this site's offset.", "peer"),
		DeadLetters:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "s3mesh_dead_letters", Help: "Entries in this site's dead-letter queue (DLQ_<site>)."}),
		ScanLastSuccess:  gauge("s3mesh_scan_last_success_timestamp_seconds", "Unix time the last scan of the bucket completed its listing (absent until the first since the agent started).", "bucket"),
		BuildInfo:        gauge("s3mesh_build_info", "Always 1; labels name the site, the s3mesh version and the Go version.", "site", "version", "go_version"),
		StreamBytes:      gauge("s3mesh_stream_bytes", "Bytes held by one of this site's streams (kind: events, changes, mirror, conflicts, dlq).", "stream", "kind"),
		StreamMaxBytes:   gauge("s3mesh_stream_max_bytes", "Byte limit of the stream (nats.limits; 0: none).", "stream", "kind"),
		StreamMsgs:       gauge("s3mesh_stream_messages", "Messages held by one of this site's streams.", "stream", "kind"),
		StreamMaxMsgs:    gauge("s3mesh_stream_max_messages", "Message limit of the stream (nats.limits; 0: none).", "stream", "kind"),
		StreamFill:       gauge("s3mesh_stream_fill_ratio", "How full the stream is: the larger of bytes/max_bytes and messages/max_messages. At 1 a stream refuses new messages (a mirror drops its oldest records instead).", "stream", "kind"),
		TrashObjects:     gauge("s3mesh_trash_objects", "Objects in this site's trash of the bucket (.s3mesh-trash/: what peers' records deleted or replaced here, kept for trash.retention), as of the last scan.", "bucket"),
		TrashBytes:       gauge("s3mesh_trash_bytes", "Bytes of those objects: the storage the trash costs in the bucket.", "bucket"),
		Clock:            NewClockOffsets(5 * time.Minute),
		ApplyLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "s3mesh_apply_lag_seconds", Help: "Time from a record being made at its origin to being applied here.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
	}
	r.MustRegister(m.EventsReceived, m.EventsMalformed, m.Reconciles, m.RecordsPublished, m.RecordsApplied,
		m.ApplyErrors, m.Conflicts, m.DeadLettered, m.RecordsEarly, m.AckFailures, m.Scans, m.ApplyLag, m.HeldBuckets, m.S3Requests,
		m.ScanFailures, m.PeerKeyWritable, m.PeerSilent, m.PeerMirrorLag, m.PeerSkipped, m.PeerPending, m.PeerWatermark, m.PeerWatermarkAge, m.PeerCaughtUp,
		m.PeerClockOffset, m.DeadLetters, m.ScanLastSuccess, m.BuildInfo,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	r.MustRegister(m.DeletesHeld)
	r.MustRegister(m.StreamBytes, m.StreamMaxBytes, m.StreamMsgs, m.StreamMaxMsgs, m.StreamFill)
	m.Topo = newTopology(r)
	r.MustRegister(m.TrashObjects, m.TrashBytes)
	return m
}

func gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// ObserveOrigin records that a record of peer made at madeAt (the peer's
// clock) was received at received (this site's clock).
func (m *Metrics) ObserveOrigin(peer string, madeAt, received time.Time) {
	m.Clock.Observe(peer, madeAt.Sub(received), received)
}

// ClockOffsets estimates, per peer, how far the peer's clock runs ahead of
// this site's: the largest (origin time − receive time) over the records
// received within the window. A record is received after it is made, so
// each sample is the true offset minus the transit delay: the maximum is a
// lower bound of the offset, tight when some record arrived quickly. A
// peer whose clock runs behind gives negative samples here (indistinguishable
// from delay); it shows positive at the peer, which measures this site.
// Without records in the window there is no estimate.
type ClockOffsets struct {
	window time.Duration
	mu     sync.Mutex
	peers  map[string]*offsetSlots
}

// offsetSlots keeps the maximum sample of each of the last few slots of
// window/slots.
type offsetSlots struct {
	start [offsetSlotCount]int64 // slot index (time / slot width); 0: empty
	max   [offsetSlotCount]time.Duration
}

const offsetSlotCount = 6

// NewClockOffsets keeps samples for about window.
func NewClockOffsets(window time.Duration) *ClockOffsets {
	return &ClockOffsets{window: window, peers: map[string]*offsetSlots{}}
}

func (c *ClockOffsets) width() time.Duration { return c.window / (offsetSlotCount - 1) }

// Observe adds a sample (origin time − receive time) received at at.
func (c *ClockOffsets) Observe(peer string, sample time.Duration, at time.Time) {
	idx := at.UnixNano()/int64(c.width()) + 1
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[peer]
	if p == nil {
		p = &offsetSlots{}
		c.peers[peer] = p
	}
	i := idx % offsetSlotCount
	if p.start[i] != idx {
		p.start[i], p.max[i] = idx, sample
	} else if sample > p.max[i] {
		p.max[i] = sample
	}
}

// Estimate is the largest sample of peer received within the window
// before now; ok is false if there is none.
func (c *ClockOffsets) Estimate(peer string, now time.Time) (offset time.Duration, ok bool) {
	idx := now.UnixNano()/int64(c.width()) + 1
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[peer]
	if p == nil {
		return 0, false
	}
	for i := range p.start {
		if s := p.start[i]; s != 0 && s <= idx && idx-s < offsetSlotCount-1 { // the last window/width slots
			if !ok || p.max[i] > offset {
				offset, ok = p.max[i], true
			}
		}
	}
	return offset, ok
}
