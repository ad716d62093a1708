package schema

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Clock is a vector clock: per site, how many local writes of one key that
// site has made and that this clock has seen. Missing entries are zero.
type Clock map[string]uint64

// Order is the causal relation between two clocks.
type Order int

// The four possible results of Clock.Compare.
const (
	Equal      Order = iota // same history
	Before                  // the receiver happened before the argument
	After                   // the receiver happened after the argument
	Concurrent              // neither saw the other: a conflict
)

func (o Order) String() string {
	switch o {
	case Equal:
		return "equal"
	case Before:
		return "before"
	case After:
		return "after"
	default:
		return "concurrent"
	}
}

// Compare tells how c relates to o.
func (c Clock) Compare(o Clock) Order {
	less, greater := false, false
	for k, v := range c {
		if w := o[k]; v > w {
			greater = true
		} else if v < w {
			less = true
		}
	}
	for k, w := range o {
		if _, ok := c[k]; !ok && w > 0 {
			less = true
		}
	}
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	default:
		return Equal
	}
}

// Merge returns the entry-wise maximum of c and o (a new clock).
func (c Clock) Merge(o Clock) Clock {
	m := make(Clock, len(c)+len(o))
	for k, v := range c {
		if v > 0 {
			m[k] = v
		}
	}
	for k, v := range o {
		if v > m[k] {
			m[k] = v
		}
	}
	return m
}

// Bump returns a copy of c with site's entry incremented: the clock of a new
// local write at site. It never wraps: a counter at the largest uint64
// stays there. (A counter over MaxCounter is refused long before: Validate,
// and so Encode, fail on it, so a producer refuses to publish such a clock
// with an error naming it rather than publish what its peers reject.)
func (c Clock) Bump(site string) Clock {
	m := c.Merge(nil)
	if m[site] < math.MaxUint64 {
		m[site]++
	}
	return m
}

// Clone returns an independent copy of c.
func (c Clock) Clone() Clock { return c.Merge(nil) }

// String renders the clock deterministically as "a:1,b:3" (sorted by site).
// It is the form stored in object metadata and shown to operators.
func (c Clock) String() string {
	sites := make([]string, 0, len(c))
	for k, v := range c {
		if v > 0 {
			sites = append(sites, k)
		}
	}
	sort.Strings(sites)
	var b strings.Builder
	for i, s := range sites {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(c[s], 10))
	}
	return b.String()
}

// ParseClock parses the form produced by Clock.String. The empty string is
// the empty clock.
func ParseClock(s string) (Clock, error) {
	c := Clock{}
	if s == "" {
		return c, nil
	}
	for _, part := range strings.Split(s, ",") {
		site, n, ok := strings.Cut(part, ":")
		if !ok || site == "" {
			return nil, fmt.Errorf("parse clock %q: entry %q is not site:counter", s, part)
		}
		v, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse clock %q: entry %q: %w", s, part, err)
		}
		if _, dup := c[site]; dup {
			return nil, fmt.Errorf("parse clock %q: site %q twice", s, site)
		}
		if v > 0 {
			c[site] = v
		}
	}
	return c, nil
}
