package main

import (
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/broker"
)

func TestPrintStreams(t *testing.T) {
	var b strings.Builder
	printStreams(&b, []broker.StreamUsage{
		{Stream: "DLQ_a", Kind: broker.KindDLQ, Msgs: 80_000, MaxMsgs: 100_000, Bytes: 3 << 20, MaxBytes: 256 << 20},
		{Stream: "CHANGES_b", Kind: broker.KindMirror, Msgs: 10, MaxMsgs: 1_000_000, Bytes: 1 << 30, MaxBytes: 1 << 30, DiscardOld: true},
		{Stream: "EVENTS_a", Kind: broker.KindEvents, Error: "stream not found"},
	})
	out := b.String()
	for _, want := range []string{
		"STREAM", "AT ITS LIMIT",
		"DLQ_a", "80000 of 100000", "3 MiB of 256 MiB", "80%", "refuses new messages",
		"CHANGES_b", "1 GiB of 1 GiB", "100%", "drops its oldest",
		"EVENTS_a", "error: stream not found",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	b.Reset()
	printStreams(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no streams printed %q", b.String())
	}
}
