package consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDeadLetterTruncatedToFit(t *testing.T) {
	rec := bytes.Repeat([]byte{0xab}, 900<<10) // base64 in JSON: about 1.2 MiB
	dl := DeadLetter{ID: "CHANGES_a:7", Reason: ReasonDecode, Error: strings.Repeat("x", 10<<10), Peer: "a", Stream: "CHANGES_a", Seq: 7, Record: rec}
	data, got, err := encodeDeadLetter(dl, DefaultMaxPayload)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > DefaultMaxPayload-payloadMargin {
		t.Fatalf("entry of %d bytes over the limit", len(data))
	}
	var back DeadLetter
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Truncated || back.RecordSize != len(rec) || back.Stream != "CHANGES_a" || back.Seq != 7 || len(back.Record) != truncatedRecordBytes || !bytes.Equal(back.Record, got.Record) {
		t.Fatalf("truncated entry: truncated %v size %d ref %s:%d kept %d bytes", back.Truncated, back.RecordSize, back.Stream, back.Seq, len(back.Record))
	}
	if err := back.Verify(rec); err != nil {
		t.Fatalf("the stream's record does not verify against its truncated entry: %v", err)
	}
	other := bytes.Clone(rec)
	other[len(other)-1] ^= 1
	if err := back.Verify(other); !errors.Is(err, ErrDeadLetterMismatch) {
		t.Fatalf("another record verified against the truncated entry: %v", err)
	}
	// A small entry stays whole; it verifies against its own bytes only.
	small := DeadLetter{ID: "CHANGES_a:8", Stream: "CHANGES_a", Seq: 8, Record: []byte("record")}
	data, got, err = encodeDeadLetter(small, DefaultMaxPayload)
	if err != nil || got.Truncated || !strings.Contains(string(data), `"record":"`) {
		t.Fatalf("small entry: %s truncated %v err %v", data, got.Truncated, err)
	}
	if err := got.Verify([]byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify([]byte("forged")); !errors.Is(err, ErrDeadLetterMismatch) {
		t.Fatalf("a forged record verified: %v", err)
	}
}
