package producer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// KeyEncoding says how a source writes object keys in its events: AWS, MinIO
// and Ceph URL-encode them ("+" for a space); versitygw writes them raw.
type KeyEncoding string

// Key encodings.
const (
	KeysRaw KeyEncoding = "raw"
	KeysURL KeyEncoding = "url"
)

// Hint is one storage event reduced to what s3mesh trusts of it: "something
// may have changed at bucket/key". Op, Size and ETag only save requests
// (see Producer.ReconcileEvent); what replicates is always read from the
// store.
type Hint struct {
	Bucket string
	Key    string
	Op     string // "put", "delete" or "other"
	Event  string // the event name as sent
	Size   int64  // the object's size as the event says (0: not said)
	ETag   string // the object's ETag as the event says, without quotes ("": not said)
}

// ErrBadEvent wraps every parse failure.
var ErrBadEvent = errors.New("malformed storage event")

type s3Event struct {
	Records []struct {
		EventName string `json:"eventName"`
		S3        struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key  string    `json:"key"`
				Size eventSize `json:"size"`
				ETag string    `json:"eTag"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
}

// eventSize is an event's object size: a JSON number (AWS, MinIO,
// versitygw) or a string holding one (Ceph RGW: "size":"1024"). Anything
// else reads as 0, "not said": the size only saves a request.
type eventSize int64

func (z *eventSize) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		n = 0
	}
	*z = eventSize(n)
	return nil
}

// ParseEvent parses an S3 event notification (the standard {"Records":[…]}
// JSON) into hints. A message with no records, or a record without bucket or
// key, is an error: it is counted and rejected, never guessed at.
func ParseEvent(data []byte, enc KeyEncoding) ([]Hint, error) {
	var ev s3Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	if len(ev.Records) == 0 {
		if isTestEvent(data) {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: no Records", ErrBadEvent)
	}
	hints := make([]Hint, 0, len(ev.Records))
	for i, r := range ev.Records {
		b, k := r.S3.Bucket.Name, r.S3.Object.Key
		if b == "" || k == "" {
			return nil, fmt.Errorf("%w: record %d lacks bucket or key", ErrBadEvent, i)
		}
		key, err := decodeKey(k, enc)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrBadEvent, i, err)
		}
		if !utf8.ValidString(key) {
			return nil, fmt.Errorf("%w: record %d: key is not valid UTF-8", ErrBadEvent, i)
		}
		if len(key) > 1024 {
			return nil, fmt.Errorf("%w: record %d: key of %d bytes (max 1024)", ErrBadEvent, i, len(key))
		}
		size := int64(r.S3.Object.Size)
		if size < 0 {
			size = 0
		}
		etag := strings.Trim(r.S3.Object.ETag, `"`)
		hints = append(hints, Hint{Bucket: b, Key: key, Op: opOf(r.EventName), Event: r.EventName, Size: size, ETag: etag})
	}
	return hints, nil
}

// isTestEvent recognises the s3:TestEvent that AWS sends when notifications
// are configured: valid, but names no object.
func isTestEvent(data []byte) bool {
	var t struct {
		Event string `json:"Event"`
	}
	return json.Unmarshal(data, &t) == nil && t.Event == "s3:TestEvent"
}

func decodeKey(k string, enc KeyEncoding) (string, error) {
	switch enc {
	case KeysRaw, "":
		return k, nil
	case KeysURL:
		d, err := url.QueryUnescape(k)
		if err != nil {
			return "", fmt.Errorf("key %q is not URL-encoded: %v", k, err)
		}
		return d, nil
	}
	return "", fmt.Errorf("unknown key encoding %q", enc)
}

func opOf(name string) string {
	n := strings.TrimPrefix(name, "s3:")
	switch {
	case strings.HasPrefix(n, "ObjectCreated"):
		return "put"
	case strings.HasPrefix(n, "ObjectRemoved"):
		return "delete"
	}
	return "other"
}
