package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Topology is what one site needs to know to lay out its streams.
type Topology struct {
	// Site is the local site (and JetStream domain).
	Site string
	// Peers are the other sites whose CHANGES streams this site mirrors,
	// and which mirror this site's CHANGES stream. In a full mesh every
	// site lists every other site.
	Peers []string
	// Replicas of every stream and mirror consumer (0 = 1). More than 1
	// needs a clustered NATS server (production), not the embedded one.
	Replicas int
	// LinkSecrets holds, per peer, the secret the two ends of the link
	// share (the embedded broker's link password): it makes the names of
	// the mirror consumers unguessable to third sites (MirrorConsumerFor).
	// A peer without one gets the plain name MirrorConsumer.
	LinkSecrets map[string]string
	// Limits bound every stream of the site (zero fields: DefaultLimits).
	// See Limits for what each stream does at its limit.
	Limits Limits
}

// MirrorConsumer is the name of the consumer on origin's CHANGES stream
// that feeds dest's mirror; one of origin and dest is t.Site.
func (t Topology) MirrorConsumer(origin, dest string) string {
	peer := origin
	if peer == t.Site {
		peer = dest
	}
	return MirrorConsumerFor(origin, dest, t.LinkSecrets[peer])
}

const (
	// DedupWindow is the Nats-Msg-Id duplicate window of the streams that
	// take publishes (EVENTS, CHANGES).
	DedupWindow = 2 * time.Minute
	// DefaultChangesMaxAge is how long change records are kept, at the
	// origin and in the peers' mirrors. A site cut off for longer must
	// resync.
	DefaultChangesMaxAge = 7 * 24 * time.Hour
	// MirrorMaxAckPending is the window of the durable mirror consumers:
	// how many records may be in flight to a peer before a flow-control
	// reply acknowledges them.
	MirrorMaxAckPending = 10_000
)

// mirrorHeartbeat is the idle heartbeat of the durable mirror consumers;
// nats-server requires exactly 1 s for AckFlowControl consumers.
const mirrorHeartbeat = time.Second

func (t Topology) validate() error {
	if err := ValidSiteName(t.Site); err != nil {
		return fmt.Errorf("broker: topology site: %w", err)
	}
	seen := map[string]bool{t.Site: true}
	for _, p := range t.Peers {
		if err := ValidSiteName(p); err != nil {
			return fmt.Errorf("broker: topology peer: %w", err)
		}
		if seen[p] {
			if p == t.Site {
				return fmt.Errorf("broker: site %s lists itself as a peer", p)
			}
			return fmt.Errorf("broker: peer %s listed twice", p)
		}
		seen[p] = true
	}
	if t.Replicas < 0 || t.Replicas > 5 {
		return fmt.Errorf("broker: replicas %d out of range 0..5", t.Replicas)
	}
	return t.Limits.validate()
}

func (t Topology) replicas() int { return max(t.Replicas, 1) }

// ConfigError reports an existing stream or consumer that differs from the
// topology in a way that cannot be updated in place. An operator must
// migrate it (for example delete and recreate it, or rename the site).
type ConfigError struct {
	Stream   string
	Consumer string // "" for the stream itself
	Field    string
	Have     string
	Want     string
	Hint     string // what to do, if there is more to say
}

