package schema

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

var testNow = time.UnixMilli(1_700_000_000_000)

func testLimits() Limits { return NewLimits([]string{"a", "b", "c"}, testNow, 0) }

// withCounter sets the origin's counter (and the id that goes with it).
func withCounter(r *Record, n uint64) {
	r.Version.Clock[r.Version.Origin] = n
	r.Version.ID = VersionID(r.Version.Origin, r.Bucket, r.Key, n)
}

func withKey(r *Record, k string) {
	r.Key = k
	r.Version.ID = VersionID(r.Version.Origin, r.Bucket, k, r.Version.Clock[r.Version.Origin])
}

func streamed(r *Record, size int64) { r.Inline, r.Body, r.Version.Size = false, nil, size }

// TestCounterFormatBound: the format takes counters up to MaxCounter (a
// record of 2106 encodes); only ValidateFor bounds them by the clock.
func TestCounterFormatBound(t *testing.T) {
	r := validRecord()
	r.Version.Clock = r.Version.Clock.Clone()
	withCounter(&r, MaxCounter)
	if _, err := r.Encode(); err != nil {
		t.Fatalf("Encode of a counter at 2^56: %v", err)
	}
	withCounter(&r, MaxCounter+1)
	if _, err := r.Encode(); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("Encode of a counter over 2^56 = %v, want ErrBadRecord", err)
	}
}

