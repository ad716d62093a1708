package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mesh/s3mesh/internal/versityiam"
)

// Each site's agent fetches bodies from its peers' stores with a key of its
// own (docs/deployment.md, "Peers' S3 keys: read-only"). On a versitygw site the lab
// makes one user of role "user" per peer in the gateway's internal IAM
// (--iam-dir) and a bucket policy that grants those users s3:GetObject and
// s3:ListBucket only, so a peer's key cannot write there. On a MinIO site
// it makes one MinIO user per peer with a policy granting the same two
// actions (minio-users, built by `make stores` from tools/minio: MinIO
// makes users only through its encrypted admin API). On a SeaweedFS site
// the identity file gives each peer's key Read and List only. rclone serve
// s3 has a single key pair with every right: its peers get that pair,
// marked allow_writable_key in their site.yaml (the agents warn of it).
//
// The key a site p holds for peer x's store lives in p's directory
// (peer-<x>-s3-access-key, peer-<x>-s3-secret 0600), so that p's site.yaml
// names only files of p; the lab reads it to make the user at x.

// peerKey is one site's key at one peer's store.
type peerKey struct {
	accessKey string
	secretKey string // never logged
	// writable: the peer's store has no read-only key (rclone): the key
	// is the store's own, and site.yaml says allow_writable_key.
	writable bool
}

func (s *site) peerAccessPath(peer string) string {
	return filepath.Join(s.dir, "peer-"+peer+"-s3-access-key")
}
func (s *site) peerSecretPath(peer string) string {
	return filepath.Join(s.dir, "peer-"+peer+"-s3-secret")
}

// preparePeerKeys gives every site a key for every peer's store: a
// generated read-only user's key (kept across restarts) for a versitygw
// peer, the peer's own key pair for an rclone peer. Call it after every
// site's prepare.
func preparePeerKeys(sites []*site) error {
	for _, p := range sites {
		p.peerKeys = map[string]peerKey{}
		for _, x := range sites {
			if x == p {
				continue
			}
			k, err := p.preparePeerKey(x)
			if err != nil {
				return err
			}
			p.peerKeys[x.name] = k
		}
	}
	return nil
}

func (s *site) preparePeerKey(x *site) (peerKey, error) {
	if x.store == StoreRclone {
		// The store's only key pair, copied into p's directory (again at
		// every start: x's may be new).
		for path, v := range map[string]string{s.peerAccessPath(x.name): x.accessKey, s.peerSecretPath(x.name): x.secretKey} {
			mode := os.FileMode(0o600)
			if path == s.peerAccessPath(x.name) {
				mode = 0o644
			}
			if err := writeFileAtomic(path, []byte(v+"\n"), mode); err != nil {
				return peerKey{}, err
			}
		}
		return peerKey{accessKey: x.accessKey, secretKey: x.secretKey, writable: true}, nil
	}
	gen := func() string {
		return "LAB" + strings.ToUpper(s.name) + "READ" + strings.ToUpper(x.name) + strings.ToUpper(randHex(6))
	}
	ak, err := ensureFile(s.peerAccessPath(x.name), 0o644, gen)
	if err != nil {
		return peerKey{}, err
	}
	if ak == x.accessKey { // x ran rclone before: that was its root key
		ak = gen()
		if err := writeFileAtomic(s.peerAccessPath(x.name), []byte(ak+"\n"), 0o644); err != nil {
			return peerKey{}, err
		}
		if err := os.Remove(s.peerSecretPath(x.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return peerKey{}, fmt.Errorf("lab: %w", err)
		}
	}
	sk, err := ensureFile(s.peerSecretPath(x.name), 0o600, func() string { return randHex(20) })
	if err != nil {
		return peerKey{}, err
	}
	return peerKey{accessKey: ak, secretKey: sk}, nil
}

// yPeerS3 is how s reaches peer p's store: with s's own key for it.
func (s *site) yPeerS3(p *site) yS3 {
	k := s.peerKeys[p.name]
	return yS3{Endpoint: p.s3Endpoint(), Region: Region, AccessKey: k.accessKey,
		SecretKey: ySecret{File: s.peerSecretPath(p.name)}, AllowWritableKey: k.writable}
}

// grantPeers makes, at versitygw site x, every peer's key a user of role
// "user" and lets those users read every replicated bucket that exists
// there (a bucket policy; buckets that do not exist are skipped: after a
// wipe, `s3mesh rebuild` makes them, and the next start of x's agent
// grants them). At a MinIO site it makes the peers' users and their
// policy (minioGrantRead). It does nothing for an rclone or SeaweedFS
// site (SeaweedFS reads its identity file, written at prepare).
func (l *Lab) grantPeers(ctx context.Context, x *site) error {
	if x.store == StoreMinio {
		return l.minioGrantRead(ctx, x)
	}
	if x.store != StoreVersity {
		return nil
	}
	var readers []versityiam.Reader
	for _, p := range l.sites {
		if p != x {
			k := p.peerKeys[x.name]
			readers = append(readers, versityiam.Reader{Access: k.accessKey, Secret: k.secretKey})
		}
	}
	if len(readers) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := newS3Client(x.s3Endpoint(), x.accessKey, x.secretKey)
	var buckets []string
	for _, b := range l.o.Buckets {
		if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)}); err == nil {
			buckets = append(buckets, b)
		}
	}
	adm := versityiam.Admin{Endpoint: x.s3Endpoint(), Region: Region, AccessKey: x.accessKey, SecretKey: x.secretKey}
	if err := adm.GrantRead(ctx, buckets, readers); err != nil {
		return fmt.Errorf("lab: site %s: giving the peers read-only keys: %w; see %s", x.name, err, x.logPath("versitygw"))
	}
	return nil
}
