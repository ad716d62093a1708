package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// echoServer accepts connections and echoes every byte back.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New("127.0.0.1:0", target, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes a line and reads it back.
func roundTrip(c net.Conn, line string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return got[:len(got)-1], nil
}

// expectClosed checks that c is (or soon becomes) closed by the peer.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "x\n") // may or may not fail, depending on timing
	buf := make([]byte, 16)
	_, err := c.Read(buf)
	if err == nil {
		t.Fatal("connection still delivers data, want it closed")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after 5s, want it closed")
	}
}

func TestForwardsBothWays(t *testing.T) {
	p := newProxy(t, echoServer(t))
	if p.Addr() == "" || p.Target() == "" {
		t.Fatal("empty address")
	}
	c := dial(t, p.Addr())
	for _, msg := range []string{"hello", "world", string(make([]byte, 100000))} {
		// 100 kB of zero bytes exercises several chunks.
		got, err := roundTrip(c, msg)
		if err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("echo mismatch: got %d bytes, want %d", len(got), len(msg))
		}
	}
}

func TestCutAndHeal(t *testing.T) {
	p := newProxy(t, echoServer(t))
	live := dial(t, p.Addr())
	if _, err := roundTrip(live, "before"); err != nil {
		t.Fatal(err)
	}
	if p.IsCut() {
		t.Fatal("new proxy is cut")
	}

	p.Cut()
	if !p.IsCut() {
		t.Fatal("IsCut false after Cut")
	}
	expectClosed(t, live)

	// New connections are accepted by the kernel but closed at once.
	during := dial(t, p.Addr())
	expectClosed(t, during)

	p.Heal()
	if p.IsCut() {
		t.Fatal("IsCut true after Heal")
	}
	after := dial(t, p.Addr())
	got, err := roundTrip(after, "after")
	if err != nil || got != "after" {
		t.Fatalf("after heal: %q, %v", got, err)
	}
}

func TestCutTwiceAndHealTwice(t *testing.T) {
	p := newProxy(t, echoServer(t))
	p.Cut()
	p.Cut()
	p.Heal()
	p.Heal()
	c := dial(t, p.Addr())
	if got, err := roundTrip(c, "ok"); err != nil || got != "ok" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close() // nothing listens there now

	p := newProxy(t, target)
	expectClosed(t, dial(t, p.Addr()))
}

func TestDelay(t *testing.T) {
	p := newProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "warm"); err != nil {
		t.Fatal(err)
	}
	const d = 100 * time.Millisecond
	p.SetDelay(d)
	start := time.Now()
	if _, err := roundTrip(c, "slow"); err != nil {
		t.Fatal(err)
	}
	// One chunk each way: at least 2*d.
	if el := time.Since(start); el < 2*d {
		t.Fatalf("round trip took %v with delay %v, want >= %v", el, d, 2*d)
	}
	p.SetDelay(0)
	start = time.Now()
	if _, err := roundTrip(c, "fast"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el >= 2*d {
		t.Fatalf("round trip took %v after removing the delay", el)
	}
}

func TestClose(t *testing.T) {
	p, err := New("127.0.0.1:0", echoServer(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "x"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expectClosed(t, c)
	if c2, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c2.Close()
		t.Fatal("dial after Close succeeded")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New("127.0.0.1:0", "", nil); err == nil {
		t.Fatal("empty target accepted")
	}
	p := newProxy(t, "127.0.0.1:1")
	if _, err := New(p.Addr(), "127.0.0.1:1", nil); err == nil {
		t.Fatal("listening on a used port succeeded")
	}
}

// A stalled proxy forwards nothing and closes nothing; Unstall delivers
// what was held and the link works again.
func TestStallHoldsBytesWithoutClosing(t *testing.T) {
	p := newProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	if got, err := roundTrip(c, "before"); err != nil || got != "before" {
		t.Fatalf("before stall: %q %v", got, err)
	}
	p.Stall()
	if _, err := io.WriteString(c, "held\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if got, err := r.ReadString('\n'); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled link answered %q, %v (want a read timeout, not data or a close)", got, err)
	}
	p.Unstall()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "held\n" {
		t.Fatalf("after unstall: %q %v", got, err)
	}
	// Close must not hang on a stalled pipe.
	p.Stall()
	if _, err := io.WriteString(c, "x\n"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a stalled connection")
	}
}
