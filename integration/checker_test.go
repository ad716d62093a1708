package integration

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/verify"
)

// The no-silent-loss checker. CheckNoSilentLoss reads what the lab shows
// after quiescence (every site's bytes, every CHANGES_<site> record at its
// origin, every CONFLICTS_<site> entry, the DLQs) into an Observed, then the
// pure functions checkConvergence (I1), checkAcked (I2), checkNoEcho (I4),
// matchTombstones (every tombstone made by one DELETE at its site),
// checkDuplicates (one record per write), checkRanks and checkConflicts
// (every conflict real, decided by the bucket's policy, its loser kept) turn
// a Workload and an Observed into a list of problems. They never call
// t.Fatal, so tests can feed them fabricated input and assert that they fail
// (checker_self_test.go).

// finalState is what one site holds for one key.
type finalState struct {
	Present bool
	MD5     string
	Size    int64
	Via     string // "local write", or the replica's version id (not compared)
}

func (f finalState) same(g finalState) bool {
	return f.Present == g.Present && f.MD5 == g.MD5 && f.Size == g.Size
}

func (f finalState) String() string {
	if !f.Present {
		return "absent"
	}
	if f.Via != "" {
		return fmt.Sprintf("%s(%dB, %s)", short(f.MD5), f.Size, f.Via)
	}
	return fmt.Sprintf("%s(%dB)", short(f.MD5), f.Size)
}

// obsVersion is one change record read from its origin's CHANGES stream.
type obsVersion struct {
	Stream string // the site whose CHANGES_<site> holds it
	Seq    uint64
	Key    string
	V      schema.Version
	MadeAt int64 // unix ms
}

func (v obsVersion) etag() string { return strings.Trim(v.V.ETag, `"`) }

func (v obsVersion) String() string {
	what := "tombstone"
	if !v.V.Deleted {
		what = "etag " + short(v.etag())
	}
	return fmt.Sprintf("%s [%s] clock{%s} %s made %s", v.V.ID, v.V.Origin, v.V.Clock, what,
		time.UnixMilli(v.MadeAt).UTC().Format("15:04:05.000"))
}

// Observed is what a lab shows for one workload after quiescence.
type Observed struct {
	Bucket    string
	Policy    checkPolicy // the bucket's conflict policy
	Sites     []string
	Final     map[string]map[string]finalState // key → site → state (workload keys and every listed key)
	Versions  []obsVersion                     // records of the workload's keys and of their kept losers
	Conflicts []schema.ConflictEntry           // entries for the workload's keys
	Dead      []consumer.DeadLetter            // DLQ entries for the workload's keys
}

// final is what most sites hold for key (the first site's state on a tie):
// the final value, when I1 holds.
func (o *Observed) final(key string) finalState {
	best, bestN := o.Final[key][o.Sites[0]], 0
	for _, s := range o.Sites {
		n := 0
		for _, s2 := range o.Sites {
			if o.Final[key][s2].same(o.Final[key][s]) {
				n++
			}
		}
		if n > bestN {
			best, bestN = o.Final[key][s], n
		}
	}
	return best
}

// CheckReport is the checker's verdict.
type CheckReport struct {
	Problems []string // each one a violated invariant
	Warnings []string // odd but allowed
	Summary  string
}

// CheckNoSilentLoss checks I1 (convergence), I2 (no silent loss) and I4 (no
// echo) for everything w did, and runs the independent verifier on the
// bucket. Call it after e.quiesce.
//
// quiesce cannot see a change that only the scanner will find (the store's
// events are lossy hints by design), so when the first check finds
// problems, the checker waits until every agent has completed two full
// scans of the bucket after that moment, quiesces again and checks again:
// only what survives that is reported as a failure; the first findings are
// logged.
func (e *env) CheckNoSilentLoss(t *testing.T, w *Workload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := e.checkNoSilentLoss(ctx, w)
	if err != nil {
		t.Fatalf("no-silent-loss checker: %v", err)
	}
	if len(rep.Problems) > 0 {
		t.Logf("%d problem(s) right after quiescence; waiting for two full scans at every site, then checking again:", len(rep.Problems))
		for _, p := range rep.Problems {
			t.Logf("  first check: %s", p)
		}
		e.waitScans(t, w.Opts.Bucket, time.Now(), 3*time.Minute)
		e.quiesce(t, 3*time.Minute)
		if rep, err = e.checkNoSilentLoss(ctx, w); err != nil {
			t.Fatalf("no-silent-loss checker: %v", err)
		}
	}
	t.Log(rep.Summary)
	for _, s := range rep.Warnings {
		t.Logf("warning: %s", s)
	}
	for _, p := range rep.Problems {
		t.Error(p)
	}
}