// TestBounds: for every bound, a record just inside passes, just outside
// fails with ErrBadRecord naming the field (for times: "early:" and the
// field when past the bound by at most EarlyWindow, ErrEarly).
func TestBounds(t *testing.T) {
	day := DefaultMaxFuture.Milliseconds()
	win := EarlyWindow.Milliseconds()
	now := testNow.UnixMilli()
	ceiling := uint64(testNow.Add(DefaultMaxFuture).Unix() + IncarnationHeadroom)
	cases := []struct {
		name  string
		field string // "" = passes
		mut   func(*Record)
	}{
		{"size at 5 TiB", "", func(r *Record) { streamed(r, MaxSize) }},
		{"size over 5 TiB", "Version.Size", func(r *Record) { streamed(r, MaxSize+1) }},
		{"size 2^62", "Version.Size", func(r *Record) { streamed(r, 1<<62) }},
		// 2^56 is within the format's bound (Encode takes it, see
		// TestCounterFormatBound) but an incarnation of 2^32 has not
		// started: no site can have made it yet.
		{"origin counter at 2^56", "Version.Clock", func(r *Record) { withCounter(r, MaxCounter) }},
		{"origin counter over 2^56", "Version.Clock", func(r *Record) { withCounter(r, MaxCounter+1) }},
		{"origin counter 2^64-1", "Version.Clock", func(r *Record) { withCounter(r, math.MaxUint64) }},
		{"real counter of today's incarnation", "", func(r *Record) { withCounter(r, uint64(testNow.Unix())<<24+1) }},
		{"real counter in 2105", "Version.Clock", func(r *Record) { withCounter(r, uint64(4_290_000_000)<<24+1<<23) }},
		{"other counter at 2^56", "Version.Clock", func(r *Record) { r.Version.Clock["b"] = MaxCounter }},
		// The ceiling: an incarnation at most MaxFuture past this site's
		// clock, plus IncarnationHeadroom.
		{"other counter at the incarnation ceiling", "", func(r *Record) {
			r.Version.Clock["b"] = uint64(testNow.Add(DefaultMaxFuture).Unix()+IncarnationHeadroom)<<IncarnationShift | 1<<23
		}},
		{"other counter past the incarnation ceiling", "early:Version.Clock", func(r *Record) {
			r.Version.Clock["b"] = (ceiling + 1) << IncarnationShift
		}},
		{"other counter at the incarnation ceiling + the early window", "early:Version.Clock", func(r *Record) {
			r.Version.Clock["b"] = (ceiling + uint64(EarlyWindow/time.Second)) << IncarnationShift
		}},
		{"other counter past the incarnation ceiling + the early window", "Version.Clock", func(r *Record) {
			r.Version.Clock["b"] = (ceiling + uint64(EarlyWindow/time.Second) + 1) << IncarnationShift
		}},
		{"other counter at 2^55 (a forged dominating clock)", "Version.Clock", func(r *Record) { r.Version.Clock["c"] = 1 << 55 }},
		{"other counter over 2^56", "Version.Clock", func(r *Record) { r.Version.Clock["b"] = MaxCounter + 1 }},
		{"clock names only known sites", "", func(r *Record) { r.Version.Clock["c"] = 7 }},
		{"clock names an unknown site", "Version.Clock", func(r *Record) { r.Version.Clock["mallory"] = 1 }},
		{"rank top of range", "", func(r *Record) { r.Version.Rank = MaxRankEpoch<<16 | 1<<8 | 255 }},
		{"rank flag 2", "Version.Rank", func(r *Record) { r.Version.Rank = 2 << 8 }},
		{"rank epoch over 2^40", "Version.Rank", func(r *Record) { r.Version.Rank = (MaxRankEpoch + 1) << 16 }},
		{"rank 2^64-1", "Version.Rank", func(r *Record) { r.Version.Rank = math.MaxUint64 }},
		{"ts at now+24h", "", func(r *Record) { r.Version.TS = now + day }},
		{"ts past now+24h", "early:Version.TS", func(r *Record) { r.Version.TS = now + day + 1 }},
		{"ts at now+24h+window", "early:Version.TS", func(r *Record) { r.Version.TS = now + day + win }},
		{"ts past now+24h+window", "Version.TS", func(r *Record) { r.Version.TS = now + day + win + 1 }},
		{"ts early and key bad: bad", "Key", func(r *Record) { r.Version.TS = now + day + 1; withKey(r, "a//b") }},
		{"ts far future", "Version.TS", func(r *Record) { r.Version.TS = math.MaxInt64 }},
		{"ts long ago", "", func(r *Record) { r.Version.TS = 0 }},
		{"made at now+24h", "", func(r *Record) { r.MadeAt = now + day }},
		{"made past now+24h", "early:MadeAt", func(r *Record) { r.MadeAt = now + day + 1 }},
		{"made past now+24h+window", "MadeAt", func(r *Record) { r.MadeAt = now + day + win + 1 }},
		{"made and ts early: the later names the wait", "early:MadeAt", func(r *Record) { r.Version.TS = now + day + 5; r.MadeAt = now + day + 9 }},
		{"key with dots in a name", "", func(r *Record) { withKey(r, "a/..b/c../.d/e.") }},
		{"folder marker", "", func(r *Record) { streamed(r, 0); withKey(r, "dir/sub/") }},
		{"key ..", "Key", func(r *Record) { withKey(r, "..") }},
		{"key ../ escape", "Key", func(r *Record) { withKey(r, "../../etc/passwd") }},
		{"key /.. segment", "Key", func(r *Record) { withKey(r, "a/../b") }},
		{"key trailing ..", "Key", func(r *Record) { withKey(r, "a/..") }},
		{"key . segment", "Key", func(r *Record) { withKey(r, "a/./b") }},
		{"key //", "Key", func(r *Record) { withKey(r, "a//b") }},
		{"key leading /", "Key", func(r *Record) { withKey(r, "/a") }},
		{"key NUL", "Key", func(r *Record) { withKey(r, "a\x00b") }},
		{"key not UTF-8", "Key", func(r *Record) { withKey(r, "a\xffb") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validRecord()
			r.Version.Clock = r.Version.Clock.Clone()
			tc.mut(&r)
			err := r.ValidateFor(testLimits())
			if tc.field == "" {
				if err != nil {
					t.Fatalf("ValidateFor: %v", err)
				}
				b, err := r.Encode()
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				if _, err := Decode(b); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if field, ok := strings.CutPrefix(tc.field, "early:"); ok {
				var ee *EarlyError
				if !errors.As(err, &ee) || !errors.Is(err, ErrEarly) || errors.Is(err, ErrMalformed) {
					t.Fatalf("ValidateFor = %v, want an EarlyError (ErrEarly, not ErrMalformed)", err)
				}
				if ee.Field != field || ee.Wait <= 0 || ee.Wait > EarlyWindow {
					t.Fatalf("EarlyError %+v, want field %s and a wait in (0, %s]", ee, field, EarlyWindow)
				}
				// Once this site's clock has advanced by the wait, the
				// record is valid.
				l := testLimits()
				l.Now += ee.Wait.Milliseconds()
				if err := r.ValidateFor(l); err != nil {
					t.Fatalf("after waiting %s: %v", ee.Wait, err)
				}
				l.Now--
				if err := r.ValidateFor(l); !errors.Is(err, ErrEarly) {
					t.Fatalf("1 ms before the wait is over: %v, want ErrEarly", err)
				}
				return
			}
			var fe *FieldError
			if !errors.Is(err, ErrBadRecord) || !errors.Is(err, ErrMalformed) || !errors.As(err, &fe) {
				t.Fatalf("ValidateFor = %v, want a FieldError (ErrBadRecord)", err)
			}
			if fe.Field != tc.field || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q names field %q, want %q", err, fe.Field, tc.field)
			}
		})
	}
}

