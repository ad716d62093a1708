package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/deploy/gen"
)

// newDeployCmd: `s3mesh deploy gen` writes the CA, certificates, NATS
// credentials and nats-server configs of a new production deployment.
func newDeployCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "deploy",
		Short: "Production deployment helpers (see deploy/README.md)",
	}
	var (
		o       gen.Options
		regions string
		hosts   []string
		valid   time.Duration
	)
	g := &cobra.Command{
		Use:   "gen --out DIR --regions a,b[,c...]",
		Short: "Generate a CA, TLS certificates, NATS credentials and nats-server configs (a cluster per region, leaf links between regions)",
		Long: `Generates, for a new deployment, in DIR (which must be empty or absent):

  ca.pem, ca-key.pem               the deployment's CA (keep ca-key.pem offline afterwards)
  <region>/nats-<region>-<n>.conf  nats-server config of each node (0600: holds the leaf nkey seed)
  <region>/nats-<region>-<n>.pem   node certificate (server and client auth) and -key.pem
  <region>/agent-password          NATS password of the region's agent (0600); configs hold only its bcrypt hash
  <region>/leaf.nk                 nkey seed the region's nodes dial other regions with (0600)
  <region>/agent-nats.yaml         the nats:, signing: and records: sections of the region's agent config
  deployment.json                  machine-readable description of all of it

Host names come from --host-pattern ("{region}" and "{n}" are replaced) or
per region from --hosts region=h1,h2,h3. The default puts every node on
127.0.0.1 (for tests; add --port-step 1).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, r := range strings.Split(regions, ",") {
				if r = strings.TrimSpace(r); r != "" {
					o.Regions = append(o.Regions, r)
				}
			}
			for _, h := range hosts {
				name, list, ok := strings.Cut(h, "=")
				if !ok {
					return fmt.Errorf("--hosts %q: want region=host1,host2,...", h)
				}
				if o.Hosts == nil {
					o.Hosts = map[string][]string{}
				}
				o.Hosts[name] = strings.Split(list, ",")
			}
			o.ValidFor = valid
			res, err := gen.Generate(o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote deployment to %s (CA %s)\n", res.Dir, res.CA)
			for _, r := range res.Regions {
				fmt.Fprintf(w, "region %s: agent nats.url %s\n", r.Name, r.ClientURLs())
				for _, n := range r.Nodes {
					fmt.Fprintf(w, "  %s  %s\n", n.Name, n.Config)
				}
			}
			fmt.Fprintln(w, "secrets (0600): ca-key.pem, */*-key.pem, */*.conf, */agent-password, */leaf.nk")
			return nil
		},
	}
	f := g.Flags()
	f.StringVar(&o.Out, "out", "", "output directory (must be empty or absent)")
	f.StringVar(&regions, "regions", "", "comma-separated region (= site) names")
	f.IntVar(&o.Nodes, "nodes", 3, "NATS nodes per region (3 for JetStream R3)")
	f.StringVar(&o.HostPattern, "host-pattern", "", `node host name, "{region}" and "{n}" replaced (e.g. nats-{region}-{n}.example.com; default 127.0.0.1)`)
	f.StringArrayVar(&hosts, "hosts", nil, "region=host1,host2,host3 (repeatable; overrides --host-pattern for that region)")
	f.StringSliceVar(&o.ExtraSANs, "san", nil, "extra name or IP in every node certificate (repeatable)")
	f.IntVar(&o.ClientPort, "client-port", 4222, "client port")
	f.IntVar(&o.ClusterPort, "cluster-port", 6222, "cluster route port")
	f.IntVar(&o.LeafPort, "leaf-port", 7422, "leaf-node port")
	f.IntVar(&o.MonitorPort, "monitor-port", 8222, "HTTP monitoring port")
	f.StringVar(&o.MonitorListen, "monitor-listen", "127.0.0.1", "HTTP monitoring bind address: loopback or an internal interface's IP")
	f.IntVar(&o.PortStep, "port-step", 0, "add node-index*step to every port (all nodes on one host)")
	f.StringVar(&o.StoreDir, "store-dir", "/var/lib/nats/jetstream", `JetStream store directory ("{region}", "{n}" replaced)`)
	f.StringVar(&o.Listen, "listen", "", "bind address of all listeners (default: the node's IP, or 0.0.0.0 for host names)")
	f.StringVar(&o.InstallDir, "install-dir", "", "where the files will be on the hosts (e.g. /etc/nats); default: their paths under --out")
	f.DurationVar(&valid, "valid-for", 2*365*24*time.Hour, "certificate lifetime")
	_ = g.MarkFlagRequired("out")
	_ = g.MarkFlagRequired("regions")
	c.AddCommand(g)
	return c
}