// checkNoSilentLoss observes the lab, runs every check and the verifier.
func (e *env) checkNoSilentLoss(ctx context.Context, w *Workload) (*CheckReport, error) {
	o, err := e.observe(ctx, w)
	if err != nil {
		return nil, err
	}
	rep := runChecks(w, o)
	p, warn, err := e.runVerify(ctx, w)
	if err != nil {
		return nil, err
	}
	rep.Problems = append(rep.Problems, p...)
	rep.Warnings = append(rep.Warnings, warn...)
	return rep, nil
}

// runVerify runs package verify on the workload's bucket at every site. A
// difference under the workload's prefixes is a problem; elsewhere in the
// bucket it is one only on a lab of the test's own (on the shared lab other
// tests leave keys behind on purpose, such as keys a site cannot store).
func (e *env) runVerify(ctx context.Context, w *Workload) (probs, warns []string, err error) {
	var sites []verify.Site
	for _, n := range e.names {
		sites = append(sites, verify.Site{Name: n, S3: e.sites[n].s3})
	}
	r, err := verify.Run(ctx, sites, verify.Options{Buckets: []string{w.Opts.Bucket}})
	if err != nil {
		return nil, nil, fmt.Errorf("verify: %w", err)
	}
	if r.Converged {
		return nil, nil, nil
	}
	others := 0
	lp := policyOf(e.conflicts[w.Opts.Bucket]).LosersPrefix
	for _, d := range r.Differences {
		msg := fmt.Sprintf("verify: %s/%s: %s %s %v", d.Bucket, d.Key, d.Kind, d.Detail, d.Sites)
		switch {
		case strings.HasPrefix(d.Key, w.Opts.Prefix) || strings.HasPrefix(d.Key, lp+w.Opts.Prefix):
			probs = append(probs, "I1 "+msg)
		case e != shared:
			probs = append(probs, "I1 "+msg)
		default:
			others++
		}
	}
	if others > 0 {
		warns = append(warns, fmt.Sprintf("verify: %d of %d differences in bucket %s are outside this workload's keys (other tests' leftovers on the shared lab)", others, r.TotalDifferences, w.Opts.Bucket))
	}
	return probs, warns, nil
}

