package integration

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/schema"
)

// The checker's rules for tombstones, duplicate records, ranks and
// conflicts. Like the rest of the checker they are pure functions of a
// Workload and an Observed.

// checkPolicy is a bucket's conflict policy as the checker needs it.
type checkPolicy struct {
	schema.Policy
	KeepLosers   bool   // each losing version's bytes are kept (keep_losers)
	LosersPrefix string // under this prefix, at schema.LoserKey
}

// policyOf is what the agent makes of a bucket's conflicts section.
func policyOf(c config.Conflicts) checkPolicy {
	p := checkPolicy{Policy: schema.Policy{Mode: c.Policy, Priority: c.Priority, Deletes: c.Deletes},
		KeepLosers: c.Keep(), LosersPrefix: c.LosersPrefix}
	if p.LosersPrefix == "" {
		p.LosersPrefix = config.DefaultLosersPrefix
	}
	return p
}

// recRef names one record: its stream and sequence.
type recRef struct {
	stream string
	seq    uint64
}

func (v obsVersion) ref() recRef { return recRef{v.Stream, v.Seq} }

func versionsByKey(vs []obsVersion) map[string][]obsVersion {
	m := map[string][]obsVersion{}
	for _, v := range vs {
		m[v.Key] = append(m[v.Key], v)
	}
	return m
}

// predecessor returns the version v was made over at its origin: the
// greatest, in the conflict order (schema.Version.Less), of the key's
// versions that v causally follows. A site holds the greatest version it
// has seen and the merge of every clock it has seen (schema.Decide), a
// version below that clock is below some version the site has seen, and a
// local write's clock is that merged clock with the site's entry bumped: so
// this is the version the origin held. nil if v follows no version.
func predecessor(v obsVersion, versions []obsVersion) *obsVersion {
	var best *obsVersion
	for i, x := range versions {
		if x.V.Clock.Compare(v.V.Clock) != schema.Before {
			continue
		}
		if best == nil || best.V.Less(x.V) {
			best = &versions[i]
		}
	}
	return best
}

// deleteMatch pairs tombstone records with the DELETEs that made them.
type deleteMatch struct {
	tombOf map[int]obsVersion // index of a DELETE in Workload.all() → its tombstone
	opOf   map[recRef]int     // tombstone → index of its DELETE
	probs  []string
}

