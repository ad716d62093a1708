package config

import (
	"fmt"
	"os"
	"strings"
)

// Secret is a value read from the environment or a file, never written in
// the configuration itself. In YAML it is `{env: NAME}`, `{file: PATH}`, or
// the short forms "env:NAME" and "file:PATH". Its String method never shows
// the value, so a Secret is safe to log.
type Secret struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

// UnmarshalYAML accepts the map form and the "env:"/"file:" string forms. A
// plain string is refused: secrets do not belong in configuration files.
func (s *Secret) UnmarshalYAML(unmarshal func(any) error) error {
	var str string
	if err := unmarshal(&str); err == nil {
		switch {
		case strings.HasPrefix(str, "env:"):
			s.Env = strings.TrimSpace(strings.TrimPrefix(str, "env:"))
		case strings.HasPrefix(str, "file:"):
			s.File = strings.TrimSpace(strings.TrimPrefix(str, "file:"))
		default:
			return fmt.Errorf("a secret must be env:NAME or file:PATH, not an inline value")
		}
		return nil
	}
	type plain Secret
	var p plain
	if err := unmarshal(&p); err != nil {
		return err
	}
	*s = Secret(p)
	return nil
}

// IsZero reports whether no source is set.
func (s Secret) IsZero() bool { return s.Env == "" && s.File == "" }

// Value reads the secret. A file's trailing newline is removed.
func (s Secret) Value() (string, error) {
	switch {
	case s.Env != "" && s.File != "":
		return "", fmt.Errorf("set env or file, not both")
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", s.File)
		}
		return v, nil
	}
	return "", errNoSecret
}

// MustValue is Value for secrets already checked by Validate.
func (s Secret) MustValue() string {
	v, _ := s.Value()
	return v
}

// String hides the value.
func (s Secret) String() string {
	switch {
	case s.Env != "":
		return "env:" + s.Env
	case s.File != "":
		return "file:" + s.File
	}
	return "(unset)"
}