// waitScans waits until every site's agent has completed two scans of bkt
// after since (the second one started after since).
func (e *env) waitScans(t *testing.T, bkt string, since time.Time, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, s := range e.names {
		last, n := since, 0
		for n < 2 {
			if ls, err := e.lastScan(s, bkt); err == nil && ls.After(last) {
				last, n = ls, n+1
				continue
			}
			if time.Now().After(deadline) {
				t.Fatalf("site %s: no two scans of %s completed within %v", s, bkt, timeout)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// lastScan asks site's agent (admin "status" over NATS) when its last scan
// of bkt completed.
func (e *env) lastScan(site, bkt string) (time.Time, error) {
	req, _ := json.Marshal(agent.AdminRequest{})
	m, err := e.sites[site].nc.Request(agent.AdminSubject(site, "status"), req, 10*time.Second)
	if err != nil {
		return time.Time{}, err
	}
	var rep agent.AdminReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return time.Time{}, err
	}
	if !rep.OK {
		return time.Time{}, errors.New(rep.Error)
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(rep.Outcome), &st); err != nil {
		return time.Time{}, err
	}
	for _, b := range st.Buckets {
		if b.Bucket == bkt {
			return b.LastScan, nil
		}
	}
	return time.Time{}, fmt.Errorf("site %s does not scan bucket %s", site, bkt)
}

// runChecks runs the pure checks.
func runChecks(w *Workload, o *Observed) *CheckReport {
	rep := &CheckReport{}
	rep.Problems = append(rep.Problems, checkAckedETags(w)...)
	rep.Problems = append(rep.Problems, checkConvergence(o)...)
	all := w.all()
	dm := matchTombstones(all, o)
	rep.Problems = append(rep.Problems, dm.probs...)
	p, warn, st := checkAcked(w, all, dm, o)
	rep.Problems = append(rep.Problems, p...)
	rep.Warnings = append(rep.Warnings, warn...)
	p, echoSt := checkNoEcho(w, all, dm, o)
	rep.Problems = append(rep.Problems, p...)
	p, echoSt.duplicates = checkDuplicates(o)
	rep.Problems = append(rep.Problems, p...)
	rep.Problems = append(rep.Problems, checkRanks(o)...)
	p, conflSt := checkConflicts(o)
	rep.Problems = append(rep.Problems, p...)
	puts, dels, failed, refused := w.Counts()
	losers := map[string]bool{}
	for _, c := range o.Conflicts {
		losers[c.Loser.ID] = true
	}
	finalKeys := 0
	for _, k := range w.Keys {
		if o.final(k).Present {
			finalKeys++
		}
	}
	rep.Summary = fmt.Sprintf("no-silent-loss %s: writes acked %d (%d puts, %d deletes; %d failed calls unchecked, %d of them refused conditional writes), versions %d, conflicts %d, losers %d, final keys %d/%d present, DLQ %d | acked writes: %s | records: %s | conflicts: %s | problems %d",
		w.Opts.Prefix, puts+dels, puts, dels, failed, refused, len(o.Versions), len(o.Conflicts), len(losers), finalKeys, len(w.Keys), len(o.Dead),
		st, echoSt, conflSt, len(rep.Problems))
	return rep
}

// observe reads every site's bytes, CHANGES, CONFLICTS and DLQ for w's keys.
func (e *env) observe(ctx context.Context, w *Workload) (*Observed, error) {
	bkt := w.Opts.Bucket
	o := &Observed{Bucket: bkt, Policy: policyOf(e.conflicts[bkt]), Sites: append([]string(nil), e.names...), Final: map[string]map[string]finalState{}}
	lp := o.Policy.LosersPrefix
	mine := func(key string) bool {
		return strings.HasPrefix(key, w.Opts.Prefix) || strings.HasPrefix(key, lp+w.Opts.Prefix)
	}
	keys := map[string]bool{}
	for _, k := range w.Keys {
		keys[k] = true
	}
	for _, s := range e.names {
		for _, p := range []string{w.Opts.Prefix, lp + w.Opts.Prefix} {
			ks, err := e.listKeys(ctx, s, bkt, p)
			if err != nil {
				return nil, err
			}
			for _, k := range ks {
				keys[k] = true
			}
		}
	}
	for _, s := range e.names {
		js := e.sites[s].js
		records := js
		if p, ok := e.recordsAt[s]; ok {
			records = e.sites[p].js
		}
		err := broker.ReadStream(ctx, records, broker.ChangesStream(s), time.Time{}, func(seq uint64, data []byte) error {
			r, err := schema.Decode(data)
			if err != nil {
				// Not a record at all: the poison-record test publishes such
				// bytes on purpose (consumers dead-letter them). They belong
				// to no workload.
				return nil
			}
			if r.Bucket == bkt && mine(r.Key) {
				o.Versions = append(o.Versions, obsVersion{Stream: s, Seq: seq, Key: r.Key, V: r.Version, MadeAt: r.MadeAt})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		conflict := func(seq uint64, data []byte) error {
			var c schema.ConflictEntry
			if err := json.Unmarshal(data, &c); err != nil {
				return fmt.Errorf("CONFLICTS_%s seq %d: %w", s, seq, err)
			}
			if c.Bucket == bkt && mine(c.Key) {
				o.Conflicts = append(o.Conflicts, c)
			}
			return nil
		}
		for i, data := range e.lostConflicts[s] {
			if err := conflict(uint64(i+1), data); err != nil {
				return nil, fmt.Errorf("before the loss: %w", err)
			}
		}
		if err := broker.ReadStream(ctx, js, broker.ConflictsStream(s), time.Time{}, conflict); err != nil {
			return nil, err
		}
		err = broker.ReadStream(ctx, js, broker.DLQStream(s), time.Time{}, func(seq uint64, data []byte) error {
			var d consumer.DeadLetter
			if json.Unmarshal(data, &d) == nil && d.Bucket == bkt && mine(d.Key) {
				o.Dead = append(o.Dead, d)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// The kept copies the conflicts call for, wherever they are.
	for _, c := range o.Conflicts {
		if c.LoserKeptAs != "" {
			keys[c.LoserKeptAs] = true
		}
		if v := c.Loser; !v.Deleted {
			keys[schema.LoserKey(lp, bkt, c.Key, schema.Version{Origin: v.Origin, TS: v.OriginTime.UnixMilli()})] = true
		}
	}
	for k := range keys {
		o.Final[k] = map[string]finalState{}
		for _, s := range e.names {
			st, err := e.finalAt(ctx, s, bkt, k)
			if err != nil {
				return nil, err
			}
			o.Final[k][s] = st
		}
	}
	return o, nil
}

func (e *env) listKeys(ctx context.Context, site, bkt, prefix string) ([]string, error) {
	var out []string
	pg := s3.NewListObjectsV2Paginator(e.sites[site].raw, &s3.ListObjectsV2Input{Bucket: aws.String(bkt), Prefix: aws.String(prefix)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s/%s at %s: %w", bkt, prefix, site, err)
		}
		for _, c := range page.Contents {
			out = append(out, aws.ToString(c.Key))
		}
	}
	return out, nil
}

func (e *env) finalAt(ctx context.Context, site, bkt, key string) (finalState, error) {
	rc, info, err := e.sites[site].s3.Get(ctx, bkt, key, "")
	if s3io.Classify(err) == s3io.NotFound {
		return finalState{}, nil
	}
	if err != nil {
		return finalState{}, fmt.Errorf("get %s/%s at %s: %w", bkt, key, site, err)
	}
	defer rc.Close()
	h := md5.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return finalState{}, fmt.Errorf("read %s/%s at %s: %w", bkt, key, site, err)
	}
	via := "local write"
	if vid := info.Meta[schema.MetaVID]; vid != "" {
		via = "replica of " + vid
	}
	return finalState{Present: true, MD5: hex.EncodeToString(h.Sum(nil)), Size: n, Via: via}, nil
}

// checkConvergence (I1): every site holds the same bytes for every key (or
// none anywhere).
func checkConvergence(o *Observed) []string {
	var probs []string
	for _, k := range sortedKeys(o.Final) {
		ref := o.Final[k][o.Sites[0]]
		for _, s := range o.Sites[1:] {
			if got := o.Final[k][s]; !got.same(ref) {
				var all []string
				for _, s2 := range o.Sites {
					all = append(all, s2+"="+o.Final[k][s2].String())
				}
				probs = append(probs, fmt.Sprintf("I1 not converged: key %q: %s", k, strings.Join(all, " ")))
				break
			}
		}
	}
	return probs
}

// ackStats counts how each acknowledged write ended.
type ackStats struct {
	final, byFinal, byOther, loser, overwrittenLocally, noopDelete, deleteToAbsent int
}

func (s ackStats) String() string {
	return fmt.Sprintf("%d final, %d overwritten by the final version, %d by a later version, %d conflict losers, %d overwritten locally before publish, %d no-op deletes, %d deletes the final absence reflects",
		s.final, s.byFinal, s.byOther, s.loser, s.overwrittenLocally, s.noopDelete, s.deleteToAbsent)
}

// checkAcked (I2): every acknowledged write ends as the final value,
// overwritten by a write that causally followed it, or a logged conflict
// loser (whose bytes are kept).
func checkAcked(w *Workload, all []Op, dm deleteMatch, o *Observed) (probs, warns []string, st ackStats) {
	byKey := map[string][]obsVersion{}
	for _, v := range o.Versions {
		byKey[v.Key] = append(byKey[v.Key], v)
	}
	losers := map[string][]schema.ConflictEntry{}
	for _, c := range o.Conflicts {
		losers[c.Loser.ID] = append(losers[c.Loser.ID], c)
	}
	dead := map[string]consumer.DeadLetter{}
	for _, d := range o.Dead {
		dead[d.VersionID] = d
	}
	// F: the final version(s) of every key.
	finals := map[string][]obsVersion{}
	for _, k := range w.Keys {
		fs := o.final(k)
		for _, v := range byKey[k] {
			if fs.Present && !v.V.Deleted && v.etag() == fs.MD5 {
				finals[k] = append(finals[k], v)
			}
			if !fs.Present && v.V.Deleted && !dominated(v, byKey[k]) && len(losers[v.V.ID]) == 0 {
				finals[k] = append(finals[k], v)
			}
		}
		if fs.Present && len(finals[k]) == 0 {
			probs = append(probs, fmt.Sprintf("I2: key %q: the sites hold bytes %s that no change record carries", k, fs))
		}
	}
	bySiteKey := map[[2]string][]Op{}
	for _, op := range all {
		bySiteKey[[2]string{op.Site, op.Key}] = append(bySiteKey[[2]string{op.Site, op.Key}], op)
	}
	for i, op := range all {
		if !op.Acked {
			continue
		}
		var cands []obsVersion
		for _, v := range byKey[op.Key] {
			if op.Kind == OpPut && v.Stream == op.Site && v.V.Origin == op.Site && !v.V.Deleted && v.etag() == op.MD5 {
				cands = append(cands, v)
			}
		}
		if t, ok := dm.tombOf[i]; ok {
			cands = append(cands, t) // the tombstone this DELETE made
		}
		fs := o.final(op.Key)
		what := fmt.Sprintf("acknowledged %s of %q at %s (writer %d seq %d, %s, %s..%s)", op.Kind, op.Key, op.Site, op.Writer, op.Seq,
			opBody(op), op.Start.UTC().Format("15:04:05.000"), op.End.UTC().Format("15:04:05.000"))
		if len(cands) == 0 {
			if later := laterWrite(op, bySiteKey[[2]string{op.Site, op.Key}], byKey[op.Key], fs); later != nil {
				st.overwrittenLocally++
				continue
			}
			if op.Kind == OpDelete {
				switch {
				case !fs.Present:
					st.deleteToAbsent++
					continue
				case !op.PreExisted:
					st.noopDelete++
					continue
				case racingReplicaDelete(op, byKey[op.Key]) != nil:
					// Between the HEAD and the DELETE a replica delete may
					// have removed the key: the DELETE then changed nothing.
					st.noopDelete++
					warns = append(warns, fmt.Sprintf("%s left no tombstone; a replica delete (%s) may have emptied the key first", what, racingReplicaDelete(op, byKey[op.Key])))
					continue
				case absorbingReplicaDelete(op, byKey[op.Key], finals[op.Key]) != nil:
					// The site applied a remote delete of the key at the same
					// moment (its conditional DELETE succeeds on a key already
					// gone, versitygw answers 204): the two deletes merged into
					// one, and the final version causally follows that delete.
					st.noopDelete++
					warns = append(warns, fmt.Sprintf("%s merged into the concurrent replica delete %s, which the final version follows", what, absorbingReplicaDelete(op, byKey[op.Key], finals[op.Key])))
					continue
				}
			}
			probs = append(probs, fmt.Sprintf("I2 acknowledged write lost: %s: no change record at %s, no later write at %s; final state %s (final version %s); versions of the key around it: %s",
				what, op.Site, op.Site, fs, describe(finals[op.Key]), describe(around(byKey[op.Key], op.Start.UnixMilli()))))
			continue
		}
		// More than one record of a PUT is a problem of checkDuplicates;
		// the write is kept if any of them is.
		var why []string
		ok := false
		for _, v := range cands {
			switch {
			case slices.ContainsFunc(finals[op.Key], func(f obsVersion) bool { return f.V.ID == v.V.ID }):
				st.final++
				ok = true
			case slices.ContainsFunc(finals[op.Key], func(f obsVersion) bool { return f.V.Clock.Compare(v.V.Clock) == schema.After }):
				st.byFinal++
				ok = true
			case len(losers[v.V.ID]) > 0:
				// A logged loser; checkConflicts checks the conflict is real
				// and the loser kept.
				st.loser++
				ok = true
			case dominated(v, byKey[op.Key]):
				// Overwritten by a write that causally followed it, which
				// itself lost a conflict or was overwritten (checked on its own).
				st.byOther++
				ok = true
			default:
				var fdesc []string
				for _, f := range finals[op.Key] {
					fdesc = append(fdesc, fmt.Sprintf("%s (F vs v: %s)", f, f.V.Clock.Compare(v.V.Clock)))
				}
				d := ""
				if dl, isDead := dead[v.V.ID]; isDead {
					d = fmt.Sprintf("; dead-lettered as %s (%s: %s)", dl.ID, dl.Reason, dl.Error)
				}
				why = append(why, fmt.Sprintf("version %s is not final, not dominated by the final version [%s], in no conflict log%s", v, strings.Join(fdesc, "; "), d))
			}
			if ok {
				break
			}
		}
		if !ok {
			probs = append(probs, fmt.Sprintf("I2 acknowledged write lost: %s: %s; final state %s; versions of the key around it: %s",
				what, strings.Join(why, "; "), fs, describe(around(byKey[op.Key], op.Start.UnixMilli()))))
		}
	}
	return probs, warns, st
}

// echoStats counts how every change record is explained.
type echoStats struct {
	byAcked, byFailed, keptLosers, tombstones, duplicates int
}

func (s echoStats) String() string {
	return fmt.Sprintf("%d from acked writes, %d from failed calls that did happen, %d kept-loser copies, %d tombstones each made by its own DELETE, %d duplicates",
		s.byAcked, s.byFailed, s.keptLosers, s.tombstones, s.duplicates)
}

// checkNoEcho (I4): every record in CHANGES_<s> is a local write at s: its
// (key, ETag) is a write the workload made at s (not one the store
// refused), a kept copy of a conflict loser from s, or a tombstone that
// matchTombstones paired with a DELETE the workload made at s (which
// reports the tombstones it cannot pair).
func checkNoEcho(w *Workload, all []Op, dm deleteMatch, o *Observed) (probs []string, st echoStats) {
	type kv struct{ site, key, etag string }
	puts := map[kv]Op{}
	for _, op := range all {
		if op.Kind == OpPut && op.mayHaveHappened() {
			k := kv{op.Site, op.Key, op.MD5}
			if prev, ok := puts[k]; !ok || !prev.Acked {
				puts[k] = op
			}
		}
	}
	kept := map[kv]bool{}
	for _, c := range o.Conflicts {
		if c.LoserKeptAs != "" {
			kept[kv{c.Loser.Origin, c.LoserKeptAs, strings.Trim(c.Loser.ETag, `"`)}] = true
		}
	}
	byKeyAll := map[string][]obsVersion{}
	for _, v := range o.Versions {
		byKeyAll[v.Key] = append(byKeyAll[v.Key], v)
	}
	for _, v := range o.Versions {
		if v.V.Origin != v.Stream {
			probs = append(probs, fmt.Sprintf("I4: CHANGES_%s seq %d carries a record of origin %s: %s", v.Stream, v.Seq, v.V.Origin, v))
			continue
		}
		if v.V.Deleted {
			if _, ok := dm.opOf[v.ref()]; ok {
				st.tombstones++
			}
			continue
		}
		k := kv{v.Stream, v.Key, v.etag()}
		switch op, ok := puts[k]; {
		case ok && op.Acked:
			st.byAcked++
		case ok:
			st.byFailed++
		case strings.HasPrefix(v.Key, o.Policy.LosersPrefix) && kept[k]:
			st.keptLosers++
		default:
			probs = append(probs, fmt.Sprintf("I4 echo or invented change: CHANGES_%s seq %d: %q etag %s matches no write at %s and no kept loser: %s (writes of that etag elsewhere: %s); %s; versions of the key around it: %s",
				v.Stream, v.Seq, v.Key, short(v.etag()), v.Stream, v, writesOf(w, v.etag()), inventedContext(v, byKeyAll[v.Key], o.Conflicts), describe(around(byKeyAll[v.Key], v.MadeAt))))
		}
	}
	return probs, st
}

// inventedContext describes what an unexplained record v grew from and
// what it did: the versions that directly followed the state its clock was
// made over (what its site was probably applying), and the conflicts it won.
func inventedContext(v obsVersion, versions []obsVersion, conflicts []schema.ConflictEntry) string {
	var next []string
	for _, x := range versions {
		if x.V.Origin != v.V.Origin && x.V.Clock[x.V.Origin] == v.V.Clock[x.V.Origin]+1 {
			next = append(next, x.String())
		}
	}
	var won []string
	for _, c := range conflicts {
		if c.Winner.ID == v.V.ID {
			won = append(won, fmt.Sprintf("at %s over %s (clock %v, etag %s, deleted %v, kept as %q)", c.Site, c.Loser.ID, schema.Clock(c.Loser.Clock), short(c.Loser.ETag), c.Loser.Deleted, c.LoserKeptAs))
		}
	}
	if len(next) == 0 {
		next = []string{"none"}
	}
	if len(won) == 0 {
		won = []string{"none"}
	}
	return fmt.Sprintf("the versions following the state it was made over: %s; conflicts it won: %s", strings.Join(next, "; "), strings.Join(won, "; "))
}

// all returns every operation, acknowledged or not.
func (w *Workload) all() []Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Op(nil), w.Ops...)
}

// laterWrite returns a write to op's key at op's site (all: the writes to
// that key at that site) that started after op ended and demonstrably happened (acknowledged, or a failed PUT whose bytes
// show up in a record or as the final value): op was overwritten locally.
func laterWrite(op Op, all []Op, versions []obsVersion, final finalState) *Op {
	for i := range all {
		l := &all[i]
		if l.Site != op.Site || l.Key != op.Key || !l.Start.After(op.End) {
			continue
		}
		if l.Acked {
			return l
		}
		if l.Kind == OpPut && l.mayHaveHappened() && (final.MD5 == l.MD5 || slices.ContainsFunc(versions, func(v obsVersion) bool { return v.etag() == l.MD5 })) {
			return l
		}
	}
	return nil
}

// racingReplicaDelete returns a tombstone from another site that may have
// been what op's site held when op (a DELETE) ran: made before op ended,
// with no version of the key made between it and op's start.
func racingReplicaDelete(op Op, versions []obsVersion) *obsVersion {
	for i, t := range versions {
		if !t.V.Deleted || t.V.Origin == op.Site || t.MadeAt > op.End.UnixMilli() {
			continue
		}
		later := slices.ContainsFunc(versions, func(x obsVersion) bool {
			return x.V.ID != t.V.ID && x.MadeAt > t.MadeAt && x.MadeAt < op.Start.UnixMilli()
		})
		if !later {
			return &versions[i]
		}
	}
	return nil
}

// absorbingReplicaDelete returns a remote tombstone of op's key made in the
// 5 s before op ended that every final version causally follows, if any.
func absorbingReplicaDelete(op Op, versions, finals []obsVersion) *obsVersion {
	for i, t := range versions {
		if !t.V.Deleted || t.V.Origin == op.Site || t.MadeAt > op.End.UnixMilli() || t.MadeAt < op.End.UnixMilli()-5000 || len(finals) == 0 {
			continue
		}
		if !slices.ContainsFunc(finals, func(f obsVersion) bool { return f.V.Clock.Compare(t.V.Clock) != schema.After }) {
			return &versions[i]
		}
	}
	return nil
}

// dominated reports whether some version of the key causally follows v.
func dominated(v obsVersion, versions []obsVersion) bool {
	return slices.ContainsFunc(versions, func(x obsVersion) bool { return x.V.Clock.Compare(v.V.Clock) == schema.After })
}

// around returns the versions made within 4 s of ms (unix ms), in order of
// making, at most 16 (the closest).
func around(vs []obsVersion, ms int64) []obsVersion {
	var out []obsVersion
	for _, v := range vs {
		if d := v.MadeAt - ms; d > -4000 && d < 4000 {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MadeAt < out[j].MadeAt })
	for len(out) > 16 {
		if ms-out[0].MadeAt > out[len(out)-1].MadeAt-ms {
			out = out[1:]
		} else {
			out = out[:len(out)-1]
		}
	}
	return out
}

func describe(vs []obsVersion) string {
	if len(vs) == 0 {
		return "none"
	}
	var out []string
	for _, v := range vs {
		out = append(out, v.String())
	}
	return strings.Join(out, "; ")
}

func writesOf(w *Workload, etag string) string {
	var out []string
	for _, op := range w.all() {
		if op.MD5 == etag {
			out = append(out, fmt.Sprintf("%s %q at %s (acked %v)", op.Kind, op.Key, op.Site, op.Acked))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func opBody(op Op) string {
	if op.Kind == OpDelete {
		return fmt.Sprintf("pre-existed %v", op.PreExisted)
	}
	return fmt.Sprintf("md5 %s, %d B", short(op.MD5), op.Size)
}

func short(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// checkAckedETags: the store's answer for a single-part PUT is the body's MD5.
func checkAckedETags(w *Workload) []string {
	var probs []string
	for _, op := range w.Acked() {
		if op.Kind == OpPut && op.ETag != "" && op.ETag != op.MD5 {
			probs = append(probs, fmt.Sprintf("workload: PUT %q at %s answered ETag %s for a body of MD5 %s", op.Key, op.Site, op.ETag, op.MD5))
		}
	}
	return probs
}
