package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

// TLSFiles are the PEM files of the server's TLS. With them, the client
// listener and the leaf listener accept TLS connections only, and every
// dialled leaf link (LeafRemotes, Link.URL: nats-leaf://, nats:// or
// tls://) is made over TLS.
//
// The certificate is presented to clients, to peers dialling this site
// and to the peers this site dials, so it must be valid for both server
// and client authentication (deploy gen issues such certificates) and
// name the host (or IP) peers and clients dial.
//
// CAFile is the CA that signed the peers' certificates (and the broker's
// own, which clients verify with nats.tls.ca_file). With it, the leaf
// listener requires a certificate signed by it from every dialling peer
// (mutual TLS on links, before any password is checked), and dialled
// links verify the peer's certificate against it; without it, dialled
// links verify against the system roots and dialling peers need no
// certificate.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
	// VerifyClients requires clients of the client listener to present a
	// certificate signed by CAFile (mutual TLS). In-process connections
	// (Server.Connect) need none.
	VerifyClients bool
}

// check loads the files once to report unreadable files, a certificate
// that does not match its key and a CA file without certificates clearly.
func (f *TLSFiles) check() error {
	if f.CertFile == "" || f.KeyFile == "" {
		return errors.New("tls: cert and key files are both required")
	}
	for _, p := range []string{f.CertFile, f.KeyFile} {
		if _, err := os.ReadFile(p); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	if _, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile); err != nil {
		return fmt.Errorf("tls: certificate %s with key %s: %w", f.CertFile, f.KeyFile, err)
	}
	if f.VerifyClients && f.CAFile == "" {
		return errors.New("tls: verifying clients needs a CA file")
	}
	if _, err := f.caPool(); err != nil {
		return err
	}
	return nil
}

// caPool reads CAFile (nil without one).
func (f *TLSFiles) caPool() (*x509.CertPool, error) {
	if f.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: CA file %s holds no PEM certificate", f.CAFile)
	}
	return pool, nil
}

// applyTLS requires TLS on opts' client and leaf listeners and on every
// dialled leaf link.
func applyTLS(f *TLSFiles, opts *server.Options) error {
	if err := f.check(); err != nil {
		return err
	}
	listener := func(verify bool) (*tls.Config, error) {
		c, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: f.CertFile, KeyFile: f.KeyFile, CaFile: f.CAFile, Verify: verify})
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		return c, nil
	}
	var err error
	if opts.TLSConfig, err = listener(f.VerifyClients); err != nil {
		return err
	}
	opts.TLS, opts.TLSVerify = true, f.VerifyClients
	if opts.LeafNode.Port != 0 {
		if opts.LeafNode.TLSConfig, err = listener(f.CAFile != ""); err != nil {
			return err
		}
	}
	if len(opts.LeafNode.Remotes) == 0 {
		return nil
	}
	dial, err := f.dialConfig()
	if err != nil {
		return err
	}
	for _, r := range opts.LeafNode.Remotes {
		// The server fills in the name to verify from the URL.
		r.TLS, r.TLSConfig = true, dial.Clone()
	}
	return nil
}

// dialConfig is the TLS of a dialled leaf link: this server's certificate,
// and the peer's verified against CAFile (or the system roots).
func (f *TLSFiles) dialConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	pool, err := f.caPool()
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool}, nil
}
