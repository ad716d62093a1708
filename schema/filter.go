package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Filter is a bucket's prefix filter: which keys replicate. A key
// replicates when it starts with one of Include (or Include is empty) and
// with none of Exclude. It is meant to be the same at every site; each
// record of a filtered bucket carries its origin's FilterDigest, so a
// receiver whose filter differs can say so.
type Filter struct {
	Include []string
	Exclude []string
}

// Empty reports whether f lets every key through.
func (f Filter) Empty() bool { return len(f.Include) == 0 && len(f.Exclude) == 0 }

// Match reports whether key replicates under f.
func (f Filter) Match(key string) bool {
	if len(f.Include) > 0 && !slices.ContainsFunc(f.Include, func(p string) bool { return strings.HasPrefix(key, p) }) {
		return false
	}
	return !slices.ContainsFunc(f.Exclude, func(p string) bool { return strings.HasPrefix(key, p) })
}

// FilterDigestLen is the length of a FilterDigest (hex digits).
const FilterDigestLen = 24

// Digest is a short digest of the filter set, independent of the order and
// repetition of its prefixes: "" for the empty filter, else
// FilterDigestLen hex digits.
func (f Filter) Digest() string {
	if f.Empty() {
		return ""
	}
	h := sha256.New()
	for _, l := range [][]string{f.Include, f.Exclude} {
		s := slices.Clone(l)
		slices.Sort(s)
		s = slices.Compact(s)
		for _, p := range s {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
		h.Write([]byte{1}) // ends the list: include [a] differs from exclude [a]
	}
	return hex.EncodeToString(h.Sum(nil))[:FilterDigestLen]
}

// validFilterDigest reports whether d has the shape of a non-empty Digest.
func validFilterDigest(d string) bool {
	if len(d) != FilterDigestLen {
		return false
	}
	for _, c := range d {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
