package metrics

import (
	"testing"
	"time"
)

func TestClockOffsets(t *testing.T) {
	c := NewClockOffsets(5 * time.Minute)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, ok := c.Estimate("a", t0); ok {
		t.Fatal("an estimate without samples")
	}
	// Transit delays of 200 ms and 30 ms with a peer clock 2 s ahead.
	c.Observe("a", 2*time.Second-200*time.Millisecond, t0)
	c.Observe("a", 2*time.Second-30*time.Millisecond, t0.Add(10*time.Second))
	c.Observe("b", -5*time.Second, t0) // behind, or a slow record
	if got, ok := c.Estimate("a", t0.Add(time.Minute)); !ok || got != 2*time.Second-30*time.Millisecond {
		t.Errorf("a: %v %v, want the largest sample", got, ok)
	}
	if got, ok := c.Estimate("b", t0.Add(time.Minute)); !ok || got != -5*time.Second {
		t.Errorf("b: %v %v", got, ok)
	}
	// A later, smaller sample does not hide the larger one within the window...
	c.Observe("a", -time.Minute, t0.Add(3*time.Minute))
	if got, _ := c.Estimate("a", t0.Add(3*time.Minute)); got != 2*time.Second-30*time.Millisecond {
		t.Errorf("a after a slow record: %v", got)
	}
	// ...but samples older than the window are forgotten.
	if got, ok := c.Estimate("a", t0.Add(6*time.Minute)); !ok || got != -time.Minute {
		t.Errorf("a after the window: %v %v, want only the last sample", got, ok)
	}
	if _, ok := c.Estimate("b", t0.Add(10*time.Minute)); ok {
		t.Error("b: an estimate from samples older than the window")
	}
}

func TestNewRegistersEveryMetric(t *testing.T) {
	m := New()
	m.BuildInfo.WithLabelValues("a", "dev", "go").Set(1)
	if _, err := m.Registry.Gather(); err != nil {
		t.Fatal(err)
	}
}
