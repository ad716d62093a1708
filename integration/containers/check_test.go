package containers

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func isNotFound(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such")
}

// ledger records every write the tests attempt and whether the store
// acknowledged it. Keys are written by one site each (unique keys, or the
// "hot" keys overwritten in sequence at one site), so the expected final
// value of a key is its last acknowledged write, or a later write whose
// answer was lost (it may have been applied).
type ledger struct {
	mu   sync.Mutex
	keys map[string][]write // per key, in write order
}

type write struct {
	body  []byte
	acked bool
}

func newLedger() *ledger { return &ledger{keys: map[string][]write{}} }

func (g *ledger) put(ctx context.Context, c *s3io.Client, key string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.Put(ctx, s3io.PutInput{Bucket: bucket, Key: key, Body: bytes.NewReader(body), Size: int64(len(body))})
	g.mu.Lock()
	g.keys[key] = append(g.keys[key], write{body: body, acked: err == nil})
	g.mu.Unlock()
	return err
}

// allowed returns, per key, the MD5s its final value may have; keys with
// no acknowledged write and only failed attempts may also be absent.
func (g *ledger) allowed() (map[string]map[string]bool, map[string]bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	want := map[string]map[string]bool{}
	mayBeAbsent := map[string]bool{}
	for k, ws := range g.keys {
		last := -1
		for i, w := range ws {
			if w.acked {
				last = i
			}
		}
		if last < 0 {
			mayBeAbsent[k] = true
			last = 0
		}
		want[k] = map[string]bool{}
		for _, w := range ws[last:] {
			want[k][md5hex(w.body)] = true
		}
	}
	return want, mayBeAbsent
}

func (g *ledger) acked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, ws := range g.keys {
		for _, w := range ws {
			if w.acked {
				n++
			}
		}
	}
	return n
}

func md5hex(b []byte) string { h := md5.Sum(b); return hex.EncodeToString(h[:]) }

// writer writes unique keys at site s (and overwrites the hot keys when
// hot is true) every interval until stop is closed. Failed writes are
// recorded (not acknowledged) and the writer goes on.
// writers starts one writer per site (site a also rewrites three hot keys,
// so that there are conflicts) and returns the function that stops them
// and waits until they are done.
func (l *lab) writers(ctx context.Context, g *ledger, tag string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range siteNames {
		l.writer(ctx, g, s, tag, s == "a", done, &wg)
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

func (l *lab) writer(ctx context.Context, g *ledger, s, tag string, hot bool, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			c, err := l.s3(ctx, s)
			if err != nil {
				continue // the store's container is restarting: no port yet
			}
			key := fmt.Sprintf("%s/%s/%05d", tag, s, i)
			_ = g.put(ctx, c, key, []byte(fmt.Sprintf("%s written at %s #%d %s", key, s, i, time.Now().Format(time.RFC3339Nano))))
			if hot {
				hk := fmt.Sprintf("%s/hot/%d", tag, i%3)
				_ = g.put(ctx, c, hk, []byte(fmt.Sprintf("%s v%d at %s", hk, i, s)))
			}
		}
	}()
}

// listing returns key -> ETag of the bucket at site s (without the kept
// conflict losers).
func (l *lab) listing(ctx context.Context, s string) (map[string]string, error) {
	c, err := l.s3(ctx, s)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out := map[string]string{}
	err = c.List(ctx, bucket, "", 1000, func(e s3io.ListEntry) error {
		if !strings.HasPrefix(e.Key, ".s3mesh-conflicts/") {
			out[e.Key] = e.ETag
		}
		return nil
	})
	return out, err
}

// converge waits until every site lists the same keys with the same ETags
// and the ledger's constraints hold, then reads every object at every
// site and compares the bytes.
func (l *lab) converge(ctx context.Context, t *testing.T, g *ledger, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var problem string
	for {
		problem = l.divergence(ctx, g)
		if problem == "" {
			break
		}
		if time.Now().After(deadline) {
			l.diagnose(ctx)
			t.Fatalf("no convergence after %v: %s", timeout, problem)
		}
		time.Sleep(time.Second)
	}
	t.Logf("converged in %v: %d acknowledged writes, all present at every site", time.Since(start).Round(100*time.Millisecond), g.acked())
	// Bytes, not only ETags.
	ref, err := l.listing(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range siteNames {
		c, err := l.s3(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		for k, etag := range ref {
			rc, info, err := c.Get(ctx, bucket, k, "")
			if err != nil {
				t.Fatalf("GET %s at %s: %v", k, s, err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("GET %s at %s: %v", k, s, err)
			}
			if md5hex(b) != etag || info.ETag != etag {
				t.Fatalf("%s at %s: bytes md5 %s, ETag %s, want %s", k, s, md5hex(b), info.ETag, etag)
			}
		}
	}
}

// divergence describes why the sites have not converged ("" = they have).
func (l *lab) divergence(ctx context.Context, g *ledger) string {
	lists := map[string]map[string]string{}
	for _, s := range siteNames {
		m, err := l.listing(ctx, s)
		if err != nil {
			return fmt.Sprintf("list at %s: %v", s, err)
		}
		lists[s] = m
	}
	want, mayBeAbsent := g.allowed()
	var missing, wrong []string
	for k, ok := range want {
		for _, s := range siteNames {
			etag, present := lists[s][k]
			switch {
			case !present && !mayBeAbsent[k]:
				missing = append(missing, s+":"+k)
			case present && !ok[etag]:
				wrong = append(wrong, s+":"+k)
			}
		}
	}
	if len(missing) > 0 || len(wrong) > 0 {
		sort.Strings(missing)
		sort.Strings(wrong)
		return fmt.Sprintf("%d acknowledged keys missing (e.g. %v), %d with an unexpected value (e.g. %v)",
			len(missing), head(missing), len(wrong), head(wrong))
	}
	for _, s := range siteNames[1:] {
		if d := diff(lists["a"], lists[s]); d != "" {
			return "a and " + s + " differ: " + d
		}
	}
	return ""
}

func head(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

func diff(x, y map[string]string) string {
	var d []string
	for k, v := range x {
		if y[k] != v {
			d = append(d, k)
		}
	}
	for k := range y {
		if _, ok := x[k]; !ok {
			d = append(d, k)
		}
	}
	if len(d) == 0 {
		return ""
	}
	sort.Strings(d)
	return fmt.Sprintf("%d keys, e.g. %v", len(d), head(d))
}
