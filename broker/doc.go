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
//	EVENTS_S     s3mesh.events.S.>      work queue; raw storage events, 2 min dedup
//	CHANGES_S    s3mesh.changes.S.*     limits, 7 days; change records, 2 min dedup, direct get
//	CHANGES_P    (mirror, one per peer)  mirror of CHANGES_P in domain P, 7 days, direct get
//	CONFLICTS_S  s3mesh.conflicts.S     limits, no age limit
//	DLQ_S        s3mesh.dlq.S.>         limits, no age limit
//
// EVENTS uses work-queue retention: events are hints consumed by the one
// producer of the site; an event leaves the stream once its change record
// is published, and none is ever dropped for age while the agent is down.
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
