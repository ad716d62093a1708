package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// MinIO and SeaweedFS sites (docs/stores.md).
//
// A MinIO site is a single-drive `minio server` on loopback whose own
// bucket notifications feed the site's EVENTS stream: its NATS
// notification target (configured by environment, so `ps` shows no
// secret) logs in to the site's broker as the events user, which may only
// publish the site's events subject, over TLS with the lab's CA, and keeps
// events in a queue directory while the broker is unreachable. Every
// replicated bucket gets a notification configuration naming that target
// (applyMinioNotifications). MinIO keys in events are URL-encoded, as S3's.
// Its peers fetch with its root key pair (the lab makes no MinIO users;
// site.yaml marks it allow_writable_key). MinIO ignores If-Match on
// DELETE, so its site.yaml sets s3.unconditional_writes: the agent then
// checks replica deletes with a HEAD first (docs/stores.md).
//
// A SeaweedFS site is `weed server -s3`: master, volume server, filer and S3
// gateway in one process, every listener on 127.0.0.1, telemetry off. Its
// S3 identities come from a file the lab writes: the site's own key with
// every right, and one key per peer with Read and List only. A backslash
// in a key is kept (-s3.allowBackslashInKey). SeaweedFS
// has no S3 bucket notifications (its filer's notifications carry filer
// entries, not S3 events): the agent polls it.

// minioTarget is the ID of the MinIO NATS notification target the lab
// configures (MINIO_NOTIFY_NATS_*_S3MESH).
const minioTarget = "S3MESH"

// minioQueueARN is the ARN a bucket notification configuration names the
// target by.
func minioQueueARN() string { return "arn:minio:sqs:" + Region + ":" + minioTarget + ":nats" }

// storePorts is how many internal ports (sitePorts.Store) a store needs.
func storePorts(store string) int {
	if store == StoreSeaweed {
		return len(weedPortFlags)
	}
	return 0
}

// weedPortFlags are the internal listeners of `weed server`, in the order
// of sitePorts.Store.
var weedPortFlags = []string{"-master.port", "-master.port.grpc", "-volume.port", "-volume.port.grpc", "-filer.port", "-filer.port.grpc", "-s3.port.grpc"}

func (s *site) minioQueueDir() string    { return filepath.Join(s.dir, "minio-events-queue") }
func (s *site) weedIdentityPath() string { return filepath.Join(s.dir, "weed-s3-identities.json") }

// minioProc is s's MinIO server.
func (l *Lab) minioProc(s *site) *proc {
	env := childEnv(
		"MINIO_ROOT_USER="+s.accessKey, "MINIO_ROOT_PASSWORD="+s.secretKey,
		"MINIO_REGION="+Region,
		"MINIO_BROWSER=off", // no console listener
		"MINIO_UPDATE=off",
		"MINIO_NOTIFY_NATS_ENABLE_"+minioTarget+"=on",
		"MINIO_NOTIFY_NATS_ADDRESS_"+minioTarget+"="+loopback(s.ports.NATS),
		"MINIO_NOTIFY_NATS_SUBJECT_"+minioTarget+"="+eventsSubject(s.name),
		"MINIO_NOTIFY_NATS_QUEUE_DIR_"+minioTarget+"="+s.minioQueueDir(),
	)
	if !l.o.Insecure {
		env = append(env, "MINIO_NOTIFY_NATS_USERNAME_"+minioTarget+"="+eventsUser, "MINIO_NOTIFY_NATS_PASSWORD_"+minioTarget+"="+s.eventsPassword)
	}
	if s.caFile != "" {
		env = append(env, "MINIO_NOTIFY_NATS_TLS_"+minioTarget+"=on", "MINIO_NOTIFY_NATS_CERT_AUTHORITY_"+minioTarget+"="+s.caFile)
	}
	return &proc{
		name: s.name + "/minio", bin: l.o.MinioBin,
		args:    []string{"server", "--address", loopback(s.ports.S3), "--quiet", "--anonymous", s.dataDir()},
		env:     env,
		logPath: s.logPath("minio"), log: l.log,
		redact:    []string{s.secretKey, s.eventsPassword},
		readyWhat: "ready (GET " + s.s3Endpoint() + "/minio/health/ready answering 200)",
		ready:     checkHTTP(s.s3Endpoint()+"/minio/health/ready", true),
		onExit:    func(*proc) { l.restartS3Later(s) },
	}
}

