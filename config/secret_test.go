package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const secretValue = "s3cr3t-V4lue"

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecretForms(t *testing.T) {
	t.Setenv("S3MESH_TEST_SECRET", secretValue)
	t.Setenv("S3MESH_TEST_EMPTY", "")
	plain := writeSecret(t, secretValue)
	nl := writeSecret(t, secretValue+"\n")
	crlf := writeSecret(t, secretValue+"\r\n\n")
	inner := writeSecret(t, "line1\nline2\n")
	empty := writeSecret(t, "")
	onlyNL := writeSecret(t, "\n")
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name     string
		yaml     string
		want     Secret
		value    string
		valueErr string // substring of Value's error; "" = no error
		parseErr string // substring of the YAML error; "" = no error
	}{
		{name: "env map", yaml: "{env: S3MESH_TEST_SECRET}", want: Secret{Env: "S3MESH_TEST_SECRET"}, value: secretValue},
		{name: "file map", yaml: "{file: " + plain + "}", want: Secret{File: plain}, value: secretValue},
		{name: "env short form", yaml: "env:S3MESH_TEST_SECRET", want: Secret{Env: "S3MESH_TEST_SECRET"}, value: secretValue},
		{name: "env short form with space", yaml: `"env: S3MESH_TEST_SECRET"`, want: Secret{Env: "S3MESH_TEST_SECRET"}, value: secretValue},
		{name: "file short form", yaml: "file:" + plain, want: Secret{File: plain}, value: secretValue},
		{name: "file trailing newline trimmed", yaml: "file:" + nl, want: Secret{File: nl}, value: secretValue},
		{name: "file trailing CRLF trimmed", yaml: "file:" + crlf, want: Secret{File: crlf}, value: secretValue},
		{name: "file inner newline kept", yaml: "file:" + inner, want: Secret{File: inner}, value: "line1\nline2"},
		{name: "both set", yaml: "{env: S3MESH_TEST_SECRET, file: " + plain + "}", want: Secret{Env: "S3MESH_TEST_SECRET", File: plain}, valueErr: "not both"},
		{name: "env unset", yaml: "{env: S3MESH_TEST_NOT_SET}", want: Secret{Env: "S3MESH_TEST_NOT_SET"}, valueErr: "S3MESH_TEST_NOT_SET is not set"},
		{name: "env empty", yaml: "env:S3MESH_TEST_EMPTY", want: Secret{Env: "S3MESH_TEST_EMPTY"}, valueErr: "not set"},
		{name: "file missing", yaml: "{file: " + missing + "}", want: Secret{File: missing}, valueErr: "read secret file"},
		{name: "file empty", yaml: "{file: " + empty + "}", want: Secret{File: empty}, valueErr: "is empty"},
		{name: "file only newline", yaml: "{file: " + onlyNL + "}", want: Secret{File: onlyNL}, valueErr: "is empty"},
		{name: "unset", yaml: "{}", want: Secret{}, valueErr: "no value"},
		{name: "inline string refused", yaml: "hunter2", parseErr: "env:NAME or file:PATH"},
		{name: "inline number refused", yaml: "1234", parseErr: "env:NAME or file:PATH"},
		{name: "unknown key refused", yaml: "{environment: X}", parseErr: "environment"},
		{name: "list refused", yaml: "[env, X]", parseErr: "cannot unmarshal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got struct {
				S Secret `yaml:"s"`
			}
			dec := yaml.NewDecoder(strings.NewReader("s: " + tc.yaml + "\n"))
			dec.KnownFields(true)
			err := dec.Decode(&got)
			if tc.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.parseErr) {
					t.Fatalf("decode err = %v, want one containing %q", err, tc.parseErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("decode error %q shows the inline value", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.S != tc.want {
				t.Errorf("decoded %#v, want %#v", got.S, tc.want)
			}
			if got.S.IsZero() != (tc.want == Secret{}) {
				t.Errorf("IsZero = %v", got.S.IsZero())
			}
			v, err := got.S.Value()
			if tc.valueErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.valueErr) {
					t.Fatalf("Value() = %q, %v; want error containing %q", v, err, tc.valueErr)
				}
				if v != "" || got.S.MustValue() != "" {
					t.Errorf("Value returned %q alongside an error", v)
				}
				return
			}
			if err != nil || v != tc.value {
				t.Fatalf("Value() = %q, %v; want %q", v, err, tc.value)
			}
			if mv := got.S.MustValue(); mv != tc.value {
				t.Errorf("MustValue() = %q, want %q", mv, tc.value)
			}
		})
	}
}

func TestSecretStringHidesValue(t *testing.T) {
	t.Setenv("S3MESH_TEST_SECRET", secretValue)
	file := writeSecret(t, secretValue+"\n")
	tests := []struct {
		name string
		s    Secret
		want string
	}{
		{"env", Secret{Env: "S3MESH_TEST_SECRET"}, "env:S3MESH_TEST_SECRET"},
		{"file", Secret{File: file}, "file:" + file},
		{"unset", Secret{}, "(unset)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.s.IsZero() {
				if v, err := tc.s.Value(); err != nil || v != secretValue {
					t.Fatalf("Value() = %q, %v; the test needs a readable secret", v, err)
				}
			}
			if got := tc.s.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			s := tc.s
			wrapped := struct {
				Name string
				Key  Secret
				Ptr  *Secret
			}{"x", s, &s}
			for _, out := range []string{
				fmt.Sprintf("%v %+v %s", s, s, s),
				fmt.Sprintf("%v %+v %s %q", &s, &s, &s, s),
				fmt.Sprintf("%v %+v %#v", wrapped, wrapped, s),
				fmt.Sprint(s, &s, wrapped),
			} {
				if strings.Contains(out, secretValue) {
					t.Errorf("formatted secret shows its value: %s", out)
				}
			}
		})
	}
}
