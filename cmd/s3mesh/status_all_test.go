package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/agent"
)

// status --all warns when the sites' records.max_future differ, and only
// then (sites that did not answer, or answered without it, are left out).
func TestMixedMaxFuture(t *testing.T) {
	site := func(name, mf string) siteStatus {
		return siteStatus{site: name, st: agent.Status{Site: name, MaxFuture: mf}}
	}
	down := siteStatus{site: "d", err: errors.New("unreachable")}
	if w := mixedMaxFuture([]siteStatus{site("a", "24h0m0s"), site("b", "24h0m0s"), down, site("e", "")}); w != "" {
		t.Fatalf("same value everywhere: warning %q", w)
	}
	res := []siteStatus{site("a", "24h0m0s"), site("b", "1h0m0s"), down, site("c", "24h0m0s")}
	w := mixedMaxFuture(res)
	for _, want := range []string{"records.max_future differs", "a 24h0m0s", "b 1h0m0s", "c 24h0m0s"} {
		if !strings.Contains(w, want) {
			t.Fatalf("warning %q lacks %q", w, want)
		}
	}
	var b strings.Builder
	printAllTable(&b, res)
	if !strings.Contains(b.String(), "WARNING: records.max_future differs") {
		t.Fatalf("status --all table does not show the warning:\n%s", b.String())
	}
}
