// Command minio-users gives s3mesh lab peers read-only keys at a MinIO
// server: one MinIO user per key, all with one canned policy that grants
// s3:GetObject and s3:ListBucket on the named buckets and nothing else.
//
// MinIO makes users only through its admin API, whose request bodies are
// encrypted with the root secret; madmin-go, MinIO's own client for it, is
// a dependency of the MinIO server this module pins, so the lab runs this
// small program instead of taking madmin-go into s3mesh itself.
//
// The request is JSON on standard input (so no secret is on a command
// line):
//
//	{"endpoint": "127.0.0.1:9000", "access_key": "...", "secret_key": "...",
//	 "buckets": ["demo"], "readers": [{"access": "...", "secret": "..."}]}
//
// It is idempotent: run again, it leaves the same users and policy.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/minio/madmin-go/v3"
)

// PolicyName is the canned policy every reader gets.
const PolicyName = "s3mesh-peer-read"

type reader struct {
	Access string `json:"access"`
	Secret string `json:"secret"`
}

type request struct {
	Endpoint  string   `json:"endpoint"` // host:port, plain HTTP (the lab's MinIO is on loopback)
	AccessKey string   `json:"access_key"`
	SecretKey string   `json:"secret_key"`
	Buckets   []string `json:"buckets"`
	Readers   []reader `json:"readers"`
}

func main() {
	var r request
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		fail(fmt.Errorf("reading the request on standard input: %w", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := grant(ctx, r); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "minio-users:", err)
	os.Exit(1)
}

// policy grants reading the buckets' objects and listing them.
func policy(buckets []string) ([]byte, error) {
	if len(buckets) == 0 {
		return nil, errors.New("no bucket named")
	}
	var objs, bks []string
	for _, b := range buckets {
		bks = append(bks, "arn:aws:s3:::"+b)
		objs = append(objs, "arn:aws:s3:::"+b+"/*")
	}
	type stmt struct {
		Effect   string   `json:"Effect"`
		Action   []string `json:"Action"`
		Resource []string `json:"Resource"`
	}
	return json.Marshal(struct {
		Version   string `json:"Version"`
		Statement []stmt `json:"Statement"`
	}{"2012-10-17", []stmt{
		{"Allow", []string{"s3:ListBucket", "s3:GetBucketLocation"}, bks},
		{"Allow", []string{"s3:GetObject"}, objs},
	}})
}

func grant(ctx context.Context, r request) error {
	if r.Endpoint == "" || r.AccessKey == "" || r.SecretKey == "" {
		return errors.New("endpoint, access_key and secret_key are required")
	}
	p, err := policy(r.Buckets)
	if err != nil {
		return err
	}
	adm, err := madmin.New(r.Endpoint, r.AccessKey, r.SecretKey, false)
	if err != nil {
		return fmt.Errorf("admin client for %s: %w", r.Endpoint, err)
	}
	if err := adm.AddCannedPolicy(ctx, PolicyName, p); err != nil {
		return fmt.Errorf("adding policy %s: %w", PolicyName, err)
	}
	for _, u := range r.Readers {
		if u.Access == "" || u.Secret == "" || u.Access == r.AccessKey {
			return fmt.Errorf("reader %q: a reader needs its own access key and secret", u.Access)
		}
		if err := adm.AddUser(ctx, u.Access, u.Secret); err != nil {
			return fmt.Errorf("adding user %s: %w", u.Access, err)
		}
		_, aerr := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{PolicyName}, User: u.Access})
		// Attaching a policy the user already has is an error; what counts
		// is that the user has exactly this policy now.
		info, err := adm.GetUserInfo(ctx, u.Access)
		if err != nil {
			return fmt.Errorf("reading user %s: %w", u.Access, err)
		}
		if got := strings.Split(info.PolicyName, ","); !slices.Contains(got, PolicyName) || len(got) != 1 {
			return fmt.Errorf("user %s has policies %q, want only %s (attach: %v)", u.Access, info.PolicyName, PolicyName, aerr)
		}
	}
	return nil
}
