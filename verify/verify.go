package verify

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/s3mesh/s3mesh/s3io"
)

// Site is one store to compare.
type Site struct {
	Name string
	S3   *s3io.Client
	// Unrepresentable and ListedAlias, when known (the site's agent's store
	// probe, s3io.Capabilities), name the key class the site's store cannot
	// hold under its exact name, and the class whose stand-in a listed name
	// holds: a key missing there for that reason, or present there only
	// under such a name, is reported as "unrepresentable", a local fault of
	// that site, not as missing.
	Unrepresentable func(key string) string
	ListedAlias     func(key string) string
}

// Difference is one way a key differs between sites.
type Difference struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	// Kind is missing, unrepresentable (see Site.Unrepresentable), size,
	// content, content-type, cache-control,
	// content-encoding, content-disposition, metadata, or changed (the
	// object changed while it was being compared).
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	// Sites holds what each involved site has ("missing", a size, an
	// ETag or sha256, a header value, the differing metadata).
	Sites map[string]string `json:"sites"`
}

// Report is the outcome of Run.
type Report struct {
	Converged bool `json:"converged"`
	Buckets   int  `json:"buckets"`
	Keys      int  `json:"keys"` // distinct keys compared (union over sites)
	// Differences lists the first Options.MaxDifferences differences in
	// bucket, key order; TotalDifferences counts them all.
	Differences      []Difference `json:"differences"`
	TotalDifferences int          `json:"total_differences"`
}

// Options tunes Run.
type Options struct {
	Buckets []string
	// Progress, if not nil, is called with the number of keys compared
	// so far (all buckets); Listed with the number of distinct keys listed
	// so far. They may be called from different goroutines.
	Progress func(done int)
	Listed   func(listed int)
	// MaxDifferences caps Report.Differences (default 1000); comparing
	// and counting go on past it.
	MaxDifferences int

	pageSize int32 // keys per list request (tests: small, to cross pages)
	inFlight int   // keys compared concurrently
}

// DefaultMaxDifferences is Options.MaxDifferences when zero.
const DefaultMaxDifferences = 1000

// Run compares every bucket of o.Buckets across sites. Listings of all sites
// are read in parallel, page by page, and merge-joined by key, so memory
// does not grow with the number of keys. Each key held by two sites or more
// is HEADed at each, and compared by size, content (the ETags when every one
// is single-part, otherwise a sha256 of the streamed bytes), Content-Type,
// Cache-Control, Content-Encoding, Content-Disposition and user metadata
// (s3mesh's own s3mesh-* keys ignored). Differences are a result, not an
// error: an error means the comparison could not be completed.
func Run(ctx context.Context, sites []Site, o Options) (Report, error) {
	rep := Report{Differences: []Difference{}}
	if len(sites) < 2 {
		return rep, errors.New("verify: need at least two sites")
	}
	seen := map[string]bool{}
	for _, s := range sites {
		switch {
		case s.Name == "" || s.S3 == nil:
			return rep, errors.New("verify: every site needs a name and an S3 client")
		case seen[s.Name]:
			return rep, fmt.Errorf("verify: site %s given twice", s.Name)
		}
		seen[s.Name] = true
	}
	if len(o.Buckets) == 0 {
		return rep, errors.New("verify: no buckets to compare")
	}
	if o.MaxDifferences <= 0 {
		o.MaxDifferences = DefaultMaxDifferences
	}
	if o.pageSize <= 0 {
		o.pageSize = s3io.DefaultPageSize
	}
	if o.inFlight <= 0 {
		o.inFlight = 32
	}
	r := &runner{sites: sites, o: o, rep: &rep}
	for _, b := range o.Buckets {
		if err := r.bucket(ctx, b); err != nil {
			return rep, fmt.Errorf("verify: %w", err)
		}
		rep.Buckets++
	}
	rep.Converged = rep.TotalDifferences == 0
	return rep, nil
}

type runner struct {
	sites  []Site
	o      Options
	rep    *Report // written by the collector goroutine only
	listed int
}

// job is one key being compared; done closes when diffs/err are set.
type job struct {
	k     merged
	diffs []Difference
	err   error
	done  chan struct{}
}

// bucket merges the listings of bucket and compares up to o.inFlight keys
// at a time, collecting the results in key order.
func (r *runner) bucket(ctx context.Context, bucket string) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	ls := make([]*listing, len(r.sites))
	for i, s := range r.sites {
		ls[i] = startListing(ctx, &wg, s.Name, bucket, int(r.o.pageSize), s3List(s.S3, bucket, r.o.pageSize))
	}
	m := newMerger(ls)

	pending := make(chan *job, r.o.inFlight)
	collected := make(chan error, 1)
	go func() {
		var first error
		for j := range pending {
			<-j.done
			switch {
			case first != nil:
			case j.err != nil:
				first = j.err
				cancel()
			default:
				r.rep.Keys++
				for _, d := range j.diffs {
					if len(r.rep.Differences) < r.o.MaxDifferences {
						r.rep.Differences = append(r.rep.Differences, d)
					}
					r.rep.TotalDifferences++
				}
				if r.o.Progress != nil {
					r.o.Progress(r.rep.Keys)
				}
			}
		}
		collected <- first
	}()

	var err error
	for err == nil {
		k, ok, merr := m.next()
		if merr != nil || !ok {
			err = merr
			break
		}
		j := &job{k: k, done: make(chan struct{})}
		select {
		case pending <- j:
		case <-ctx.Done():
			err = ctx.Err()
			continue
		}
		r.listed++
		if r.o.Listed != nil {
			r.o.Listed(r.listed)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(j.done)
			j.diffs, j.err = r.compare(ctx, bucket, j.k)
		}()
	}
	close(pending)
	if cerr := <-collected; cerr != nil {
		return cerr // the first comparison error, which cancelled the rest
	}
	return err
}