func (e *ConfigError) Error() string {
	what := "stream " + e.Stream
	if e.Consumer != "" {
		what = "consumer " + e.Consumer + " on stream " + e.Stream
	}
	msg := fmt.Sprintf("broker: %s: field %s cannot be changed in place (existing %s, wanted %s)",
		what, e.Field, e.Have, e.Want)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// streamConfigs are the streams a site owns, in creation order.
func streamConfigs(t Topology) []jetstream.StreamConfig {
	r := t.replicas()
	site := t.Site
	l := t.Limits.withDefaults()
	// Every stream but the mirrors refuses new messages at its limits
	// (DiscardNew) rather than drop stored ones; see Limits.
	cfgs := []jetstream.StreamConfig{
		{
			// Events are hints (the producer confirms each by HEAD and
			// the scanner repairs what is lost), consumed by exactly one
			// producer: work-queue retention drops an event once the
			// producer has published its change record, keeps every
			// unprocessed event however long the agent is down (no age
			// limit to lose them to; at its limits new events are
			// refused, and the scanner finds their changes), and makes the
			// stream's message count the producer's backlog.
			Name:        EventsStream(site),
			Description: "s3mesh: storage events captured at site " + site,
			Subjects:    []string{EventsSubjectFilter(site)},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.WorkQueuePolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    l.Events.MaxBytes,
			MaxMsgs:     l.Events.MaxMsgs,
			Duplicates:  DedupWindow,
			Replicas:    r,
		},
		{
			Name:        ChangesStream(site),
			Description: "s3mesh: change records made at site " + site,
			Subjects:    []string{ChangesSubjectFilter(site)},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    l.Changes.MaxBytes,
			MaxMsgs:     l.Changes.MaxMsgs,
			MaxAge:      DefaultChangesMaxAge,
			Duplicates:  DedupWindow,
			AllowDirect: true,
			Replicas:    r,
		},
		{
			Name:        ConflictsStream(site),
			Description: "s3mesh: conflict log of site " + site,
			Subjects:    []string{ConflictsSubject(site)},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    l.Conflicts.MaxBytes,
			MaxMsgs:     l.Conflicts.MaxMsgs,
			Duplicates:  DedupWindow,
			Replicas:    r,
		},
		{
			Name:        DLQStream(site),
			Description: "s3mesh: dead letters of site " + site,
			Subjects:    []string{DLQSubjectFilter(site)},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    l.DLQ.MaxBytes,
			MaxMsgs:     l.DLQ.MaxMsgs,
			Duplicates:  DedupWindow,
			Replicas:    r,
		},
	}
	for _, p := range t.Peers {
		cfgs = append(cfgs, mirrorConfig(t, p))
	}
	return cfgs
}

// mirrorConfig is the local mirror of peer's CHANGES stream, fed by the
// durable consumer t.MirrorConsumer(peer, site) that the peer keeps on its stream.
//
// It has the limits of the site's own CHANGES and drops its oldest records
// at them (DiscardOld): nats-server mirrors lose and misnumber records at a
// DiscardNew limit (see Limits).
func mirrorConfig(t Topology, peer string) jetstream.StreamConfig {
	l := t.Limits.withDefaults()
	return jetstream.StreamConfig{
		Name:        ChangesStream(peer),
		Description: fmt.Sprintf("s3mesh: mirror at site %s of the change records of site %s", t.Site, peer),
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxBytes:    l.Changes.MaxBytes,
		MaxMsgs:     l.Changes.MaxMsgs,
		MaxAge:      DefaultChangesMaxAge,
		AllowDirect: true,
		Replicas:    t.replicas(),
		Mirror: &jetstream.StreamSource{
			Name: ChangesStream(peer),
			// Equivalent to Domain: peer, spelled out so that it compares
			// equal to what the server reports back.
			External: &jetstream.ExternalStream{APIPrefix: "$JS." + peer + ".API"},
			Consumer: &jetstream.StreamConsumerSource{
				Name:           t.MirrorConsumer(peer, t.Site),
				DeliverSubject: MirrorDeliverSubject(peer, t.Site),
			},
		},
	}
}

// mirrorConsumerConfig is the durable, flow-controlled push consumer on the
// local CHANGES stream that feeds peer's mirror of it. The mirror at peer
// names it in StreamSource.Consumer; after an outage it only has to ask
// for a reset to the ack floor, and while it waits it listens on the
// deliver subject, so the consumer's heartbeat wakes it as soon as the
// link is back.
func mirrorConsumerConfig(t Topology, peer string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        t.MirrorConsumer(t.Site, peer),
		Description:    fmt.Sprintf("s3mesh: feeds the mirror at site %s of %s", peer, ChangesStream(t.Site)),
		DeliverSubject: MirrorDeliverSubject(t.Site, peer),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckFlowControlPolicy,
		FlowControl:    true,
		IdleHeartbeat:  mirrorHeartbeat,
		MaxAckPending:  MirrorMaxAckPending,
		Replicas:       t.replicas(),
	}
}

