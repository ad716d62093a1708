package broker

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Least privilege between sites.
//
// A site's own streams, its agent and its tools live in one NATS account,
// SiteAccount, with JetStream. The leaf link to each peer p lives in an
// account of its own, PeerAccount(p), that has no JetStream and nothing in
// it but the link. Whatever p sends over the link lands in PeerAccount(p),
// where nothing answers it; only the subjects the two accounts explicitly
// export and import to each other cross into SiteAccount. Those are exactly
// what the two mirrors of the link need (see LinkSubjects):
//
//   - records of p's CHANGES stream pushed to this site's mirror, and this
//     site's records pushed to p's mirror (the mirror deliver subjects);
//   - the one JetStream API request each mirror makes of the other side,
//     a reset of its own durable consumer (CONSUMER.RESET of
//     CHANGES_<origin>/<its consumer>), and the flow-control replies that
//     acknowledge records to that one consumer, whose name holds a secret
//     of the link (MirrorConsumerFor: a third site cannot address it);
//   - two read-only agent requests: p's question about its own records in
//     this site's mirror of them (RecordsSubject: the agent's start-up
//     check and `s3mesh rebuild` need it) and a page of this site's
//     per-key state (StatePageSubject, for `s3mesh rebuild`).
//
// Nothing else of the JetStream API crosses. In particular no request
// whose body nats-server reads as options: STREAM.INFO takes
// deleted_details from the body and then allocates one slot per deleted
// sequence of the stream (nats-server v2.15.3, filestore State), and a
// mirror inherits every gap of its origin, so a peer that purged its own
// stream forward to 2^44 and asked a peer's STREAM.INFO of its mirror
// crashed that peer's server with one request. STREAM.MSG.GET and
// DIRECT.GET take batch and multi-subject options from the body too. The
// agent's RecordsSubject answers the one fixed question instead.
//
// So p cannot reach this site's JetStream API otherwise (no purge, delete,
// create or update of any stream or consumer, no reading of streams),
// cannot publish into CHANGES, EVENTS, CONFLICTS or DLQ of this site,
// cannot call its admin service, and cannot acknowledge records for the
// mirror consumer of any other peer. It also cannot subscribe to anything
// of this site beyond the same subjects (nothing else crosses the link).
//
// The accounts are enforced by the server that receives the traffic,
// whichever side dialled the link: a dialled link binds to PeerAccount(p)
// with the remote's account setting, an accepted one through the leaf
// user p logs in as. A compromised peer's server therefore cannot lift the
// restrictions: they are this site's configuration, not the peer's.
const SiteAccount = "SITE"

// PeerAccount is the account holding the leaf link to peer.
func PeerAccount(peer string) string { return "PEER_" + peer }

// LinkSubjects lists what may cross the link between site and peer, seen
// from site: Out are subjects site serves to peer (its records and its side
// of peer's mirror), In are subjects site imports from peer.
type LinkSubjects struct {
	// OutStream: messages published in SiteAccount that peer may receive.
	OutStream []string
	// OutService: requests peer may make of SiteAccount (as seen on the
	// link), with the subject each maps to in SiteAccount.
	OutService []ServiceMap
	// InStream: messages published over the link that SiteAccount takes.
	InStream []string
	// InService: requests SiteAccount may make over the link.
	InService []string
}

// ServiceMap is a service subject on the link and where it lands.
type ServiceMap struct{ Link, Site string }

