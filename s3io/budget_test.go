package s3io

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// gatedReader blocks its first Read until gate is closed, after signalling
// started.
type gatedReader struct {
	r       io.Reader
	started chan struct{}
	gate    chan struct{}
	once    bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if !g.once {
		g.once = true
		close(g.started)
		<-g.gate
	}
	return g.r.Read(p)
}

// TestMemoryBudget: a Put holds its buffer's bytes of the client's budget
// while it reads the body, returns them when done, and a Put larger than
// the whole budget still goes through (alone), single and multipart.
func TestMemoryBudget(t *testing.T) {
	const budget = 12 << 20
	c, _ := newTestClient(t, WithMemoryBudget(budget))
	ctx := testCtx(t)
	body := bytes.Repeat([]byte("x"), 5<<20)
	g := &gatedReader{r: bytes.NewReader(body), started: make(chan struct{}), gate: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "budget/a", Body: g, Size: int64(len(body))})
		errc <- err
	}()
	<-g.started
	// 5 MiB are held while the body is read: 8 MiB more are not there.
	if c.budget.TryAcquire(8 << 20) {
		t.Fatal("the budget did not hold the running Put's 5 MiB")
	}
	if !c.budget.TryAcquire(7 << 20) {
		t.Fatal("the budget holds more than the running Put's 5 MiB")
	}
	c.budget.Release(7 << 20)
	close(g.gate)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !c.budget.TryAcquire(budget) {
		t.Fatal("the Put did not return its share of the budget")
	}
	c.budget.Release(budget)
	// Larger than the budget: multipart (two 16 MiB parts held) and single.
	big := bytes.Repeat([]byte("y"), 40<<20)
	if _, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "budget/big", Body: bytes.NewReader(big), Size: int64(len(big))}); err != nil {
		t.Fatalf("multipart Put over the budget: %v", err)
	}
	if _, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "budget/single", Body: bytes.NewReader(big[:14<<20]), Size: 14 << 20}); err != nil {
		t.Fatalf("single Put over the budget: %v", err)
	}
	if !c.budget.TryAcquire(budget) {
		t.Fatal("Puts over the budget did not return it")
	}
}

// TestSpoolLargeParts: with a spool directory, a multipart Put whose two
// parts would not fit the memory budget stages them on disk: it holds none
// of the budget while it streams, the object arrives intact, and nothing is
// left in the directory.
func TestSpoolLargeParts(t *testing.T) {
	const budget = 12 << 20
	dir := t.TempDir()
	c, _ := newTestClient(t, WithMemoryBudget(budget), WithSpoolDir(dir))
	ctx := testCtx(t)
	body := make([]byte, 21<<20+12345)
	for i := range body {
		body[i] = byte(i * 7 % 251)
	}
	g := &gatedReader{r: bytes.NewReader(body), started: make(chan struct{}), gate: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "spool/big", Body: g, Size: int64(len(body)), PartSize: 8 << 20})
		errc <- err
	}()
	<-g.started
	if !c.budget.TryAcquire(budget) {
		t.Fatal("a spooled Put holds memory budget")
	}
	c.budget.Release(budget)
	close(g.gate)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := c.spooled.Load(); n != 2 {
		t.Errorf("%d parts slots spooled, want 2", n)
	}
	rc, _, err := c.Get(ctx, testBucket, "spool/big", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read back %d bytes (err %v), want the %d written", len(got), err, len(body))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spool directory holds %d entries", len(ents))
	}
	// A body shorter than its size fails clearly, spooled too.
	_, err = c.Put(ctx, PutInput{Bucket: testBucket, Key: "spool/short", Body: bytes.NewReader(body[:20<<20]), Size: int64(len(body)), PartSize: 8 << 20})
	if !errors.Is(err, ErrInvalidInput) {
		t.Errorf("short spooled body: %v, want ErrInvalidInput", err)
	}
	// Parts that fit the budget stay in memory.
	c.spooled.Store(0)
	if _, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "spool/small", Body: bytes.NewReader(body[:11<<20]), Size: 11 << 20, PartSize: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	if n := c.spooled.Load(); n != 0 {
		t.Errorf("parts within the budget were spooled (%d)", n)
	}
}

// TestShares: Puts of one share hold at most the share of the budget at
// once: a second Put of a share whose first holds all of it waits, while a
// Put of another share goes through; once the first is done the share is
// whole again.
func TestShares(t *testing.T) {
	const budget = 12 << 20
	c, _ := newTestClient(t, WithMemoryBudget(budget))
	ctx := testCtx(t)
	slowPeer, otherPeer := NewShare(budget/2), NewShare(budget/2)
	body := bytes.Repeat([]byte("x"), budget/2)
	g := &gatedReader{r: bytes.NewReader(body), started: make(chan struct{}), gate: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "share/slow", Body: g, Size: int64(len(body)), Share: slowPeer})
		errc <- err
	}()
	<-g.started // holds the whole of slowPeer's share
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := c.Put(wctx, PutInput{Bucket: testBucket, Key: "share/second", Body: bytes.NewReader([]byte("2")), Size: 1, Share: slowPeer})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second Put of a share held whole: %v, want it to wait", err)
	}
	if _, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "share/other", Body: bytes.NewReader(body), Size: int64(len(body)), Share: otherPeer}); err != nil {
		t.Fatalf("a Put of another share while one share is held: %v", err)
	}
	close(g.gate)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, PutInput{Bucket: testBucket, Key: "share/after", Body: bytes.NewReader(body), Size: int64(len(body)), Share: slowPeer}); err != nil {
		t.Fatalf("the share after its Put: %v", err)
	}
	if !c.budget.TryAcquire(budget) {
		t.Fatal("Puts of shares did not return the budget")
	}
}
