package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// dialTimeout bounds how long a new connection waits for the target.
const dialTimeout = 5 * time.Second

// chunkSize is the largest piece copied (and delayed) at once.
const chunkSize = 32 * 1024

// Proxy forwards TCP connections from a listening address to a target.
// All methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	log    *slog.Logger

	delay atomic.Int64 // time.Duration added before each chunk is written

	// stall, while set, holds every byte in flight without closing
	// anything: a blackholed link (dropped packets, a peer whose address
	// changed) that neither end is told about. Unstall closes and clears it.
	stall atomic.Pointer[chan struct{}]

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[net.Conn]struct{} // live connections, both sides of each pair

	wg sync.WaitGroup
}

// New listens on listen (for example "127.0.0.1:0" for a free port) and
// forwards every accepted connection to target. The target is dialled per
// connection, so it need not be up when New is called.
func New(listen, target string, log *slog.Logger) (*Proxy, error) {
	if target == "" {
		return nil, errors.New("proxy: empty target address")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen on %s: %w", listen, err)
	}
	p := &Proxy{
		ln:     ln,
		target: target,
		log:    log.With("proxy", ln.Addr().String(), "target", target),
		conns:  make(map[net.Conn]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the proxy listens on (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Cut closes every live connection and makes the proxy close new ones at
// once until Heal is called.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.takeConnsLocked()
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	p.log.Info("link cut", "closed", len(conns))
}

// Heal lets new connections through again. Connections closed by Cut stay
// closed; the peers are expected to reconnect.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
	p.log.Info("link healed")
}

// Stall makes the link a blackhole: connections stay open at both ends,
// new ones are accepted, but no byte is forwarded until Unstall. Unlike
// Cut, nobody learns that the link is gone; only a timeout of the
// endpoints (NATS pings) ends the connections.
func (p *Proxy) Stall() {
	ch := make(chan struct{})
	p.stall.CompareAndSwap(nil, &ch)
}

// Unstall forwards the bytes held by Stall and lets traffic through again.
func (p *Proxy) Unstall() {
	if ch := p.stall.Swap(nil); ch != nil {
		close(*ch)
	}
}

// IsCut reports whether the link is currently cut.
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// SetDelay adds d of latency before each chunk is forwarded, in both
// directions (0 = none). It applies to live and new connections.
func (p *Proxy) SetDelay(d time.Duration) {
	if d < 0 {
		d = 0
	}
	p.delay.Store(int64(d))
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines to end. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.Unstall() // release pipes held by a stall so that they can end
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.takeConnsLocked()
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) takeConnsLocked() []net.Conn {
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	clear(p.conns)
	return conns
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure (e.g. too many open files): back off a little.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		p.mu.Lock()
		refuse := p.cut || p.closed
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers c as live unless the proxy was cut or closed meanwhile.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		_ = client.Close()
		return
	}
	server, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		p.log.Debug("dial target failed", "err", err)
		p.untrack(client)
		_ = client.Close()
		return
	}
	if !p.track(server) {
		// Cut or closed while dialling: Cut has already closed client.
		p.untrack(client)
		_ = client.Close()
		_ = server.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, client); done <- struct{}{} }()
	go func() { p.pipe(client, server); done <- struct{}{} }()
	// When either direction ends, tear down both: a half-open link is of
	// no use to NATS and would hide a cut from the peer.
	<-done
	_ = client.Close()
	_ = server.Close()
	<-done
	p.untrack(client, server)
}

// pipe copies src to dst chunk by chunk, applying the configured delay.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, chunkSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if ch := p.stall.Load(); ch != nil {
				<-*ch // held until Unstall; Close unstalls too
			}
			if d := time.Duration(p.delay.Load()); d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.log.Debug("connection ended", "err", err)
			}
			return
		}
	}
}
