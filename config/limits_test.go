package config

import (
	"errors"
	"strings"
	"testing"
)

// nats.limits: defaults where unset, explicit values kept (one field of a
// stream set, the other defaulted), bad values refused with the field
// named, unknown fields refused.
func TestStreamLimits(t *testing.T) {
	base := setup(t)
	s, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	want := StreamLimits{Changes: DefaultChangesLimit, Events: DefaultEventsLimit, Conflicts: DefaultConflictsLimit, DLQ: DefaultDLQLimit}
	if s.NATS.Limits != want {
		t.Fatalf("defaults: %+v, want %+v", s.NATS.Limits, want)
	}
	if want.Changes.MaxBytes != 1<<30 || want.DLQ.MaxMsgs != 100_000 {
		t.Fatalf("defaults changed without docs/configuration.md: %+v", want)
	}

	withLimits := func(limits string) string {
		y := strings.Replace(base, "  url: nats://127.0.0.1:4222\n", "  url: nats://127.0.0.1:4222\n  limits:\n"+limits, 1)
		if y == base {
			t.Fatal("test bug: nats.url not found")
		}
		return y
	}
	s, err = Parse([]byte(withLimits("    changes: {max_bytes: 10737418240, max_msgs: 20000000}\n    dlq: {max_msgs: 5000}\n")))
	if err != nil {
		t.Fatal(err)
	}
	got := s.NATS.Limits
	if got.Changes != (StreamLimit{MaxBytes: 10 << 30, MaxMsgs: 20_000_000}) || got.DLQ != (StreamLimit{MaxBytes: DefaultDLQLimit.MaxBytes, MaxMsgs: 5000}) ||
		got.Events != DefaultEventsLimit || got.Conflicts != DefaultConflictsLimit {
		t.Fatalf("explicit limits: %+v", got)
	}

	for _, tc := range []struct {
		limits, field string
	}{
		{"    changes: {max_bytes: 1048576}\n", "nats.limits.changes.max_bytes"},
		{"    events: {max_bytes: -1}\n", "nats.limits.events.max_bytes"},
		{"    conflicts: {max_bytes: 2251799813685248}\n", "nats.limits.conflicts.max_bytes"},
		{"    dlq: {max_msgs: 10}\n", "nats.limits.dlq.max_msgs"},
		{"    changes: {max_msgs: -5}\n", "nats.limits.changes.max_msgs"},
	} {
		_, err := Parse([]byte(withLimits(tc.limits)))
		var ce *Error
		if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%q: %v, want an error naming %s", tc.limits, err, tc.field)
		}
	}
	if _, err := Parse([]byte(withLimits("    changes: {max_size: 100}\n"))); err == nil || !strings.Contains(err.Error(), "max_size") {
		t.Errorf("unknown field max_size: %v", err)
	}
	if _, err := Parse([]byte(withLimits("    mirrors: {max_msgs: 100}\n"))); err == nil || !strings.Contains(err.Error(), "mirrors") {
		t.Errorf("unknown stream mirrors: %v", err)
	}
}
