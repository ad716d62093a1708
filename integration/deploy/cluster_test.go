// Package deploy tests the production broker layout that `s3mesh deploy
// gen` writes: real nats-server processes, a 3-node cluster per region,
// regions linked by leaf nodes with mutual TLS and nkeys, agents logging in
// with TLS and a password.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/deploy/gen"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/internal/versityiam"
	"github.com/s3mesh/s3mesh/s3io"
)

// natsServerBin returns bin/nats-server (built by `make tools`), building it
// from the pinned tool dependency if it is missing.
func natsServerBin(t *testing.T) string {
	t.Helper()
	root := testenv.RepoRoot(t)
	bin := filepath.Join(root, "bin", "nats-server")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin
	}
	bin = filepath.Join(t.TempDir(), "nats-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building nats-server: %v\n%s", err, out)
	}
	return bin
}

// freeBase finds a base port p such that p+i is free for i < n, for each
// of the four listener kinds spaced 1000 apart.
func freeBase(t *testing.T, n int) int {
	t.Helper()
	for base := 21000 + (os.Getpid()%50)*40; base < 30000; base += 97 {
		ok := true
		var ls []net.Listener
		for kind := 0; kind < 4 && ok; kind++ {
			for i := 0; i < n; i++ {
				l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+kind*1000+i))
				if err != nil {
					ok = false
					break
				}
				ls = append(ls, l)
			}
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func startNode(t *testing.T, bin string, nd gen.Node, logDir string) *proc {
	t.Helper()
	return startProc(t, nd.Name, logDir, bin, "-c", nd.Config)
}

func startProc(t *testing.T, name, logDir, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "Error trying to connect to route") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 60 {
		keep = keep[len(keep)-60:]
	}
	return strings.Join(keep, "\n")
}

