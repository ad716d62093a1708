package consumer

import (
	"testing"

	"github.com/s3mesh/s3mesh/schema"
)

// A record outside the site's filter is acknowledged, counted and not
// applied (nor dead-lettered); one inside is applied. A peer whose records
// carry another filter digest is reported until its records match again.
func TestFilterStep(t *testing.T) {
	tr := newTestRunner()
	filter := schema.Filter{Include: []string{"in/"}}
	tr.Filters = map[string]schema.Filter{"bkt": filter}
	in, out := msgOf("a", 1, 1, nil), msgOf("a", 2, 1, nil)
	_, in.data = recordOf(t, "a", "bkt", "in/x", 1)
	_, out.data = recordOf(t, "a", "bkt", "out/y", 2)
	tr.deliver("a", in)
	tr.deliver("a", out)
	applied, dead := tr.a.calls()
	if len(applied) != 1 || applied[0] != schema.VersionID("a", "bkt", "in/x", 1) || len(dead) != 0 || len(tr.q.all()) != 0 {
		t.Fatalf("applied %v dead %v dlq %d; want only in/x applied", applied, dead, len(tr.q.all()))
	}
	for _, m := range []*fakeMsg{in, out} {
		if acks, _ := m.settled(); acks != 1 {
			t.Fatalf("message %d acked %d times", m.meta.Sequence.Stream, acks)
		}
	}
	if n := counter(t, tr.M, "s3mesh_records_filtered_total", "bucket", "bkt", "peer", "a"); n != 1 {
		t.Errorf("filtered counter %v, want 1", n)
	}
	c := tr.M.Topo.Counts("bkt")
	if c.Filtered != 1 || c.PeerFilters["a"] != "" || len(c.PeerFilters) != 1 {
		t.Fatalf("counts %+v: want one filtered record and peer a's (empty) filter reported as different", c)
	}
	// The peer's records now carry the same filter: no difference left.
	rec, _ := recordOf(t, "a", "bkt", "in/z", 3)
	rec.Schema, rec.Filter = schema.FilterSchema, filter.Digest()
	data, err := rec.Sign(siteKey("a"))
	if err != nil {
		t.Fatal(err)
	}
	tr.deliver("a", msgOf("a", 3, 1, data))
	if c := tr.M.Topo.Counts("bkt"); len(c.PeerFilters) != 0 {
		t.Fatalf("after a record with this site's filter: %+v", c)
	}
	if applied, _ := tr.a.calls(); len(applied) != 2 {
		t.Fatalf("applied %v", applied)
	}
}
