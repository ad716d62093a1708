package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbeddedTLS: nats.embedded.tls parses, and its files must exist,
// cert and key together, ca_file with verify_clients.
func TestEmbeddedTLS(t *testing.T) {
	base := setup(t)
	dir := t.TempDir()
	files := map[string]string{}
	for _, n := range []string{"cert", "key", "ca"} {
		files[n] = filepath.Join(dir, n+".pem")
		if err := os.WriteFile(files[n], []byte("pem\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing.pem")
	withTLS := func(block string) string {
		const at = "    leaf_remotes: [nats-leaf://b.example:7422]\n"
		return strings.Replace(base, at, at+"    tls: "+block+"\n", 1)
	}
	s, err := Parse([]byte(withTLS("{cert_file: " + files["cert"] + ", key_file: " + files["key"] + ", ca_file: " + files["ca"] + ", verify_clients: true}")))
	if err != nil {
		t.Fatal(err)
	}
	want := EmbeddedTLS{CertFile: files["cert"], KeyFile: files["key"], CAFile: files["ca"], VerifyClients: true}
	if got := s.NATS.Embedded.TLS; got == nil || *got != want {
		t.Fatalf("nats.embedded.tls = %+v, want %+v", got, want)
	}
	if s, err := Parse([]byte(base)); err != nil || s.NATS.Embedded.TLS != nil {
		t.Fatalf("without tls: %v, %+v", err, s.NATS.Embedded.TLS)
	}
	for _, c := range []struct{ name, block, field string }{
		{"cert without key", "{cert_file: " + files["cert"] + "}", "nats.embedded.tls"},
		{"key without cert", "{key_file: " + files["key"] + "}", "nats.embedded.tls"},
		{"missing cert", "{cert_file: " + missing + ", key_file: " + files["key"] + "}", "nats.embedded.tls.cert_file"},
		{"missing key", "{cert_file: " + files["cert"] + ", key_file: " + missing + "}", "nats.embedded.tls.key_file"},
		{"missing ca", "{cert_file: " + files["cert"] + ", key_file: " + files["key"] + ", ca_file: " + missing + "}", "nats.embedded.tls.ca_file"},
		{"verify without ca", "{cert_file: " + files["cert"] + ", key_file: " + files["key"] + ", verify_clients: true}", "nats.embedded.tls.ca_file"},
		{"unknown field", "{cert_file: " + files["cert"] + ", key_file: " + files["key"] + ", verify: true}", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(withTLS(c.block)))
			if err == nil {
				t.Fatal("accepted")
			}
			var ce *Error
			if c.field != "" && (!errors.As(err, &ce) || ce.Field != c.field) {
				t.Fatalf("error %v, want one for field %s", err, c.field)
			}
		})
	}
}
