package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// defineProcs sets up (without starting) s's broker, store (versitygw,
// rclone, MinIO or SeaweedFS) and agent.
func (l *Lab) defineProcs(s *site) {
	s.broker = &proc{
		name: s.name + "/broker", bin: l.o.S3meshBin,
		args:    []string{"broker", "--config", s.configPath()},
		env:     childEnv(),
		logPath: s.logPath("broker"), log: l.log,
		readyWhat: "accepting NATS connections on " + s.natsURL(),
		ready:     checkNATS(loopback(s.ports.NATS)),
	}
	s.s3 = &proc{
		name: s.name + "/versitygw", bin: l.o.VersityBin,
		args: []string{
			"--port", loopback(s.ports.S3),
			"--region", Region,
			"--keep-alive",
			"--quiet",
			// The internal IAM: the peers' read-only users (peerkeys.go),
			// made through the admin API on the S3 port.
			"--iam-dir", s.iamDir(),
			// No --event-filter: versitygw then sends every event of
			// every bucket (a nil filter passes everything).
			"--event-nats-topic", eventsSubject(s.name),
			"posix", s.dataDir(),
		},
		// Credentials go by environment, not argv, so `ps` does not show
		// them (the event sink's NATS URL carries its password).
		env: childEnv("ROOT_ACCESS_KEY_ID="+s.accessKey, "ROOT_SECRET_ACCESS_KEY="+s.secretKey,
			"VGW_EVENT_NATS_URL="+s.eventsNATSURL(l.o.Insecure)),
		logPath: s.logPath("versitygw"), log: l.log,
		redact:    []string{s.eventsPassword, s.secretKey},
		readyWhat: "answering S3 on " + s.s3Endpoint(),
		ready:     checkHTTP(s.s3Endpoint()+"/", false),
		onExit:    func(*proc) { l.restartS3Later(s) },
	}
	if l.o.Versioning {
		s.s3.args = slices.Insert(s.s3.args, len(s.s3.args)-1, "--versioning-dir", s.versionsDir())
	}
	if s.caFile != "" {
		// versitygw's sink has no CA option; Go takes SSL_CERT_FILE as
		// its system roots.
		s.s3.env = append(s.s3.env, "SSL_CERT_FILE="+s.caFile)
	}
	if s.events == EventsWebhook {
		// The webhook sink instead (versitygw runs one sink; it prints
		// the URL, with the token, at start: redacted).
		s.s3.args = slices.DeleteFunc(s.s3.args, func(a string) bool { return a == "--event-nats-topic" || a == eventsSubject(s.name) })
		s.s3.env = append(childEnv("ROOT_ACCESS_KEY_ID="+s.accessKey, "ROOT_SECRET_ACCESS_KEY="+s.secretKey), "VGW_EVENT_WEBHOOK_URL="+s.webhookURL())
		s.s3.redact = append(s.s3.redact, s.token)
	}
	if s.store == StoreRclone {
		s.s3 = &proc{
			name: s.name + "/rclone", bin: l.o.RcloneBin,
			// Buckets are the directories under dataDir. ETags are MD5s
			// (--etag-hash default) and user metadata is kept
			// (--metadata), as s3mesh needs.
			args: []string{"serve", "s3", "--addr", loopback(s.ports.S3), "--metadata", "--dir-cache-time", rcloneDirCacheTime, "--log-level", "NOTICE", s.dataDir()},
			// The key pair by environment, not argv (`ps`); no rclone
			// config file is read.
			env: childEnv( // A list option from the environment is CSV: quote the pair.
				"RCLONE_AUTH_KEY=\""+s.accessKey+","+s.secretKey+"\"", "RCLONE_CONFIG="+filepath.Join(s.dir, "rclone.conf")),
			logPath: s.logPath("rclone"), log: l.log,
			redact:    []string{s.secretKey},
			readyWhat: "answering S3 on " + s.s3Endpoint(),
			ready:     checkHTTP(s.s3Endpoint()+"/", false),
			onExit:    func(*proc) { l.restartS3Later(s) },
		}
	}
	switch s.store {
	case StoreMinio:
		s.s3 = l.minioProc(s)
	case StoreSeaweed:
		s.s3 = l.weedProc(s)
	}
	s.agent = &proc{
		name: s.name + "/agent", bin: l.o.S3meshBin,
		args:    []string{"agent", "--config", s.configPath()},
		env:     childEnv(l.o.AgentExtraEnv...),
		logPath: s.logPath("agent"), log: l.log,
		readyWhat: "healthy (GET http://" + s.httpAddr() + "/healthz answering 200)",
		ready:     checkHTTP("http://"+s.httpAddr()+"/healthz", true),
		onExit:    func(*proc) { l.writeInfo() }, // agent_pid becomes 0
	}
}

// startBroker starts s's broker and waits until it accepts NATS clients.
func (l *Lab) startBroker(ctx context.Context, s *site) error {
	return l.startWait(ctx, s, s.broker)
}

