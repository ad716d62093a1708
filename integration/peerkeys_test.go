package integration

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/lab"
)

// waitPeerKeys polls site's status until its agent has a verdict on every
// peer key on every bucket, and returns them.
func (e *env) waitPeerKeys(t *testing.T, site string) []agent.PeerKeyStatus {
	t.Helper()
	want := (len(e.names) - 1) * len(e.info.Buckets)
	deadline := time.Now().Add(converge)
	for {
		st := e.siteStatus(t, site)
		settled := len(st.PeerKeys) == want
		for _, k := range st.PeerKeys {
			settled = settled && k.Key != "not checked yet"
		}
		if settled {
			return st.PeerKeys
		}
		if time.Now().After(deadline) {
			t.Fatalf("site %s: peer keys not all checked after %v: %+v", site, converge, st.PeerKeys)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func agentLog(t *testing.T, si lab.SiteInfo) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(si.LogDir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPeerKeysReadOnlyInLab: the lab gives every agent read-only keys of
// its own for its peers' versitygw stores. Every agent runs with them (it
// would refuse a key that can write), its status says read-only for every
// peer and bucket, none warns; and such a key is refused a PUT (403) at
// the peer while it reads the object the peer's agent replicated there
// (the positive control).
func TestPeerKeysReadOnlyInLab(t *testing.T) {
	e := labEnv(t)
	for _, si := range e.info.Sites {
		for _, k := range e.waitPeerKeys(t, si.Name) {
			if k.Key != "read-only" || k.AllowWritable {
				t.Errorf("site %s: peer key %+v, want read-only", si.Name, k)
			}
		}
		if log := agentLog(t, si); strings.Contains(log, "peer S3 key can write") || strings.Contains(log, "allow_writable_key") {
			t.Errorf("site %s's agent warned of a writable peer key", si.Name)
		}
	}
	key := "peerkeys/read-only-" + time.Now().Format("150405.000")
	o := object{body: []byte("written at a, read by b with its read-only key")}
	e.put(t, "a", key, o)
	e.waitObject(t, key, o, converge)
	ctx := ctxT(t)
	b := e.info.Sites[1]
	var ka lab.PeerS3Info
	for _, k := range b.PeerS3 {
		if k.Peer == "a" {
			ka = k
		}
	}
	c := s3.New(s3.Options{BaseEndpoint: aws.String(e.info.Sites[0].S3Endpoint), Region: e.info.Sites[0].Region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(ka.AccessKey, ka.SecretKey, ""), RetryMaxAttempts: 1})
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("b's key at a cannot HEAD %s: %v", key, err)
	}
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("overwritten by b behind s3mesh's back")})
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
		t.Fatalf("b's key at a: PUT answered %v, want 403", err)
	}
	e.waitObject(t, key, o, 5*time.Second) // unchanged everywhere
}

// TestPeerKeyWritableAllowedInMixedLab: site b runs rclone serve s3,
// whose only key pair can write; the lab gives it to a and c marked
// allow_writable_key. Their agents run, warn at start, and show the key
// as writable in status (with a warning) and in the metric; b's own keys
// at a and c (versitygw) are read-only.
func TestPeerKeyWritableAllowedInMixedLab(t *testing.T) {
	e := mixedEnv(t)
	for _, si := range e.info.Sites {
		keys := e.waitPeerKeys(t, si.Name)
		st := e.siteStatus(t, si.Name)
		log := agentLog(t, si)
		for _, k := range keys {
			switch {
			case si.Name != "b" && k.Peer == "b":
				if k.Key != "writable" || !k.AllowWritable {
					t.Errorf("site %s: key at rclone b %+v, want writable, allowed", si.Name, k)
				}
			case k.Key != "read-only" || k.AllowWritable:
				t.Errorf("site %s: key at versitygw %s %+v, want read-only", si.Name, k.Peer, k)
			}
		}
		warned := strings.Contains(log, "allow_writable_key: true: peer b's S3 key may write") && strings.Contains(log, "peer S3 key can write to the peer's store, allowed by")
		statusWarned := strings.Contains(strings.Join(st.Warnings, "\n"), "peer b's S3 key can write")
		if si.Name == "b" {
			if warned || statusWarned {
				t.Errorf("site b warned of a writable key, but its peers are versitygw")
			}
			continue
		}
		if !warned || !statusWarned {
			t.Errorf("site %s: the allowed writable key at b is not warned of (log %v, status %v): %v", si.Name, warned, statusWarned, st.Warnings)
		}
		if v := metricValue(t, si.HTTPAddr, `s3mesh_peer_s3_key_writable{bucket="demo",peer="b"}`); v != 1 {
			t.Errorf("site %s: s3mesh_peer_s3_key_writable for b = %v, want 1", si.Name, v)
		}
	}
}
