package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/broker"
)

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
			e := cfg.NATS.Embedded
			if e == nil {
				return fmt.Errorf("config %s: nats.embedded is not set", cfgPath)
			}
			log := newLogger(cfg.Log)
			srv, err := broker.StartServer(broker.ServerConfig{Site: cfg.Site, Listen: e.Listen, StoreDir: e.StoreDir,
				LeafListen: e.LeafListen, LeafRemotes: e.LeafRemotes, SyncAlways: e.SyncAlways, SyncInterval: e.SyncInterval,
			}, log.With("part", "nats"))
			if err != nil {
				return err
			}
			log.Info("broker running", "site", cfg.Site, "url", srv.ClientURL())
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			srv.Shutdown()
			srv.WaitForShutdown()
			return nil
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "site configuration file (YAML)")
	return c
}