// startS3 starts s's versitygw and waits until it answers HTTP. Its NATS
// sink must be reachable at start-up (versitygw exits otherwise), so the
// broker must be up.
func (l *Lab) startS3(ctx context.Context, s *site) error {
	if !s.broker.running() || (s.broker.ready != nil && s.broker.ready(ctx) != nil) {
		return fmt.Errorf("lab: site %s: the broker is not running and versitygw exits without its event sink: start-broker %s first", s.name, s.name)
	}
	s.s3Wanted = true
	return l.startWait(ctx, s, s.s3)
}

// startAgent gives s's peers their read-only keys at s's store (again:
// its buckets may have been made anew since, by `s3mesh rebuild` after a
// wipe), then starts s's agent and waits until GET /healthz answers 200.
// The agent refuses to start with a peer key that can write.
func (l *Lab) startAgent(ctx context.Context, s *site) error {
	if s.s3.running() {
		if err := l.grantPeers(ctx, s); err != nil {
			return err
		}
		if err := l.applyMinioNotifications(ctx, s); err != nil {
			return err
		}
	} else if s.store == StoreVersity {
		l.log.Warn("versitygw is not running: the peers' read-only keys are granted at the next start of the agent", "site", s.name)
	}
	return l.startWait(ctx, s, s.agent)
}

// startWait starts p and waits until it is ready.
func (l *Lab) startWait(ctx context.Context, s *site, p *proc) error {
	if err := p.start(); err != nil {
		return fmt.Errorf("lab: site %s: %w", s.name, err)
	}
	if p.ready == nil {
		return nil
	}
	if err := p.waitReady(ctx, p.readyWhat, l.o.ReadyTimeout, p.ready); err != nil {
		return fmt.Errorf("lab: site %s: %w", s.name, err)
	}
	return nil
}

// restartS3Later restarts s's versitygw after it exited unexpectedly,
// once its broker accepts connections, with a growing delay between
// attempts. It gives up when the lab stops, stop-s3 is used, the broker is
// down (start-broker restarts versitygw) or after maxS3Restarts attempts.
// Only one restart loop runs per site.
func (l *Lab) restartS3Later(s *site) {
	l.mu.Lock()
	if s.s3Restarting {
		l.mu.Unlock()
		return
	}
	s.s3Restarting = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		s.s3Restarting = false
		l.mu.Unlock()
	}()
	delay := 500 * time.Millisecond
	for attempt := 1; attempt <= maxS3Restarts; attempt++ {
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
		l.mu.Lock()
		if l.closing || !s.s3Wanted || s.s3.running() {
			l.mu.Unlock()
			return
		}
		if !s.broker.running() {
			l.mu.Unlock()
			l.log.Warn("versitygw not restarted: its broker is down (start-broker restarts it)", "site", s.name)
			return
		}
		err := l.startS3(l.ctx, s)
		if err != nil {
			s.s3.kill()
		}
		l.mu.Unlock()
		if err == nil {
			l.log.Info("versitygw restarted", "site", s.name, "pid", s.s3.pid(), "attempt", attempt)
			return
		}
		l.log.Warn("restarting versitygw failed", "site", s.name, "attempt", attempt, "err", err)
	}
	l.log.Error("versitygw keeps failing; giving up (start-s3 tries again)", "site", s.name, "log", s.logPath("versitygw"))
}

// maxS3Restarts bounds the automatic restarts of one versitygw exit.
const maxS3Restarts = 20

// Status is the output of the status verb.
type Status struct {
	Dir   string       `json:"dir"`
	Sites []SiteStatus `json:"sites"`
	Links []LinkStatus `json:"links"`
}

// SiteStatus is the state of one site's processes.
type SiteStatus struct {
	Name      string     `json:"name"`
	Broker    ProcStatus `json:"broker"`
	Versitygw ProcStatus `json:"versitygw"`
	Agent     ProcStatus `json:"agent"`
}

// LinkStatus is the state of one proxied leaf-node link.
type LinkStatus struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Proxy string `json:"proxy"`
	Cut   bool   `json:"cut"`
	Delay string `json:"delay,omitempty"`
}

// Status reports every process and link.
func (l *Lab) Status() Status {
	st := Status{Dir: l.dir}
	for _, s := range l.sites {
		st.Sites = append(st.Sites, SiteStatus{Name: s.name, Broker: s.broker.status(), Versitygw: s.s3.status(), Agent: s.agent.status()})
	}
	for _, k := range l.links {
		ls := LinkStatus{From: k.x.name, To: k.y.name, Proxy: loopback(k.port)}
		if k.proxy != nil {
			ls.Cut = k.proxy.IsCut()
		}
		k.mu.Lock()
		if k.delay > 0 {
			ls.Delay = k.delay.String()
		}
		k.mu.Unlock()
		st.Links = append(st.Links, ls)
	}
	return st
}

// rcloneDirCacheTime is how long rclone serve s3 trusts its in-memory view
// of a directory (rclone's default: 5 min). Under concurrent overwrites,
// deletes and listings of one key, that view sometimes keeps a stale entry
// (measured with rclone v1.76.0: the key listed twice, or shown without an
// ETag or with the hash of an older body, so every GET of it fails rclone's
// read-side hash check) until the directory is read again from disk. A
// short time bounds such a state to about this long instead of minutes.
const rcloneDirCacheTime = "1s"
