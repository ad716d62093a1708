package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lab"
)

func newStatusCmd() *cobra.Command {
	var t target
	var asJSON, all, watch bool
	var timeout time.Duration
	var configs []string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show a site's replication state (or every site's, with --all): peers (silence, lag, pending, watermark), held buckets, dead letters, warnings",
		Long: `Show a site's replication state: per peer the last record held, the lag, how long the peer
has been silent, the records waiting to be applied and the caught-up watermark (every record
the peer made before it is applied here); per bucket the last scan and whether its deletes are
held; dead letters; warnings.

With --all, every site of the lab (--lab, its lab.json or directory) or of the configurations is
shown: each --config's site through its own broker, and the peers they name that have no --config
of their own through the first site's broker (which works only where the links carry admin
requests: least-privilege links, as in the lab and deploy gen, do not, so give every site's
configuration). Each site is asked with a timeout of its own (--timeout): a site that does not answer shows as unreachable, with the
error, while the others still show (the exit status is then 1). --json prints one JSON object per site and line, the same
object as status --json, or {"site": ..., "error": ...}. --watch redraws every 2 s.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			var once func() error
			if all {
				if t.site != "" {
					return errors.New("--site and --all: --all shows every site")
				}
				sites, err := t.allSites(configs, timeout)
				if err != nil {
					return err
				}
				defer sites.close()
				once = func() error {
					res := sites.statuses(ctx)
					if asJSON {
						printAllJSON(w, res)
					} else {
						printAllTable(w, res)
					}
					down := 0
					for _, r := range res {
						if r.err != nil {
							down++
						}
					}
					if down > 0 && !watch {
						return fmt.Errorf("%d of %d sites unreachable", down, len(res))
					}
					return nil
				}
			} else {
				if len(configs) > 1 {
					return errors.New("several --config: only with --all")
				}
				if len(configs) == 1 {
					t.cfgPath = configs[0]
				}
				s, err := t.connect()
				if err != nil {
					return err
				}
				defer s.close()
				once = func() error {
					out, err := s.admin("status", agent.AdminRequest{})
					if err != nil {
						return err
					}
					if asJSON {
						fmt.Fprintln(w, out)
						return nil
					}
					var st agent.Status
					if err := json.Unmarshal([]byte(out), &st); err != nil {
						return err
					}
					printStatus(w, st)
					return nil
				}
			}
			if !watch {
				return once()
			}
			tick := time.NewTicker(2 * time.Second)
			defer tick.Stop()
			for {
				if !asJSON && writerIsTerminal(w) {
					fmt.Fprint(w, "\033[H\033[2J") // clear the screen
				}
				if !asJSON {
					fmt.Fprintf(w, "%s (every 2 s, Ctrl-C stops)\n\n", time.Now().Format("15:04:05"))
				}
				if err := once(); err != nil {
					fmt.Fprintln(w, "error:", err)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
	c.Flags().StringVar(&t.labPath, "lab", "", "a running lab's lab.json or directory (with --site, or --all)")
	c.Flags().StringArrayVar(&configs, "config", nil, "a site configuration file; with --all it may be repeated, one per site")
	c.Flags().StringVar(&t.site, "site", "", "site name (with --lab; defaults to the config's site)")
	c.Flags().BoolVar(&asJSON, "json", false, "JSON output (with --all: one object per site and line)")
	c.Flags().BoolVar(&all, "all", false, "every site of the lab or configuration")
	c.Flags().BoolVar(&watch, "watch", false, "redraw every 2 s until interrupted")
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "with --all: how long each site may take to answer")
	return c
}

// watermarkText is how a peer's watermark reads in a table.
func watermarkText(p agent.PeerStatus) string {
	switch {
	case p.CaughtUp:
		return "caught up"
	case p.Watermark.IsZero():
		return "none (never heard)"
	default:
		return fmt.Sprintf("%s behind (%s)", (time.Duration(p.WatermarkAgeSeconds * float64(time.Second))).Round(100*time.Millisecond), p.Watermark.Local().Format("15:04:05"))
	}
}

func peerState(p agent.PeerStatus) string {
	state := "ok"
	if p.Stalled {
		state = "STALLED"
	}
	if p.NeedsRebuild {
		state = "NEEDS REBUILD"
	}
	if p.Error != "" {
		state += ": " + p.Error
	}
	return state
}

func silentText(p agent.PeerStatus) string {
	if p.SilentFor < 0 {
		return "never heard"
	}
	return fmt.Sprintf("%.1fs", p.SilentFor)
}

// printStatus is the table of one site's status.
func printStatus(w io.Writer, st agent.Status) {
	fmt.Fprintf(w, "site %s  (tombstone retention %s, %d dead letters)\n\n", st.Site, st.Retention, st.DeadLetters)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tLAST SEQ\tLAG\tSILENT FOR\tPENDING APPLY\tWATERMARK\tSTATE")
	for _, p := range st.Peers {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t%s\n", p.Peer, p.LastSeq, p.Lag, silentText(p), p.PendingApply, watermarkText(p), peerState(p))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET\tLAST SCAN\tLISTED\tPUBLISHED\tDELETES\tDELETES HELD")
	for _, b := range st.Buckets {
		held := "no"
		if b.Held != nil {
			held = fmt.Sprintf("YES: %d of %d keys missing", b.Held.Missing, b.Held.Known)
		}
		last := "never"
		if !b.LastScan.IsZero() {
			last = b.LastScan.Format("15:04:05")
		}
		if b.Scanning {
			last = fmt.Sprintf("running (%d listed)", b.Listed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", b.Bucket, last, b.Last.Listed, b.Last.Published, b.Last.Deleted, held)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT SOURCE\tTYPE\tA LOCAL CHANGE BECOMES A RECORD")
	for _, src := range st.Sources {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", src.Name, src.Type, src.Lag)
	}
	tw.Flush()
	printTopology(w, st.Topology)
	printStreams(w, st.Streams)
	printTrash(w, st.Trash)
	if c := st.Store; c != nil {
		fmt.Fprintf(w, "\nstore: conditional PUT %v, conditional DELETE %v, metadata values up to %d B, keys up to %d B, unicode keys %v, multipart %v (etag %s, part layout %v), checks Content-MD5 %v\n",
			c.ConditionalPut, c.ConditionalDelete, c.MetadataBytes, c.KeyBytes, c.Unicode, c.Multipart, c.MultipartETag, c.PartLayout, c.ContentMD5)
		switch {
		case len(c.KeyClasses) == 0:
		case len(c.CannotHold) == 0:
			fmt.Fprintf(w, "  holds every key class probed (%d)\n", len(c.KeyClasses))
		default:
			fmt.Fprintf(w, "  cannot hold keys with: %s (peers' records of such keys are dead-lettered here as unrepresentable-key)\n", strings.Join(c.CannotHold, ", "))
		}
		for _, n := range c.Notes {
			fmt.Fprintln(w, "  note:", n)
		}
	}
	if st.RebuiltAt != nil {
		fmt.Fprintf(w, "\nlast rebuilt (s3mesh rebuild) %s\n", st.RebuiltAt.Format(time.RFC3339))
	}
	for _, warn := range st.Warnings {
		fmt.Fprintln(w, "WARNING:", warn)
	}
}

// siteStatus is one site's answer to status --all.
type siteStatus struct {
	site string
	raw  string // the agent's JSON, as status --json prints it
	st   agent.Status
	err  error
}

// meshSites reaches every site for status --all: per site a broker
// connection (or nil, and why not) and the subject its agent answers on.
type meshSites struct {
	timeout time.Duration
	sites   []meshSite
	conns   []*nats.Conn
}

type meshSite struct {
	name    string
	nc      *nats.Conn // nil: err
	err     error
	relayed bool // asked through another site's broker (--config: a peer)
}

// allSites connects to every site of the lab, or of the configurations
// (each site's broker; peers without a configuration of their own through
// the first site's broker). A site whose broker cannot be reached keeps
// the error.
func (t *target) allSites(configs []string, timeout time.Duration) (*meshSites, error) {
	m := &meshSites{timeout: timeout}
	switch {
	case t.labPath != "" && len(configs) > 0:
		return nil, errors.New("give --lab or --config, not both")
	case t.labPath != "":
		path := t.labPath
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			path = filepath.Join(path, "lab.json")
		}
		info, err := lab.ReadInfo(path)
		if err != nil {
			return nil, err
		}
		type dialled struct {
			nc  *nats.Conn
			err error
		}
		out := make([]dialled, len(info.Sites))
		var wg sync.WaitGroup
		for i, s := range info.Sites {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nc, err := nats.Connect(s.NATSURL, append(s.NATSOptions(), nats.Name("s3mesh-cli"), nats.Timeout(timeout))...)
				if err != nil {
					err = fmt.Errorf("broker %s: %w", s.NATSURL, err)
				}
				out[i] = dialled{nc, err}
			}()
		}
		wg.Wait()
		for i, s := range info.Sites {
			m.sites = append(m.sites, meshSite{name: s.Name, nc: out[i].nc, err: out[i].err})
			if out[i].nc != nil {
				m.conns = append(m.conns, out[i].nc)
			}
		}
	case len(configs) > 0:
		// Each configuration's site through its own broker; a peer named by
		// them without a configuration of its own through the first site's.
		var first *nats.Conn
		var firstErr error
		have := map[string]bool{}
		var peers []string
		for i, path := range configs {
			cfg, err := config.Load(path)
			if err != nil {
				return nil, err
			}
			if have[cfg.Site] {
				return nil, fmt.Errorf("%s: a second configuration of site %s", path, cfg.Site)
			}
			have[cfg.Site] = true
			peers = append(peers, cfg.PeerNames()...)
			url := cfg.NATS.URL
			if url == "" {
				url = "nats://" + cfg.NATS.Embedded.Listen
			}
			login, err := agent.ClientOptions(cfg.NATS)
			if err != nil {
				return nil, err
			}
			nc, err := nats.Connect(url, append(login, nats.Name("s3mesh-cli"), nats.Timeout(timeout))...)
			if err != nil {
				err = fmt.Errorf("site %s broker %s: %w", cfg.Site, url, err)
			} else {
				m.conns = append(m.conns, nc)
			}
			if i == 0 {
				first, firstErr = nc, err
			}
			m.sites = append(m.sites, meshSite{name: cfg.Site, nc: nc, err: err})
		}
		for _, p := range peers {
			if !have[p] {
				have[p] = true
				m.sites = append(m.sites, meshSite{name: p, nc: first, err: firstErr, relayed: true})
			}
		}
	default:
		return nil, errors.New("give --lab LAB (its directory or lab.json), or --config SITE.yaml")
	}
	return m, nil
}

func (m *meshSites) close() {
	for _, nc := range m.conns {
		nc.Close()
	}
}

// statuses asks every site's agent for its status at once, each within
// the timeout, in the order of the sites.
func (m *meshSites) statuses(ctx context.Context) []siteStatus {
	out := make([]siteStatus, len(m.sites))
	var wg sync.WaitGroup
	for i, s := range m.sites {
		out[i].site = s.name
		if s.nc == nil {
			out[i].err = s.err
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].raw, out[i].err = askStatus(ctx, s, m.timeout)
			if out[i].err == nil {
				if err := json.Unmarshal([]byte(out[i].raw), &out[i].st); err != nil {
					out[i].err = fmt.Errorf("status of %s: %w", s.name, err)
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// askStatus sends the admin request status to s's agent.
func askStatus(ctx context.Context, s meshSite, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	site := s.name
	b, _ := json.Marshal(agent.AdminRequest{})
	msg, err := s.nc.RequestWithContext(ctx, agent.AdminSubject(site, "status"), b)
	if err != nil {
		switch {
		case errors.Is(err, nats.ErrNoResponders) && s.relayed:
			return "", fmt.Errorf("no agent of site %s answers through this site's broker (the agent is down, or the link does not carry "+
				"admin requests: links: exports only state.page; ask with %s's own --config): %w", site, site, err)
		case errors.Is(err, nats.ErrNoResponders):
			return "", fmt.Errorf("site %s's broker answers but its agent does not (agent down?): %w", site, err)
		}
		return "", fmt.Errorf("site %s's agent did not answer within %s: %w", site, timeout, err)
	}
	var rep agent.AdminReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return "", err
	}
	if !rep.OK {
		return "", errors.New(rep.Error)
	}
	return rep.Outcome, nil
}

// printAllJSON prints one line per site: its status --json object, or
// {"site": ..., "error": ...}.
func printAllJSON(w io.Writer, res []siteStatus) {
	for _, r := range res {
		if r.err != nil {
			b, _ := json.Marshal(struct {
				Site  string `json:"site"`
				Error string `json:"error"`
			}{r.site, r.err.Error()})
			fmt.Fprintln(w, string(b))
			continue
		}
		fmt.Fprintln(w, r.raw)
	}
}

// printAllTable shows every site's peers in one table, then each site's
// buckets held, dead letters and warnings.
func printAllTable(w io.Writer, res []siteStatus) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tPEER\tLAG\tSILENT FOR\tPENDING APPLY\tWATERMARK\tSTATE")
	for _, r := range res {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tUNREACHABLE\n", r.site)
			continue
		}
		for _, p := range r.st.Peers {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", r.site, p.Peer, p.Lag, silentText(p), p.PendingApply, watermarkText(p), peerState(p))
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	if warn := mixedMaxFuture(res); warn != "" {
		fmt.Fprintf(w, "WARNING: %s\n\n", warn)
	}
	for _, line := range topologyAll(res) {
		fmt.Fprintln(w, line)
	}
	for _, r := range res {
		if r.err != nil {
			fmt.Fprintf(w, "site %s UNREACHABLE: %v\n", r.site, r.err)
			continue
		}
		held := 0
		for _, b := range r.st.Buckets {
			if b.Held != nil {
				held++
			}
		}
		peerHeld := 0
		for _, h := range r.st.HeldDeletes {
			peerHeld += h.Count
		}
		fmt.Fprintf(w, "site %s: %d dead letters, %d of %d buckets with deletes held, %d peers' deletes held here, %d warnings\n",
			r.site, r.st.DeadLetters, held, len(r.st.Buckets), peerHeld, len(r.st.Warnings))
		for _, warn := range r.st.Warnings {
			fmt.Fprintf(w, "  WARNING: %s\n", warn)
		}
	}
}

// mixedMaxFuture is a warning when the sites that answered do not all use
// the same records.max_future, or "". With different values, a record one
// site accepts can be too far ahead for another for longer than the early
// window, and that site dead-letters an honest write over it (docs/configuration.md).
func mixedMaxFuture(res []siteStatus) string {
	var parts []string
	seen := map[string]bool{}
	for _, r := range res {
		if r.err != nil || r.st.MaxFuture == "" {
			continue
		}
		seen[r.st.MaxFuture] = true
		parts = append(parts, r.site+" "+r.st.MaxFuture)
	}
	if len(seen) < 2 {
		return ""
	}
	return "records.max_future differs between sites (" + strings.Join(parts, ", ") +
		"): set the same value at every site, or an honest write over a peer's version near one site's bound is refused (bad-record) at a site with a smaller one"
}

// writerIsTerminal reports whether w is a terminal.
func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

func newScanCmd() *cobra.Command {
	var t target
	c := &cobra.Command{Use: "scan", Short: "Control a site's bucket scanner"}
	t.flags(c)
	c.AddCommand(
		bucketAdminCmd(&t, "confirm-deletes", "scan.confirm", "the held bucket",
			"Let the next scan publish the deletes it held (only if the keys really were deleted)"),
		bucketAdminCmd(&t, "now", "scan.now", "the bucket to scan",
			"Scan a bucket at once and print what the scan found (JSON: listed, published, seconds, ...)"))
	return c
}

// bucketAdminCmd is a `--bucket B` command that sends one admin request to
// the target site's agent and prints its answer.
func bucketAdminCmd(t *target, use, verb, flagHelp, short string) *cobra.Command {
	var bucket string
	cmd := &cobra.Command{
		Use:   use + " --bucket B",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bucket == "" {
				return errors.New("--bucket is required")
			}
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			out, err := s.admin(verb, agent.AdminRequest{Bucket: bucket})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&bucket, "bucket", "", flagHelp)
	return cmd
}
