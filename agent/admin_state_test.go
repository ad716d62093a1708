package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/s3mesh/s3mesh/broker"
	"testing"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

func TestStatePagePagesInKeyOrder(t *testing.T) {
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &Agent{cfg: &config.Site{Site: "a", Buckets: []config.Bucket{{Name: "demo"}, {Name: "other"}}}, Store: st}
	const n = 25
	for i := range n {
		k := fmt.Sprintf("k%03d", i)
		v := schema.Version{ID: schema.VersionID("a", "demo", k, 1), Origin: "a", Clock: schema.Clock{"a": 1}, Deleted: i%5 == 0}
		e := state.Entry{Held: v, Clock: schema.Clock{"a": 1, "b": uint64(i)}, LocalETag: "e" + k}
		if i == 7 {
			e.Applying = &v
		}
		if err := st.Put("demo", k, e); err != nil {
			t.Fatal(err)
		}
	}
	// An intent for a key never held is not a held version.
	if err := st.Put("demo", "k010x", state.Entry{Applying: &schema.Version{ID: "x"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Put("other", "k000", state.Entry{Held: schema.Version{ID: "o"}}); err != nil {
		t.Fatal(err)
	}
	var got []StateItem
	after, pages := "", 0
	for {
		out, err := a.statePage(context.Background(), AdminRequest{Bucket: "demo", After: after, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var p StatePage
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, p.Items...)
		if !p.More {
			break
		}
		if len(p.Items) != 10 {
			t.Fatalf("page %d: %d items with more to come", pages, len(p.Items))
		}
		after = p.Items[len(p.Items)-1].Key
	}
	if len(got) != n || pages != 3 {
		t.Fatalf("got %d items in %d pages, want %d in 3", len(got), pages, n)
	}
	for i, it := range got {
		k := fmt.Sprintf("k%03d", i)
		if it.Key != k || it.ETag != "e"+k || it.Clock["b"] != uint64(i) || it.Held.Deleted != (i%5 == 0) || it.Busy != (i == 7) {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	if _, err := a.statePage(context.Background(), AdminRequest{Bucket: "nope"}); err == nil {
		t.Fatal("a bucket that is not replicated was paged")
	}
}

// TestStatePageSubjectCrossesLinks: the broker lets peers reach exactly
// this admin subject over a confined link.
func TestStatePageSubjectCrossesLinks(t *testing.T) {
	if got, want := AdminSubject("a", "state.page"), broker.StatePageSubject("a"); got != want {
		t.Fatalf("AdminSubject state.page = %q, broker lets %q cross", got, want)
	}
}
