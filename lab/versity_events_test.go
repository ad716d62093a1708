package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/s3mesh/s3mesh/internal/testenv"
)

// versityEvent is the part of versitygw's event JSON the tests check.
type versityEvent struct {
	Records []struct {
		EventVersion string `json:"eventVersion"`
		EventSource  string `json:"eventSource"`
		AwsRegion    string `json:"awsRegion"`
		EventTime    string `json:"eventTime"`
		EventName    string `json:"eventName"`
		UserIdentity struct {
			PrincipalID string `json:"PrincipalId"`
		} `json:"userIdentity"`
		S3 struct {
			S3SchemaVersion string `json:"s3SchemaVersion"`
			ConfigurationID string `json:"configurationId"`
			Bucket          struct {
				Name string `json:"name"`
				Arn  string `json:"arn"`
			} `json:"bucket"`
			Object struct {
				Key       string  `json:"key"`
				Size      int64   `json:"size"`
				ETag      *string `json:"eTag"`
				VersionID *string `json:"versionId"`
				Sequencer string  `json:"sequencer"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
}

// startNATS runs an in-process NATS server (no JetStream) on a free port.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return ns
}

// nextMsg waits for the next message on sub, failing the test after d.
func nextMsg(t *testing.T, sub *nats.Subscription, d time.Duration) *nats.Msg {
	t.Helper()
	m, err := sub.NextMsg(d)
	if err != nil {
		t.Fatalf("no message on %s within %v: %v", sub.Subject, d, err)
	}
	return m
}

// TestVersityNATSEvents starts the real versitygw with its NATS sink on an
// embedded server and records what its events look like. Findings (v1.8.0):
//   - at start-up the sink publishes one test message that is not an event:
//     {"Bucket":"Test-Bucket","Event":"s3:TestEvent","Service":"S3","Time":...};
//   - without --event-filter every event of every bucket is sent;
//   - one JSON object per message, {"Records":[...]} with exactly one record;
//   - the key is the raw, unescaped key (spaces, '+' and UTF-8 as is);
//   - eTag is quoted, versionId null, configurationId "webhook-global"
//     (sic, even for NATS), sequencer a hex counter;
//   - bucket creation sends no event; a delete sends one even for a key
//     that never existed; a copy reports size 0.
func TestVersityNATSEvents(t *testing.T) {
	ns := startNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject := eventsSubject("a")
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	v := testenv.StartVersity(t, "--event-nats-url", ns.ClientURL(), "--event-nats-topic", subject)

	// The start-up test message.
	var test map[string]string
	if err := json.Unmarshal(nextMsg(t, sub, 10*time.Second).Data, &test); err != nil {
		t.Fatal(err)
	}
	if test["Event"] != "s3:TestEvent" || test["Service"] != "S3" {
		t.Fatalf("start-up message = %v, want the s3:TestEvent test message", test)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newS3Client(v.Endpoint, v.AccessKey, v.SecretKey)
	for _, b := range []string{"demo", "other.bucket"} {
		if err := ensureBucket(ctx, c, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := ensureBucket(ctx, c, "demo"); err != nil {
		t.Fatalf("ensureBucket on an existing bucket: %v", err)
	}

	// next returns the one record of the next event message.
	next := func() (rec struct{ raw string }, ev versityEvent) {
		t.Helper()
		m := nextMsg(t, sub, 10*time.Second)
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("event is not JSON: %v: %s", err, m.Data)
		}
		if len(ev.Records) != 1 {
			t.Fatalf("event has %d records, want 1: %s", len(ev.Records), m.Data)
		}
		t.Logf("event: %s", m.Data)
		return struct{ raw string }{string(m.Data)}, ev
	}

	key := "dir/hello world+ü%20.txt"
	body := []byte("hello, events")
	put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("demo"), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	_, ev := next() // bucket creation sent nothing: this is the PUT
	r := ev.Records[0]
	if r.EventName != "s3:ObjectCreated:Put" || r.EventSource != "aws:s3" || r.EventVersion != "2.2" || r.AwsRegion != v.Region {
		t.Errorf("record header = %+v", r)
	}
	if _, err := time.Parse(time.RFC3339, r.EventTime); err != nil {
		t.Errorf("eventTime %q: %v", r.EventTime, err)
	}
	if r.UserIdentity.PrincipalID != v.AccessKey {
		t.Errorf("principal = %q, want the access key", r.UserIdentity.PrincipalID)
	}
	o := r.S3.Object
	if r.S3.Bucket.Name != "demo" || r.S3.Bucket.Arn != "arn:aws:s3:::/demo/"+key {
		// The arn is built from the raw request path (leading slash and all).
		t.Errorf("bucket = %+v", r.S3.Bucket)
	}
	if o.Key != key {
		t.Errorf("key = %q, want the raw key %q (versitygw does not URL-encode keys)", o.Key, key)
	}
	if o.Size != int64(len(body)) || o.ETag == nil || *o.ETag != *put.ETag {
		t.Errorf("size/etag = %d/%v, want %d/%s", o.Size, o.ETag, len(body), *put.ETag)
	}
	if o.VersionID != nil {
		t.Errorf("versionId = %q, want null", *o.VersionID)
	}
	if !regexp.MustCompile(`^[0-9A-F]+$`).MatchString(o.Sequencer) {
		t.Errorf("sequencer = %q, want a hex counter", o.Sequencer)
	}
	if r.S3.ConfigurationID != "webhook-global" || r.S3.S3SchemaVersion != "1.0" {
		t.Errorf("configurationId/schema = %q/%q", r.S3.ConfigurationID, r.S3.S3SchemaVersion)
	}

	// Every bucket is reported (no filter file).
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("other.bucket"), Key: aws.String("k"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	if _, ev = next(); ev.Records[0].S3.Bucket.Name != "other.bucket" || ev.Records[0].EventName != "s3:ObjectCreated:Put" {
		t.Errorf("second bucket's event = %+v", ev.Records[0])
	}

	// A copy: size 0.
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("demo"), Key: aws.String("copy"), CopySource: aws.String("other.bucket/k")}); err != nil {
		t.Fatal(err)
	}
	if _, ev = next(); ev.Records[0].EventName != "s3:ObjectCreated:Copy" || ev.Records[0].S3.Object.Key != "copy" || ev.Records[0].S3.Object.Size != 0 {
		t.Errorf("copy event = %+v", ev.Records[0])
	}

	// A delete, also of a key that never existed.
	for _, k := range []string{key, "never-existed"} {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("demo"), Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
		if _, ev = next(); ev.Records[0].EventName != "s3:ObjectRemoved:Delete" || ev.Records[0].S3.Object.Key != k {
			t.Errorf("delete event = %+v", ev.Records[0])
		}
	}

	// DeleteObjects: one event per key, named ObjectRemoved:DeleteObjects.
	if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("demo"), Delete: &types.Delete{
		Objects: []types.ObjectIdentifier{{Key: aws.String("copy")}, {Key: aws.String("x y")}},
	}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for range 2 {
		_, ev = next()
		got[ev.Records[0].S3.Object.Key] = ev.Records[0].EventName
	}
	if got["copy"] != "s3:ObjectRemoved:DeleteObjects" || got["x y"] != "s3:ObjectRemoved:DeleteObjects" {
		t.Errorf("DeleteObjects events = %v", got)
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("unexpected extra event: %s", m.Data)
	}
}
