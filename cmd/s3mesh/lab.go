package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/lab"
)

// newLabCmd: `s3mesh lab` runs a local multi-site lab until SIGINT/SIGTERM;
// `s3mesh lab ctl` controls a running one.
func newLabCmd() *cobra.Command {
	var (
		o       lab.Options
		buckets string
		verbose bool
	)
	c := &cobra.Command{
		Use:   "lab",
		Short: "Run a local multi-site lab (versitygw + broker + agent per site, cuttable links)",
		Long: `Run N sites on loopback: per site a versitygw (S3), a broker (NATS) and an
agent, each its own process, with leaf-node links through cuttable proxies.
The lab directory keeps data, ports and credentials: running the command
again resumes the lab; --fresh starts over. Ctrl-C stops everything.
Endpoints and keys are in <dir>/lab.json; see "s3mesh lab ctl help".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			o.Stdout = cmd.OutOrStdout()
			for _, b := range strings.Split(buckets, ",") {
				if b = strings.TrimSpace(b); b != "" {
					o.Buckets = append(o.Buckets, b)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			l, err := lab.Start(ctx, o)
			if err != nil {
				return err
			}
			err = l.Wait()
			stop()
			return err
		},
	}
	f := c.Flags()
	f.IntVar(&o.Sites, "sites", 3, "number of sites (1-9, named a, b, c, ...)")
	f.StringVar(&o.Dir, "dir", ".lab", "lab directory (data, logs, ports, credentials, lab.json)")
	f.StringVar(&buckets, "buckets", "demo", "replicated buckets, comma-separated")
	f.BoolVar(&o.Fresh, "fresh", false, "wipe the lab directory first")
	f.StringVar(&o.VersityBin, "versitygw", "", "versitygw executable (default: versitygw beside s3mesh)")
	f.StringVar(&o.RcloneBin, "rclone", "", "rclone executable for --stores rclone (default: rclone beside s3mesh)")
	f.StringVar(&o.MinioBin, "minio", "", "MinIO server executable for --stores minio (default: minio beside s3mesh; make stores builds it)")
	f.StringVar(&o.WeedBin, "weed", "", "SeaweedFS weed executable for --stores seaweedfs (default: weed beside s3mesh; make stores builds it)")
	f.StringSliceVar(&o.Stores, "stores", nil, "each site's S3 implementation, in site order, any mix: versitygw (NATS events), rclone (rclone serve s3, polled), minio (its bucket notifications over NATS) or seaweedfs (weed server -s3, polled), e.g. minio,seaweedfs,versitygw (default: versitygw everywhere)")
	f.StringSliceVar(&o.Events, "events", nil, "each site's event source, in site order: nats (versitygw's NATS sink or MinIO's NATS notification target), webhook (versitygw's webhook sink into the agent's token-protected endpoint) or poll, e.g. nats,poll,webhook (default: nats for versitygw and minio, poll for rclone and seaweedfs)")
	f.DurationVar(&o.Poll, "poll", 0, "poll interval of sites whose store sends no events (default 2s)")
	f.DurationVar(&o.ScanInterval, "scan-interval", 0, "agents' scan interval (default 15s)")
	f.DurationVar(&o.ReadyTimeout, "ready-timeout", 0, "how long each process may take to become ready (default 60s)")
	f.StringSliceVar(&o.Archive, "archive", nil, "sites that archive every bucket (mode archive: they apply every put and no delete, and publish nothing), e.g. c")
	f.StringSliceVar(&o.Replica, "replica", nil, "sites that replicate every bucket one way (mode replica: they apply everything and publish nothing)")
	f.BoolVar(&verbose, "verbose", false, "debug logging of the lab itself")
	f.BoolVar(&o.Insecure, "insecure", false, "run the brokers without passwords, without TLS and with unconfined leaf links (by default every agent, event sink and link has its own password, each link carries only what its mirrors need, and every broker connection is TLS with a CA of the lab)")
	c.AddCommand(newLabCtlCmd())
	return c
}

func newLabCtlCmd() *cobra.Command {
	var (
		dir        string
		wipeBroker bool
	)
	c := &cobra.Command{
		Use:   "ctl VERB [ARGS...]",
		Short: "Control a running lab: status, cut/heal links, kill/start agents, brokers, versitygw, wipe a site",
		Long:  "Control the lab running in --dir over its control socket.\n\n" + lab.CtlUsage,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wipeBroker {
				// `wipe X --broker`: the flag is the verb's, passed on as an argument.
				if args[0] != "wipe" {
					return fmt.Errorf("--broker applies to wipe only (wipe X --broker)")
				}
				args = append(args, "--broker")
			}
			out, err := lab.CtlClient(dir, args[0], args[1:]...)
			if out != "" {
				fmt.Fprintln(cmd.OutOrStdout(), out)
			}
			return err
		},
	}
	c.Flags().StringVar(&dir, "dir", ".lab", "lab directory")
	c.Flags().BoolVar(&wipeBroker, "broker", false, "with wipe: delete the site's JetStream store too and restart its broker empty")
	return c
}
