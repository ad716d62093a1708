package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/verify"
)

// Exit codes of s3mesh verify.
const (
	verifyExitDiffer = 1 // the sites differ
	verifyExitError  = 2 // the comparison could not be made
)

type verifyFlags struct {
	labPath, cfgPath, bucket string
	asJSON                   bool
}

func newVerifyCmd() *cobra.Command {
	var f verifyFlags
	c := &cobra.Command{
		Use:   "verify (--lab DIR/lab.json | --config site.yaml) [--bucket B] [--json]",
		Short: "Compare every replicated bucket across all sites (exit 0: all agree, 1: differences, 2: error)",
		Long: `verify lists every replicated bucket at every site and compares the objects:
key sets, sizes, content (ETags, or a streamed sha256 where an ETag is multipart),
Content-Type, Cache-Control, Content-Encoding, Content-Disposition and user metadata
(s3mesh's own s3mesh-* metadata is ignored). It exits 0 only when all sites agree,
1 after printing every difference, 2 on any other error.`,
		Args: cobra.ArbitraryArgs,
		Run: func(cmd *cobra.Command, args []string) {
			if len(args) > 0 {
				verifyExit(verifyExitError, fmt.Errorf("unexpected arguments %q", args))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			code, err := runVerify(ctx, f, cmd.OutOrStdout(), os.Stderr, isTerminal(os.Stderr))
			stop()
			verifyExit(code, err)
		},
	}
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		verifyExit(verifyExitError, err)
		return nil
	})
	c.Flags().StringVar(&f.labPath, "lab", "", "a lab's lab.json: its buckets, at every site")
	c.Flags().StringVar(&f.cfgPath, "config", "", "a site configuration: its buckets, at this site and every peer")
	c.Flags().StringVar(&f.bucket, "bucket", "", "only this replicated bucket")
	c.Flags().BoolVar(&f.asJSON, "json", false, "print one JSON object")
	return c
}

func verifyExit(code int, err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3mesh: verify:", err)
	}
	os.Exit(code)
}

// runVerify compares the sites and prints the report; it returns the exit
// code (and the error behind code 2).
func runVerify(ctx context.Context, f verifyFlags, stdout, stderr io.Writer, tty bool) (int, error) {
	sites, buckets, err := verifySites(f)
	if err != nil {
		return verifyExitError, err
	}
	storeClasses(f, sites)
	if f.bucket != "" {
		if !slices.Contains(buckets, f.bucket) {
			return verifyExitError, fmt.Errorf("bucket %q is not replicated (buckets: %s)", f.bucket, strings.Join(buckets, ", "))
		}
		buckets = []string{f.bucket}
	}
	o := verify.Options{Buckets: buckets}
	var stopProgress func()
	if tty {
		var done, listed atomic.Int64
		o.Progress = func(n int) { done.Store(int64(n)) }
		o.Listed = func(n int) { listed.Store(int64(n)) }
		stopProgress = progressBar(stderr, &done, &listed)
	}
	rep, err := verify.Run(ctx, sites, o)
	if stopProgress != nil {
		stopProgress()
	}
	if err != nil {
		return verifyExitError, err
	}
	if f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return verifyExitError, err
		}
	} else if err := printVerify(stdout, rep, sites); err != nil {
		return verifyExitError, err
	}
	if !rep.Converged {
		return verifyExitDiffer, nil
	}
	return 0, nil
}

// storeClasses asks each site's agent (those this command can reach: every
// site of a lab, the configuration's own site) what its store probe found,
// so that verify tells keys a store cannot hold from missing ones. A site
// whose agent does not answer is compared without it.
func storeClasses(f verifyFlags, sites []verify.Site) {
	for i := range sites {
		if f.cfgPath != "" && i > 0 {
			return // only the configuration's own agent answers through its broker
		}
		t := target{labPath: f.labPath, cfgPath: f.cfgPath, site: sites[i].Name}
		s, err := t.connect()
		if err != nil {
			continue
		}
		out, err := s.adminWithin("status", agent.AdminRequest{}, 5*time.Second)
		s.close()
		var st agent.Status
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Store == nil {
			continue
		}
		caps := *st.Store
		sites[i].Unrepresentable, sites[i].ListedAlias = caps.Unrepresentable, caps.ListedAlias
	}
}

