package producer

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// versityEvent is the exact event versitygw v1.8.0 sent in the lab: the key
// is raw UTF-8 (not URL-encoded), so "+" and "%20" are literal characters.
const versityEvent = `{"Records":[{"eventVersion":"2.2","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-25T19:22:29Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"PrincipalId":"AK"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"","x-amz-id-2":""},"s3":{"s3SchemaVersion":"1.0","configurationId":"webhook-global","bucket":{"name":"demo","ownerIdentity":{"PrincipalId":"AK"},"arn":"arn:aws:s3:::/demo/dir/hello world+ü%20.txt"},"object":{"key":"dir/hello world+ü%20.txt","size":13,"eTag":"\"f038b1\"","versionId":null,"sequencer":"1"}}}]}`

// versityTestEvent is the message versitygw sends when it starts.
const versityTestEvent = `{"Bucket":"Test-Bucket","Event":"s3:TestEvent","Service":"S3","Time":"2026-11-25T19:20:00Z"}`

// awsEvent builds an AWS-style event with one record per name/key pair.
func awsEvent(bucket string, nameKey ...string) string {
	var recs []string
	for i := 0; i+1 < len(nameKey); i += 2 {
		recs = append(recs, fmt.Sprintf(`{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"eu-west-1",`+
			`"eventTime":"2026-11-25T19:22:29.123Z","eventName":%q,"s3":{"s3SchemaVersion":"1.0",`+
			`"bucket":{"name":%q,"arn":"arn:aws:s3:::%s"},"object":{"key":%q,"size":1,"sequencer":"0055AED6DCD90281E5"}}}`,
			nameKey[i], bucket, bucket, nameKey[i+1]))
	}
	return `{"Records":[` + strings.Join(recs, ",") + `]}`
}

