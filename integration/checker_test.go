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

// losersPrefix is the default conflicts.losers_prefix.
const losersPrefix = ".s3mesh-conflicts/"

// The no-silent-loss checker. CheckNoSilentLoss reads what the lab shows
// after quiescence (every site's bytes, every CHANGES_<site> record at its
// origin, every CONFLICTS_<site> entry, the DLQs) into an Observed, then the
// pure functions checkConvergence (I1), checkAcked (I2) and checkNoEcho (I4)
// turn a Workload and an Observed into a list of problems. They never call
// t.Fatal, so tests can feed them fabricated input and assert that they fail.

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
	for _, d := range r.Differences {
		msg := fmt.Sprintf("verify: %s/%s: %s %s %v", d.Bucket, d.Key, d.Kind, d.Detail, d.Sites)
		switch {
		case strings.HasPrefix(d.Key, w.Opts.Prefix) || strings.HasPrefix(d.Key, losersPrefix+w.Opts.Prefix):
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
	p, warn, st := checkAcked(w, o)
	rep.Problems = append(rep.Problems, p...)
	rep.Warnings = append(rep.Warnings, warn...)
	p, warn, echoSt := checkNoEcho(w, o)
	rep.Problems = append(rep.Problems, p...)
	rep.Warnings = append(rep.Warnings, warn...)
	puts, dels, failed := w.Counts()
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
	rep.Summary = fmt.Sprintf("no-silent-loss %s: writes acked %d (%d puts, %d deletes; %d failed calls unchecked), versions %d, conflicts %d, losers %d, final keys %d/%d present, DLQ %d | acked writes: %s | records: %s | problems %d",
		w.Opts.Prefix, puts+dels, puts, dels, failed, len(o.Versions), len(o.Conflicts), len(losers), finalKeys, len(w.Keys), len(o.Dead),
		st, echoSt, len(rep.Problems))
	return rep
}

// observe reads every site's bytes, CHANGES, CONFLICTS and DLQ for w's keys.
func (e *env) observe(ctx context.Context, w *Workload) (*Observed, error) {
	bkt := w.Opts.Bucket
	o := &Observed{Bucket: bkt, Sites: append([]string(nil), e.names...), Final: map[string]map[string]finalState{}}
	mine := func(key string) bool {
		return strings.HasPrefix(key, w.Opts.Prefix) || strings.HasPrefix(key, losersPrefix+w.Opts.Prefix)
	}
	keys := map[string]bool{}
	for _, k := range w.Keys {
		keys[k] = true
	}
	for _, s := range e.names {
		for _, p := range []string{w.Opts.Prefix, losersPrefix + w.Opts.Prefix} {
			ks, err := e.listKeys(ctx, s, bkt, p)
			if err != nil {
				return nil, err
			}
			for _, k := range ks {
				keys[k] = true
			}
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
	for _, s := range e.names {
		js := e.sites[s].js
		err := broker.ReadStream(ctx, js, broker.ChangesStream(s), time.Time{}, func(seq uint64, data []byte) error {
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
		err = broker.ReadStream(ctx, js, broker.ConflictsStream(s), time.Time{}, func(seq uint64, data []byte) error {
			var c schema.ConflictEntry
			if err := json.Unmarshal(data, &c); err != nil {
				return fmt.Errorf("CONFLICTS_%s seq %d: %w", s, seq, err)
			}
			if c.Bucket == bkt && mine(c.Key) {
				o.Conflicts = append(o.Conflicts, c)
			}
			return nil
		})
		if err != nil {
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
func checkAcked(w *Workload, o *Observed) (probs, warns []string, st ackStats) {
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
	ops := w.Acked()
	bySiteKey := map[[2]string][]Op{}
	for _, op := range w.all() {
		bySiteKey[[2]string{op.Site, op.Key}] = append(bySiteKey[[2]string{op.Site, op.Key}], op)
	}
	for _, op := range ops {
		var cands []obsVersion
		for _, v := range byKey[op.Key] {
			if v.Stream != op.Site || v.V.Origin != op.Site {
				continue
			}
			if op.Kind == OpPut && !v.V.Deleted && v.etag() == op.MD5 {
				cands = append(cands, v)
			}
			if op.Kind == OpDelete && v.V.Deleted && v.MadeAt >= op.Start.UnixMilli() {
				cands = append(cands, v)
			}
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
		if op.Kind == OpDelete {
			// The first tombstone after the delete started is its version.
			sort.Slice(cands, func(i, j int) bool { return cands[i].Seq < cands[j].Seq })
			cands = cands[:1]
		}
		if len(cands) > 1 {
			warns = append(warns, fmt.Sprintf("%s has %d change records: %s", what, len(cands), describe(cands)))
		}
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
				st.loser++
				ok = true
				probs = append(probs, checkKept(v, losers[v.V.ID], byKey[op.Key], o)...)
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

// checkKept: a conflict loser whose policy keeps losers must be held at
// every site under its kept-as key with its bytes, unless a later write
// overwrote it causally anyway.
func checkKept(v obsVersion, entries []schema.ConflictEntry, versions []obsVersion, o *Observed) []string {
	if v.V.Deleted {
		return nil
	}
	kept := ""
	for _, c := range entries {
		if c.LoserKeptAs != "" {
			kept = c.LoserKeptAs
		}
	}
	if kept == "" || dominated(v, versions) {
		return nil
	}
	for _, s := range o.Sites {
		if got := o.Final[kept][s]; !got.Present || got.MD5 != v.etag() {
			return []string{fmt.Sprintf("I2 conflict loser not kept: %s of %q lost a conflict (decided by %s) and is logged as kept at %q, but %s holds %s there",
				v, v.Key, entries[0].Site, kept, s, got)}
		}
	}
	return nil
}

// echoStats counts how every change record is explained.
type echoStats struct {
	byAcked, byFailed, keptLosers, duplicates int
}

func (s echoStats) String() string {
	return fmt.Sprintf("%d from acked writes, %d from failed calls that did happen, %d kept-loser copies, %d duplicates",
		s.byAcked, s.byFailed, s.keptLosers, s.duplicates)
}

// checkNoEcho (I4): every record in CHANGES_<s> is a local write at s: its
// (key, ETag) is a write the workload made at s, a tombstone of a delete the
// workload made at s, or a kept copy of a conflict loser from s.
func checkNoEcho(w *Workload, o *Observed) (probs, warns []string, st echoStats) {
	type kv struct{ site, key, etag string }
	puts := map[kv]Op{}
	dels := map[[2]string][]Op{}
	for _, op := range w.all() {
		switch op.Kind {
		case OpPut:
			k := kv{op.Site, op.Key, op.MD5}
			if prev, ok := puts[k]; !ok || !prev.Acked {
				puts[k] = op
			}
		case OpDelete:
			dels[[2]string{op.Site, op.Key}] = append(dels[[2]string{op.Site, op.Key}], op)
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
	seen := map[kv]string{}
	for _, v := range o.Versions {
		if v.V.Origin != v.Stream {
			probs = append(probs, fmt.Sprintf("I4: CHANGES_%s seq %d carries a record of origin %s: %s", v.Stream, v.Seq, v.V.Origin, v))
			continue
		}
		if v.V.Deleted {
			ok := slices.ContainsFunc(dels[[2]string{v.Stream, v.Key}], func(op Op) bool { return op.Start.UnixMilli() <= v.MadeAt })
			if !ok {
				probs = append(probs, fmt.Sprintf("I4 echo or invented change: CHANGES_%s seq %d: tombstone of %q but no DELETE of it at %s before: %s; %s; versions of the key around it: %s",
					v.Stream, v.Seq, v.Key, v.Stream, v, inventedContext(v, byKeyAll[v.Key], o.Conflicts), describe(around(byKeyAll[v.Key], v.MadeAt))))
			} else {
				st.byAcked++
			}
			continue
		}
		k := kv{v.Stream, v.Key, v.etag()}
		if prev, dup := seen[k]; dup {
			st.duplicates++
			warns = append(warns, fmt.Sprintf("CHANGES_%s: two records for one write of %q (etag %s): %s and %s", v.Stream, v.Key, short(v.etag()), prev, v))
		}
		seen[k] = v.String()
		switch op, ok := puts[k]; {
		case ok && op.Acked:
			st.byAcked++
		case ok:
			st.byFailed++
		case strings.HasPrefix(v.Key, losersPrefix) && kept[k]:
			st.keptLosers++
		default:
			probs = append(probs, fmt.Sprintf("I4 echo or invented change: CHANGES_%s seq %d: %q etag %s matches no write at %s and no kept loser: %s (writes of that etag elsewhere: %s); %s; versions of the key around it: %s",
				v.Stream, v.Seq, v.Key, short(v.etag()), v.Stream, v, writesOf(w, v.etag()), inventedContext(v, byKeyAll[v.Key], o.Conflicts), describe(around(byKeyAll[v.Key], v.MadeAt))))
		}
	}
	return probs, warns, st
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
		if l.Kind == OpPut && (final.MD5 == l.MD5 || slices.ContainsFunc(versions, func(v obsVersion) bool { return v.etag() == l.MD5 })) {
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

// ---- tests of the checker itself ----

// cloneWorkload copies w's record (for fabricated variants).
func cloneWorkload(w *Workload) *Workload {
	c := &Workload{Opts: w.Opts, Sites: w.Sites, Keys: w.Keys, Contended: w.Contended, Start: w.Start, End: w.End}
	c.Ops = w.all()
	return c
}

func hasProblem(probs []string, substrs ...string) bool {
	return slices.ContainsFunc(probs, func(p string) bool {
		for _, s := range substrs {
			if !strings.Contains(p, s) {
				return false
			}
		}
		return true
	})
}

// The checker must be able to fail: against a real lab, a workload record
// with an acknowledged write that never happened is reported as lost, and a
// record with a real write left out is reported as an echo or invented
// change, while the true record passes.
func TestCheckerDetectsFabricatedLossAndEcho(t *testing.T) {
	e := labEnv(t)
	w := e.RunWorkload(t, context.Background(), WorkloadOptions{
		Duration: 2 * time.Second, Keys: 6, ContendedFraction: 0, DeleteFraction: 0.1, Writers: 1,
		Prefix: fmt.Sprintf("chk-%d/", time.Now().UnixNano()),
	})
	e.quiesce(t, 2*time.Minute)
	ctx := ctxT(t)
	o, err := e.observe(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if rep := runChecks(w, o); len(rep.Problems) > 0 {
		t.Fatalf("the true workload record fails the checker:\n%s", strings.Join(rep.Problems, "\n"))
	}

	// An acknowledged PUT that never happened: a made-up MD5 at a real key,
	// after every real write (an earlier one would count as overwritten
	// locally by the next real write at that site, which the rule allows).
	lost := cloneWorkload(w)
	key := w.Keys[0]
	fake := "0123456789abcdef0123456789abcdef"
	lost.Ops = append(lost.Ops, Op{Site: "b", Key: key, Kind: OpPut, Writer: 99, MD5: fake, ETag: fake, Size: 5,
		Start: w.End, End: w.End.Add(time.Millisecond), Acked: true})
	rep := runChecks(lost, o)
	if !hasProblem(rep.Problems, "acknowledged write lost", fmt.Sprintf("%q", key), "md5 01234567") {
		t.Fatalf("the checker did not report the fabricated lost write; problems:\n%s", strings.Join(rep.Problems, "\n"))
	}
	if len(rep.Problems) != 1 {
		t.Errorf("want exactly one problem, got:\n%s", strings.Join(rep.Problems, "\n"))
	}

	// A real acknowledged PUT left out of the record: its change record is
	// then unexplained (as an echo would be).
	echo := cloneWorkload(w)
	var dropped Op
	for i, op := range echo.Ops {
		if op.Acked && op.Kind == OpPut && slices.ContainsFunc(o.Versions, func(v obsVersion) bool { return v.etag() == op.MD5 }) {
			dropped = op
			echo.Ops = slices.Delete(echo.Ops, i, i+1)
			break
		}
	}
	if dropped.MD5 == "" {
		t.Fatal("no published acked PUT to drop")
	}
	rep = runChecks(echo, o)
	if !hasProblem(rep.Problems, "echo or invented change", fmt.Sprintf("%q", dropped.Key), short(dropped.MD5)) {
		t.Fatalf("the checker did not report the unexplained record of %q; problems:\n%s", dropped.Key, strings.Join(rep.Problems, "\n"))
	}
}

// Unit-style, no lab: fabricated observations that break I1 and I2 in the
// ways the checker must catch.
func TestCheckerUnitFabricated(t *testing.T) {
	t0 := time.Now()
	w := &Workload{Opts: WorkloadOptions{Prefix: "u/", Bucket: bucket}, Sites: []string{"a", "b"}, Keys: []string{"u/k1", "u/k2"}}
	ver := func(site, key string, clock schema.Clock, etag string, n uint64) obsVersion {
		return obsVersion{Stream: site, Seq: n, Key: key, MadeAt: t0.Add(time.Second).UnixMilli(),
			V: schema.Version{ID: schema.VersionID(site, bucket, key, clock[site]), Origin: site, Clock: clock, ETag: etag, Deleted: etag == ""}}
	}
	put := func(site, key, md5 string) Op {
		return Op{Site: site, Key: key, Kind: OpPut, MD5: md5, Start: t0, End: t0.Add(time.Millisecond), Acked: true}
	}
	w.Ops = []Op{put("a", "u/k1", "aaaa1111"), put("b", "u/k1", "bbbb2222"), put("a", "u/k2", "cccc3333")}
	held := finalState{Present: true, MD5: "bbbb2222", Size: 3}
	o := &Observed{Bucket: bucket, Sites: []string{"a", "b"},
		Final: map[string]map[string]finalState{
			"u/k1": {"a": held, "b": held},
			"u/k2": {"a": {Present: true, MD5: "cccc3333"}, "b": {}}, // not converged
		},
		Versions: []obsVersion{
			ver("a", "u/k1", schema.Clock{"a": 1}, "aaaa1111", 1),
			ver("b", "u/k1", schema.Clock{"b": 1}, "bbbb2222", 1), // concurrent with a's
			ver("a", "u/k2", schema.Clock{"a": 1}, "cccc3333", 2),
		},
	}
	rep := runChecks(w, o)
	if !hasProblem(rep.Problems, "I1 not converged", `"u/k2"`) {
		t.Errorf("divergent key not reported: %q", rep.Problems)
	}
	if !hasProblem(rep.Problems, "acknowledged write lost", `"u/k1"`, "a.", "in no conflict log") {
		t.Errorf("concurrent, unlogged loser not reported: %q", rep.Problems)
	}
	// Logged as a conflict loser (and kept): no longer a loss.
	o.Conflicts = []schema.ConflictEntry{{Site: "a", Bucket: bucket, Key: "u/k1", Winner: schema.InfoOf(o.Versions[1].V), Loser: schema.InfoOf(o.Versions[0].V), LoserKeptAs: losersPrefix + "u/k1/a-x"}}
	o.Final[losersPrefix+"u/k1/a-x"] = map[string]finalState{"a": {Present: true, MD5: "aaaa1111"}, "b": {Present: true, MD5: "aaaa1111"}}
	rep = runChecks(w, o)
	if hasProblem(rep.Problems, "acknowledged write lost") {
		t.Errorf("logged loser reported as lost: %q", rep.Problems)
	}
	// The kept copy missing at b: the loser's bytes are gone.
	o.Final[losersPrefix+"u/k1/a-x"]["b"] = finalState{}
	rep = runChecks(w, o)
	if !hasProblem(rep.Problems, "conflict loser not kept") {
		t.Errorf("missing kept loser not reported: %q", rep.Problems)
	}
}