// verifySites builds one S3 client per site, and the buckets to compare,
// from a lab.json or a site configuration.
func verifySites(f verifyFlags) ([]verify.Site, []string, error) {
	var sites []verify.Site
	add := func(name string, ep s3io.Endpoint) error {
		c, err := s3io.New(ep)
		if err != nil {
			return fmt.Errorf("site %s: %w", name, err)
		}
		sites = append(sites, verify.Site{Name: name, S3: c})
		return nil
	}
	switch {
	case f.labPath != "" && f.cfgPath != "":
		return nil, nil, errors.New("give --lab or --config, not both")
	case f.labPath != "":
		info, err := lab.ReadInfo(f.labPath)
		if err != nil {
			return nil, nil, err
		}
		for _, s := range info.Sites {
			ep := s3io.Endpoint{URL: s.S3Endpoint, Region: s.Region, AccessKey: s.AccessKey, SecretKey: s.SecretKey, PathStyle: true}
			if err := add(s.Name, ep); err != nil {
				return nil, nil, err
			}
		}
		return sites, info.Buckets, nil
	case f.cfgPath != "":
		cfg, err := config.Load(f.cfgPath)
		if err != nil {
			return nil, nil, err
		}
		s3s := []config.S3{cfg.S3}
		names := []string{cfg.Site}
		for _, p := range cfg.Peers {
			s3s, names = append(s3s, p.S3), append(names, p.Name)
		}
		for i, s := range s3s {
			secret, err := s.SecretKey.Value()
			if err != nil {
				return nil, nil, fmt.Errorf("site %s: s3.secret_key: %w", names[i], err)
			}
			ep := s3io.Endpoint{URL: s.Endpoint, Region: s.Region, AccessKey: s.AccessKey, SecretKey: secret, PathStyle: s.UsePathStyle()}
			if err := add(names[i], ep); err != nil {
				return nil, nil, err
			}
		}
		var buckets []string
		for _, b := range cfg.Buckets {
			buckets = append(buckets, b.Name)
		}
		return sites, buckets, nil
	}
	return nil, nil, errors.New("give --lab LAB.json or --config SITE.yaml")
}

func printVerify(w io.Writer, rep verify.Report, sites []verify.Site) error {
	names := make([]string, len(sites))
	for i, s := range sites {
		names[i] = s.Name
	}
	scope := fmt.Sprintf("%d bucket(s), %d key(s), sites %s", rep.Buckets, rep.Keys, strings.Join(names, ", "))
	if rep.Converged {
		_, err := fmt.Fprintf(w, "converged: %s agree\n", scope)
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET\tKEY\tKIND\tDETAIL")
	for _, d := range rep.Differences {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Bucket, strconv.Quote(d.Key), d.Kind, d.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	more := ""
	if n := rep.TotalDifferences - len(rep.Differences); n > 0 {
		more = fmt.Sprintf(" (the first %d shown)", len(rep.Differences))
	}
	_, err := fmt.Fprintf(w, "NOT converged: %d difference(s)%s; %s\n", rep.TotalDifferences, more, scope)
	return err
}

// progressBar redraws "[####    ] done/listed keys" on w every 100ms until
// the returned function is called, which erases it.
func progressBar(w io.Writer, done, listed *atomic.Int64) (stop func()) {
	const width = 30
	quit := make(chan struct{})
	var wg sync.WaitGroup
	draw := func() {
		d, l := done.Load(), listed.Load()
		fill := 0
		if l > 0 {
			fill = int(d * width / l)
		}
		fmt.Fprintf(w, "\r\033[Kverify [%s%s] %d/%d keys compared", strings.Repeat("#", fill), strings.Repeat(" ", width-fill), d, l)
	}
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				draw()
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
