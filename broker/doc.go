// Package broker runs the embedded NATS server of a site and lays out its
// JetStream streams.
//
// # Server
//
// StartServer runs nats-server in-process with JetStream in its own domain
// (domain = server name = site name). Sites are linked by leaf-node
// connections: each pair of sites has exactly one link, dialled by one of
// them (the lab lets the lexically smaller site dial, through a cuttable
// lab/proxy). Every server sets LeafNode.IsolateLeafnodeInterest, without
// which a full mesh of leaf links trips loop detection, and every remote
// sets IgnoreDiscoveredServers so that a peer's advertised address never
// replaces the configured (proxy) one. Cut links are redialled every
// second.
//
// # Streams (per site S, all file storage)
//
//	stream       subjects               retention             at its limits       default limits
//	EVENTS_S     s3mesh.events.S.>      work queue             refuses new (503)   256 MiB, 1M msgs
//	CHANGES_S    s3mesh.changes.S.*     limits, 7 days         refuses new         1 GiB, 1M msgs
//	CHANGES_P    (mirror, one per peer)  limits, 7 days         drops its oldest    those of CHANGES_S
//	CONFLICTS_S  s3mesh.conflicts.S     limits, no age limit   refuses new         256 MiB, 1M msgs
//	DLQ_S        s3mesh.dlq.S.>         limits, no age limit   refuses new         256 MiB, 100k msgs
//
// EVENTS and CHANGES dedup for 2 min; CHANGES and its mirrors allow direct
// get. CHANGES_P mirrors CHANGES_P in domain P.
//
// EVENTS uses work-queue retention: events are hints consumed by the one
// producer of the site; an event leaves the stream once its change record
// is published, and none is ever dropped for age while the agent is down.
//
// Every stream has a byte and a message limit (Topology.Limits, from
// nats.limits; DefaultLimits), so nothing a peer or the store sends can
// fill the broker's disk. At its limit a stream refuses new messages and
// keeps every one it acknowledged; its publisher keeps what it was about
// to store (the webhook answers 503, a record's dead letter or conflict
// entry is retried and the record not acknowledged). A mirror instead
// drops its oldest records: nats-server 2.15.3 mirrors at a DiscardNew
// limit acknowledged a refused record to the origin and stored later ones
// under the wrong sequences (TestMirrorAtDiscardNewLimitLosesRecords).
// With the same limits at every site an honest origin refuses its own
// records before its peers' mirrors of it fill. Usage reports how full
// each stream is; EnsureStreams adds or changes limits in place, and
// refuses (ConfigError) a limit below what a stream holds.
//
// Bucket names and object keys never appear in subjects; subjects carry
// only site names, source labels and partition numbers.
//
// # Mirrors: durable sourcing
//
// Each peer's CHANGES stream is mirrored with "durable sourcing"
// (nats-server >= 2.14): the origin keeps, for every peer P, a durable
// push consumer MIRROR_P on its CHANGES stream (AckFlowControl, flow
// control, 1 s heartbeat) delivering on s3mesh.mirror.<origin>.P, and P's
// mirror names that consumer in StreamSource.Consumer. After an outage the
// mirror only asks the consumer to reset to its ack floor; while the link
// is down it listens on the deliver subject, and the consumer's heartbeat
// wakes it as soon as the link is back. Measured with nats-server 2.15.2:
// 0.1-1.1 s after a link heals whatever the length of the cut (5, 15, 25,
// 60 s), where the default (ephemeral-consumer) mirror took 26-40 s after
// cuts of 15 s or more. When an origin restarts its peers' mirrors resume
// at once (default mirror: 18 s); a restarted site's own mirrors resume
// about 5 s after start (their first consumer reset, sent before the leaf
// links are up, times out). A 50k-record backlog copies in 2-6 s.
//
// EnsureStreams only talks to the local domain: it creates the site's
// streams, the mirrors of its peers and the MIRROR_<peer> consumers on its
// own CHANGES stream. So every site must list every site that mirrors it
// among its Peers (in a full mesh: all other sites).
//
// # Status
//
// Mirrors reports Lag, Active and LastSeq of each mirror. While a link is
// down a mirror keeps reporting Lag 0; Active (time since the origin was
// last heard, heartbeats included) is what shows the stall, and
// MirrorStatus.Stalled is set once it exceeds MirrorStallAfter.
package broker