// weedProc is s's `weed server -s3`.
func (l *Lab) weedProc(s *site) *proc {
	args := []string{"server",
		"-dir=" + s.dataDir(), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=0",
		"-filer", "-filer.localSocket=" + filepath.Join(s.dir, "weed-filer.sock"),
		"-s3", "-s3.port=" + strconv.Itoa(s.ports.S3), "-s3.config=" + s.weedIdentityPath(),
		"-s3.localSocket=" + filepath.Join(s.dir, "weed-s3.sock"),
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		// A backslash is a key character, as in S3 (by default SeaweedFS
		// turns it into "/": the probe finds such a key not held).
		"-s3.allowBackslashInKey=true",
	}
	for i, f := range weedPortFlags {
		args = append(args, f+"="+strconv.Itoa(s.ports.Store[i]))
	}
	c := newS3Client(s.s3Endpoint(), s.accessKey, s.secretKey)
	return &proc{
		name: s.name + "/weed", bin: l.o.WeedBin,
		args:    args,
		env:     childEnv(),
		logPath: s.logPath("weed"), log: l.log,
		redact: []string{s.secretKey},
		// The S3 port answers before the filer serves: ready once a
		// signed ListBuckets succeeds.
		readyWhat: "answering a signed ListBuckets on " + s.s3Endpoint(),
		ready: func(ctx context.Context) error {
			_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		},
		onExit: func(*proc) { l.restartS3Later(s) },
	}
}

// writeWeedIdentities writes s's SeaweedFS S3 identity file: the site's key
// with every right, each peer's key with Read and List only.
func writeWeedIdentities(s *site, all []*site) error {
	type cred struct {
		AccessKey string `json:"accessKey"`
		SecretKey string `json:"secretKey"`
	}
	type identity struct {
		Name        string   `json:"name"`
		Credentials []cred   `json:"credentials"`
		Actions     []string `json:"actions"`
	}
	ids := []identity{{Name: "site-" + s.name, Credentials: []cred{{s.accessKey, s.secretKey}}, Actions: []string{"Admin", "Read", "List", "Tagging", "Write"}}}
	for _, p := range all {
		if p == s {
			continue
		}
		k := p.peerKeys[s.name]
		ids = append(ids, identity{Name: "peer-" + p.name, Credentials: []cred{{k.accessKey, k.secretKey}}, Actions: []string{"Read", "List"}})
	}
	b, err := json.MarshalIndent(map[string]any{"identities": ids}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.weedIdentityPath(), append(b, '\n'), 0o600)
}

// applyMinioNotifications gives every replicated bucket that exists at
// MinIO site s a notification configuration sending its object events to
// the lab's NATS target (again at every start of the agent: `s3mesh
// rebuild` may have made a bucket anew). It does nothing at other sites.
func (l *Lab) applyMinioNotifications(ctx context.Context, s *site) error {
	if s.store != StoreMinio {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := newS3Client(s.s3Endpoint(), s.accessKey, s.secretKey)
	for _, b := range l.o.Buckets {
		if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)}); err != nil {
			continue
		}
		_, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
			Bucket: aws.String(b),
			NotificationConfiguration: &s3types.NotificationConfiguration{
				QueueConfigurations: []s3types.QueueConfiguration{{
					Id:       aws.String("s3mesh"),
					QueueArn: aws.String(minioQueueARN()),
					Events:   []s3types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"},
				}},
			},
		})
		if err != nil {
			return fmt.Errorf("lab: site %s: configuring MinIO's notifications of bucket %s to NATS: %w; see %s", s.name, b, err, s.logPath("minio"))
		}
	}
	return nil
}

// minioGrantRead makes, at MinIO site x, one MinIO user per peer key with
// a policy granting s3:GetObject and s3:ListBucket on the replicated
// buckets (again at every start of x's agent: x may be new). MinIO makes
// users only through its admin API, whose bodies are encrypted with the
// root secret, so the lab runs minio-users (tools/minio/users, MinIO's own
// admin client) with the request, secrets included, on standard input.
func (l *Lab) minioGrantRead(ctx context.Context, x *site) error {
	type reader struct {
		Access string `json:"access"`
		Secret string `json:"secret"`
	}
	req := struct {
		Endpoint  string   `json:"endpoint"`
		AccessKey string   `json:"access_key"`
		SecretKey string   `json:"secret_key"`
		Buckets   []string `json:"buckets"`
		Readers   []reader `json:"readers"`
	}{Endpoint: loopback(x.ports.S3), AccessKey: x.accessKey, SecretKey: x.secretKey, Buckets: l.o.Buckets}
	for _, p := range l.sites {
		if p != x {
			k := p.peerKeys[x.name]
			req.Readers = append(req.Readers, reader{k.accessKey, k.secretKey})
		}
	}
	if len(req.Readers) == 0 {
		return nil
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.o.MinioUsersBin)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = childEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: site %s: giving the peers read-only MinIO users: %v: %s; see %s", x.name, err, bytes.TrimSpace(out), x.logPath("minio"))
	}
	return nil
}