// matchTombstones explains every tombstone record: a tombstone that site X
// publishes says that X's store lost the key while X held a version of it,
// and the only legitimate cause is a DELETE at X (the event of it, or the
// scanner finding the key gone when the event was lost). So each tombstone
// in CHANGES_X is matched one-to-one with a DELETE at X that may have
// happened (acknowledged, or failed without a refusal), that began before
// the tombstone was made, and that could have removed the version the
// tombstone replaced (its predecessor): for a version written at X, a DELETE
// after that PUT; for a replica, a DELETE that ended after the version was
// made (a replica lands at X only after that). A DELETE that left no
// tombstone (a no-op, or merged into a replica delete of the same moment)
// matches nothing and is judged by checkAcked; a tombstone that matches no
// DELETE was invented: a delete nobody made wiped what X held.
func matchTombstones(all []Op, o *Observed) deleteMatch {
	m := deleteMatch{tombOf: map[int]obsVersion{}, opOf: map[recRef]int{}}
	byKey := versionsByKey(o.Versions)
	type sk struct{ site, key string }
	dels := map[sk][]int{}
	putOf := map[[3]string]int{} // site, key, MD5 → the PUT
	for i, op := range all {
		if !op.mayHaveHappened() {
			continue
		}
		switch op.Kind {
		case OpDelete:
			dels[sk{op.Site, op.Key}] = append(dels[sk{op.Site, op.Key}], i)
		case OpPut:
			putOf[[3]string{op.Site, op.Key, op.MD5}] = i
		}
	}
	tombs := map[sk][]obsVersion{}
	for _, v := range o.Versions {
		if v.V.Deleted && v.V.Origin == v.Stream { // other origins: an I4 problem of checkNoEcho
			tombs[sk{v.Stream, v.Key}] = append(tombs[sk{v.Stream, v.Key}], v)
		}
	}
	keys := make([]sk, 0, len(tombs))
	for k := range tombs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].key < keys[j].key || keys[i].key == keys[j].key && keys[i].site < keys[j].site
	})
	for _, k := range keys {
		ds := dels[k]
		// The writes of one key at one site are sequential (one writer), so
		// ordering by start orders by end too, and every window below is a
		// range of indices into ds.
		sort.Slice(ds, func(i, j int) bool { return all[ds[i]].Start.Before(all[ds[j]].Start) })
		type window struct {
			t      obsVersion
			lo, hi int
			pred   string
		}
		var ws []window
		for _, t := range tombs[k] {
			p := predecessor(t, byKey[t.Key])
			switch {
			case p == nil:
				m.probs = append(m.probs, fmt.Sprintf("I4 invented delete: CHANGES_%s seq %d: tombstone of %q over no version at all (a site publishes a delete only of a key it holds): %s",
					t.Stream, t.Seq, t.Key, t))
				continue
			case p.V.Deleted:
				m.probs = append(m.probs, fmt.Sprintf("I4 invented delete: CHANGES_%s seq %d: tombstone of %q over the tombstone %s (a site publishes a delete only of a key it holds): %s",
					t.Stream, t.Seq, t.Key, p, t))
				continue
			}
			w := window{t: t, lo: len(ds), hi: -1, pred: p.String()}
			j, local := putOf[[3]string{k.site, k.key, p.etag()}]
			for i, d := range ds {
				op := all[d]
				if op.Start.UnixMilli() > t.MadeAt {
					break
				}
				w.hi = i
				after := op.End.UnixMilli() >= p.MadeAt
				if p.V.Origin == k.site && local {
					after = !op.Start.Before(all[j].End)
				}
				if after && w.lo == len(ds) {
					w.lo = i
				}
			}
			ws = append(ws, w)
		}
		// Intervals against points: taking the intervals by decreasing
		// start and giving each the latest free point in it finds a
		// one-to-one match whenever one exists.
		sort.Slice(ws, func(a, b int) bool {
			if ws[a].lo != ws[b].lo {
				return ws[a].lo > ws[b].lo
			}
			return ws[a].hi > ws[b].hi
		})
		used := make([]bool, len(ds))
		for _, w := range ws {
			i := w.hi
			for i >= w.lo && used[i] {
				i--
			}
			if i >= w.lo && i >= 0 {
				used[i] = true
				m.tombOf[ds[i]] = w.t
				m.opOf[w.t.ref()] = ds[i]
				continue
			}
			m.probs = append(m.probs, fmt.Sprintf("I4 invented delete: CHANGES_%s seq %d: tombstone of %q that no DELETE at %s explains: %s, made over %s; DELETEs of the key at %s that may have happened: %s (each explains one tombstone, made after it began, of a version the site held after it began); %s; versions of the key around it: %s",
				w.t.Stream, w.t.Seq, w.t.Key, k.site, w.t, w.pred, k.site, describeDeletes(all, ds, m.opOf),
				inventedContext(w.t, byKey[w.t.Key], o.Conflicts), describe(around(byKey[w.t.Key], w.t.MadeAt))))
		}
	}
	return m
}

