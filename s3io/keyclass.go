package s3io

import (
	"golang.org/x/sync/errgroup"

	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
)

// keyClassProbe is one kind of key the store may not hold as written: the
// probe writes base+"kc-<i>/"+Before+Mid+After and looks for it.
type keyClassProbe struct {
	Name string
	Mid  string // the class's characters, between "a" and "z"
	// In reports whether key holds a character of the class.
	In func(key string) bool
}

// KeyClassProbes are the key classes Probe tries: every control byte
// (0x01-0x1f, 0x7f), a decomposed letter (NFD: e + U+0301, which some
// stores normalise), a trailing dot and a trailing space in a segment, a
// backslash, and a segment of 256 bytes.
var KeyClassProbes = func() []keyClassProbe {
	var out []keyClassProbe
	for b := byte(1); b < 0x20; b++ {
		out = append(out, controlClass(b))
	}
	out = append(out, controlClass(0x7f),
		keyClassProbe{Name: "NFD", Mid: "e\u0301", In: func(k string) bool {
			return strings.IndexFunc(k, func(r rune) bool { return unicode.Is(unicode.Mn, r) }) >= 0
		}},
		keyClassProbe{Name: "trailing dot", Mid: ".", In: func(k string) bool { return segmentEndsWith(k, ".") }},
		keyClassProbe{Name: "trailing space", Mid: " ", In: func(k string) bool { return segmentEndsWith(k, " ") }},
		keyClassProbe{Name: "backslash", Mid: `\`, In: func(k string) bool { return strings.Contains(k, `\`) }},
		keyClassProbe{Name: "segment over 255 bytes", Mid: strings.Repeat("s", 254), In: func(k string) bool {
			for seg := range strings.SplitSeq(k, "/") {
				if len(seg) > 255 {
					return true
				}
			}
			return false
		}},
	)
	return out
}()

func controlClass(b byte) keyClassProbe {
	return keyClassProbe{Name: fmt.Sprintf("control %#02x", b), Mid: string([]byte{b}), In: func(k string) bool { return strings.IndexByte(k, b) >= 0 }}
}

// segmentEndsWith reports whether a segment of key (but a "." or ".."
// segment, which no record carries) ends with suffix.
func segmentEndsWith(key, suffix string) bool {
	for seg := range strings.SplitSeq(strings.TrimSuffix(key, "/"), "/") {
		if seg != "." && seg != ".." && strings.HasSuffix(seg, suffix) {
			return true
		}
	}
	return false
}

// KeyClassSettle is how long after writing its keys the key-class probe
// lists them: a store that renames a key may show the exact name for a
// moment (rclone serves it from its directory cache, kept 1 s with
// --dir-cache-time 1s).
var KeyClassSettle = 1500 * time.Millisecond

// probeKeyClasses writes one key of each class under base, in a folder of
// its own ("a"+class+"z" for the classes that can stand inside a segment;
// at the segment's end for the trailing ones), then, KeyClassSettle later,
// records whether a HEAD and a GET of the exact key find it and how a
// listing of the folder shows it.
func (c *Client) probeKeyClasses(ctx context.Context, bucket, base string, put func(key, body string, in PutInput) (string, error)) []KeyClass {
	out := make([]KeyClass, len(KeyClassProbes))
	written := make([]bool, len(KeyClassProbes))
	dirs, names := make([]string, len(KeyClassProbes)), make([]string, len(KeyClassProbes))
	for i, p := range KeyClassProbes {
		out[i].Name = p.Name
		dirs[i] = fmt.Sprintf("%skc-%02d/", base, i)
		names[i] = "a" + p.Mid + "z"
		if strings.HasPrefix(p.Name, "trailing") {
			names[i] = "a" + p.Mid
		}
	}
	// One store round trip at a time would take minutes on a slow store
	// (every class is four or five requests), and the agent replicates
	// nothing until its probe is done: the classes go concurrently.
	parallel(len(KeyClassProbes), func(i int) {
		_, err := put(dirs[i]+names[i], "k", PutInput{})
		written[i] = err == nil
	})
	select {
	case <-ctx.Done():
		return out
	case <-time.After(KeyClassSettle):
	}
	stop := errors.New("done")
	parallel(len(KeyClassProbes), func(i int) {
		if !written[i] {
			return
		}
		key := dirs[i] + names[i]
		info, herr := c.Head(ctx, bucket, key)
		rc, _, gerr := c.Get(ctx, bucket, key, "")
		if gerr == nil {
			_, gerr = io.Copy(io.Discard, rc)
			rc.Close()
		}
		out[i].Holds = herr == nil && info.Exists && gerr == nil
		var listed []string
		_ = c.List(ctx, bucket, dirs[i], 10, func(e ListEntry) error {
			if !strings.HasPrefix(e.Key, dirs[i]) {
				return stop
			}
			listed = append(listed, strings.TrimPrefix(e.Key, dirs[i]))
			return nil
		})
		if len(listed) != 1 || listed[0] == names[i] {
			return
		}
		l := listed[0]
		out[i].ListedAs = strings.TrimSuffix(strings.TrimPrefix(l, "a"), "z")
		// Listed under another name that is real (a HEAD finds it): the
		// store keeps the key under that name. A listing that only shows
		// the name differently (versitygw shows control bytes as U+FFFD)
		// names nothing.
		if li, err := c.Head(ctx, bucket, dirs[i]+l); err == nil && li.Exists {
			out[i].Holds = false
			// Ours too (Probe's cleanup deletes what it made by its exact
			// name).
			_ = c.Delete(ctx, bucket, dirs[i]+l, "")
		}
	})
	return out
}

// CasePair is the key class of two keys that differ only in letter case
// ("…/Az" and "…/az"): a store on a case-insensitive file system keeps
// them as one object. It is a class of key pairs, not of keys, so
// Unrepresentable never names it; the probe reports it (KeyClasses,
// CannotHold).
const CasePair = "case pair"

// probeCasePair writes base+"case/Az", then base+"case/az" with other
// bytes, and reports whether a GET of each returns its own bytes.
func (c *Client) probeCasePair(ctx context.Context, bucket, base string, put func(key, body string, in PutInput) (string, error)) KeyClass {
	kc := KeyClass{Name: CasePair}
	keys := map[string]string{base + "case/Az": "upper", base + "case/az": "lower"}
	for _, k := range []string{base + "case/Az", base + "case/az"} {
		if _, err := put(k, keys[k], PutInput{}); err != nil {
			return kc
		}
	}
	for k, want := range keys {
		rc, _, err := c.Get(ctx, bucket, k, "")
		if err != nil {
			return kc
		}
		got, err := io.ReadAll(io.LimitReader(rc, 64))
		rc.Close()
		if err != nil || string(got) != want {
			return kc
		}
	}
	kc.Holds = true
	return kc
}

// probeConcurrency bounds the store requests the probe has in flight.
const probeConcurrency = 8

// parallel runs f(0..n-1), probeConcurrency at a time, and waits for all.
func parallel(n int, f func(i int)) {
	var g errgroup.Group
	g.SetLimit(probeConcurrency)
	for i := range n {
		g.Go(func() error { f(i); return nil })
	}
	_ = g.Wait()
}

// Unrepresentable names the first key class of key that the store, as
// probed, cannot hold under its exact name ("" if none, or if the store
// was not probed for it).
func (c Capabilities) Unrepresentable(key string) string {
	for i, kc := range c.KeyClasses {
		if !kc.Holds && i < len(KeyClassProbes) && KeyClassProbes[i].Name == kc.Name && KeyClassProbes[i].In(key) {
			return kc.Name
		}
	}
	return ""
}

// ListedAlias names the key class whose listed stand-in key contains (the
// store cannot hold the class and lists such a key under another name):
// then key may be a name nobody wrote, made by the store. "" if none.
// Only stand-ins made of symbols outside ASCII count (rclone's U+2400
// block, U+FFFD): a store that wrote an ASCII letter or "_" instead would
// make every user key holding one look made up.
func (c Capabilities) ListedAlias(key string) string {
	for _, kc := range c.KeyClasses {
		if !kc.Holds && distinctive(kc.ListedAs) && strings.Contains(key, kc.ListedAs) {
			return kc.Name
		}
	}
	return ""
}

func distinctive(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 0x80 || unicode.IsLetter(r) || unicode.IsDigit(r) {
			return false
		}
	}
	return true
}