// TestBoundsAtEncodeAndDecode: the site-independent bounds are refused by
// Encode (a producer does not publish them) and by Decode (hand-made bytes).
func TestBoundsAtEncodeAndDecode(t *testing.T) {
	for name, mut := range map[string]func(*Record){
		"size":    func(r *Record) { streamed(r, MaxSize+1) },
		"counter": func(r *Record) { withCounter(r, MaxCounter+1) },
		"rank":    func(r *Record) { r.Version.Rank = 3 << 8 },
	} {
		t.Run(name, func(t *testing.T) {
			r := validRecord()
			r.Version.Clock = r.Version.Clock.Clone()
			mut(&r)
			if _, err := r.Encode(); !errors.Is(err, ErrBadRecord) {
				t.Fatalf("Encode = %v, want ErrBadRecord", err)
			}
			b, err := msgpack.Marshal(&r)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Decode(b); !errors.Is(err, ErrBadRecord) {
				t.Fatalf("Decode = %v, want ErrBadRecord", err)
			}
		})
	}
}

func TestValidateForLimits(t *testing.T) {
	r := validRecord()
	if err := r.ValidateFor(Limits{Now: testNow.UnixMilli()}); err != nil {
		t.Fatalf("no sites configured: sites not checked, got %v", err)
	}
	r.Version.TS = testNow.Add(2 * time.Hour).UnixMilli()
	l := NewLimits([]string{"a", "b"}, testNow, time.Hour)
	if err := r.ValidateFor(l); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("1h window, 2h ahead: got %v", err)
	}
	l.MaxFuture = 3 * time.Hour
	if err := r.ValidateFor(l); err != nil {
		t.Fatalf("3h window, 2h ahead: %v", err)
	}
	r = validRecord()
	r.Version.Origin, r.Version.Clock = "../x", Clock{"../x": 3}
	r.Version.ID = VersionID("../x", r.Bucket, r.Key, 3)
	if err := r.ValidateFor(Limits{Now: testNow.UnixMilli()}); !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), "Version.Origin") {
		t.Fatalf("origin with a slash (loser copy outside the prefix): got %v", err)
	}
	r = validRecord()
	if err := r.ValidateFor(NewLimits([]string{"b", "c"}, testNow, 0)); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("origin not a known site: got %v", err)
	}
}

// TestLoserKeyStaysUnderPrefix: for keys CheckKey accepts and site-name
// origins, the loser copy's name is under the prefix and storable too.
func TestLoserKeyStaysUnderPrefix(t *testing.T) {
	for _, k := range []string{"a", "a/b", "dir/", "x.", "..x", strings.Repeat("k", 1024)} {
		v := Version{Origin: "site-1", TS: testNow.UnixMilli()}
		lk := LoserKey(".s3mesh-conflicts/", "b", k, v)
		if !strings.HasPrefix(lk, ".s3mesh-conflicts/") {
			t.Fatalf("%q: loser key %q leaves the prefix", k, lk)
		}
		if CheckKey(k) == nil && CheckKey(lk) != nil && !strings.HasSuffix(k, "/") {
			t.Fatalf("%q: loser key %q is not storable: %v", k, lk, CheckKey(lk))
		}
	}
}

