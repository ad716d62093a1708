package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
)

// Site names are used verbatim as JetStream domains, server names, stream
// name suffixes and subject tokens, so they are restricted to a small,
// safe alphabet.
var siteNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ValidSiteName reports whether s can be used as a site name:
// [a-z0-9][a-z0-9-]{0,31}.
func ValidSiteName(s string) error {
	if !siteNameRE.MatchString(s) {
		return fmt.Errorf("invalid site name %q: want 1-32 characters of [a-z0-9-], not starting with '-'", s)
	}
	return nil
}

// Subject and stream names. Bucket names (which contain dots) and object
// keys (arbitrary UTF-8) never appear in subjects: records carry them in
// their payload, and only site names, source labels and partition numbers
// are subject tokens.
const subjectRoot = "s3mesh"

// EventsStream is the stream capturing raw storage events at site.
func EventsStream(site string) string { return "EVENTS_" + site }

// EventsSubject is the subject an event source (a store's NATS sink, the
// webhook, ...) publishes to at site. source must be a single subject
// token (no dots, spaces or wildcards); EventsStream captures
// EventsSubjectFilter(site).
func EventsSubject(site, source string) string {
	return subjectRoot + ".events." + site + "." + source
}

// EventsSubjectFilter is the subject filter of EventsStream(site).
func EventsSubjectFilter(site string) string { return subjectRoot + ".events." + site + ".>" }

// ChangesStream is the stream of change records made at site (and, at
// every other site, the name of the local mirror of it).
func ChangesStream(site string) string { return "CHANGES_" + site }

// ChangesSubject is the subject of change records of one partition made at
// site.
func ChangesSubject(site string, partition int) string {
	return subjectRoot + ".changes." + site + "." + strconv.Itoa(partition)
}

// ChangesSubjectFilter is the subject filter of ChangesStream(site).
func ChangesSubjectFilter(site string) string { return subjectRoot + ".changes." + site + ".*" }

// ConflictsStream is the conflict log stream at site.
func ConflictsStream(site string) string { return "CONFLICTS_" + site }

// ConflictsSubject is the subject of ConflictsStream(site).
func ConflictsSubject(site string) string { return subjectRoot + ".conflicts." + site }

// DLQStream is the dead-letter stream at site.
func DLQStream(site string) string { return "DLQ_" + site }

// DLQSubject is a subject of DLQStream(site); kind is a single token
// naming what failed (for example "apply" or "event").
func DLQSubject(site, kind string) string { return subjectRoot + ".dlq." + site + "." + kind }

// DLQSubjectFilter is the subject filter of DLQStream(site).
func DLQSubjectFilter(site string) string { return subjectRoot + ".dlq." + site + ".>" }

// MirrorConsumer is the name of the durable consumer on ChangesStream(origin)
// that feeds the mirror of it at site dest ("durable sourcing"), for a link
// without a secret (MirrorConsumerFor).
func MirrorConsumer(dest string) string { return "MIRROR_" + dest }

// MirrorConsumerFor is the name of the durable consumer on
// ChangesStream(origin) that feeds the mirror of it at dest, over a link
// whose two ends share secret (the link password): MIRROR_<dest>_ and 128
// bits of an HMAC of the pair under the secret.
//
// The name must be one no third site can guess. Flow-control replies
// acknowledge records to this consumer, and nats-server's mirror answers a
// flow-control request on whatever reply subject its sender chose; every
// mirror of a site lives in the one site account, whose imports route
// $JS.FC.CHANGES_<origin>.<name>.* to origin. So a peer p that knew the
// name could make this site's mirror of p answer p's forged request on
// that subject, and move the acknowledgement floor of origin's consumer
// for this site: after the next consumer reset, records of origin never
// reach this site. With the name unknown to p, no subject p can choose
// matches an import (broker/containment_test.go). Without a secret the
// name is MirrorConsumer(dest).
func MirrorConsumerFor(origin, dest, secret string) string {
	if secret == "" {
		return MirrorConsumer(dest)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("s3mesh mirror consumer\x00" + origin + "\x00" + dest))
	return MirrorConsumer(dest) + "_" + hex.EncodeToString(mac.Sum(nil)[:16])
}

// RecordsSubject is where the agent of site answers peer's one question
// about peer's own records in site's mirror of them (how many, the first
// and last sequence, the last record's bytes): the start-up check and
// `s3mesh rebuild` of peer need it. It crosses only the link site–peer, and
// the agent ignores the request body, so a peer cannot shape the work it
// asks for (nats-server's own STREAM.INFO takes options from the body, one
// of which allocates per deleted sequence: see Links).
func RecordsSubject(site, peer string) string {
	return subjectRoot + ".admin." + site + ".records." + peer
}

// MirrorDeliverSubject is the subject on which MirrorConsumer(dest) on
// ChangesStream(origin) pushes records to the mirror at dest. It crosses
// the leaf-node link origin–dest.
func MirrorDeliverSubject(origin, dest string) string {
	return subjectRoot + ".mirror." + origin + "." + dest
}
