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

func TestWatermark(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	cases := []struct {
		name   string
		in     watermarkInput
		want   time.Time
		caught bool
	}{
		{"healthy, nothing waits: the last contact", watermarkInput{Active: 800 * time.Millisecond}, at(800 * time.Millisecond), true},
		{"records wait: the oldest one's origin time", watermarkInput{Active: time.Second, Pending: 3, Oldest: at(time.Minute)}, at(time.Minute), false},
		{"cut link, lag 0: stops at the last contact", watermarkInput{Active: 40 * time.Second, Stalled: true}, at(40 * time.Second), false},
		{"mirror knows it lacks records: the last held one", watermarkInput{Active: time.Second, Lag: 5, LastHeld: at(time.Hour)}, at(time.Hour), false},
		{"lag but the last held unreadable: the last contact", watermarkInput{Active: time.Second, Lag: 5}, at(time.Second), false},
		{"peer clock ahead: never past the last contact", watermarkInput{Active: 2 * time.Second, Pending: 1, Oldest: now.Add(time.Hour)}, at(2 * time.Second), false},
		{"never heard, nothing waits: zero", watermarkInput{Active: -1, Stalled: true}, time.Time{}, false},
		{"never heard since the broker started, records wait", watermarkInput{Active: -1, Stalled: true, Pending: 2, Oldest: at(time.Hour)}, at(time.Hour), false},
	}
	for _, c := range cases {
		c.in.Now = now
		wm, caught := watermark(c.in)
		if !wm.Equal(c.want) || caught != c.caught {
			t.Errorf("%s: watermark %v caught up %v, want %v %v", c.name, wm, caught, c.want, c.caught)
		}
	}
	if got := ageSeconds(now, time.Time{}); got != -1 {
		t.Errorf("age of a zero watermark = %v, want -1", got)
	}
	if got := ageSeconds(now, at(90*time.Second)); got != 90 {
		t.Errorf("age = %v, want 90", got)
	}
}