// EnsureStreams creates or updates the streams and mirror consumers of
// t.Site: EVENTS, CHANGES, CONFLICTS and DLQ of the site, a mirror of
// CHANGES_<peer> (in domain peer) for each peer, and on the local CHANGES
// stream a durable consumer feeding each peer's mirror.
//
// It only talks to the local domain, so it works while peers are down.
// Running it again with the same topology changes nothing. A field that
// can be updated in place is updated; one that cannot (storage, work-queue
// retention, mirror origin, consumer ack policy, ...) yields a
// *ConfigError naming the stream and field.
//
// Consumers of peers that left the topology are left alone (they cost
// nothing while nobody listens); delete them by hand if the peer is gone
// for good.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	_, err := ensureStreams(ctx, js, t, nil)
	return err
}

// ensureStreams is EnsureStreams returning what it changed.
func ensureStreams(ctx context.Context, js jetstream.JetStream, t Topology, log *slog.Logger) ([]string, error) {
	return ensureStreamsOpt(ctx, js, t, log, false)
}

func ensureStreamsOpt(ctx context.Context, js jetstream.JetStream, t Topology, log *slog.Logger, originOnly bool) ([]string, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var changes []string
	cfgs := streamConfigs(t)
	if originOnly {
		cfgs = cfgs[:len(cfgs)-len(t.Peers)] // the mirrors come last
	}
	// The site's own streams and the consumers feeding its peers' mirrors
	// first, the mirrors of its peers last: a mirror that asks for its
	// origin's consumer before that exists backs off for up to minutes.
	var mirrors []jetstream.StreamConfig
	for _, want := range cfgs {
		if want.Mirror != nil {
			mirrors = append(mirrors, want)
			continue
		}
		change, err := ensureStream(ctx, js, want)
		if err != nil {
			return changes, err
		}
		if change != "" {
			log.Info("stream "+change, "stream", want.Name)
			changes = append(changes, want.Name+": "+change)
		}
	}
	for _, p := range t.Peers {
		want := mirrorConsumerConfig(t, p)
		change, err := ensureConsumer(ctx, js, ChangesStream(t.Site), want)
		if err != nil {
			return changes, err
		}
		if change != "" {
			log.Info("consumer "+change, "stream", ChangesStream(t.Site), "consumer", want.Durable)
			changes = append(changes, ChangesStream(t.Site)+"/"+want.Durable+": "+change)
		}
	}
	for _, want := range mirrors {
		change, err := ensureStream(ctx, js, want)
		if err != nil {
			return changes, err
		}
		if change != "" {
			log.Info("stream "+change, "stream", want.Name)
			changes = append(changes, want.Name+": "+change)
		}
	}
	return changes, nil
}

// EnsureOrigin is EnsureStreams without the mirrors of the peers: the site's
// own streams and the consumers that feed its peers' mirrors. Run it at
// every site before any site creates its mirrors (`s3mesh broker` does at
// start; so does `s3mesh streams ensure`), and mirrors find their origin's
// consumer at the first attempt.
func EnsureOrigin(ctx context.Context, js jetstream.JetStream, t Topology) error {
	_, err := ensureStreamsOpt(ctx, js, t, nil, true)
	return err
}