func describeDeletes(all []Op, ds []int, opOf map[recRef]int) string {
	if len(ds) == 0 {
		return "none"
	}
	made := map[int]recRef{}
	for r, i := range opOf {
		made[i] = r
	}
	var out []string
	for _, i := range ds {
		op := all[i]
		s := fmt.Sprintf("%s..%s acked %v", op.Start.UTC().Format("15:04:05.000"), op.End.UTC().Format("15:04:05.000"), op.Acked)
		if r, ok := made[i]; ok {
			s += fmt.Sprintf(" (made CHANGES_%s seq %d)", r.stream, r.seq)
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

// checkDuplicates (I3 at the origin): one write makes one record. Two
// records with one version id, or two records of one site's write of a key
// (the same ETag: every workload body is unique), are a write published
// twice.
func checkDuplicates(o *Observed) (probs []string, n int) {
	ids := map[string]obsVersion{}
	type kv struct{ site, key, etag string }
	writes := map[kv]obsVersion{}
	for _, v := range o.Versions {
		prev, dup := ids[v.V.ID]
		if !dup && !v.V.Deleted {
			prev, dup = writes[kv{v.Stream, v.Key, v.etag()}]
		}
		if dup {
			n++
			probs = append(probs, fmt.Sprintf("I3 two records for one write: CHANGES_%s seq %d and CHANGES_%s seq %d, both of %q: %s and %s",
				prev.Stream, prev.Seq, v.Stream, v.Seq, v.Key, prev, v))
			continue
		}
		ids[v.V.ID] = v
		if !v.V.Deleted {
			writes[kv{v.Stream, v.Key, v.etag()}] = v
		}
	}
	return probs, n
}

// checkRanks: every version carries the rank the bucket's policy gives a
// write at its origin over its predecessor (schema.Policy.Rank: that is
// where the policy's preference lives) and an origin time after its
// predecessor's (schema.NextTS), so the conflict order agrees with the
// policy and with causality.
func checkRanks(o *Observed) []string {
	var probs []string
	byKey := versionsByKey(o.Versions)
	for _, v := range o.Versions {
		p := predecessor(v, byKey[v.Key])
		var held *schema.Version
		if p != nil {
			held = &p.V
		}
		if want := o.Policy.Rank(v.V.Origin, v.V.Deleted, held); v.V.Rank != want {
			probs = append(probs, fmt.Sprintf("policy: version %s of %q has rank %#x, but policy %s gives a write at %s over %s rank %#x",
				v, v.Key, v.V.Rank, o.Policy.Policy, v.V.Origin, describe(ptrs(p)), want))
		}
		if p != nil && v.V.TS <= p.V.TS {
			probs = append(probs, fmt.Sprintf("policy: version %s of %q has origin time %d, not after its predecessor %s (%d)", v, v.Key, v.V.TS, p, p.V.TS))
		}
	}
	return probs
}

func ptrs(p *obsVersion) []obsVersion {
	if p == nil {
		return nil
	}
	return []obsVersion{*p}
}

// checkConflicts: every conflict-log entry is a real conflict decided the
// way the bucket's policy decides it, and its loser is kept where the
// policy keeps losers. An entry may only name versions that some CHANGES
// stream carries, describe them as their records do, pair a winner and a
// loser whose clocks are concurrent (a version that causally follows
// another replaces it; that is no conflict), and, unless parked, pick the
// greater of the two in the conflict order; with keep_losers, the loser's
// bytes must be held at every site at schema.LoserKey (unless a later write
// causally overwrote the loser before its origin saw the winner: then its
// origin no longer held it).
func checkConflicts(o *Observed) (probs []string, st conflictStats) {
	byID := map[string]obsVersion{}
	for _, v := range o.Versions {
		byID[v.V.ID] = v
	}
	byKey := versionsByKey(o.Versions)
	keptSeen := map[string]bool{}
	for _, c := range o.Conflicts {
		st.entries++
		where := fmt.Sprintf("CONFLICTS_%s: %q %s: winner %s, loser %s", c.Site, c.Key, c.Outcome, c.Winner.ID, c.Loser.ID)
		w, okW := byID[c.Winner.ID]
		l, okL := byID[c.Loser.ID]
		if !okW || !okL {
			probs = append(probs, fmt.Sprintf("I2 conflict log: %s names a version that no CHANGES stream carries", where))
			continue
		}
		for _, x := range []struct {
			info schema.VersionInfo
			v    obsVersion
		}{{c.Winner, w}, {c.Loser, l}} {
			if d := infoDiff(x.info, x.v.V); d != "" {
				probs = append(probs, fmt.Sprintf("I2 conflict log: %s describes %s not as its record does: %s", where, x.v.V.ID, d))
			}
		}
		if ord := w.V.Clock.Compare(l.V.Clock); ord != schema.Concurrent {
			probs = append(probs, fmt.Sprintf("I2 conflict loser whose winner was not concurrent with it: %s: the winner's clock {%s} is %s the loser's {%s}",
				where, w.V.Clock, ord, l.V.Clock))
		}
		if want := o.Policy.Policy.String(); c.Policy != want {
			probs = append(probs, fmt.Sprintf("I2 conflict decided under another policy: %s: policy %q, the bucket's is %q", where, c.Policy, want))
		}
		park := c.Outcome == schema.Park.String()
		if park != (o.Policy.Mode == schema.ModeManual) {
			probs = append(probs, fmt.Sprintf("I2 conflict outcome %q under policy %s: %s", c.Outcome, o.Policy.Policy, where))
		}
		if !park && !l.V.Less(w.V) {
			probs = append(probs, fmt.Sprintf("I2 conflict winner is not the policy's pick: %s: by (rank, origin time, origin, id) the loser (%#x, %d, %s) sorts above the winner (%#x, %d, %s)",
				where, l.V.Rank, l.V.TS, l.V.Origin, w.V.Rank, w.V.TS, w.V.Origin))
		}
		kept := ""
		if o.Policy.KeepLosers && !l.V.Deleted && !park {
			kept = schema.LoserKey(o.Policy.LosersPrefix, o.Bucket, c.Key, l.V)
		}
		if c.LoserKeptAs != kept {
			probs = append(probs, fmt.Sprintf("I2 conflict loser not kept: %s: the entry names the kept copy %q, the policy (keep losers %v) and schema.LoserKey give %q",
				where, c.LoserKeptAs, o.Policy.KeepLosers, kept))
		}
		if kept == "" || keptSeen[l.V.ID] {
			continue
		}
		keptSeen[l.V.ID] = true
		if dominated(l, byKey[l.Key]) {
			st.overwritten++
			continue
		}
		st.kept++
		for _, s := range o.Sites {
			if got := o.Final[kept][s]; !got.Present || got.MD5 != l.etag() {
				st.kept--
				probs = append(probs, fmt.Sprintf("I2 conflict loser not kept: %s of %q lost a conflict (decided by %s) and is to be kept at %q, but %s holds %s there",
					l, l.Key, c.Site, kept, s, got))
				break
			}
		}
	}
	return probs, st
}

// conflictStats counts the conflict-log entries and the losers' copies.
type conflictStats struct{ entries, kept, overwritten int }

func (s conflictStats) String() string {
	return fmt.Sprintf("%d conflict entries checked, %d losers kept at every site, %d losers overwritten causally before their origin kept them", s.entries, s.kept, s.overwritten)
}

// infoDiff compares a conflict-log description with the version's record.
func infoDiff(info schema.VersionInfo, v schema.Version) string {
	var d []string
	if info.Origin != v.Origin {
		d = append(d, fmt.Sprintf("origin %s, record %s", info.Origin, v.Origin))
	}
	if c := schema.Clock(info.Clock); c.Compare(v.Clock) != schema.Equal {
		d = append(d, fmt.Sprintf("clock {%s}, record {%s}", c, v.Clock))
	}
	if info.Deleted != v.Deleted {
		d = append(d, fmt.Sprintf("deleted %v, record %v", info.Deleted, v.Deleted))
	}
	if info.ETag != strings.Trim(v.ETag, `"`) {
		d = append(d, fmt.Sprintf("etag %s, record %s", short(info.ETag), short(v.ETag)))
	}
	if !info.OriginTime.Equal(time.UnixMilli(v.TS)) {
		d = append(d, fmt.Sprintf("origin time %s, record %s", info.OriginTime.Format(time.RFC3339Nano), time.UnixMilli(v.TS).UTC().Format(time.RFC3339Nano)))
	}
	return strings.Join(d, "; ")
}
