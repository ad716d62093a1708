package agent

import (
	"testing"
	"time"
)

func TestNeedsRebuild(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		silent, changes, tombstones time.Duration
		want                        bool
	}{
		{silent: time.Hour, changes: 7 * day, tombstones: 7 * day, want: false},
		{silent: 8 * day, changes: 7 * day, tombstones: 7 * day, want: true},
		{silent: 2 * day, changes: 7 * day, tombstones: day, want: true}, // deletes forgotten first
		{silent: 2 * day, changes: day, tombstones: 7 * day, want: true}, // records trimmed first
		{silent: 2 * day, changes: 7 * day, tombstones: 0, want: false},  // tombstones kept forever
		{silent: -1, changes: 7 * day, tombstones: 7 * day, want: false}, // never heard (broker just started)
	}
	for _, c := range cases {
		if got := needsRebuild(c.silent, c.changes, c.tombstones); got != c.want {
			t.Errorf("needsRebuild(%s, %s, %s) = %v, want %v", c.silent, c.changes, c.tombstones, got, c.want)
		}
	}
}