// poll calls f until it returns nil or the deadline passes.
func poll(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func connect(t *testing.T, res *gen.Result, r gen.Region) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	pw, err := os.ReadFile(r.AgentPassword)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(r.ClientURLs(), nats.UserInfo(r.AgentUser, string(pw)), nats.RootCAs(res.CA),
		nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond), nats.Timeout(3*time.Second))
	if err != nil {
		t.Fatalf("connect to region %s: %v", r.Name, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func TestDeployClusterTwoRegions(t *testing.T) {
	bin := natsServerBin(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "deploy")
	base := freeBase(t, 6)
	start := time.Now()
	res, err := gen.Generate(gen.Options{
		Out: out, Regions: []string{"a", "b"}, Nodes: 3, PortStep: 1,
		ClientPort: base, ClusterPort: base + 1000, LeafPort: base + 2000, MonitorPort: base + 3000,
		StoreDir: filepath.Join(dir, "js", "{region}-{n}"), BcryptCost: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Secrets are 0600.
	for _, f := range []string{res.CAKey, res.Regions[0].AgentPassword, res.Regions[0].LeafSeed, res.Regions[0].RoutePassword, res.Regions[0].SigningSeed,
		res.Regions[0].Nodes[0].Key, res.Regions[0].Nodes[0].Config} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v (want 0600)", f, fi.Mode().Perm(), err)
		}
	}
	// Each region's routes need its own route password, which no other
	// region's node configuration holds: a node of b (with a certificate
	// of the same CA) cannot join a's cluster.
	for i, r := range res.Regions {
		pw, err := os.ReadFile(r.RoutePassword)
		if err != nil || len(pw) < 20 {
			t.Fatalf("%s route password: %v (%d bytes)", r.Name, err, len(pw))
		}
		other, _ := os.ReadFile(res.Regions[1-i].Nodes[0].Config)
		own, _ := os.ReadFile(r.Nodes[0].Config)
		if bytes.Contains(other, pw) || !bytes.Contains(own, []byte("authorization { user: \"route-"+r.Name+"\"")) {
			t.Fatalf("region %s: route password in another region's config, or no route authorization in its own", r.Name)
		}
		if !bytes.Contains(own, []byte("http: \"127.0.0.1:")) {
			t.Fatalf("region %s: monitoring not on loopback", r.Name)
		}
	}
	for _, r := range res.Regions {
		for _, nd := range r.Nodes {
			if out, err := exec.Command(bin, "-t", "-c", nd.Config).CombinedOutput(); err != nil {
				t.Fatalf("%s: config invalid: %v\n%s", nd.Name, err, out)
			}
		}
	}

	procs := map[string]*proc{}
	var all []*proc
	for _, r := range res.Regions {
		for _, nd := range r.Nodes {
			p := startNode(t, bin, nd, dir)
			procs[nd.Name] = p
			all = append(all, p)
		}
	}
	dump := func() {
		if t.Failed() {
			for _, p := range all {
				t.Logf("---- %s ----\n%s", p.name, p.tail())
			}
		}
	}
	t.Cleanup(dump)

	// Clusters: every node routes to its two peers and JetStream has a
	// meta leader; leaf links: every node of a (the dialling region) has
	// one leaf connection to b.
	poll(t, "clusters and leaf links up", 30*time.Second, func() error {
		for _, r := range res.Regions {
			for _, nd := range r.Nodes {
				var rz struct {
					Routes []struct {
						RemoteName string `json:"remote_name"`
					} `json:"routes"`
				}
				if err := getJSON(nd.MonitorURL()+"/routez", &rz); err != nil {
					return err
				}
				peers := map[string]bool{}
				for _, rt := range rz.Routes {
					peers[rt.RemoteName] = true
				}
				if len(peers) != len(r.Nodes)-1 {
					return fmt.Errorf("%s routes to %v", nd.Name, peers)
				}
				var hz struct {
					Status string `json:"status"`
					Error  string `json:"error"`
				}
				if err := getJSON(nd.MonitorURL()+"/healthz?js-enabled-only=true", &hz); err != nil || hz.Status != "ok" {
					return fmt.Errorf("%s healthz %+v %v", nd.Name, hz, err)
				}
			}
		}
		for _, nd := range res.Regions[0].Nodes {
			var lz struct {
				Leafs []struct {
					Account string `json:"account"`
					Name    string `json:"name"`
				} `json:"leafs"`
			}
			if err := getJSON(nd.MonitorURL()+"/leafz", &lz); err != nil {
				return err
			}
			// Each link in its own account, confined (broker/links.go).
			if len(lz.Leafs) != 1 || lz.Leafs[0].Account != broker.PeerAccount("b") {
				return fmt.Errorf("%s leafs %+v", nd.Name, lz.Leafs)
			}
		}
		return nil
	})
	t.Logf("six nodes up, routes and leaf links established in %v", time.Since(start).Round(time.Millisecond))

	ctx := t.Context()
	regA, regB := res.Regions[0], res.Regions[1]
	_, jsA := connect(t, res, regA)
	_, jsB := connect(t, res, regB)

	// A plain-text connection and a wrong password are refused.
	if nc, err := nats.Connect(strings.ReplaceAll(regA.ClientURLs(), "tls://", "nats://"), nats.UserInfo(regA.AgentUser, "wrong"), nats.RootCAs(res.CA), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("wrong password accepted")
	}

	// Streams: EnsureStreams creates the meta-layer objects while the
	// cluster may still be electing; retry until it works.
	// The link's secret names its mirror consumers (as the agent's
	// peers[].link_secret does).
	ls, err := os.ReadFile(res.Regions[0].LinkSecrets["b"])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		js   jetstream.JetStream
		site string
		peer string
	}{{jsA, "a", "b"}, {jsB, "b", "a"}} {
		poll(t, "EnsureStreams "+s.site, 30*time.Second, func() error {
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			defer ccancel()
			return broker.EnsureStreams(cctx, s.js, broker.Topology{Site: s.site, Peers: []string{s.peer}, Replicas: 3,
				LinkSecrets: map[string]string{s.peer: string(ls)}})
		})
	}
	si, err := jsA.Stream(ctx, broker.ChangesStream("a"))
	if err != nil {
		t.Fatal(err)
	}
	if info := si.CachedInfo(); info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("CHANGES_a is not R3: %+v", info.Cluster)
	}

	publish := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			subj := broker.ChangesSubject("a", i%4)
			m := &nats.Msg{Subject: subj, Data: []byte("record-" + strconv.Itoa(i)), Header: nats.Header{}}
			m.Header.Set(jetstream.MsgIDHeader, "id-"+strconv.Itoa(i))
			var err error
			for attempt := 0; attempt < 50; attempt++ {
				pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
				_, err = jsA.PublishMsg(pctx, m)
				pcancel()
				if err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	}
	// mirrorState describes the mirror of CHANGES_a in b and the durable
	// consumer in a that feeds it: what a failure report needs.
	mirrorState := func(cctx context.Context) (uint64, string) {
		ms, err := broker.Mirrors(cctx, jsB, broker.Topology{Site: "b", Peers: []string{"a"}})
		if err != nil {
			return 0, "mirror in b: " + err.Error()
		}
		desc := fmt.Sprintf("mirror in b: %s msgs=%d", ms[0], ms[0].Msgs)
		c, err := jsA.Consumer(cctx, broker.ChangesStream("a"), broker.MirrorConsumer("b"))
		if err != nil {
			return ms[0].Msgs, desc + "; feeding consumer in a: " + err.Error()
		}
		ci := c.CachedInfo()
		desc += fmt.Sprintf("; feeding consumer in a: delivered=%d ack_floor=%d pending=%d push_bound=%v",
			ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumPending, ci.PushBound)
		if ci.Cluster != nil {
			desc += " leader=" + ci.Cluster.Leader
		}
		return ms[0].Msgs, desc
	}
	// checkMirror waits until the mirror of CHANGES_a in b holds want
	// records and checks they are record-0..record-(want-1) in order.
	//
	// After both leaders are lost, the new mirror leader in b asks the
	// consumer in a (itself electing a leader) to reset; when that request
	// fails nats-server retries with a growing backoff capped at 2 minutes
	// (retryMaximum in server/stream.go). The wait covers that cap: a
	// mirror that takes longer is wedged, not slow.
	checkMirror := func(want int) time.Duration {
		t.Helper()
		t0 := time.Now()
		lastLog := t0
		poll(t, fmt.Sprintf("mirror in b holds %d records", want), 150*time.Second, func() error {
			cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
			defer ccancel()
			n, desc := mirrorState(cctx)
			if n == uint64(want) {
				return nil
			}
			if time.Since(lastLog) >= 10*time.Second {
				lastLog = time.Now()
				t.Logf("after %v: %s", time.Since(t0).Round(time.Second), desc)
			}
			return fmt.Errorf("%s", desc)
		})
		took := time.Since(t0)
		// Read it back in order. Reads go to the stream's leader, which
		// may still be settling: a failed read is retried from the start.
		poll(t, fmt.Sprintf("read %d records from the mirror in b", want), 30*time.Second, func() error {
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			defer ccancel()
			got := 0
			err := broker.ReadStream(cctx, jsB, broker.ChangesStream("a"), time.Time{}, func(_ uint64, data []byte) error {
				if string(data) != "record-"+strconv.Itoa(got) {
					return fmt.Errorf("mirror message %d is %q", got, data)
				}
				got++
				return nil
			})
			if err == nil && got != want {
				err = fmt.Errorf("read %d records, want %d", got, want)
			}
			return err
		})
		return took
	}

	t0 := time.Now()
	publish(0, 200)
	pub1 := time.Since(t0)
	lag1 := checkMirror(200)
	t.Logf("200 records published to CHANGES_a (R3) in %v; mirror in b complete %v later", pub1.Round(time.Millisecond), lag1.Round(time.Millisecond))

	// Lose one node per region: the stream leaders where possible, so
	// that both the origin and the mirror must fail over.
	victim := func(js jetstream.JetStream, stream string, region gen.Region) string {
		s, err := js.Stream(ctx, stream)
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
			return s.CachedInfo().Cluster.Leader
		}
		return region.Nodes[0].Name
	}
	va := victim(jsA, broker.ChangesStream("a"), regA)
	vb := victim(jsB, broker.ChangesStream("a"), regB)
	procs[va].kill()
	procs[vb].kill()
	t.Logf("killed %s (leader of CHANGES_a in a) and %s (leader of the mirror in b) with SIGKILL", va, vb)
	t1 := time.Now()
	publish(200, 200)
	pub2 := time.Since(t1)
	lag2 := checkMirror(400)
	t.Logf("200 more records published in %v after the kill; mirror in b complete %v later (%v after the kill)",
		pub2.Round(time.Millisecond), lag2.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))

	// Two real s3mesh agents, one per region, on the surviving nodes
	// (two of three), with TLS, passwords and stream_replicas: 3.
	t2 := time.Now()
	runAgents(t, ctx, res, dir)
	t.Logf("agents: object written at a replicated to b in %v (agents started with one node per region down)", time.Since(t2).Round(time.Millisecond))
}

