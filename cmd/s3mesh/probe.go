package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/internal/versityiam"
	"github.com/s3mesh/s3mesh/s3io"
)

// newProbeCmd: `s3mesh probe URL` is the health check of the container
// images, which are FROM scratch and so have no shell, curl or nc.
//
//	http(s)://...  GET; healthy if the status is below 500 (exactly 200 with --ok200)
//	nats://host:port  TCP connect and read the server's INFO line
//
// Exit status 0 when healthy, 1 otherwise (the reason on stderr).
func newProbeCmd() *cobra.Command {
	var ok200, insecure bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "probe URL",
		Short: "Health check: GET an http(s) URL or read the INFO line of a nats:// server (exit 0 = healthy)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := probe(ctx, args[0], ok200, insecure); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok", args[0])
			return nil
		},
	}
	c.Flags().BoolVar(&ok200, "ok200", false, "http(s): healthy only on status 200 (default: any status below 500)")
	c.Flags().BoolVar(&insecure, "insecure", false, "https: do not verify the server certificate")
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return c
}

func probe(ctx context.Context, raw string, ok200, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("probe: %q: want http(s)://host[:port]/path or nats://host:port", raw)
	}
	switch u.Scheme {
	case "http", "https":
		tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
		if insecure {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // explicit flag
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		resp.Body.Close()
		if ok200 && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("probe: %s: status %d, want 200", raw, resp.StatusCode)
		}
		if resp.StatusCode >= 500 {
			return fmt.Errorf("probe: %s: status %d", raw, resp.StatusCode)
		}
		return nil
	case "nats":
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "4222")
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return fmt.Errorf("probe: %s: reading INFO: %w", raw, err)
		}
		if !strings.HasPrefix(line, "INFO ") {
			return fmt.Errorf("probe: %s: not a NATS server (first line %.40q)", raw, line)
		}
		return nil
	default:
		return fmt.Errorf("probe: %q: scheme must be http, https or nats", raw)
	}
}

// newBucketCmd: `s3mesh bucket create` makes the replicated bucket at a
// site's store (the compose file's one-shot init services use it; the
// images have no aws CLI) and, with --reader, the peers' read-only users of
// a versitygw store. Credentials come from the environment
// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY by default), never from argv.
func newBucketCmd() *cobra.Command {
	c := &cobra.Command{Use: "bucket", Short: "Bucket helpers (create)"}
	var endpoint, region, accessEnv, secretEnv string
	var buckets, readerFlags []string
	var wait time.Duration
	create := &cobra.Command{
		Use:   "create --endpoint URL --bucket NAME [--bucket NAME ...] [--reader ACCESS_KEY=SECRET_ENV ...]",
		Short: "Create buckets unless they exist (retrying until --wait while the store starts); --reader: versitygw read-only users",
		Long: `Create buckets unless they exist (retrying until --wait while the store starts).

--reader ACCESS_KEY=SECRET_ENV (repeatable; versitygw with its internal IAM,
--iam-dir, only): make ACCESS_KEY a user of role "user" whose secret is the
value of the environment variable SECRET_ENV (never argv), and set on every
--bucket the policy that grants the readers s3:GetObject and s3:ListBucket
and nothing else (it replaces the bucket's policy): a peer site's
read-only key (docs/deployment.md, "Peers' S3 keys: read-only"). The admin API is the
gateway's S3 port (versitygw without --admin-port); the credentials are its
root key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if endpoint == "" || len(buckets) == 0 {
				return fmt.Errorf("--endpoint and --bucket are required")
			}
			ak, sk := os.Getenv(accessEnv), os.Getenv(secretEnv)
			if ak == "" || sk == "" {
				return fmt.Errorf("credentials: set %s and %s", accessEnv, secretEnv)
			}
			var readers []versityiam.Reader
			for _, r := range readerFlags {
				access, env, ok := strings.Cut(r, "=")
				if !ok || access == "" || env == "" {
					return fmt.Errorf("--reader %q: want ACCESS_KEY=SECRET_ENV (the name of the variable holding the secret)", r)
				}
				secret := os.Getenv(env)
				if secret == "" {
					return fmt.Errorf("--reader %s: the environment variable %s is not set", access, env)
				}
				readers = append(readers, versityiam.Reader{Access: access, Secret: secret})
			}
			cl, err := s3io.New(s3io.Endpoint{URL: endpoint, Region: region, AccessKey: ak, SecretKey: sk, PathStyle: true})
			if err != nil {
				return err
			}
			deadline := time.Now().Add(wait)
			for _, b := range buckets {
				for {
					ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
					err = cl.EnsureBucket(ctx, b)
					cancel()
					if err == nil {
						fmt.Fprintf(cmd.OutOrStdout(), "bucket %s ready at %s\n", b, endpoint)
						break
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("bucket %s at %s: %w", b, endpoint, err)
					}
					time.Sleep(time.Second)
				}
			}
			if len(readers) > 0 {
				ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
				defer cancel()
				adm := versityiam.Admin{Endpoint: endpoint, Region: region, AccessKey: ak, SecretKey: sk}
				if err := adm.GrantRead(ctx, buckets, readers); err != nil {
					return fmt.Errorf("read-only users at %s (versitygw with --iam-dir only): %w", endpoint, err)
				}
				var names []string
				for _, r := range readers {
					names = append(names, r.Access)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "read-only users %s at %s: s3:GetObject and s3:ListBucket on %s\n", strings.Join(names, ", "), endpoint, strings.Join(buckets, ", "))
			}
			return nil
		},
	}
	create.Flags().StringVar(&endpoint, "endpoint", "", "S3 endpoint, http(s)://host:port")
	create.Flags().StringVar(&region, "region", s3io.DefaultRegion, "S3 region")
	create.Flags().StringArrayVar(&buckets, "bucket", nil, "bucket to create (repeatable)")
	create.Flags().StringVar(&accessEnv, "access-key-env", "AWS_ACCESS_KEY_ID", "environment variable holding the access key")
	create.Flags().StringVar(&secretEnv, "secret-key-env", "AWS_SECRET_ACCESS_KEY", "environment variable holding the secret key")
	create.Flags().DurationVar(&wait, "wait", 0, "keep retrying this long while the store is not ready")
	create.Flags().StringArrayVar(&readerFlags, "reader", nil, "ACCESS_KEY=SECRET_ENV: a versitygw read-only user for a peer (repeatable; see --help)")
	c.AddCommand(create)
	return c
}
