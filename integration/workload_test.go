package integration

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
)

// WorkloadOptions shapes a concurrent PUT/overwrite/DELETE workload at every
// site of a lab.
type WorkloadOptions struct {
	Duration          time.Duration // stop after this long (0: only when ctx ends)
	Keys              int           // distinct keys (default 40)
	ContendedFraction float64       // share of keys written at every site; the others at one site only
	// Careful: contended keys are written the way a careful user writes a
	// shared key: read its ETag first, then PUT If-Match that ETag (If-None-
	// Match: * when absent) or DELETE If-Match it. A refused write (412, or
	// 404 for a key gone meanwhile) is not acknowledged; the writer reads
	// again and retries. Single-site keys stay unconditional.
	Careful bool
	// ContendedPutsOnly: contended keys are never deleted (DeleteFraction
	// applies to single-site keys only). versitygw does not serialise a
	// DELETE with a PUT of the same key, conditional or not (docs/operations.md, Failure
	// modes), so a DELETE racing a PUT inside the store can silently undo
	// either; PUTs are serialised.
	ContendedPutsOnly bool
	DeleteFraction    float64       // share of operations that are DELETEs
	BigFraction       float64       // share of PUTs with a body above the inline threshold (default 0.03)
	Writers           int           // writers per site (default 2); each key has one writer per site
	Pause             time.Duration // pause between two operations of a writer (default 10ms)
	Bucket            string        // default "demo"
	Prefix            string        // every key is Prefix + "k%03d" (required: unique per test)
	Seed              uint64        // 0: time-based
}

// OpKind is the kind of one workload operation.
type OpKind string

// Operation kinds.
const (
	OpPut    OpKind = "put"
	OpDelete OpKind = "delete"
)

// Op is one S3 call made by the workload. Only Acked operations are checked:
// a call that failed may or may not have happened.
type Op struct {
	Site, Key   string
	Kind        OpKind
	Writer      int
	Seq         int    // per writer
	MD5         string // hex MD5 of the body (the ETag of a single-part PUT); "" for DELETE
	ETag        string // what the store answered (PUT)
	Size        int
	PreExisted  bool   // DELETE: a HEAD just before it found the key at the site
	IfMatch     string // conditional write: the ETag it required ("" = none)
	IfNoneMatch bool   // conditional PUT: the key had to be absent
	Start, End  time.Time
	Acked       bool
	Refused     bool // the store refused the condition (412/404): it did not happen
	Err         string
}

// mayHaveHappened reports whether op may have changed the store: it was
// acknowledged, or it failed in a way that does not say (a timeout, a site
// down). A refused conditional write did not happen.
func (op Op) mayHaveHappened() bool { return op.Acked || !op.Refused }

// Workload is the record of what a workload did.
type Workload struct {
	Opts       WorkloadOptions
	Sites      []string
	Keys       []string
	Contended  map[string]bool
	Start, End time.Time

	mu  sync.Mutex
	Ops []Op
}

func (w *Workload) add(op Op) {
	w.mu.Lock()
	w.Ops = append(w.Ops, op)
	w.mu.Unlock()
}

// Acked returns the acknowledged operations.
func (w *Workload) Acked() []Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Op
	for _, op := range w.Ops {
		if op.Acked {
			out = append(out, op)
		}
	}
	return out
}

// Counts returns (acked puts, acked deletes, failed calls, of which refused
// conditional writes).
func (w *Workload) Counts() (puts, dels, failed, refused int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, op := range w.Ops {
		if op.Refused {
			refused++
		}
		switch {
		case !op.Acked:
			failed++
		case op.Kind == OpPut:
			puts++
		default:
			dels++
		}
	}
	return
}

