package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
)

func ensureStreams(ctx context.Context, srv *broker.Server, cfg *config.Site) error {
	nc, err := srv.Connect()
	if err != nil {
		return fmt.Errorf("broker: connect in-process: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Only the origin side: the agents create the mirrors once every broker
	// of the lab has its consumers (see broker.EnsureOrigin).
	return broker.EnsureOrigin(ctx, js, agent.Topology(cfg))
}

// newBrokerCmd: `s3mesh broker --config site.yaml` runs the site's NATS
// server from the config's nats.embedded section, as its own process, so
// storage events are captured while the agent is down.
func newBrokerCmd() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "broker",
		Short: "Run the site's NATS server (JetStream domain = site name) from nats.embedded",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			sc := agent.EmbeddedServerConfig(cfg)
			if sc == nil {
				return fmt.Errorf("config %s: nats.embedded is not set", cfgPath)
			}
			log := newLogger(cfg.Log)
			srv, err := broker.StartServer(*sc, log.With("part", "nats"))
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// Create the streams and the consumers feeding the peers' mirrors
			// right away: a peer's mirror that asks before they exist backs
			// off for up to two minutes.
			if err := ensureStreams(ctx, srv, cfg); err != nil {
				srv.Shutdown()
				return err
			}
			log.Info("broker running", "site", cfg.Site, "url", srv.ClientURL())
			<-ctx.Done()
			srv.Shutdown()
			srv.WaitForShutdown()
			return nil
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "site configuration file (YAML)")
	return c
}
