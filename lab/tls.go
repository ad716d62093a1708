package lab

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/s3mesh/s3mesh/pki"
)

// The lab's TLS: one CA per lab directory (<dir>/ca.pem, its key 0600) and
// a certificate per site broker for 127.0.0.1 and localhost, made once and
// kept across restarts (a new CA, if its files went missing, reissues
// every site's). Client and leaf listeners then take TLS only, links are
// mutual TLS, and the agents, tools and versitygw's event sink verify the
// brokers against the CA. --insecure turns it off with the passwords.
const (
	labCAValid   = 10 * 365 * 24 * time.Hour
	labCertValid = 10 * 365 * 24 * time.Hour
)

func caPath(dir string) string    { return filepath.Join(dir, "ca.pem") }
func caKeyPath(dir string) string { return filepath.Join(dir, "ca-key.pem") }

func (s *site) certPath() string    { return filepath.Join(s.dir, "nats-cert.pem") }
func (s *site) certKeyPath() string { return filepath.Join(s.dir, "nats-key.pem") }

// prepareTLS makes (or keeps) the lab CA and every site's certificate.
func prepareTLS(dir string, sites []*site) error {
	ca, fresh, err := ensureCA(dir)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, s := range sites {
		if !fresh && certValid(s, pool) {
			continue
		}
		certPEM, keyPEM, err := ca.Issue("s3mesh lab broker "+s.name, []string{"127.0.0.1", "localhost"}, labCertValid)
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		if err := writeFileAtomic(s.certKeyPath(), keyPEM, 0o600); err != nil {
			return err
		}
		if err := writeFileAtomic(s.certPath(), certPEM, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ensureCA reads the lab's CA or makes one (fresh reports a new one).
func ensureCA(dir string) (*pki.CA, bool, error) {
	c, cerr := os.ReadFile(caPath(dir))
	k, kerr := os.ReadFile(caKeyPath(dir))
	if cerr == nil && kerr == nil {
		ca, err := pki.LoadCA(c, k)
		if err != nil {
			return nil, false, fmt.Errorf("lab: %s: %w (delete ca.pem and ca-key.pem to have a new CA made)", dir, err)
		}
		return ca, false, nil
	}
	for _, err := range []error{cerr, kerr} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("lab: %w", err)
		}
	}
	ca, err := pki.NewCA("s3mesh lab CA", labCAValid)
	if err != nil {
		return nil, false, fmt.Errorf("lab: %w", err)
	}
	if err := writeFileAtomic(caKeyPath(dir), ca.KeyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(caPath(dir), ca.CertPEM, 0o644); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// certValid reports whether s's certificate and key load and verify under
// the CA for 127.0.0.1 for a while yet.
func certValid(s *site, pool *x509.CertPool) bool {
	pair, err := tls.LoadX509KeyPair(s.certPath(), s.certKeyPath())
	if err != nil {
		return false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return false
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: pool,
		CurrentTime: time.Now().Add(24 * time.Hour),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	return err == nil
}