func (o WorkloadOptions) withDefaults() WorkloadOptions {
	if o.Keys <= 0 {
		o.Keys = 40
	}
	if o.Writers <= 0 {
		o.Writers = 2
	}
	if o.BigFraction == 0 {
		o.BigFraction = 0.03
	}
	if o.Pause == 0 {
		o.Pause = 10 * time.Millisecond
	}
	if o.Bucket == "" {
		o.Bucket = bucket
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	return o
}

// keyPlan returns the keys, which are contended, and for each site and
// writer the keys it writes. A key is written by exactly one writer per site
// that writes it, so the writes of one (site, key) are sequential.
func (o WorkloadOptions) keyPlan(sites []string) (keys []string, contended map[string]bool, plan map[string][][]string) {
	contended = map[string]bool{}
	plan = map[string][][]string{}
	for _, s := range sites {
		plan[s] = make([][]string, o.Writers)
	}
	nc := int(float64(o.Keys)*o.ContendedFraction + 0.5)
	for i := 0; i < o.Keys; i++ {
		k := fmt.Sprintf("%sk%03d", o.Prefix, i)
		keys = append(keys, k)
		wr := i % o.Writers
		if i < nc {
			contended[k] = true
			for _, s := range sites {
				plan[s][wr] = append(plan[s][wr], k)
			}
			continue
		}
		s := sites[i%len(sites)]
		plan[s][wr] = append(plan[s][wr], k)
	}
	return
}

// RunWorkload writes at every site concurrently until ctx ends or
// opts.Duration has passed, and returns the record of every call. Bodies are
// unique per write ("site/writer/seq/random" plus padding); most are small
// (inline in the change record), a few are above 300 KiB (fetched by GET).
func (e *env) RunWorkload(t *testing.T, ctx context.Context, opts WorkloadOptions) *Workload {
	t.Helper()
	if opts.Prefix == "" {
		t.Fatal("RunWorkload: a Prefix unique to the test is required")
	}
	opts = opts.withDefaults()
	keys, contended, plan := opts.keyPlan(e.names)
	w := &Workload{Opts: opts, Sites: append([]string(nil), e.names...), Keys: keys, Contended: contended, Start: time.Now()}
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	var wg sync.WaitGroup
	for si, s := range e.names {
		for wr := 0; wr < opts.Writers; wr++ {
			mine := plan[s][wr]
			if len(mine) == 0 {
				continue
			}
			rng := rand.New(rand.NewPCG(opts.Seed, uint64(si*1000+wr)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.writer(ctx, w, s, wr, mine, rng)
			}()
		}
	}
	wg.Wait()
	w.End = time.Now()
	puts, dels, failed, refused := w.Counts()
	how := ""
	if opts.Careful && len(contended) > 0 {
		how = ", written conditionally"
	}
	t.Logf("workload %s: %v, %d keys (%d contended%s), %d acked puts, %d acked deletes, %d failed calls (%d refused conditional writes)",
		opts.Prefix, w.End.Sub(w.Start).Round(time.Millisecond), len(keys), len(contended), how, puts, dels, failed, refused)
	return w
}

func (e *env) writer(ctx context.Context, w *Workload, site string, wr int, keys []string, rng *rand.Rand) {
	o := w.Opts
	retry := "" // a careful write refused: the key to read and write again
	for seq := 0; ctx.Err() == nil; seq++ {
		key := keys[rng.IntN(len(keys))]
		if retry != "" {
			key, retry = retry, ""
		}
		op := Op{Site: site, Key: key, Writer: wr, Seq: seq, Kind: OpPut}
		if rng.Float64() < o.DeleteFraction && !(o.ContendedPutsOnly && w.Contended[key]) {
			op.Kind = OpDelete
		}
		// A body even for a DELETE: a careful DELETE of an absent key
		// becomes a PUT.
		body := workloadBody(site, wr, seq, rng, rng.Float64() < o.BigFraction)
		sent := e.writeOnce(w, &op, body, o.Careful && w.Contended[key])
		if sent {
			w.add(op)
		}
		switch {
		case !sent:
			retry = key // the read before a careful write failed: nothing was written
			sleepCtx(ctx, 200*time.Millisecond)
		case op.Refused:
			retry = key // lost the race to another write: read again, retry
		case !op.Acked:
			// The site is probably down (fault injection): don't spin.
			sleepCtx(ctx, 200*time.Millisecond)
		default:
			sleepCtx(ctx, o.Pause)
		}
	}
}

// writeOnce makes op's call (a PUT of body, or a DELETE) and records its
// outcome in op. careful: read the key's ETag first and make the write
// conditional on it; a DELETE of a key found absent becomes a PUT
// If-None-Match, since no condition can make a DELETE of nothing safe. It
// reports false when it sent no write (the careful read failed).
func (e *env) writeOnce(w *Workload, op *Op, body []byte, careful bool) (sent bool) {
	c := e.sites[op.Site].s3
	bkt := w.Opts.Bucket
	// Each call gets its own deadline, not the workload's: a call in
	// flight when the workload ends completes and is recorded.
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var info s3io.ObjectInfo
	if op.Kind == OpDelete || careful {
		var err error
		if info, err = c.Head(cctx, bkt, op.Key); err != nil && careful {
			return false
		}
		op.PreExisted = info.Exists
	}
	if careful && op.Kind == OpDelete && !info.Exists {
		op.Kind = OpPut
	}
	if careful {
		op.IfMatch, op.IfNoneMatch = info.ETag, !info.Exists
	}
	var err error
	if op.Kind == OpDelete {
		op.Start = time.Now()
		err = c.Delete(cctx, bkt, op.Key, op.IfMatch)
		op.End = time.Now()
	} else {
		sum := md5.Sum(body)
		op.MD5, op.Size = hex.EncodeToString(sum[:]), len(body)
		op.Start = time.Now()
		op.ETag, err = c.Put(cctx, s3io.PutInput{Bucket: bkt, Key: op.Key, Body: bytes.NewReader(body), Size: int64(len(body)),
			IfMatch: op.IfMatch, IfNoneMatch: op.IfNoneMatch})
		op.End = time.Now()
	}
	op.Acked = err == nil
	if err != nil {
		op.Err = err.Error()
		cl := s3io.Classify(err)
		op.Refused = careful && (cl == s3io.Precondition || cl == s3io.NotFound)
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

// workloadBody is unique per write: site, writer, sequence and 64 random
// bits, padded to 20..2000 bytes, or to 300..600 KiB when big.
func workloadBody(site string, wr, seq int, rng *rand.Rand, big bool) []byte {
	head := fmt.Sprintf("%s/%d/%d/%016x\n", site, wr, seq, rng.Uint64())
	n := 20 + rng.IntN(1980)
	if big {
		n = 300<<10 + rng.IntN(300<<10)
	}
	b := make([]byte, max(n, len(head)))
	copy(b, head)
	for i := len(head); i < len(b); i++ {
		b[i] = byte('a' + rng.IntN(26))
	}
	return b
}

// A mixed workload at all three sites (30% of keys PUT everywhere,
// carefully, before, during and after the cut; 15% deletes of the keys
// written at one site; a few bodies above the inline threshold) while the
// a–b link is cut for 3 s:
// afterwards every site holds the same bytes and every acknowledged write
// is final, causally overwritten or a logged (and kept) conflict loser.
func TestWorkloadWithPartitionNoSilentLoss(t *testing.T) {
	testWorkloadWithPartitionNoSilentLoss(t, labEnv(t))
}

func testWorkloadWithPartitionNoSilentLoss(t *testing.T, e *env) {
	cut := e.ctlAt(2*time.Second, "cut", "a", "b")
	heal := e.ctlAt(5*time.Second, "heal", "a", "b")
	w := e.RunWorkload(t, context.Background(), WorkloadOptions{
		Duration: 8 * time.Second, Keys: 40, ContendedFraction: 0.3, Careful: true, ContendedPutsOnly: true, DeleteFraction: 0.15, Writers: 2,
		Prefix: fmt.Sprintf("wlpart-%d/", time.Now().UnixNano()),
	})
	e.mustHaveInjected(t, cut, heal)
	e.checkAfterFault(t, w)
}
