package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
)

// newStreamsCmd: `s3mesh streams ensure --config a.yaml --config b.yaml ...`
// creates every listed site's streams: first each site's own streams and
// the consumers feeding its peers' mirrors, then (unless --origin-only) the
// mirrors. Run it once when a deployment starts, before the agents, so no
// mirror asks for a consumer that does not exist yet (it would back off for
// minutes).
func newStreamsCmd() *cobra.Command {
	var cfgs []string
	var originOnly bool
	c := &cobra.Command{Use: "streams", Short: "Create the JetStream streams of one or more sites"}
	ensure := &cobra.Command{
		Use:   "ensure --config SITE.yaml [--config ...]",
		Short: "Create or update the sites' streams, origins first, mirrors last",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(cfgs) == 0 {
				return errors.New("give at least one --config")
			}
			var sites []*site
			var topos []broker.Topology
			for _, p := range cfgs {
				cfg, err := config.Load(p)
				if err != nil {
					return err
				}
				t := target{cfgPath: p}
				s, err := t.connect()
				if err != nil {
					return err
				}
				defer s.close()
				sites = append(sites, s)
				topos = append(topos, agent.Topology(cfg)) // with the link secrets and stream limits
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			for i, s := range sites {
				if err := broker.EnsureOrigin(ctx, s.js, topos[i]); err != nil {
					return fmt.Errorf("site %s: %w", s.name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "site %s: own streams and mirror consumers ready\n", s.name)
			}
			if originOnly {
				return nil
			}
			for i, s := range sites {
				if err := broker.EnsureStreams(ctx, s.js, topos[i]); err != nil {
					return fmt.Errorf("site %s: %w", s.name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "site %s: mirrors ready\n", s.name)
			}
			return nil
		},
	}
	ensure.Flags().StringArrayVar(&cfgs, "config", nil, "a site configuration (repeat for every site)")
	ensure.Flags().BoolVar(&originOnly, "origin-only", false, "only the sites' own streams and consumers (the agents create the mirrors)")
	c.AddCommand(ensure)
	return c
}
