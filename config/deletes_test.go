package config

import (
	"errors"
	"testing"
	"time"
)

func TestDeletesSection(t *testing.T) {
	base := setup(t)
	s, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Deletes; d.MaxFraction != s.Scan.MaxDeleteFraction || d.Window != DefaultDeletesWindow || d.Min != DefaultDeletesMin {
		t.Fatalf("defaults: %+v", d)
	}
	s, err = Parse([]byte(base + "scan: {max_delete_fraction: 0.3}\n"))
	if err != nil || s.Deletes.MaxFraction != 0.3 {
		t.Fatalf("max_fraction follows scan.max_delete_fraction: %+v %v", s.Deletes, err)
	}
	s, err = Parse([]byte(base + "deletes: {max_fraction: 0.5, window: 30s, min: 3}\n"))
	if err != nil || s.Deletes != (Deletes{MaxFraction: 0.5, Window: 30 * time.Second, Min: 3}) {
		t.Fatalf("explicit: %+v %v", s.Deletes, err)
	}
	for _, c := range []struct{ yaml, field string }{
		{"deletes: {max_fraction: 1.5}\n", "deletes.max_fraction"},
		{"deletes: {max_fraction: -0.1}\n", "deletes.max_fraction"},
		{"deletes: {window: 10ms}\n", "deletes.window"},
		{"deletes: {window: 48h}\n", "deletes.window"},
		{"deletes: {min: -1}\n", "deletes.min"},
	} {
		_, err := Parse([]byte(base + c.yaml))
		var fe *Error
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%q: got %v, want an error naming %s", c.yaml, err, c.field)
		}
	}
}
