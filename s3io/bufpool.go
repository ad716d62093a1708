package s3io

import "sync"

// Body buffers of a MiB or more are reused rather than left to the garbage
// collector: a large object streams through the same two part buffers, and
// a stream of large single PUTs through a few. Without it every large body
// is fresh garbage, and the agent's soft memory limit turns that into
// constant garbage collection (measured: 40% more agent CPU on 8 MiB
// objects). sync.Pool drops idle buffers at the next collections, so what
// is kept never outgrows what is in use.
const poolMin = 1 << 20

var pools sync.Map // capacity (whole MiB) → *sync.Pool of *[]byte

// getBuf returns a buffer of length n (contents undefined).
func getBuf(n int64) []byte {
	if n < poolMin {
		return make([]byte, n)
	}
	c := (n + poolMin - 1) / poolMin * poolMin
	p, _ := pools.LoadOrStore(c, &sync.Pool{})
	if b, ok := p.(*sync.Pool).Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, c)
}

// putBuf gives b back for reuse; the caller must not touch it afterwards.
func putBuf(b []byte) {
	c := int64(cap(b))
	if c < poolMin || c%poolMin != 0 {
		return
	}
	if p, ok := pools.Load(c); ok {
		b = b[:c]
		p.(*sync.Pool).Put(&b)
	}
}
