// Package versityiam gives versitygw users read-only access to buckets: a
// user of role "user" in versitygw's internal IAM (--iam-dir) owns no
// bucket and reaches one only through the bucket's policy, which names it
// as principal. The lab and the compose lab's init services use it to make
// each peer's S3 key read-only (docs/deployment.md, "Peers' S3 keys: read-only").
//
// The users are made through versitygw's admin API (PATCH /create-user,
// /update-user, signed with SigV4 by the root account). Without
// --admin-port the gateway serves that API on its S3 port, which is where
// the endpoint given here points.
package versityiam

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ReadActions are what a peer does at another site's store: GET and HEAD
// of bodies (s3:GetObject), and, for rebuild and verify, HEAD of the
// bucket and listings (s3:ListBucket, which also makes a HEAD of a missing
// key a 404 rather than a 403).
var ReadActions = []string{"s3:GetObject", "s3:ListBucket"}

// Admin is the root account of one versitygw gateway.
type Admin struct {
	Endpoint  string // http(s)://host:port of the gateway (its admin API, without --admin-port)
	Region    string // default us-east-1
	AccessKey string
	SecretKey string
	// HTTP is the client of every request (default: 30 s timeout).
	HTTP *http.Client
}

func (a Admin) region() string {
	if a.Region == "" {
		return "us-east-1"
	}
	return a.Region
}

func (a Admin) client() *http.Client {
	if a.HTTP != nil {
		return a.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// account is versitygw's auth.Account as its admin API reads it (XML with
// the Go field names).
type account struct {
	XMLName xml.Name `xml:"Account"`
	Access  string   `xml:"Access"`
	Secret  string   `xml:"Secret"`
	Role    string   `xml:"Role"`
}

// mutableProps is versitygw's auth.MutableProps (update-user).
type mutableProps struct {
	XMLName xml.Name `xml:"MutableProps"`
	Secret  string   `xml:"Secret"`
	Role    string   `xml:"Role"`
}

// APIError is an error answer of the admin API.
type APIError struct {
	Status int
	Code   string
	Body   string
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("versitygw admin API: %d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("versitygw admin API: %d %.200s", e.Status, e.Body)
}

// call sends a signed admin request.
func (a Admin) call(ctx context.Context, path string, query url.Values, body []byte) error {
	u := strings.TrimRight(a.Endpoint, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	creds := aws.Credentials{AccessKeyID: a.AccessKey, SecretAccessKey: a.SecretKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, payload, "s3", a.region(), time.Now()); err != nil {
		return fmt.Errorf("versitygw admin API: sign: %w", err)
	}
	resp, err := a.client().Do(req)
	if err != nil {
		return fmt.Errorf("versitygw admin API %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 300 {
		return nil
	}
	e := &APIError{Status: resp.StatusCode, Body: string(b)}
	var parsed struct {
		Code string `xml:"Code"`
	}
	if xml.Unmarshal(b, &parsed) == nil {
		e.Code = parsed.Code
	}
	return e
}

// EnsureUser makes access a user of role "user" with secret: it creates
// the user, or, if it exists already (a restarted lab), sets its secret
// and role again. Secrets travel in the request body only.
func (a Admin) EnsureUser(ctx context.Context, access, secret string) error {
	if access == "" || secret == "" {
		return errors.New("versityiam: empty access key or secret")
	}
	body, err := xml.Marshal(account{Access: access, Secret: secret, Role: "user"})
	if err != nil {
		return err
	}
	err = a.call(ctx, "/create-user", nil, body)
	var ae *APIError
	if !errors.As(err, &ae) || (ae.Status != http.StatusConflict && ae.Code != "XAdminUserExists") {
		if err != nil {
			return fmt.Errorf("create user %s: %w", access, err)
		}
		return nil
	}
	body, err = xml.Marshal(mutableProps{Secret: secret, Role: "user"})
	if err != nil {
		return err
	}
	if err := a.call(ctx, "/update-user", url.Values{"access": {access}}, body); err != nil {
		return fmt.Errorf("update user %s: %w", access, err)
	}
	return nil
}

// ReadPolicy is the bucket policy that lets principals (versitygw access
// keys) GET, HEAD and list bucket, and nothing else.
func ReadPolicy(bucket string, principals []string) string {
	type statement struct {
		Sid       string   `json:"Sid"`
		Effect    string   `json:"Effect"`
		Principal []string `json:"Principal"`
		Action    []string `json:"Action"`
		Resource  []string `json:"Resource"`
	}
	p := struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{Version: "2012-10-17", Statement: []statement{{
		Sid: "S3meshPeersRead", Effect: "Allow", Principal: principals, Action: ReadActions,
		Resource: []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"},
	}}}
	b, _ := json.Marshal(p)
	return string(b)
}

// Reader is one read-only user: a peer site's key at this store.
type Reader struct {
	Access string
	Secret string
}

// GrantRead makes every reader a user of role "user" and sets, on every
// bucket, the policy that lets the readers GET, HEAD and list it (it
// replaces the bucket's policy). The buckets must exist.
func (a Admin) GrantRead(ctx context.Context, buckets []string, readers []Reader) error {
	if len(readers) == 0 {
		return nil
	}
	var names []string
	for _, r := range readers {
		if err := a.EnsureUser(ctx, r.Access, r.Secret); err != nil {
			return err
		}
		names = append(names, r.Access)
	}
	c := s3.New(s3.Options{
		Region: a.region(), BaseEndpoint: aws.String(a.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(a.AccessKey, a.SecretKey, ""),
		HTTPClient:  a.client(),
	})
	for _, b := range buckets {
		if _, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(b), Policy: aws.String(ReadPolicy(b, names))}); err != nil {
			return fmt.Errorf("bucket %s: put the peers' read policy: %w", b, err)
		}
	}
	return nil
}