// Links computes the subjects of the link site–peer; secret is the link's
// shared secret ("" for a link without one: MirrorConsumerFor).
func Links(site, peer, secret string) LinkSubjects {
	fc := func(origin, dest string) []string {
		// Flow-control replies to the consumer feeding dest's mirror, in
		// both formats nats-server uses (v1 and v2 with domain and
		// account hash).
		name := MirrorConsumerFor(origin, dest, secret)
		return []string{
			"$JS.FC." + ChangesStream(origin) + "." + name + ".*",
			"$JS.FC." + origin + ".*." + ChangesStream(origin) + "." + name + ".*",
		}
	}
	reset := func(origin, dest string) string {
		return "CONSUMER.RESET." + ChangesStream(origin) + "." + MirrorConsumerFor(origin, dest, secret)
	}
	var l LinkSubjects
	l.OutStream = []string{MirrorDeliverSubject(site, peer)}
	// The leaf connection's account maps $JS.<site>.API.> to $JS.API.>
	// before imports are matched.
	l.OutService = append(l.OutService, ServiceMap{Link: "$JS.API." + reset(site, peer), Site: "$JS.API." + reset(site, peer)})
	for _, s := range append(fc(site, peer), StatePageSubject(site), RecordsSubject(site, peer)) {
		l.OutService = append(l.OutService, ServiceMap{Link: s, Site: s})
	}
	l.InStream = []string{MirrorDeliverSubject(peer, site)}
	l.InService = append(l.InService, "$JS."+peer+".API."+reset(peer, site))
	l.InService = append(l.InService, fc(peer, site)...)
	l.InService = append(l.InService, StatePageSubject(peer), RecordsSubject(peer, site))
	return l
}

// StatePageSubject is the one admin request a peer may make of site: a
// page of its per-key state (read-only), which `s3mesh rebuild` of the
// peer needs. It must equal agent.AdminSubject(site, "state.page").
func StatePageSubject(site string) string { return subjectRoot + ".admin." + site + ".state.page" }

// AccountUser is one user entry of an account, already in nats-server
// configuration syntax (e.g. `{user: "a", password: "..."}`).
type AccountUser = string

// AccountsConfig renders the accounts block of site's nats-server
// configuration: SiteAccount with JetStream and siteUsers, and one account
// per peer with the exports and imports of Links. peerUsers[p] are the leaf
// users p may log in as (only for peers that dial this site); secrets[p] is
// the secret of the link to p (MirrorConsumerFor; none: "").
func AccountsConfig(site string, peers []string, siteUsers []AccountUser, peerUsers map[string][]AccountUser, secrets map[string]string) string {
	peers = append([]string(nil), peers...)
	sort.Strings(peers)
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	q := strconv.Quote
	w("accounts {\n")
	w("  # This site's streams, agent and tools. Peers reach it only through the\n")
	w("  # exports below, each to one peer's link account.\n")
	w("  %s {\n    jetstream: enabled\n    users: [\n", SiteAccount)
	for _, u := range siteUsers {
		w("      %s\n", u)
	}
	w("    ]\n    exports: [\n")
	for _, p := range peers {
		l := Links(site, p, secrets[p])
		for _, s := range l.OutStream {
			w("      {stream: %s, accounts: [%s]}\n", q(s), PeerAccount(p))
		}
		for _, s := range l.OutService {
			w("      {service: %s, accounts: [%s]}\n", q(s.Site), PeerAccount(p))
		}
	}
	w("    ]\n    imports: [\n")
	for _, p := range peers {
		l := Links(site, p, secrets[p])
		for _, s := range l.InStream {
			w("      {stream: {account: %s, subject: %s}}\n", PeerAccount(p), q(s))
		}
		for _, s := range l.InService {
			w("      {service: {account: %s, subject: %s}}\n", PeerAccount(p), q(s))
		}
	}
	w("    ]\n  }\n")
	for _, p := range peers {
		l := Links(site, p, secrets[p])
		w("  # The leaf link to site %s: nothing else lives here.\n", p)
		w("  %s {\n", PeerAccount(p))
		if us := peerUsers[p]; len(us) > 0 {
			w("    users: [\n")
			for _, u := range us {
				w("      %s\n", u)
			}
			w("    ]\n")
		}
		w("    exports: [\n")
		for _, s := range l.InStream {
			w("      {stream: %s, accounts: [%s]}\n", q(s), SiteAccount)
		}
		for _, s := range l.InService {
			w("      {service: %s, accounts: [%s]}\n", q(s), SiteAccount)
		}
		w("    ]\n    imports: [\n")
		for _, s := range l.OutStream {
			w("      {stream: {account: %s, subject: %s}}\n", SiteAccount, q(s))
		}
		for _, s := range l.OutService {
			w("      {service: {account: %s, subject: %s}, to: %s}\n", SiteAccount, q(s.Site), q(s.Link))
		}
		w("    ]\n  }\n")
	}
	w("}\n")
	return b.String()
}