func TestBumpNeverWraps(t *testing.T) {
	c := Clock{"a": math.MaxUint64, "b": 1}
	if got := c.Bump("a"); got["a"] != math.MaxUint64 || got["b"] != 1 {
		t.Fatalf("Bump at the top = %v", got)
	}
	// A clock bumped past the bound is refused by Encode, naming it.
	r := validRecord()
	r.Version.Clock = Clock{"a": MaxCounter}.Bump("a")
	r.Version.ID = VersionID("a", r.Bucket, r.Key, r.Version.Clock["a"])
	if _, err := r.Encode(); !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), "Version.Clock") {
		t.Fatalf("Encode of a clock past the bound = %v", err)
	}
}

// TestShape: map and array headers are bounded before decoding.
func TestShape(t *testing.T) {
	good, err := func() ([]byte, error) { r := validRecord(); return r.Encode() }()
	if err != nil {
		t.Fatal(err)
	}
	nest := func(n int) []byte {
		b := make([]byte, n+1)
		for i := range n {
			b[i] = 0x91 // fixarray of one
		}
		return b // innermost: 0x00
	}
	mapHeader := func(n uint32) []byte {
		return []byte{0xdf, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	cases := []struct {
		name string
		b    []byte
		bad  bool // ErrBadRecord (else ErrMalformed only, or nil)
		ok   bool
	}{
		{"a record", good, false, true},
		{"map of 2^32-1 entries", mapHeader(math.MaxUint32), true, false},
		{"map of MaxEntries+1", append(mapHeader(MaxEntries+1), make([]byte, 2*MaxEntries+2)...), true, false},
		{"array32 of 2^31", []byte{0xdd, 0x80, 0, 0, 0}, true, false},
		{"map of MaxEntries, truncated", mapHeader(MaxEntries), false, false},
		{"str32 claiming 4 GiB", []byte{0xdb, 0xff, 0xff, 0xff, 0xff}, false, false},
		{"bin32 claiming 4 GiB", []byte{0xc6, 0xff, 0xff, 0xff, 0xff}, false, false},
		{"ext32 claiming 4 GiB", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 1}, false, false},
		{"nesting at MaxDepth", nest(MaxDepth), false, true},
		{"nesting over MaxDepth", nest(MaxDepth + 1), true, false},
		{"never-used code", []byte{0xc1}, false, false},
		{"empty", nil, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkShape(tc.b)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("checkShape: %v", err)
			case tc.ok:
			case err == nil:
				t.Fatal("checkShape accepted it")
			case tc.bad != errors.Is(err, ErrBadRecord), !errors.Is(err, ErrMalformed):
				t.Fatalf("checkShape = %v, want bad-record %v", err, tc.bad)
			}
			if !tc.ok {
				if _, err := Decode(tc.b); err == nil {
					t.Fatal("Decode accepted it")
				}
			}
		})
	}
}

// FuzzValidateFor: whatever the bytes, Decode and ValidateFor return an
// error wrapping a sentinel or a record within every bound.
func FuzzValidateFor(f *testing.F) {
	r := validRecord()
	b, _ := r.Encode()
	f.Add(b)
	for _, mut := range []func(*Record){
		func(r *Record) { r.Version.Clock["mallory"] = 1 },
		func(r *Record) { withKey(r, "a/../b") },
		func(r *Record) { r.Version.TS = math.MaxInt64 },
		func(r *Record) { streamed(r, 1<<62) },
		func(r *Record) { withCounter(r, math.MaxUint64) },
	} {
		r := validRecord()
		r.Version.Clock = r.Version.Clock.Clone()
		mut(&r)
		if b, err := msgpack.Marshal(&r); err == nil {
			f.Add(b)
		}
	}
	l := testLimits()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		early := false
		if err := r.ValidateFor(l); err != nil {
			if !errors.Is(err, ErrBadRecord) && !errors.Is(err, ErrEarly) {
				t.Fatalf("ValidateFor error %v is neither ErrBadRecord nor ErrEarly", err)
			}
			if !errors.Is(err, ErrEarly) {
				return
			}
			early = true
		}
		v := r.Version
		bound := l.Now + DefaultMaxFuture.Milliseconds()
		if early {
			bound += EarlyWindow.Milliseconds()
		}
		if v.Size > MaxSize || v.TS > bound || r.MadeAt > bound || CheckKey(r.Key) != nil {
			t.Fatalf("accepted out of bounds: %+v", v)
		}
		for s, n := range v.Clock {
			if !l.Sites[s] || n > MaxCounter {
				t.Fatalf("accepted clock %v", v.Clock)
			}
		}
	})
}

