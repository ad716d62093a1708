package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
)

// Info is the content of <dir>/lab.json.
type Info struct {
	Dir     string     `json:"dir"`
	Sites   []SiteInfo `json:"sites"`
	Buckets []string   `json:"buckets"`
	Links   []LinkInfo `json:"links"`
	Ctl     string     `json:"ctl"` // control socket path
}

// SiteInfo describes one site's endpoints.
type SiteInfo struct {
	Name       string `json:"name"`
	S3Endpoint string `json:"s3_endpoint"`
	// Store is the S3 implementation the site runs (versitygw, rclone,
	// minio or seaweedfs).
	Store string `json:"store"`
	// Events is where the agent learns of the store's changes: nats
	// (versitygw's NATS sink, or MinIO's own bucket notifications over its
	// NATS target), webhook (versitygw's webhook sink) or poll.
	Events    string `json:"events"`
	Region    string `json:"region"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	NATSURL   string `json:"nats_url"`
	// NATSUser and NATSPassword are what the site's agent logs in with
	// ("" in an --insecure lab): a tool using them acts exactly as the site.
	NATSUser     string `json:"nats_user,omitempty"`
	NATSPassword string `json:"nats_password,omitempty"`
	// NATSCA is the lab CA the broker's TLS certificate is signed by ("" in
	// an --insecure lab, whose brokers have no TLS).
	NATSCA   string `json:"nats_ca,omitempty"`
	HTTPAddr string `json:"http_addr"`
	AgentPID int    `json:"agent_pid"` // 0 while the agent is not running
	Config   string `json:"config"`    // absolute path of site.yaml
	LogDir   string `json:"log_dir"`
	// SigningKey is the path of the site's record signing seed (0600) and
	// PublicKey its public key, which every peer's configuration lists.
	SigningKey string `json:"signing_key"`
	PublicKey  string `json:"public_key"`
	// PeerS3 are the keys this site's agent fetches from its peers' stores
	// with (its site.yaml peers[].s3), one per peer.
	PeerS3 []PeerS3Info `json:"peer_s3"`
}

// PeerS3Info is a site's key at one peer's store: read-only (a versitygw
// user granted s3:GetObject and s3:ListBucket by bucket policy, or a
// SeaweedFS identity with Read and List only), or, when Writable, the peer
// store's root key pair (rclone's only one; MinIO's, as the lab makes no
// MinIO users), which site.yaml marks allow_writable_key.
type PeerS3Info struct {
	Peer      string `json:"peer"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	Writable  bool   `json:"writable,omitempty"`
}

// LinkInfo is one leaf-node link: From's broker dials To's leaf listener
// (Target) through the lab's proxy at Proxy.
type LinkInfo struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Proxy  string `json:"proxy"`
	Target string `json:"target"`
}

// NATSOptions are the connection options that log in as the site's agent
// and verify its broker's certificate (none in an --insecure lab).
func (s SiteInfo) NATSOptions() []nats.Option {
	var opts []nats.Option
	if s.NATSUser != "" {
		opts = append(opts, nats.UserInfo(s.NATSUser, s.NATSPassword))
	}
	if s.NATSCA != "" {
		opts = append(opts, nats.RootCAs(s.NATSCA))
	}
	return opts
}

// ConnectNATS connects to the site's broker as the site's agent.
func (s SiteInfo) ConnectNATS(opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect(s.NATSURL, append(s.NATSOptions(), opts...)...)
}

// ReadInfo parses a lab.json file.
func ReadInfo(path string) (Info, error) {
	var in Info
	b, err := os.ReadFile(path)
	if err != nil {
		return in, err
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return in, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// Info returns the lab's description (the content of lab.json).
func (l *Lab) Info() Info {
	in := Info{Dir: l.dir, Buckets: l.o.Buckets, Ctl: filepath.Join(l.dir, CtlSocket)}
	for _, s := range l.sites {
		in.Sites = append(in.Sites, SiteInfo{
			Name: s.name, S3Endpoint: s.s3Endpoint(), Store: s.store, Events: s.events, Region: Region,
			AccessKey: s.accessKey, SecretKey: s.secretKey,
			NATSURL: s.natsURL(), HTTPAddr: s.httpAddr(), AgentPID: s.agent.pid(),
			Config: s.configPath(), LogDir: s.logDir(),
			SigningKey: s.signingKeyPath(), PublicKey: s.signingPub, NATSCA: s.caFile,
		})
		if !l.o.Insecure {
			in.Sites[len(in.Sites)-1].NATSUser, in.Sites[len(in.Sites)-1].NATSPassword = agentUser, s.natsPassword
		}
		for _, p := range l.sites {
			if k, ok := s.peerKeys[p.name]; ok {
				in.Sites[len(in.Sites)-1].PeerS3 = append(in.Sites[len(in.Sites)-1].PeerS3,
					PeerS3Info{Peer: p.name, AccessKey: k.accessKey, SecretKey: k.secretKey, Writable: k.writable})
			}
		}
	}
	for _, k := range l.links {
		in.Links = append(in.Links, LinkInfo{From: k.x.name, To: k.y.name, Proxy: loopback(k.port), Target: k.y.leafAddr()})
	}
	return in
}

// writeInfo (re)writes lab.json; it holds secrets, so it is private to the user.
func (l *Lab) writeInfo() {
	l.infoMu.Lock()
	defer l.infoMu.Unlock()
	if err := writeJSON(filepath.Join(l.dir, "lab.json"), l.Info(), 0o600); err != nil {
		l.log.Error("writing lab.json", "err", err)
	}
}

// printTable prints the endpoints and how to use them.
func (l *Lab) printTable(w io.Writer) {
	in := l.Info()
	fmt.Fprintf(w, "s3mesh lab: %d site(s) in %s, buckets %s\n\n", len(in.Sites), in.Dir, strings.Join(in.Buckets, ", "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tS3\tACCESS KEY\tNATS\tDASHBOARD\tPID")
	for _, s := range in.Sites {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\thttp://%s\t%s\n", s.Name, s.S3Endpoint, s.AccessKey, s.NATSURL, s.HTTPAddr, strconv.Itoa(s.AgentPID))
	}
	tw.Flush()
	if len(in.Links) > 0 {
		var ls []string
		for _, k := range in.Links {
			ls = append(ls, fmt.Sprintf("%s-%s", k.From, k.To))
		}
		fmt.Fprintf(w, "\nleaf links (through cuttable proxies): %s\n", strings.Join(ls, " "))
	}
	if len(in.Sites) > 0 && len(in.Buckets) > 0 {
		s := in.Sites[0]
		fmt.Fprintf(w, "\ntry:\n  AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=$(cat %s) aws --endpoint-url %s s3 cp file s3://%s/file\n",
			s.AccessKey, filepath.Join(l.dir, s.Name, "s3-secret"), s.S3Endpoint, in.Buckets[0])
	}
	dir := l.o.Dir
	fmt.Fprintf(w, "\nendpoints and keys: %s\ncontrol: s3mesh lab ctl --dir %s status|cut a b|heal a b|kill a|start a|... (help)\nlogs: %s/<site>/logs/\nCtrl-C stops the lab; `s3mesh lab --dir %s` resumes it.\n",
		filepath.Join(l.dir, "lab.json"), dir, l.dir, dir)
}