func TestParseEvent(t *testing.T) {
	long := strings.Repeat("k", 1024)
	tests := []struct {
		name string
		data string
		enc  KeyEncoding
		want []Hint
	}{
		{
			name: "versitygw v1.8.0 raw key",
			data: versityEvent, enc: KeysRaw,
			want: []Hint{{Bucket: "demo", Key: "dir/hello world+ü%20.txt", Op: "put", Event: "s3:ObjectCreated:Put", Size: 13, ETag: "f038b1"}},
		},
		{
			name: "empty encoding means raw",
			data: versityEvent, enc: "",
			want: []Hint{{Bucket: "demo", Key: "dir/hello world+ü%20.txt", Op: "put", Event: "s3:ObjectCreated:Put", Size: 13, ETag: "f038b1"}},
		},
		{
			name: "versitygw start-up test event",
			data: versityTestEvent, enc: KeysRaw,
			want: nil,
		},
		{
			name: "AWS test event",
			data: `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-25T19:20:00.000Z","Bucket":"demo","RequestId":"1","HostId":"2"}`,
			enc:  KeysURL,
			want: nil,
		},
		{
			name: "AWS url-encoded key",
			data: awsEvent("demo", "s3:ObjectCreated:Put", "dir/hello+world%2B%C3%BC.txt"), enc: KeysURL,
			want: []Hint{{Bucket: "demo", Key: "dir/hello world+ü.txt", Op: "put", Event: "s3:ObjectCreated:Put", Size: 1}},
		},
		{
			name: "url-encoded key read raw stays encoded",
			data: awsEvent("demo", "s3:ObjectCreated:Put", "dir/hello+world%2B%C3%BC.txt"), enc: KeysRaw,
			want: []Hint{{Bucket: "demo", Key: "dir/hello+world%2B%C3%BC.txt", Op: "put", Event: "s3:ObjectCreated:Put", Size: 1}},
		},
		{
			name: "ObjectRemoved:Delete",
			data: awsEvent("demo", "s3:ObjectRemoved:Delete", "a/b"), enc: KeysURL,
			want: []Hint{{Bucket: "demo", Key: "a/b", Op: "delete", Event: "s3:ObjectRemoved:Delete", Size: 1}},
		},
		{
			name: "ObjectRemoved:DeleteObjects",
			data: awsEvent("demo", "s3:ObjectRemoved:DeleteObjects", "a/b"), enc: KeysRaw,
			want: []Hint{{Bucket: "demo", Key: "a/b", Op: "delete", Event: "s3:ObjectRemoved:DeleteObjects", Size: 1}},
		},
		{
			name: "ObjectRemoved:DeleteMarkerCreated",
			data: awsEvent("demo", "s3:ObjectRemoved:DeleteMarkerCreated", "a/b"), enc: KeysRaw,
			want: []Hint{{Bucket: "demo", Key: "a/b", Op: "delete", Event: "s3:ObjectRemoved:DeleteMarkerCreated", Size: 1}},
		},
		{
			name: "ObjectCreated:Copy",
			data: awsEvent("demo", "s3:ObjectCreated:Copy", "c"), enc: KeysRaw,
			want: []Hint{{Bucket: "demo", Key: "c", Op: "put", Event: "s3:ObjectCreated:Copy", Size: 1}},
		},
		{
			name: "ObjectCreated:CompleteMultipartUpload",
			data: awsEvent("demo", "s3:ObjectCreated:CompleteMultipartUpload", "big.bin"), enc: KeysURL,
			want: []Hint{{Bucket: "demo", Key: "big.bin", Op: "put", Event: "s3:ObjectCreated:CompleteMultipartUpload", Size: 1}},
		},
		{
			name: "AWS eventName without s3: prefix (put)",
			data: awsEvent("demo", "ObjectCreated:Put", "x"), enc: KeysURL,
			want: []Hint{{Bucket: "demo", Key: "x", Op: "put", Event: "ObjectCreated:Put", Size: 1}},
		},
		{
			name: "AWS eventName without s3: prefix (delete)",
			data: awsEvent("demo", "ObjectRemoved:Delete", "x"), enc: KeysURL,
			want: []Hint{{Bucket: "demo", Key: "x", Op: "delete", Event: "ObjectRemoved:Delete", Size: 1}},
		},
		{
			name: "other event kind",
			data: awsEvent("demo", "s3:ObjectTagging:Put", "x"), enc: KeysURL,
			want: []Hint{{Bucket: "demo", Key: "x", Op: "other", Event: "s3:ObjectTagging:Put", Size: 1}},
		},
		{
			name: "multiple records in order",
			data: awsEvent("demo",
				"s3:ObjectCreated:Put", "one",
				"s3:ObjectRemoved:Delete", "two%2Fthree",
				"ObjectCreated:Copy", "four+five"),
			enc: KeysURL,
			want: []Hint{
				{Bucket: "demo", Key: "one", Op: "put", Event: "s3:ObjectCreated:Put", Size: 1},
				{Bucket: "demo", Key: "two/three", Op: "delete", Event: "s3:ObjectRemoved:Delete", Size: 1},
				{Bucket: "demo", Key: "four five", Op: "put", Event: "ObjectCreated:Copy", Size: 1},
			},
		},
		{
			name: "key of exactly 1024 bytes",
			data: awsEvent("demo", "s3:ObjectCreated:Put", long), enc: KeysRaw,
			want: []Hint{{Bucket: "demo", Key: long, Op: "put", Event: "s3:ObjectCreated:Put", Size: 1}},
		},
		{
			name: "url-encoded key decoding to 1024 bytes",
			data: awsEvent("demo", "s3:ObjectCreated:Put", strings.Repeat("%6B", 1024)), enc: KeysURL,
			want: []Hint{{Bucket: "demo", Key: long, Op: "put", Event: "s3:ObjectCreated:Put", Size: 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEvent([]byte(tc.data), tc.enc)
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("hints:\n got  %#v\n want %#v", got, tc.want)
			}
		})
	}
}

func TestParseEventErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		enc  KeyEncoding
	}{
		{"not JSON", `Records: yes`, KeysRaw},
		{"truncated JSON", versityEvent[:len(versityEvent)-3], KeysRaw},
		{"empty input", ``, KeysRaw},
		{"JSON array", `[` + versityEvent + `]`, KeysRaw},
		{"JSON null", `null`, KeysRaw},
		{"JSON string", `"s3:TestEvent"`, KeysRaw},
		{"empty object", `{}`, KeysRaw},
		{"Records empty", `{"Records":[]}`, KeysRaw},
		{"Records null", `{"Records":null}`, KeysRaw},
		{"Records not an array", `{"Records":{"s3":{}}}`, KeysRaw},
		{"record null", `{"Records":[null]}`, KeysRaw},
		{"other test event", `{"Event":"s3:SomethingElse"}`, KeysRaw},
		{"missing bucket", awsEvent("", "s3:ObjectCreated:Put", "k"), KeysRaw},
		{"missing key", awsEvent("demo", "s3:ObjectCreated:Put", ""), KeysURL},
		{"no s3 section", `{"Records":[{"eventName":"s3:ObjectCreated:Put"}]}`, KeysRaw},
		{"second record bad", awsEvent("demo", "s3:ObjectCreated:Put", "ok", "s3:ObjectCreated:Put", ""), KeysRaw},
		{"bad %-escape with url keys", awsEvent("demo", "s3:ObjectCreated:Put", "50%off"), KeysURL},
		{"truncated %-escape with url keys", awsEvent("demo", "s3:ObjectCreated:Put", "a%C"), KeysURL},
		{"unknown key encoding", awsEvent("demo", "s3:ObjectCreated:Put", "k"), KeyEncoding("base64")},
		{"key over 1024 bytes raw", awsEvent("demo", "s3:ObjectCreated:Put", strings.Repeat("k", 1025)), KeysRaw},
		{"key over 1024 bytes decoded", awsEvent("demo", "s3:ObjectCreated:Put", strings.Repeat("%C3%BC", 513)), KeysURL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEvent([]byte(tc.data), tc.enc)
			if !errors.Is(err, ErrBadEvent) {
				t.Fatalf("err = %v, want ErrBadEvent", err)
			}
			if got != nil {
				t.Errorf("hints = %#v alongside an error, want nil", got)
			}
		})
	}
}

// TestParseEventRawVsURL pins the difference that matters for versitygw: the
// same event read with the wrong encoding names a different key.
func TestParseEventRawVsURL(t *testing.T) {
	raw, err := ParseEvent([]byte(versityEvent), KeysRaw)
	if err != nil {
		t.Fatal(err)
	}
	url, err := ParseEvent([]byte(versityEvent), KeysURL)
	if err != nil {
		t.Fatal(err)
	}
	if raw[0].Key == url[0].Key {
		t.Fatalf("raw and url decoding agree on %q; the encoding setting would be meaningless", raw[0].Key)
	}
	if want := "dir/hello world ü .txt"; url[0].Key != want {
		t.Errorf("url-decoded key = %q, want %q", url[0].Key, want)
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		versityEvent,
		versityTestEvent,
		awsEvent("demo", "s3:ObjectCreated:Put", "dir/hello+world%2B%C3%BC.txt"),
		awsEvent("demo", "s3:ObjectRemoved:Delete", "a", "s3:ObjectRemoved:DeleteObjects", "b"),
		awsEvent("demo", "s3:ObjectCreated:Copy", "c", "s3:ObjectCreated:CompleteMultipartUpload", "d"),
		awsEvent("demo", "ObjectCreated:Put", "e"),
		awsEvent("demo", "s3:ObjectCreated:Put", "50%off"),
		awsEvent("demo", "s3:ObjectCreated:Put", strings.Repeat("k", 1025)),
		awsEvent("demo", "s3:ObjectCreated:Put", strings.Repeat("%6B", 1024)),
		awsEvent("", "s3:ObjectCreated:Put", "k"),
		awsEvent("demo", "s3:ObjectCreated:Put", ""),
		`not json`, `[]`, `{}`, `null`, `{"Records":[]}`, `{"Records":[null]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, enc := range []KeyEncoding{KeysRaw, KeysURL} {
			hints, err := ParseEvent(data, enc)
			if err != nil {
				if !errors.Is(err, ErrBadEvent) {
					t.Fatalf("%s: error %v does not wrap ErrBadEvent", enc, err)
				}
				if hints != nil {
					t.Fatalf("%s: hints %v alongside error %v", enc, hints, err)
				}
				continue
			}
			for i, h := range hints {
				if h.Bucket == "" || h.Key == "" {
					t.Fatalf("%s: hint %d has empty bucket or key: %#v", enc, i, h)
				}
				if len(h.Key) > 1024 {
					t.Fatalf("%s: hint %d key of %d bytes", enc, i, len(h.Key))
				}
				switch h.Op {
				case "put", "delete", "other":
				default:
					t.Fatalf("%s: hint %d op %q", enc, i, h.Op)
				}
			}
		}
	})
}
