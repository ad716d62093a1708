package consumer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// A dead letter is a reference to a record of a mirror (its Stream and Seq)
// plus a copy of the record's bytes for the operator to read. Whoever may
// publish into DLQ_<site> could write any bytes there, so `dlq retry` and
// `resolve` read the record from the mirror again and apply it only if it
// is the one the entry names (Verify); the copy is trusted only on the
// operator's word, when the mirror no longer holds the record.

// DefaultMaxPayload is the broker's default message limit (max_payload):
// a dead letter larger than the limit is stored truncated.
const DefaultMaxPayload = 1 << 20

// truncatedRecordBytes is how much of an oversized record a truncated dead
// letter keeps (the start, for the operator to look at).
const truncatedRecordBytes = 16 << 10

// payloadMargin leaves room for the headers of the publish (Nats-Msg-Id).
const payloadMargin = 4 << 10

// maxDeadLetterError bounds the error text an oversized entry keeps.
const maxDeadLetterError = 4 << 10

// ErrDeadLetterMismatch is why a dead letter whose record differs from the
// mirror's record at its sequence is refused.
var ErrDeadLetterMismatch = errors.New("dead letter does not match the mirror's record")

// encodeDeadLetter returns dl's JSON, fitted to limit bytes: an entry that
// does not fit keeps its reference (Stream, Seq), the record's size and
// SHA-256, and only the start of the record, and is marked Truncated, so a
// record too large for the broker is dead-lettered rather than retried
// forever.
func encodeDeadLetter(dl DeadLetter, limit int) ([]byte, DeadLetter, error) {
	if limit <= 0 {
		limit = DefaultMaxPayload
	}
	limit -= payloadMargin
	data, err := json.Marshal(dl)
	if err != nil || len(data) <= limit {
		return data, dl, err
	}
	if !dl.Truncated {
		sum := sha256.Sum256(dl.Record)
		dl.Truncated, dl.RecordSize, dl.RecordSHA256 = true, len(dl.Record), hex.EncodeToString(sum[:])
	}
	if len(dl.Error) > maxDeadLetterError {
		dl.Error = dl.Error[:maxDeadLetterError] + "…"
	}
	for _, keep := range []int{truncatedRecordBytes, 1 << 10, 0} {
		if len(dl.Record) > keep {
			dl.Record = dl.Record[:keep:keep]
		}
		if data, err = json.Marshal(dl); err != nil || len(data) <= limit {
			return data, dl, err
		}
	}
	return nil, dl, fmt.Errorf("dead letter %s does not fit the broker's limit of %d bytes even truncated", dl.ID, limit)
}

// Verify checks that data, the record read from the mirror at the entry's
// Stream and Seq, is the record dl was made of: the same bytes (for a
// truncated entry: the same size, SHA-256 and start).
func (dl *DeadLetter) Verify(data []byte) error {
	ref := fmt.Sprintf("%s:%d", dl.Stream, dl.Seq)
	if !dl.Truncated {
		if !bytes.Equal(data, dl.Record) {
			return fmt.Errorf("%w %s (%d bytes stored there, %d in the entry)", ErrDeadLetterMismatch, ref, len(data), len(dl.Record))
		}
		return nil
	}
	sum := sha256.Sum256(data)
	if len(data) != dl.RecordSize || hex.EncodeToString(sum[:]) != dl.RecordSHA256 || !bytes.HasPrefix(data, dl.Record) {
		return fmt.Errorf("%w %s (truncated entry of a %d-byte record, sha256 %.12s; the mirror holds %d bytes, sha256 %.12x)",
			ErrDeadLetterMismatch, ref, dl.RecordSize, dl.RecordSHA256, len(data), sum)
	}
	return nil
}
