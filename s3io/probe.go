package s3io

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// ProbePrefix is where Probe writes its objects; the agent never replicates
// keys under it.
const ProbePrefix = ".s3mesh-probe/"

// Capabilities are what a store was seen to support by Probe.
type Capabilities struct {
	// ConditionalPut: a PUT with If-None-Match: * of an existing key, and
	// one with If-Match of another ETag, are refused with 412.
	ConditionalPut bool `json:"conditional_put"`
	// ConditionalDelete: a DELETE with If-Match of another ETag is refused.
	ConditionalDelete bool `json:"conditional_delete"`
	// MetadataBytes is the largest user-metadata value tried that the store
	// kept intact (of 256, 1024 and 1800 bytes; 0: none).
	MetadataBytes int `json:"metadata_bytes"`
	// KeyBytes is the longest key tried that the store held (of 200, 512
	// and 1024 bytes in segments of at most 200; 0: none).
	KeyBytes int `json:"key_bytes"`
	// Unicode: a key with spaces, "+", "%" and non-ASCII letters round-trips.
	Unicode bool `json:"unicode_keys"`
	// Multipart: an upload of a MinPartSize part and a 1-byte last part
	// completes and reads back whole; MultipartETag says how the store
	// names such an object ("md5-N", S3's MD5 of the part MD5s with the
	// part count; or "other", which verify and the appliers handle by
	// comparing bytes).
	Multipart     bool   `json:"multipart"`
	MultipartETag string `json:"multipart_etag,omitempty"`
	// PartLayout: the store tells a multipart object's part sizes (HEAD
	// with partNumber, Client.PartSizes), so this site's records of its
	// multipart objects carry their layout and peers can check such a
	// body from any site that holds it. Without it (an "md5-N" store
	// only) peers fetch this site's multipart bodies from it alone.
	PartLayout bool `json:"part_layout,omitempty"`
	// ContentMD5: a PUT whose body does not match its Content-MD5 is
	// refused (BadDigest) and one that matches is stored. Then replica
	// writes leave the body check to the store (see PutInput.ContentMD5).
	ContentMD5 bool `json:"content_md5"`
	// KeyClasses are the kinds of key characters the probe tried
	// (KeyClassProbes), each with whether the store holds such a key under
	// its exact name and how a listing shows it.
	KeyClasses []KeyClass `json:"key_classes,omitempty"`
	// CannotHold names the key classes the store does not hold under
	// their exact name (Holds false), for status and the dashboard.
	CannotHold []string `json:"cannot_hold,omitempty"`
	// Notes say what failed, for status.
	Notes []string `json:"notes,omitempty"`
}

// KeyClass is what the store did with one kind of key.
type KeyClass struct {
	Name string `json:"name"` // "control 0x09", "NFD", "trailing dot", ...
	// Holds: a PUT of the key succeeded and a HEAD and a GET of the exact
	// key find it.
	Holds bool `json:"holds"`
	// ListedAs is the piece a listing shows in place of the class's
	// characters when it does not show the key as written ("" if it does,
	// or if the key was not listed at all). A store that cannot hold a key
	// and lists it under another name (rclone: a tab as U+2409) makes that
	// other name look like a key nobody wrote.
	ListedAs string `json:"listed_as,omitempty"`
}

// Conditional reports whether both conditional writes work: what the agent
// needs to apply records safely.
func (c Capabilities) Conditional() bool { return c.ConditionalPut && c.ConditionalDelete }