// supervise runs a process and restarts it when it exits, as systemd's
// Restart=always and Kubernetes do in production, until the test ends.
// Each run logs to name-<n>.log; the test logs every restart.
func supervise(t *testing.T, name, dir, bin string, args ...string) {
	t.Helper()
	stop := make(chan struct{})
	var mu sync.Mutex
	var cur *proc
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			p := startProc(t, fmt.Sprintf("%s-%d", name, n), dir, bin, args...)
			mu.Lock()
			cur = p
			mu.Unlock()
			select {
			case <-stop:
				p.kill()
				return
			case <-p.done:
				if t.Context().Err() != nil {
					return // the test is ending: its cleanup killed the process
				}
				t.Logf("%s exited (run %d), restarting like systemd would: %s", name, n, lastLine(p.tail()))
			}
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() && cur != nil {
			t.Logf("---- %s ----\n%s", cur.name, cur.tail())
		}
	})
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// runAgents starts an s3mesh agent per region against versitygw and the
// region's cluster and checks that an object written at a reaches b.
func runAgents(t *testing.T, ctx context.Context, res *gen.Result, dir string) {
	t.Helper()
	bin := testenv.S3meshBin(t)
	const bucket = "deploy-test"
	stores := map[string]*testenv.Versity{}
	clients := map[string]*s3io.Client{}
	for _, r := range res.Regions {
		// The internal IAM: the peer's read-only user (below).
		v := testenv.StartVersity(t, "--iam-dir", t.TempDir())
		stores[r.Name] = v
		c, err := s3io.New(s3io.Endpoint{URL: v.Endpoint, Region: v.Region, AccessKey: v.AccessKey, SecretKey: v.SecretKey, PathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		// Bounded attempts: one hung request must not eat the test's
		// budget, and a failure shows what the gateway logged.
		var err2 error
		for attempt := 0; attempt < 3; attempt++ {
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			err2 = c.EnsureBucket(cctx, bucket)
			ccancel()
			if err2 == nil {
				break
			}
			t.Logf("region %s: create bucket (attempt %d): %v", r.Name, attempt+1, err2)
		}
		if err2 != nil {
			t.Fatalf("region %s: create bucket: %v\n--- versitygw log ---\n%s", r.Name, err2, v.LogTail(4096))
		}
		clients[r.Name] = c
	}
	secret := filepath.Join(dir, "s3-secret")
	if err := os.WriteFile(secret, []byte(testenv.VersitySecretKey), 0o600); err != nil {
		t.Fatal(err)
	}
	// Each region reads its peer's store with a read-only key of its own
	// (the agent refuses a peer key that can write): a versitygw user
	// granted s3:GetObject and s3:ListBucket by the bucket's policy.
	readerKey := func(region string) string { return "s3mesh-peer-" + region }
	readerSecret := func(region string) string { return "peer-secret-of-" + region + "-0123456789" }
	for i, r := range res.Regions {
		peer, v := res.Regions[1-i], stores[r.Name]
		adm := versityiam.Admin{Endpoint: v.Endpoint, AccessKey: v.AccessKey, SecretKey: v.SecretKey}
		if err := adm.GrantRead(ctx, []string{bucket}, []versityiam.Reader{{Access: readerKey(peer.Name), Secret: readerSecret(peer.Name)}}); err != nil {
			t.Fatalf("region %s: read-only key for %s: %v", r.Name, peer.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "peer-s3-secret-"+r.Name), []byte(readerSecret(r.Name)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range res.Regions {
		peer := res.Regions[1-i]
		v, pv := stores[r.Name], stores[peer.Name]
		cfg := fmt.Sprintf(`site: %s
s3: {endpoint: %s, access_key: %s, secret_key: {file: %s}}
buckets: [{name: %s}]
nats:
  url: %q
  user: %s
  password: {file: %s}
  tls: {ca_file: %s}
  stream_replicas: 3
signing: {key: {file: %s}}
peers:
  - name: %s
    s3: {endpoint: %s, access_key: %s, secret_key: {file: %s}}
    public_keys: [%s]
    link_secret: {file: %s}
state_dir: %s
scan: {interval: 1s}
`, r.Name, v.Endpoint, v.AccessKey, secret, bucket, r.ClientURLs(), r.AgentUser, r.AgentPassword, res.CA,
			r.SigningSeed, peer.Name, pv.Endpoint, readerKey(r.Name), filepath.Join(dir, "peer-s3-secret-"+r.Name), peer.SigningPublicKey, r.LinkSecrets[peer.Name], filepath.Join(dir, "state-"+r.Name))
		path := filepath.Join(dir, "agent-"+r.Name+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		supervise(t, "agent-"+r.Name, dir, bin, "agent", "--config", path)
	}
	body := []byte("hello from region a over TLS")
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if _, err := clients["a"].Put(pctx, s3io.PutInput{Bucket: bucket, Key: "dir/obj.txt", Body: bytes.NewReader(body), Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	poll(t, "object replicated to b", 60*time.Second, func() error {
		gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
		defer gcancel()
		rc, _, err := clients["b"].Get(gctx, bucket, "dir/obj.txt", "")
		if err != nil {
			return err
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, body) {
			return fmt.Errorf("b holds %q", got)
		}
		return nil
	})
}
