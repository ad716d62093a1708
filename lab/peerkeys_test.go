package lab

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
)

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// TestLabPeerKeys: every site's key at a versitygw peer is its own
// read-only key: it GETs, HEADs and lists the peer's bucket (the positive
// control) and is refused PUT and DELETE with 403, nothing written. At an
// rclone peer the key is the store's only pair, marked allow_writable_key
// (and it can write: the reason for the mark). site.yaml names exactly
// the keys lab.json describes, and the keys keep working after the lab
// is stopped and resumed.
func TestLabPeerKeys(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, Sites: 3, Stores: []string{StoreVersity, StoreVersity, StoreRclone}, RcloneBin: testenv.RcloneBin(t)}
	l, _ := startFakeLab(t, o)
	in := l.Info()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	byName := map[string]SiteInfo{}
	for _, s := range in.Sites {
		byName[s.Name] = s
		// Each store holds an object written with its own (root) key.
		if _, err := siteClient(s).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("demo"), Key: aws.String("held/" + s.Name), Body: strings.NewReader("held at " + s.Name)}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(in Info) {
		t.Helper()
		for _, s := range in.Sites {
			cfg, err := config.Load(s.Config)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.PeerS3) != len(in.Sites)-1 || len(cfg.Peers) != len(s.PeerS3) {
				t.Fatalf("site %s: %d peer keys in lab.json, %d peers in site.yaml", s.Name, len(s.PeerS3), len(cfg.Peers))
			}
			for i, k := range s.PeerS3 {
				x := byName[k.Peer]
				p := cfg.Peers[i]
				if p.Name != k.Peer || p.S3.AccessKey != k.AccessKey || p.S3.SecretKey.MustValue() != k.SecretKey || p.S3.AllowWritableKey != k.Writable || p.S3.Endpoint != x.S3Endpoint {
					t.Fatalf("site %s: site.yaml peers[%d] %+v does not match lab.json %+v", s.Name, i, p.S3, k)
				}
				if k.Writable != (x.Store == StoreRclone) {
					t.Fatalf("site %s's key at %s (%s): writable %v", s.Name, x.Name, x.Store, k.Writable)
				}
				c := newS3Client(x.S3Endpoint, k.AccessKey, k.SecretKey)
				what := s.Name + "'s key at " + x.Name
				// Positive control: the key reads.
				out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("demo"), Key: aws.String("held/" + x.Name)})
				if err != nil {
					t.Fatalf("%s: GET: %v", what, err)
				}
				b, _ := io.ReadAll(out.Body)
				out.Body.Close()
				if string(b) != "held at "+x.Name {
					t.Fatalf("%s: GET read %q", what, b)
				}
				if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String("held/" + x.Name)}); err != nil {
					t.Fatalf("%s: HEAD: %v", what, err)
				}
				ls, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("demo"), Prefix: aws.String("held/")})
				if err != nil || len(ls.Contents) != 1 || aws.ToString(ls.Contents[0].Key) != "held/"+x.Name {
					t.Fatalf("%s: LIST: %v %+v", what, err, ls)
				}
				key := "written-by/" + s.Name
				_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("demo"), Key: aws.String(key), Body: strings.NewReader("x")})
				if k.Writable {
					if err != nil {
						t.Fatalf("%s (rclone, writable): PUT: %v", what, err)
					}
					_, _ = newS3Client(x.S3Endpoint, x.AccessKey, x.SecretKey).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("demo"), Key: aws.String(key)})
					continue
				}
				if httpStatus(err) != http.StatusForbidden {
					t.Fatalf("%s: PUT answered %v, want 403", what, err)
				}
				if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("demo"), Key: aws.String("held/" + x.Name)}); httpStatus(err) != http.StatusForbidden {
					t.Fatalf("%s: DELETE answered %v, want 403", what, err)
				}
				root := newS3Client(x.S3Endpoint, x.AccessKey, x.SecretKey)
				if _, err := root.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String(key)}); httpStatus(err) != http.StatusNotFound {
					t.Fatalf("%s: the refused PUT wrote %s (HEAD: %v)", what, key, err)
				}
				if _, err := root.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String("held/" + x.Name)}); err != nil {
					t.Fatalf("%s: the refused DELETE deleted: %v", what, err)
				}
			}
		}
	}
	check(in)
	l.Stop()
	l2, _ := startFakeLab(t, o)
	in2 := l2.Info()
	for i := range in.Sites {
		if !equalPeerS3(in.Sites[i].PeerS3, in2.Sites[i].PeerS3) {
			t.Errorf("site %s's peer keys changed on resume", in.Sites[i].Name)
		}
	}
	check(in2)
}

func equalPeerS3(a, b []PeerS3Info) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