// ensureStream creates want or brings an existing stream in line with it.
// It returns "" if nothing changed.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (string, error) {
	for attempt := 0; ; attempt++ {
		s, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, want)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt == 0 {
				continue // created concurrently (or differently): compare
			}
			if err != nil {
				return "", fmt.Errorf("broker: create stream %s: %w", want.Name, err)
			}
			return "created", nil
		}
		if err != nil {
			return "", fmt.Errorf("broker: look up stream %s: %w", want.Name, err)
		}
		have := s.CachedInfo().Config
		merged, fields, err := reconcileStream(have, want)
		if err != nil {
			return "", err
		}
		if len(fields) == 0 {
			return "", nil
		}
		if slices.Contains(fields, "max_bytes") || slices.Contains(fields, "max_msgs") {
			if err := overLimit(merged, s.CachedInfo().State); err != nil {
				return "", err
			}
		}
		if _, err := js.UpdateStream(ctx, merged); err != nil {
			return "", fmt.Errorf("broker: update stream %s (%v): %w", want.Name, fields, err)
		}
		return fmt.Sprintf("updated %v", fields), nil
	}
}

// reconcileStream returns have with the fields managed by s3mesh set as in
// want, and the names of those that changed. Fields s3mesh does not manage
// (other limits set by an operator, server metadata, ...) are kept.
func reconcileStream(have, want jetstream.StreamConfig) (jetstream.StreamConfig, []string, error) {
	immutable := func(field string, h, w any) error {
		return &ConfigError{Stream: want.Name, Field: field, Have: fmt.Sprint(h), Want: fmt.Sprint(w)}
	}
	if have.Storage != want.Storage {
		return have, nil, immutable("storage", have.Storage, want.Storage)
	}
	if have.Retention != want.Retention &&
		(have.Retention == jetstream.WorkQueuePolicy || want.Retention == jetstream.WorkQueuePolicy) {
		return have, nil, immutable("retention", have.Retention, want.Retention)
	}
	if !sameMirror(have.Mirror, want.Mirror) {
		err := &ConfigError{Stream: want.Name, Field: "mirror", Have: describeMirror(have.Mirror), Want: describeMirror(want.Mirror)}
		if h, w := have.Mirror, want.Mirror; h != nil && w != nil && h.Consumer != nil && w.Consumer != nil && h.Consumer.Name != w.Consumer.Name {
			err.Hint = "the mirror consumer's name is made from the link's secret (its password): after an upgrade or a new link password, " +
				"stop this site's agent, delete this mirror stream (it holds only copies of the origin's records) and start the agent again: " +
				"the origin's records are mirrored again and re-applied, which changes nothing already applied"
		}
		return have, nil, err
	}

	merged := have
	var fields []string
	set := func(field string, dst any, src any) {
		d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
		if !reflect.DeepEqual(d.Interface(), s.Interface()) {
			d.Set(s)
			fields = append(fields, field)
		}
	}
	set("description", &merged.Description, want.Description)
	if want.Mirror == nil && !slices.Equal(have.Subjects, want.Subjects) {
		merged.Subjects = slices.Clone(want.Subjects)
		fields = append(fields, "subjects")
	}
	set("retention", &merged.Retention, want.Retention)
	set("discard", &merged.Discard, want.Discard)
	set("max_bytes", &merged.MaxBytes, want.MaxBytes)
	set("max_msgs", &merged.MaxMsgs, want.MaxMsgs)
	set("max_age", &merged.MaxAge, want.MaxAge)
	if want.Duplicates != 0 { // 0: leave the server's default
		set("duplicate_window", &merged.Duplicates, want.Duplicates)
	}
	set("allow_direct", &merged.AllowDirect, want.AllowDirect)
	set("replicas", &merged.Replicas, max(want.Replicas, 1))
	return merged, fields, nil
}

// sameMirror compares mirror settings as the server reports them back
// (the server keeps External, not the client-side Domain shorthand).
func sameMirror(have, want *jetstream.StreamSource) bool {
	if have == nil || want == nil {
		return have == want
	}
	h, w := *have, *want
	h.Domain, w.Domain = "", ""
	if len(h.SubjectTransforms) == 0 {
		h.SubjectTransforms = nil
	}
	if len(w.SubjectTransforms) == 0 {
		w.SubjectTransforms = nil
	}
	return reflect.DeepEqual(h, w)
}

