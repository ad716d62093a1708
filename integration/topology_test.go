package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/schema"
)

const filtered = "filtered"

// topologyOf is bucket's entry in site's status.
func (e *env) topologyOf(t *testing.T, site, bkt string) agent.BucketTopology {
	t.Helper()
	for _, b := range e.siteStatus(t, site).Topology {
		if b.Bucket == bkt {
			return b
		}
	}
	t.Fatalf("site %s: no bucket %s in status", site, bkt)
	return agent.BucketTopology{}
}

// absentAt fails if any of sites holds bkt/key.
func (e *env) absentAt(t *testing.T, bkt, key string, sites ...string) {
	t.Helper()
	for _, s := range sites {
		if b, ok := e.bodyAt(t, s, bkt, key); ok {
			t.Errorf("%s/%s at %s: holds %q, want absent", bkt, key, s, b)
		}
	}
}

// A lab whose site b is a replica and c an archive of every bucket, and
// whose bucket "filtered" replicates only in/ (not in/tmp/) everywhere.
func TestTopologies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *lab.Options) {
		o.Buckets = []string{bucket, filtered}
		o.Conflicts = nil
		o.Replica, o.Archive = []string{"b"}, []string{"c"}
		o.Filters = map[string]config.Topology{filtered: {Include: []string{"in/"}, Exclude: []string{"in/tmp/"}}}
	})
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	const converge = time.Minute

	// The archive keeps every key through deletes elsewhere and takes
	// overwrites; the replica (the positive control) applies the deletes.
	t.Run("archive", func(t *testing.T) {
		keys := []string{"arch/1-" + tag, "arch/2-" + tag, "arch/3-" + tag}
		for _, k := range keys {
			e.put(t, "a", k, object{body: []byte("v1 " + k)})
		}
		for _, k := range keys {
			e.waitAt(t, e.names, bucket, k, "v1 "+k, converge)
		}
		kept := e.topologyOf(t, "c", bucket).DeletesKept
		e.del(t, "a", keys[0])
		e.del(t, "a", keys[1])
		for _, k := range keys[:2] {
			testenv.Eventually(t, converge, k+" deleted at b", func() error {
				if _, ok := e.bodyAt(t, "b", bucket, k); ok {
					return fmt.Errorf("still there")
				}
				return nil
			})
		}
		testenv.Eventually(t, converge, "c keeping both deletes", func() error {
			if n := e.topologyOf(t, "c", bucket).DeletesKept; n < kept+2 {
				return fmt.Errorf("%d deletes kept, want %d", n, kept+2)
			}
			return nil
		})
		e.waitAt(t, []string{"c"}, bucket, keys[0], "v1 "+keys[0], time.Second)
		e.waitAt(t, []string{"c"}, bucket, keys[1], "v1 "+keys[1], time.Second)
		// Overwrites, of a live key and of a key deleted before, reach it.
		e.put(t, "a", keys[2], object{body: []byte("v2")})
		e.put(t, "a", keys[0], object{body: []byte("v3")})
		e.waitAt(t, e.names, bucket, keys[2], "v2", converge)
		e.waitAt(t, e.names, bucket, keys[0], "v3", converge)
		// The archive publishes nothing: not the objects it kept either.
		if seq := e.changesSeq(t, "c"); seq != 0 {
			t.Errorf("the archive's CHANGES stream holds %d records", seq)
		}
	})

	// A local write at the replica is drift: shown in status, never
	// replicated; a's next write of the key replaces it.
	t.Run("replica drift", func(t *testing.T) {
		k := "drift/" + tag
		before := e.topologyOf(t, "b", bucket).Drift
		e.put(t, "b", k, object{body: []byte("local at b")})
		testenv.Eventually(t, converge, "b reporting the drift", func() error {
			if bt := e.topologyOf(t, "b", bucket); bt.Drift <= before || bt.LastDrift != k {
				return fmt.Errorf("drift %d, last %q", bt.Drift, bt.LastDrift)
			}
			return nil
		})
		if seq := e.changesSeq(t, "b"); seq != 0 {
			t.Fatalf("the replica's CHANGES stream holds %d records", seq)
		}
		e.absentAt(t, bucket, k, "a", "c")
		e.put(t, "a", k, object{body: []byte("from a")})
		e.waitAt(t, e.names, bucket, k, "from a", converge)
	})

	// Filters: a key inside replicates (the positive control), keys outside
	// do not; a peer's record under other filters is not applied, and
	// status says the filters differ.
	t.Run("filters", func(t *testing.T) {
		in, out, tmp := "in/"+tag, "out/"+tag, "in/tmp/"+tag
		for _, k := range []string{out, tmp, in} {
			e.putIn(t, "a", filtered, k, []byte(k))
		}
		e.waitAt(t, e.names, filtered, in, in, converge)
		// a published only in/: its records of the bucket are read back.
		s, err := e.sites["a"].js.Stream(ctxT(t), broker.ChangesStream("a"))
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
			m, err := s.GetMsg(ctxT(t), seq)
			if err != nil {
				continue
			}
			rec, err := schema.Decode(m.Data)
			if err != nil || rec.Bucket != filtered {
				continue
			}
			if rec.Key == out || rec.Key == tmp {
				t.Errorf("a published %s, outside the filter", rec.Key)
			}
			if rec.Schema != schema.FilterSchema || rec.Filter == "" {
				t.Errorf("a's record of %s: schema %d filter %q", rec.Key, rec.Schema, rec.Filter)
			}
		}
		e.absentAt(t, filtered, out, "b", "c")
		e.absentAt(t, filtered, tmp, "b", "c")

		// A record of a under other filters (as if a's configuration
		// differed) of a key outside b's and c's.
		other := schema.Filter{Include: []string{"out/"}}
		const n = uint64(1)<<40 + 7
		rec := dlqcliRecord("a", filtered, "out/other-"+tag, n, []byte("other filters"))
		rec.Schema, rec.Filter = schema.FilterSchema, other.Digest()
		if _, err := e.sites["a"].js.Publish(ctxT(t), broker.ChangesSubject("a", 0), e.signAs(t, "a", &rec)); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"b", "c"} {
			testenv.Eventually(t, converge, s+" reporting a's other filters", func() error {
				bt := e.topologyOf(t, s, filtered)
				if bt.PeerFilters["a"] != other.Digest() || bt.Filtered < 1 {
					return fmt.Errorf("peers with other filters %v, %d filtered", bt.PeerFilters, bt.Filtered)
				}
				return nil
			})
		}
		e.absentAt(t, filtered, rec.Key, "b", "c")
		if n := e.dlqTotal(t); n != 0 {
			t.Errorf("%d dead letters: a record outside the filter is not one", n)
		}
		// a's next genuine record carries the same filters again.
		e.putIn(t, "a", filtered, in, []byte("again"))
		e.waitAt(t, e.names, filtered, in, "again", converge)
		for _, s := range []string{"b", "c"} {
			if bt := e.topologyOf(t, s, filtered); len(bt.PeerFilters) != 0 {
				t.Errorf("%s still reports other filters: %v", s, bt.PeerFilters)
			}
		}
	})

	t.Run("status --all", func(t *testing.T) {
		out, err := exec.Command(testenv.S3meshBin(t), "status", "--all", "--lab", filepath.Join(e.info.Dir, "lab.json")).CombinedOutput()
		if err != nil {
			t.Fatalf("status --all: %v\n%s", err, out)
		}
		for _, want := range []string{"bucket demo: b replica, c archive (the others active)", "bucket filtered: b replica, c archive"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("status --all does not say %q:\n%s", want, out)
			}
		}
		if strings.Contains(string(out), "prefix filters differ between sites") {
			t.Errorf("status --all reports differing filters of a lab configured alike:\n%s", out)
		}
	})
}
