package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// compare checks one key at every site.
func (r *runner) compare(ctx context.Context, bucket string, k merged) ([]Difference, error) {
	n := len(r.sites)
	heads := make([]*s3io.ObjectInfo, n)
	listedAt := 0
	for _, e := range k.at {
		if e != nil {
			listedAt++
		}
	}
	if listedAt >= 2 {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, e := range k.at {
			if e == nil {
				continue
			}
			wg.Go(func() {
				h, err := r.sites[i].S3.Head(ctx, bucket, k.key)
				if err != nil {
					errs[i] = fmt.Errorf("site %s: %w", r.sites[i].Name, err)
				} else if h.Exists {
					heads[i] = &h
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	} else {
		for i, e := range k.at {
			if e != nil {
				heads[i] = &s3io.ObjectInfo{Key: e.Key, Exists: true, ETag: e.ETag, Size: e.Size}
			}
		}
	}

	var diffs []Difference
	add := func(kind, detail string, sites map[string]string) {
		diffs = append(diffs, Difference{Bucket: bucket, Key: k.key, Kind: kind, Detail: detail, Sites: sites})
	}
	var present []int
	var missing, have, cannot, made []string
	for i, h := range heads {
		site := r.sites[i]
		switch {
		case h == nil && site.Unrepresentable != nil && site.Unrepresentable(k.key) != "":
			cannot = append(cannot, site.Name+" (its store cannot hold keys with "+site.Unrepresentable(k.key)+")")
		case h != nil && site.ListedAlias != nil && site.ListedAlias(k.key) != "":
			made = append(made, site.Name+" (its store lists keys with "+site.ListedAlias(k.key)+" so)")
		case h != nil:
			present = append(present, i)
			have = append(have, site.Name)
		default:
			missing = append(missing, site.Name)
		}
	}
	if len(cannot) > 0 || len(made) > 0 {
		detail := ""
		if len(cannot) > 0 {
			detail = "unrepresentable at " + strings.Join(cannot, ", ")
		}
		if len(made) > 0 {
			if detail != "" {
				detail += "; "
			}
			detail += "a name nobody wrote, made by the store at " + strings.Join(made, ", ")
		}
		add("unrepresentable", detail, nil)
	}
	if len(missing) > 0 && (len(have) > 0 || len(made) == 0) {
		sites := map[string]string{}
		for i, h := range heads {
			sites[r.sites[i].Name] = "missing"
			if h != nil {
				sites[r.sites[i].Name] = "present"
			}
		}
		add("missing", "missing at "+strings.Join(missing, ", ")+" (present at "+strings.Join(have, ", ")+")", sites)
	}
	if len(present) < 2 {
		return diffs, nil
	}

	field := func(kind string, get func(*s3io.ObjectInfo) string, show func(string) string) {
		gs := r.groups(present, func(i int) string { return get(heads[i]) })
		if len(gs) > 1 {
			add(kind, kind+" "+describe(gs, show), siteValues(gs, nil))
		}
	}
	field("size", func(h *s3io.ObjectInfo) string { return strconv.FormatInt(h.Size, 10) }, nil)
	// Content, among the sites that agree on the size.
	for _, g := range r.groups(present, func(i int) string { return strconv.FormatInt(heads[i].Size, 10) }) {
		if len(g.idx) < 2 || heads[g.idx[0]].Size == 0 {
			continue
		}
		ids, changed, err := r.contentIDs(ctx, bucket, k.key, g.idx, heads)
		if err != nil {
			return nil, err
		}
		if len(changed) > 0 {
			sites := map[string]string{}
			for _, s := range changed {
				sites[s] = "changed"
			}
			add("changed", "changed while being verified at "+strings.Join(changed, ", "), sites)
			continue
		}
		cg := r.groups(g.idx, func(i int) string { return ids[i] })
		if len(cg) > 1 {
			parts := make([]string, len(cg))
			for i, c := range cg {
				parts[i] = strings.Join(c.sites, ",")
			}
			add("content", "content differs "+strings.Join(parts, "≠"), siteValues(cg, nil))
		}
	}
	field("content-type", func(h *s3io.ObjectInfo) string { return h.ContentType }, quoted)
	field("cache-control", func(h *s3io.ObjectInfo) string { return h.CacheControl }, quoted)
	field("content-encoding", func(h *s3io.ObjectInfo) string { return h.ContentEncoding }, quoted)
	field("content-disposition", func(h *s3io.ObjectInfo) string { return h.ContentDisposition }, quoted)

	// User metadata, key by key, s3mesh's own keys left out.
	names := map[string]bool{}
	for _, i := range present {
		for m := range heads[i].Meta {
			if !schema.IsOwnMeta(m) {
				names[m] = true
			}
		}
	}
	var details []string
	metaSites := map[string]string{}
	for _, m := range slices.Sorted(maps.Keys(names)) {
		gs := r.groups(present, func(i int) string {
			if v, ok := heads[i].Meta[m]; ok {
				return "=" + v
			}
			return "" // absent, told apart from an empty value
		})
		if len(gs) < 2 {
			continue
		}
		show := func(v string) string {
			if v == "" {
				return "(absent)"
			}
			return strconv.Quote(v[1:])
		}
		details = append(details, strconv.Quote(m)+": "+describe(gs, show))
		for _, g := range gs {
			for _, s := range g.sites {
				metaSites[s] = strings.TrimPrefix(metaSites[s]+"; ", "; ") + m + "=" + show(g.val)
			}
		}
	}
	if len(details) > 0 {
		add("metadata", "metadata "+strings.Join(details, " | "), metaSites)
	}
	return diffs, nil
}

// contentIDs returns, for the sites idx (which agree on the size), strings
// equal exactly when the bytes are: the ETags when every one is
// single-part, otherwise sha256 of the bytes (one site hashed per distinct
// single-part ETag). changed names sites whose object changed meanwhile.
func (r *runner) contentIDs(ctx context.Context, bucket, key string, idx []int, heads []*s3io.ObjectInfo) (map[int]string, []string, error) {
	single := func(i int) bool { return heads[i].ETag != "" && !strings.Contains(heads[i].ETag, "-") }
	ids := map[int]string{}
	if !slices.ContainsFunc(idx, func(i int) bool { return !single(i) }) {
		for _, i := range idx {
			ids[i] = heads[i].ETag
		}
		return ids, nil, nil
	}
	rep := map[int]int{} // site -> the site whose hash stands for it
	byETag := map[string]int{}
	for _, i := range idx {
		rep[i] = i
		if single(i) {
			if j, ok := byETag[heads[i].ETag]; ok {
				rep[i] = j
			} else {
				byETag[heads[i].ETag] = i
			}
		}
	}
	sums := make([]string, len(heads))
	errs := make([]error, len(heads))
	gone := make([]bool, len(heads))
	var wg sync.WaitGroup
	for _, i := range idx {
		if rep[i] != i {
			continue
		}
		wg.Go(func() {
			sum, err := hashObject(ctx, r.sites[i].S3, bucket, key, heads[i].ETag)
			switch c := s3io.Classify(err); {
			case c == s3io.Precondition || c == s3io.NotFound:
				gone[i] = true
			case err != nil:
				errs[i] = fmt.Errorf("site %s: %w", r.sites[i].Name, err)
			default:
				sums[i] = "sha256:" + sum
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	var changed []string
	for _, i := range idx {
		if gone[rep[i]] {
			changed = append(changed, r.sites[i].Name)
		}
		ids[i] = sums[rep[i]]
	}
	return ids, changed, nil
}

// hashObject streams the object (as long as its ETag is still etag)
// through sha256; only a copy buffer is held in memory.
func hashObject(ctx context.Context, c *s3io.Client, bucket, key, etag string) (string, error) {
	body, _, err := c.Get(ctx, bucket, key, etag)
	if err != nil {
		return "", err
	}
	defer body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, body); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// group is the sites (names and indexes) that share one value.
type group struct {
	val   string
	idx   []int
	sites []string
}

// groups groups the sites idx by value, in order of first appearance.
func (r *runner) groups(idx []int, val func(i int) string) []group {
	var gs []group
	for _, i := range idx {
		v := val(i)
		j := slices.IndexFunc(gs, func(g group) bool { return g.val == v })
		if j < 0 {
			gs, j = append(gs, group{val: v}), len(gs)
		}
		gs[j].idx = append(gs[j].idx, i)
		gs[j].sites = append(gs[j].sites, r.sites[i].Name)
	}
	return gs
}

// describe renders groups as `V1 at a, b; V2 at c`.
func describe(gs []group, show func(string) string) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = showVal(g.val, show) + " at " + strings.Join(g.sites, ", ")
	}
	return strings.Join(parts, "; ")
}

func siteValues(gs []group, show func(string) string) map[string]string {
	m := map[string]string{}
	for _, g := range gs {
		for _, s := range g.sites {
			m[s] = showVal(g.val, show)
		}
	}
	return m
}

func showVal(v string, show func(string) string) string {
	if show == nil {
		return v
	}
	return show(v)
}

func quoted(v string) string {
	if v == "" {
		return "(none)"
	}
	return strconv.Quote(v)
}