func describeMirror(m *jetstream.StreamSource) string {
	if m == nil {
		return "no mirror"
	}
	s := "mirror of " + m.Name
	if m.External != nil {
		s += " via " + m.External.APIPrefix
	}
	if m.Consumer != nil {
		s += " with durable consumer " + m.Consumer.Name + " on " + m.Consumer.DeliverSubject
	} else {
		s += " with an ephemeral consumer"
	}
	return s
}

// ensureConsumer creates want on stream or brings an existing consumer in
// line with it. It returns "" if nothing changed.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, stream string, want jetstream.ConsumerConfig) (string, error) {
	c, err := js.PushConsumer(ctx, stream, want.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if _, err := js.CreatePushConsumer(ctx, stream, want); err != nil {
			return "", fmt.Errorf("broker: create consumer %s on stream %s: %w", want.Durable, stream, err)
		}
		return "created", nil
	case errors.Is(err, jetstream.ErrNotPushConsumer):
		return "", &ConfigError{Stream: stream, Consumer: want.Durable, Field: "deliver_subject",
			Have: "none (pull consumer)", Want: want.DeliverSubject}
	case err != nil:
		return "", fmt.Errorf("broker: look up consumer %s on stream %s: %w", want.Durable, stream, err)
	}
	have := c.CachedInfo().Config
	merged, fields, err := reconcileConsumer(stream, have, want)
	if err != nil {
		return "", err
	}
	if len(fields) == 0 {
		return "", nil
	}
	if _, err := js.UpdatePushConsumer(ctx, stream, merged); err != nil {
		return "", fmt.Errorf("broker: update consumer %s on stream %s (%v): %w", want.Durable, stream, fields, err)
	}
	return fmt.Sprintf("updated %v", fields), nil
}

func reconcileConsumer(stream string, have, want jetstream.ConsumerConfig) (jetstream.ConsumerConfig, []string, error) {
	immutable := func(field string, h, w any) error {
		return &ConfigError{Stream: stream, Consumer: want.Durable, Field: field, Have: fmt.Sprint(h), Want: fmt.Sprint(w)}
	}
	switch {
	case have.AckPolicy != want.AckPolicy:
		return have, nil, immutable("ack_policy", have.AckPolicy, want.AckPolicy)
	case have.DeliverPolicy != want.DeliverPolicy:
		return have, nil, immutable("deliver_policy", have.DeliverPolicy, want.DeliverPolicy)
	case have.FlowControl != want.FlowControl:
		return have, nil, immutable("flow_control", have.FlowControl, want.FlowControl)
	case have.IdleHeartbeat != want.IdleHeartbeat:
		return have, nil, immutable("idle_heartbeat", have.IdleHeartbeat, want.IdleHeartbeat)
	case have.FilterSubject != want.FilterSubject || len(have.FilterSubjects) > 0:
		return have, nil, immutable("filter_subject", have.FilterSubject+fmt.Sprint(have.FilterSubjects), want.FilterSubject)
	}
	merged := have
	var fields []string
	if have.Description != want.Description {
		merged.Description = want.Description
		fields = append(fields, "description")
	}
	if have.DeliverSubject != want.DeliverSubject {
		merged.DeliverSubject = want.DeliverSubject
		fields = append(fields, "deliver_subject")
	}
	if have.MaxAckPending != want.MaxAckPending {
		merged.MaxAckPending = want.MaxAckPending
		fields = append(fields, "max_ack_pending")
	}
	// The server reports 0 for "as many as the stream".
	if have.Replicas != want.Replicas && !(have.Replicas == 0 && want.Replicas == 1) {
		merged.Replicas = want.Replicas
		fields = append(fields, "replicas")
	}
	return merged, fields, nil
}