// Probe finds out, with a handful of small objects under ProbePrefix in
// bucket (deleted again), what the store supports. An error means the
// store could not be probed at all (unreachable, no write permission).
func (c *Client) Probe(ctx context.Context, bucket, tag string) (Capabilities, error) {
	var caps Capabilities
	rnd := make([]byte, 6)
	_, _ = rand.Read(rnd)
	base := ProbePrefix + tag + "-" + hex.EncodeToString(rnd) + "/"
	// What an earlier probe of this agent left (it was killed mid-probe).
	var stale []string
	stop := errors.New("past the prefix")
	_ = c.List(ctx, bucket, ProbePrefix+tag+"-", 1000, func(e ListEntry) error {
		if !strings.HasPrefix(e.Key, ProbePrefix+tag+"-") || len(stale) >= 1000 {
			return stop
		}
		stale = append(stale, e.Key)
		return nil
	})
	parallel(len(stale), func(i int) { _ = c.Delete(ctx, bucket, stale[i], "") })
	var (
		mu   sync.Mutex
		made []string
	)
	defer func() {
		parallel(len(made), func(i int) { _ = c.Delete(context.WithoutCancel(ctx), bucket, made[i], "") })
	}()
	put := func(key string, body string, in PutInput) (string, error) {
		in.Bucket, in.Key, in.Body, in.Size = bucket, key, strings.NewReader(body), int64(len(body))
		etag, err := c.Put(ctx, in)
		if err == nil {
			mu.Lock()
			made = append(made, key)
			mu.Unlock()
		}
		return etag, err
	}
	k := base + "cond"
	etag, err := put(k, "probe", PutInput{IfNoneMatch: true})
	if err != nil {
		return caps, fmt.Errorf("probe: writing %s/%s: %w", bucket, k, err)
	}
	_, errNone := put(k, "again", PutInput{IfNoneMatch: true})
	_, errMatch := put(k, "again", PutInput{IfMatch: flipETag(etag)})
	caps.ConditionalPut = errors.Is(errNone, ErrPreconditionFailed) && errors.Is(errMatch, ErrPreconditionFailed)
	if !caps.ConditionalPut {
		caps.Notes = append(caps.Notes, fmt.Sprintf("conditional PUT not honoured (If-None-Match: %v; If-Match: %v)", errNone, errMatch))
	}
	errDel := c.Delete(ctx, bucket, k, flipETag(etag))
	info, herr := c.Head(ctx, bucket, k)
	caps.ConditionalDelete = errors.Is(errDel, ErrPreconditionFailed) && herr == nil && info.Exists
	if !caps.ConditionalDelete {
		caps.Notes = append(caps.Notes, fmt.Sprintf("conditional DELETE not honoured (If-Match of another ETag: %v)", errDel))
	}
	for _, n := range []int{256, 1024, 1800} {
		mk := fmt.Sprintf("%smeta-%d", base, n)
		v := strings.Repeat("m", n)
		if _, err := put(mk, "m", PutInput{Attrs: Attrs{Meta: map[string]string{"s3mesh-probe": v}}}); err != nil {
			caps.Notes = append(caps.Notes, fmt.Sprintf("a %d-byte metadata value: %v", n, err))
			break
		}
		info, err := c.Head(ctx, bucket, mk)
		if err != nil || info.Attrs.Meta["s3mesh-probe"] != v {
			caps.Notes = append(caps.Notes, fmt.Sprintf("a %d-byte metadata value did not come back intact", n))
			break
		}
		caps.MetadataBytes = n
	}
	for _, n := range []int{200, 512, 1024} {
		var segs []string
		for left := n - len(base); left > 0; left -= 200 {
			segs = append(segs, strings.Repeat("k", min(left, 199)))
		}
		lk := base + strings.Join(segs, "/")
		lk = lk[:min(len(lk), n)]
		if _, err := put(lk, "k", PutInput{}); err != nil {
			caps.Notes = append(caps.Notes, fmt.Sprintf("a %d-byte key: %v", n, err))
			break
		}
		caps.KeyBytes = n
	}
	uk := base + "dir with space/plus+percent%25 üñí€.txt"
	if _, err := put(uk, "u", PutInput{}); err == nil {
		found := false
		_ = c.List(ctx, bucket, base+"dir", 10, func(e ListEntry) error {
			if e.Key >= uk {
				found = e.Key == uk
				return stop
			}
			return nil
		})
		info, herr := c.Head(ctx, bucket, uk)
		caps.Unicode = found && herr == nil && info.Exists
	}
	if !caps.Unicode {
		caps.Notes = append(caps.Notes, "a key with spaces, +, % and non-ASCII letters did not round-trip")
	}
	dk := base + "digest"
	dbody := "digest"
	sum := md5.Sum([]byte(dbody))
	other := md5.Sum([]byte("other"))
	_, errBad := put(dk, dbody, PutInput{ContentMD5: hex.EncodeToString(other[:])})
	_, badCode := httpStatus(errBad)
	_, errGood := put(dk, dbody, PutInput{ContentMD5: hex.EncodeToString(sum[:])})
	caps.ContentMD5 = badCode == "BadDigest" && errGood == nil
	if !caps.ContentMD5 {
		caps.Notes = append(caps.Notes, fmt.Sprintf("Content-MD5 not checked (a wrong one: %v; the right one: %v): the agent checks replica bodies itself", errBad, errGood))
	}
	caps.KeyClasses = append(c.probeKeyClasses(ctx, bucket, base, put), c.probeCasePair(ctx, bucket, base, put))
	var cannot []string
	for _, kc := range caps.KeyClasses {
		if !kc.Holds {
			cannot = append(cannot, kc.Name)
		}
	}
	caps.CannotHold = cannot
	if len(cannot) > 0 {
		caps.Notes = append(caps.Notes, fmt.Sprintf("cannot hold keys with %s under their exact names: peers' records of such keys are dead-lettered here as unrepresentable-key",
			strings.Join(cannot, ", ")))
	}
	mk := base + "multipart"
	body := strings.Repeat("p", int(MinPartSize)+1)
	if etag, err := put(mk, body, PutInput{PartSize: MinPartSize}); err != nil {
		caps.Notes = append(caps.Notes, fmt.Sprintf("a multipart upload (%d-byte part, then 1 byte): %v", MinPartSize, err))
	} else if info, err := c.Head(ctx, bucket, mk); err != nil || info.Size != int64(len(body)) {
		caps.Notes = append(caps.Notes, fmt.Sprintf("a multipart upload did not read back whole (%v, %d bytes)", err, info.Size))
	} else {
		caps.Multipart, caps.MultipartETag = true, "other"
		if strings.HasSuffix(etag, "-2") {
			caps.MultipartETag = "md5-N"
			sizes, err := c.PartSizes(ctx, bucket, mk, etag, 2)
			switch {
			case err == nil && len(sizes) == 2 && sizes[0] == MinPartSize && sizes[1] == 1:
				caps.PartLayout = true
			default:
				caps.Notes = append(caps.Notes, fmt.Sprintf("does not tell a multipart object's part sizes (HEAD with partNumber: %v, %v): peers fetch this site's multipart bodies from it alone", sizes, err))
			}
		}
	}
	return caps, nil
}

// flipETag is an ETag that is certainly not etag.
func flipETag(etag string) string {
	if etag == "" {
		return "0"
	}
	b := []byte(etag)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}