// A peer's record may carry the receiving site's entry only up to the
// highest counter that site can have made: a higher one is forged (it would
// lift the site's own next counter for the key towards MaxCounter).
func TestValidateForSelfEntry(t *testing.T) {
	r := validRecord() // origin a, clock a:3 b:1; received at b
	l := NewLimits([]string{"a", "b"}, time.UnixMilli(r.Version.TS), 0)
	l.Self, l.SelfMax = "b", 1
	if err := r.ValidateFor(l); err != nil {
		t.Fatalf("b's entry at its maximum: %v", err)
	}
	r.Version.Clock["b"] = 2
	if err := r.ValidateFor(l); !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), "Version.Clock") {
		t.Fatalf("b's entry above any counter b made: got %v", err)
	}
	l.SelfMax = 0
	if err := r.ValidateFor(l); err != nil {
		t.Fatalf("SelfMax 0 checks nothing: %v", err)
	}
}

// A record's entry for a third site may not exceed what that site's own
// signed records have shown the receiver (Limits.Proven): the claim below
// the incarnation ceiling would otherwise silence that site's later writes
// of the key here. The origin's own entry and the receiver's are bounded
// elsewhere; a site Proven does not name (a former site) is not checked.
func TestValidateForProven(t *testing.T) {
	r := validRecord() // origin a, clock a:3 b:1
	r.Version.Clock["c"] = 7
	l := NewLimits([]string{"a", "b", "c"}, testNow, 0)
	l.Self = "b"
	if err := r.ValidateFor(l); err != nil {
		t.Fatalf("nil Proven checks nothing: %v", err)
	}
	l.Proven = map[string]uint64{"c": 7, "a": 0, "b": 0}
	if err := r.ValidateFor(l); err != nil {
		t.Fatalf("c's entry at what c proved, a's (the origin's) and b's (Self) above Proven: %v", err)
	}
	// One over what c proved: below the incarnation ceiling by far, but
	// unproven.
	r.Version.Clock["c"] = 8
	err := r.ValidateFor(l)
	var ue *UnprovenError
	if !errors.As(err, &ue) || ue.Site != "c" || ue.Claim != 8 || ue.Proven != 7 {
		t.Fatalf("c's entry above what c proved: got %v", err)
	}
	if !errors.Is(err, ErrUnproven) || !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), "Version.Clock") || !strings.Contains(err.Error(), "site c") {
		t.Fatalf("unproven entry: %v should be ErrUnproven and ErrBadRecord and name Version.Clock and c", err)
	}
	// Another bound the record breaks is final and wins over the wait.
	r.Version.TS = testNow.Add(48 * time.Hour).UnixMilli()
	if err := r.ValidateFor(l); errors.Is(err, ErrUnproven) || !errors.Is(err, ErrBadRecord) {
		t.Fatalf("a record out of another bound: got %v, want a final bad-record", err)
	}
	r.Version.TS = testNow.UnixMilli()
	// Within the key's own clock at the receiver: no proof needed; the
	// Limits it came from are not changed.
	over := l.OverKey(Clock{"c": 8, "z": 99})
	if err := r.ValidateFor(over); err != nil || l.Proven["c"] != 7 || len(over.Proven) != len(l.Proven) {
		t.Fatalf("c's entry within the key's clock: %v (Proven %v, over %v)", err, l.Proven, over.Proven)
	}
	if err := r.ValidateFor(l.OverKey(Clock{"c": 7})); !errors.Is(err, ErrUnproven) {
		t.Fatalf("c's entry above the key's clock and the proof: got %v", err)
	}
	// A site Proven does not name is not checked.
	delete(l.Proven, "c")
	if err := r.ValidateFor(l); err != nil {
		t.Fatalf("c not in Proven: %v", err)
	}
	// A site with nothing proven yet: any claim waits.
	l.Proven["c"] = 0
	r.Version.Clock["c"] = 1
	if err := r.ValidateFor(l); !errors.Is(err, ErrUnproven) {
		t.Fatalf("c has proved nothing: got %v", err)
	}
}
