package schema

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds every record must keep, whoever made it (Validate checks them, so
// a producer refuses to publish a record outside them and a consumer
// refuses to apply one). A record from a peer is hostile until checked: a
// signed record only proves who made it, not that it is sane.
const (
	// MaxSize is S3's largest object, 5 TiB. Sizes size buffers and
	// transfers, so a larger one is never believed.
	MaxSize int64 = 5 << 40

	// MaxCounter bounds every clock counter. Counters embed the site's
	// incarnation (lifecycle.IncarnationShift = 24 bits of writes above
	// an incarnation of about unix seconds), so an honest counter is about
	// 2^55 today and reaches 2^56 in 2106 (unix seconds 2^32). The bound is
	// far below 2^64, so a counter at the bound can still be bumped 2^63
	// times without wrapping, and any sum or +1 of counters in the code
	// stays exact.
	MaxCounter uint64 = 1 << 56

	// IncarnationShift places a site's incarnation in its clock counters:
	// the n-th write of a key in incarnation i has a counter of at least
	// i<<IncarnationShift + 1. 2^24 writes of one key fit in one
	// incarnation; more spill into the incarnation bits, which keeps
	// counters increasing. An incarnation is at least the unix second the
	// site's agent started in.
	IncarnationShift = 24

	// IncarnationHeadroom is how many incarnations past the receiver's
	// clock (plus MaxFuture) a counter may claim: a site starts a new
	// incarnation at every start, at least one above the last, so a site
	// restarted many times within a second runs ahead of the wall clock;
	// and a key written more than 2^24 times in one run spills into the
	// next incarnations' bits.
	IncarnationHeadroom = 1024

	// MaxRankEpoch bounds the epoch of a policy rank (Policy.Rank: epoch
	// << 16 | flag << 8 | level). An epoch grows by at most one per write
	// of the key, so 2^40 is more writes of one key than any store makes.
	MaxRankEpoch uint64 = 1 << 40

	// DefaultMaxFuture is how far ahead of the receiver's clock a record's
	// origin time (Version.TS) and MadeAt may be, unless configured.
	DefaultMaxFuture = 24 * time.Hour

	// EarlyWindow is how far past its bound (the receiver's clock plus
	// MaxFuture, and the incarnation ceiling that follows from it) a
	// record's times may be and still be early rather than bad: an
	// EarlyError, which a receiver retries once its clock has caught up.
	// An origin time is hybrid (NextTS): a site's honest write over a
	// version a peer made just inside that site's bound inherits its
	// origin time + 1 ms, so a third site whose clock is a little behind
	// sees it a little past its own bound. Waiting is right for that (the
	// record becomes valid by itself as the clock advances); dead-lettering
	// it would lose an honest write. The window covers clock skew between
	// sites that keep NTP, with a wide margin; beyond it a record is bad.
	EarlyWindow = 5 * time.Minute

	// MaxEntries bounds every msgpack map and array header of a record, and
	// MaxDepth their nesting, before anything is decoded. A record has a
	// handful of fields, one clock entry per site and user metadata (which
	// S3 limits to 2 KB), so both are generous.
	MaxEntries = 4096
	MaxDepth   = 16
)

// ErrBadRecord is the sentinel of a record that decodes but breaks a bound
// (a *FieldError names the field). It wraps ErrMalformed, so callers that
// only know ErrMalformed still refuse it.
var ErrBadRecord = fmt.Errorf("%w: bad record", ErrMalformed)

// FieldError is a bound a record breaks, naming the field.
type FieldError struct {
	Field string // Go path of the field: "Version.Size", "Version.Clock", "Key", ...
	Msg   string
}

func (e *FieldError) Error() string { return "bad record: field " + e.Field + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrBadRecord) (and ErrMalformed) hold.
func (e *FieldError) Unwrap() error { return ErrBadRecord }

// ErrEarly is the sentinel of a record whose times are past this site's
// bound by at most EarlyWindow (an *EarlyError says by how much). It is
// not ErrMalformed: the record becomes valid as this site's clock
// advances, so a receiver retries it after EarlyError.Wait.
var ErrEarly = errors.New("record early")

// EarlyError is a record that is early: valid in all but its times, which
// are past this site's bound by Wait (at most EarlyWindow).
type EarlyError struct {
	Field string        // the field furthest past its bound: "Version.TS", "MadeAt" or "Version.Clock"
	Wait  time.Duration // how long until this site's clock admits the record
}

func (e *EarlyError) Error() string {
	return fmt.Sprintf("record early: field %s is %s past this site's bound (its clock plus records.max_future): valid once this site's clock has advanced by that much", e.Field, e.Wait)
}

// Unwrap makes errors.Is(err, ErrEarly) hold.
func (e *EarlyError) Unwrap() error { return ErrEarly }

// ErrUnproven is the sentinel of a record whose clock claims a counter of a
// third site (neither the record's origin nor the receiver) above any
// counter that site's own signed records have shown the receiver (an
// *UnprovenError says which). It is either forged or ahead of that site's
// own records (which the receiver has not had yet): the receiver waits for
// the proof before it dead-letters it. It wraps ErrBadRecord.
var ErrUnproven = fmt.Errorf("%w: clock entry not proven by its site", ErrBadRecord)

// UnprovenError is a record's entry for Site that is over Proven, the
// highest counter of Site's own entry in any record Site signed that the
// receiver has checked.
type UnprovenError struct {
	Site          string
	Claim, Proven uint64
}

func (e *UnprovenError) Error() string {
	return fmt.Sprintf("bad record: field Version.Clock: entry for site %s is %d, above every counter %s's own signed records have shown this site (%d)",
		e.Site, e.Claim, e.Site, e.Proven)
}

// Unwrap makes errors.Is(err, ErrUnproven) (and ErrBadRecord) hold.
func (e *UnprovenError) Unwrap() error { return ErrUnproven }

func badField(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Limits is what a receiving site knows that a record cannot tell it: the
// sites of the mesh and its own clock.
type Limits struct {
	// Sites are the sites a clock may name: this site, its peers and any
	// former sites whose entries remain in old keys' clocks. Empty: not
	// checked.
	Sites map[string]bool
	// Now is the receiver's clock, unix ms.
	Now int64
	// MaxFuture is how far past Now Version.TS and MadeAt may be (0:
	// DefaultMaxFuture).
	MaxFuture time.Duration
	// Self is the receiving site and SelfMax the highest counter it can
	// have made (0: not checked). A peer's record whose clock holds a
	// higher entry for Self is forged: accepted, it would lift Self's own
	// next counter for the key towards MaxCounter, where Self could no
	// longer write the key.
	Self    string
	SelfMax uint64
	// Proven is, for each site W it names, the highest counter of W's own
	// entry in any record signed by W (verified, origin W) that the
	// receiver has checked. A record's entry for W, where W is neither its
	// origin nor Self, above Proven[W] is refused with an *UnprovenError:
	// accepted, it would be merged into the key's clock here, and every
	// later write of the key at W below it would look stale here (skipped
	// silently). Sites it does not name (former sites) are not checked;
	// nil checks none.
	Proven map[string]uint64
}

// NewLimits builds Limits for the given sites.
func NewLimits(sites []string, now time.Time, maxFuture time.Duration) Limits {
	l := Limits{Sites: make(map[string]bool, len(sites)), Now: now.UnixMilli(), MaxFuture: maxFuture}
	for _, s := range sites {
		l.Sites[s] = true
	}
	return l
}

// ValidateFor checks r as a receiving site must before acting on it: the
// invariants of Validate, plus that its clock names only known sites, that
// its times are not absurdly far in the future, that its key (and the
// name its loser copy would get) can be stored safely, and, checked last,
// that its entries for third sites are proven. A record whose times are
// past the bound by at most EarlyWindow, and that breaks no other bound,
// gets an *EarlyError (ErrEarly): not bad, only early. An *UnprovenError
// comes only after every other bound holds and the record is not early.
func (r *Record) ValidateFor(l Limits) error {
	if err := r.Validate(); err != nil {
		return err
	}
	v := r.Version
	if len(l.Sites) > 0 {
		for s := range v.Clock {
			if !l.Sites[s] {
				return badField("Version.Clock", "entry for site %q, which is not a site of this mesh", trunc(s))
			}
		}
		if !l.Sites[v.Origin] {
			return badField("Version.Origin", "%q is not a site of this mesh", trunc(v.Origin))
		}
	}
	if l.Self != "" && l.SelfMax > 0 && v.Clock[l.Self] > l.SelfMax {
		return badField("Version.Clock", "entry for this site %s is %d, above any counter it has made (%d)", l.Self, v.Clock[l.Self], l.SelfMax)
	}
	maxFuture := l.MaxFuture
	if maxFuture <= 0 {
		maxFuture = DefaultMaxFuture
	}
	limit := l.Now + maxFuture.Milliseconds()
	window := EarlyWindow.Milliseconds()
	// early is the field furthest past its bound and by how many ms; a
	// field past it by more than the window is bad.
	var early EarlyError
	past := func(field string, by int64) {
		if by > early.Wait.Milliseconds() {
			early = EarlyError{Field: field, Wait: time.Duration(by) * time.Millisecond}
		}
	}
	// No site can have made a counter in an incarnation that has not
	// started yet: a counter's incarnation is at most the unix second of
	// the latest start of its site. A peer that claims a third site's
	// counter beyond it could otherwise make every honest write of that
	// site below it look stale here (skipped, silently).
	if l.Now > 0 {
		ceiling := uint64(max(limit, 0))/1000 + IncarnationHeadroom
		for _, s := range sortedSites(v.Clock) {
			n := v.Clock[s]
			inc := IncarnationOf(n)
			if inc <= ceiling {
				continue
			}
			// The clock admits inc once limit reaches (inc-headroom)*1000.
			by := int64(inc-IncarnationHeadroom)*1000 - limit
			if inc-ceiling > uint64(window/1000) || by > window {
				return badField("Version.Clock", "entry for site %s is %d, made in incarnation %d, which starts after this site's clock allows (at most %d, and %s more)",
					trunc(s), n, inc, ceiling, EarlyWindow)
			}
			past("Version.Clock", by)
		}
	}
	if v.TS > limit {
		if v.TS-limit > window {
			return badField("Version.TS", "origin time %d is more than %s (records.max_future) + %s after this site's clock (%d)", v.TS, maxFuture, EarlyWindow, l.Now)
		}
		past("Version.TS", v.TS-limit)
	}
	if r.MadeAt > limit {
		if r.MadeAt-limit > window {
			return badField("MadeAt", "%d is more than %s (records.max_future) + %s after this site's clock (%d)", r.MadeAt, maxFuture, EarlyWindow, l.Now)
		}
		past("MadeAt", r.MadeAt-limit)
	}
	if err := CheckKey(r.Key); err != nil {
		return err
	}
	// The loser copy's name is <prefix><key>/<origin>-<time>: it stays
	// under the prefix when the key has no "." or ".." segment (above) and
	// the origin no "/" or NUL (a configured site name has neither).
	if strings.ContainsAny(v.Origin, "/\x00\\") {
		return badField("Version.Origin", "%q would put the loser copy's name outside the losers prefix", trunc(v.Origin))
	}
	if early.Wait > 0 {
		return &early
	}
	// Last: every other bound is final, this one may be met later.
	return l.checkProven(v)
}

// OverKey is l with Proven raised to what clock, the key's merged clock at
// the receiver, holds: a record's entry no higher lifts nothing there (the
// clock holds only what the receiver checked before), so it needs no proof
// again. l is not changed.
func (l Limits) OverKey(clock Clock) Limits {
	if l.Proven == nil {
		return l
	}
	p := make(map[string]uint64, len(l.Proven))
	for s, n := range l.Proven {
		p[s] = max(n, clock[s])
	}
	l.Proven = p
	return l
}

// checkProven refuses an entry of v's clock for a third site above what
// that site's own records proved (Limits.Proven).
func (l Limits) checkProven(v Version) error {
	if l.Proven == nil {
		return nil
	}
	for _, s := range sortedSites(v.Clock) {
		if s == v.Origin || s == l.Self {
			continue
		}
		if p, ok := l.Proven[s]; ok && v.Clock[s] > p {
			return &UnprovenError{Site: s, Claim: v.Clock[s], Proven: p}
		}
	}
	return nil
}

// CheckKey refuses a key a store cannot hold safely: not UTF-8, a NUL
// byte, a "." or ".." path segment, or an empty segment ("//", a leading
// "/"), which a posix-backed store (versitygw) maps to another path or out
// of the bucket. A trailing "/" (a folder marker) is allowed.
func CheckKey(key string) error {
	switch {
	case key == "" || len(key) > 1024:
		return badField("Key", "length %d not in 1..1024", len(key))
	case !utf8.ValidString(key):
		return badField("Key", "not UTF-8")
	case strings.IndexByte(key, 0) >= 0:
		return badField("Key", "holds a NUL byte")
	}
	segs := strings.Split(strings.TrimSuffix(key, "/"), "/")
	for i, s := range segs {
		switch s {
		case ".", "..":
			return badField("Key", "%q has a %q path segment", trunc(key), s)
		case "":
			if i == 0 && len(segs) == 1 {
				continue // the key "/" itself: TrimSuffix left ""
			}
			return badField("Key", "%q has an empty path segment (// or a leading /)", trunc(key))
		}
	}
	return nil
}

// checkBounds is the part of Validate that bounds sizes, counters and
// ranks (the same at every site, so a producer refuses what its peers
// would).
func (r *Record) checkBounds() error {
	v := r.Version
	if v.Size > MaxSize {
		return badField("Version.Size", "%d bytes, over S3's maximum of 5 TiB (%d)", v.Size, MaxSize)
	}
	for s, n := range v.Clock {
		if n > MaxCounter {
			return badField("Version.Clock", "counter of site %q is %d, over the bound 2^56 (the key's clock is exhausted)", trunc(s), n)
		}
	}
	if err := CheckRank(v.Rank); err != nil {
		return err
	}
	return nil
}

// CheckRank refuses a rank no policy produces: Policy.Rank lays it out as
// epoch << 16 | flag << 8 | level with a flag of 0 or 1, a level of at most
// maxPriority and an epoch of at most MaxRankEpoch.
func CheckRank(rank uint64) error {
	flag := rank >> rankLevelBits & (1<<rankFlagBits - 1)
	epoch := rank >> (rankLevelBits + rankFlagBits)
	switch {
	case flag > 1:
		return badField("Version.Rank", "%#x: flag %d, a policy sets 0 or 1", rank, flag)
	case epoch > MaxRankEpoch:
		return badField("Version.Rank", "%#x: epoch %d over the bound 2^40", rank, epoch)
	}
	// The level is 8 bits and every value up to maxPriority (255) occurs.
	return nil
}

// IncarnationOf is the incarnation a counter was made in.
func IncarnationOf(counter uint64) uint64 { return counter >> IncarnationShift }

// sortedSites lists c's sites in order, so an error names the same entry
// every time.
func sortedSites(c Clock) []string {
	out := make([]string, 0, len(c))
	for s := range c {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func trunc(s string) string {
	if len(s) <= 64 {
		return s
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
