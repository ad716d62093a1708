package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lab"
)

// target is how an operator command reaches one site's broker: a running
// lab's lab.json (--lab, with --site) or a site configuration (--config).
type target struct {
	labPath, cfgPath, site string
}

func (t *target) flags(c *cobra.Command) {
	c.PersistentFlags().StringVar(&t.labPath, "lab", "", "a running lab's lab.json (with --site)")
	c.PersistentFlags().StringVar(&t.cfgPath, "config", "", "a site configuration file")
	c.PersistentFlags().StringVar(&t.site, "site", "", "site name (with --lab; defaults to the config's site)")
}

// site is a connection to one site's broker.
type site struct {
	name string
	nc   *nats.Conn
	js   jetstream.JetStream
}

func (t *target) connect() (*site, error) {
	var url, name string
	opts := []nats.Option{nats.Name("s3mesh-cli"), nats.Timeout(5 * time.Second)}
	switch {
	case t.labPath != "" && t.cfgPath != "":
		return nil, errors.New("give --lab or --config, not both")
	case t.labPath != "":
		info, err := lab.ReadInfo(t.labPath)
		if err != nil {
			return nil, err
		}
		if t.site == "" {
			return nil, errors.New("--site is required with --lab")
		}
		for _, s := range info.Sites {
			if s.Name == t.site {
				url, name = s.NATSURL, s.Name
				opts = append(opts, s.NATSOptions()...)
			}
		}
		if url == "" {
			return nil, fmt.Errorf("lab %s has no site %q", t.labPath, t.site)
		}
	case t.cfgPath != "":
		cfg, err := config.Load(t.cfgPath)
		if err != nil {
			return nil, err
		}
		if t.site != "" && t.site != cfg.Site {
			return nil, fmt.Errorf("--site %s, but %s is the configuration of site %s", t.site, t.cfgPath, cfg.Site)
		}
		name, url = cfg.Site, cfg.NATS.URL
		if url == "" {
			url = "nats://" + cfg.NATS.Embedded.Listen
		}
		login, err := agent.ClientOptions(cfg.NATS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, login...)
	default:
		return nil, errors.New("give --lab LAB.json --site X, or --config SITE.yaml")
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("site %s broker %s: %w", name, url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &site{name: name, nc: nc, js: js}, nil
}

func (s *site) close() { s.nc.Close() }

// admin asks the site's running agent to do verb.
func (s *site) admin(verb string, req agent.AdminRequest) (string, error) {
	return s.adminWithin(verb, req, 3*time.Minute)
}

// adminWithin is admin with a timeout of its own.
func (s *site) adminWithin(verb string, req agent.AdminRequest, timeout time.Duration) (string, error) {
	b, _ := json.Marshal(req)
	m, err := s.nc.Request(agent.AdminSubject(s.name, verb), b, timeout)
	if err != nil {
		return "", fmt.Errorf("site %s's agent did not answer (is it running?): %w", s.name, err)
	}
	var rep agent.AdminReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return "", err
	}
	if !rep.OK {
		return "", errors.New(rep.Error)
	}
	return rep.Outcome, nil
}

// readAll calls fn with every message of stream (see broker.ReadStream).
func (s *site) readAll(ctx context.Context, stream string, since time.Time, fn func(seq uint64, data []byte) error) error {
	return broker.ReadStream(ctx, s.js, stream, since, fn)
}
