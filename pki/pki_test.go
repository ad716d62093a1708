package pki

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

// TestIssueAndLoad: a certificate issued by a CA (fresh or read back from
// its PEM) verifies for server and client use under that CA for the names
// it was issued for, and not for others.
func TestIssueAndLoad(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadCA(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, c := range []*CA{ca, again} {
		certPEM, keyPEM, err := c.Issue("a", []string{"127.0.0.1", "localhost"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"127.0.0.1", "localhost"} {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: pool}); err == nil {
			t.Error("verified for a name it was not issued for")
		}
	}
	other, _ := NewCA("other", time.Hour)
	if _, err := LoadCA(ca.CertPEM, other.KeyPEM); err == nil {
		t.Error("a CA certificate loaded with another CA's key")
	}
	if _, err := LoadCA([]byte("junk"), ca.KeyPEM); err == nil {
		t.Error("junk loaded as a CA")
	}
}
