// Package proxy is a small cuttable TCP proxy used by the s3mesh lab.
//
// The lab routes every inter-site leaf-node link through a Proxy so that a
// user (or a test) can cut a link, heal it again, or slow it down, without
// touching the NATS servers on either side:
//
//	p, _ := proxy.New("127.0.0.1:0", "127.0.0.1:7422", log)
//	// peers dial p.Addr() instead of 127.0.0.1:7422
//	p.Cut()  // all live connections are closed; new ones are accepted and closed at once
//	p.Heal() // new connections are forwarded again
//
// While cut, the listening socket stays open (so the port is not lost to
// another process) but every accepted connection is closed immediately,
// which a NATS client sees as a refused link and retries.
package proxy
