package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/schema"
)

// TestOriginTimeSampled: every record received gives the clock-offset
// estimate (metrics.ClockOffsets) a sample of origin time − receive time,
// a record refused for an origin time too far ahead included.
func TestOriginTimeSampled(t *testing.T) {
	tr := newTestRunner()
	tr.a.apply = func(context.Context, *schema.Record) (schema.Decision, error) {
		return schema.Decision{Outcome: schema.Apply}, nil
	}
	now := tr.c.Now()
	_, data := recordOf(t, "a", "bkt", "k", 1) // made 2023-11-14, long before now
	tr.deliver("a", msgOf("a", 7, 1, data))
	old := time.UnixMilli(1_700_000_000_000).Sub(now)
	if got, ok := tr.M.Clock.Estimate("a", now); !ok || got != old {
		t.Fatalf("estimate %v %v, want %v", got, ok, old)
	}

	// A peer clock two days ahead: refused (records.max_future), sampled.
	rec := &schema.Record{Schema: schema.RecordSchema, Bucket: "bkt", Key: "k2",
		Version: schema.Version{ID: schema.VersionID("a", "bkt", "k2", 1), Origin: "a", Clock: schema.Clock{"a": 1},
			TS: now.Add(48 * time.Hour).UnixMilli(), Size: 1, ETag: "etag"},
		Inline: true, Body: []byte("x"), MadeAt: now.Add(48 * time.Hour).UnixMilli()}
	signed, err := rec.Sign(siteKey("a"))
	if err != nil {
		t.Fatal(err)
	}
	tr.deliver("a", msgOf("a", 8, 1, signed))
	if got, ok := tr.M.Clock.Estimate("a", now); !ok || got != 48*time.Hour {
		t.Fatalf("estimate after a record 48 h ahead: %v %v", got, ok)
	}
	if len(tr.q.all()) != 1 {
		t.Errorf("the record 48 h ahead was not dead-lettered: %v", tr.q.all())
	}
}
