package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/internal/testenv"
)

// The lab runs `s3mesh broker` and `s3mesh agent`. Until those exist, the
// end-to-end tests run this test binary in their place: with fakeEnv set,
// TestMain acts as a minimal s3mesh (an embedded NATS server with
// JetStream and leaf links from nats.embedded; an agent that checks its S3
// credentials and answers /healthz).
const (
	fakeEnv      = "S3MESH_LAB_TEST_FAKE"
	fakeAgentEnv = "S3MESH_LAB_TEST_AGENT" // "fail": the fake agent exits at once
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) == "1" && len(os.Args) == 4 && os.Args[2] == "--config" {
		if err := fakeS3mesh(os.Args[1], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "fake s3mesh:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeS3mesh(cmd, cfgPath string) error {
	c, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	switch cmd {
	case "broker":
		// The real embedded broker (links and users included), without
		// the streams the real `s3mesh broker` creates.
		srv, err := broker.StartServer(*agent.EmbeddedServerConfig(c), nil)
		if err != nil {
			return err
		}
		<-sig
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil
	case "agent":
		if os.Getenv(fakeAgentEnv) == "fail" {
			return fmt.Errorf("agent of %s failing on purpose", c.Site)
		}
		cl := newS3Client(c.S3.Endpoint, c.S3.AccessKey, c.S3.SecretKey.MustValue())
		for _, b := range c.BucketNames() {
			if _, err := cl.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String(b)}); err != nil {
				return fmt.Errorf("bucket %s at %s: %w", b, c.S3.Endpoint, err)
			}
		}
		ln, err := net.Listen("tcp", c.HTTPAddr)
		if err != nil {
			return err
		}
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				io.WriteString(w, "ok\n")
				return
			}
			http.NotFound(w, r)
		}))
		<-sig
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	var n int
	_, err = fmt.Sscan(p, &n)
	return h, n, err
}

// startFakeLab starts a lab with the real versitygw and the fake s3mesh.
func startFakeLab(t *testing.T, o Options) (*Lab, *bytes.Buffer) {
	t.Helper()
	t.Setenv(fakeEnv, "1")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := &bytes.Buffer{}
	o.S3meshBin, o.VersityBin, o.Log, o.Stdout = exe, testenv.VersityBin(t), testLogger(t), out
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	l, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	return l, out
}

func siteClient(si SiteInfo) *s3.Client {
	return newS3Client(si.S3Endpoint, si.AccessKey, si.SecretKey)
}

// putAndAwaitEvent PUTs key at si and waits for versitygw's event on the
// site's NATS subject.
func putAndAwaitEvent(t *testing.T, si SiteInfo, bucket, key string) {
	t.Helper()
	nc, err := si.ConnectNATS()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(eventsSubject(si.Name))
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	if _, err := siteClient(si).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		m, err := sub.NextMsg(time.Until(deadline))
		if err == nil && bytes.Contains(m.Data, []byte(`"key":"`+key+`"`)) {
			return
		}
	}
	t.Fatalf("no event for %s/%s on %s at site %s", bucket, key, eventsSubject(si.Name), si.Name)
}

func TestLabStartCtlStop(t *testing.T) {
	dir := t.TempDir()
	l, out := startFakeLab(t, Options{Dir: dir, Sites: 3, Buckets: []string{"demo", "logs.2024"}})

	in, err := ReadInfo(filepath.Join(dir, "lab.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "lab.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("lab.json mode %v", fi.Mode())
	}
	if len(in.Sites) != 3 || in.Sites[2].Name != "c" || len(in.Links) != 3 || in.Ctl != filepath.Join(dir, CtlSocket) {
		t.Fatalf("lab.json = %+v", in)
	}
	for _, si := range in.Sites {
		if si.AgentPID == 0 || !alive(si.AgentPID) || si.Region != "us-east-1" || si.Config != filepath.Join(dir, si.Name, "site.yaml") {
			t.Errorf("site %+v", si)
		}
		if _, err := config.Load(si.Config); err != nil {
			t.Error(err)
		}
		for _, b := range in.Buckets {
			if _, err := siteClient(si).HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String(b)}); err != nil {
				t.Errorf("site %s bucket %s: %v", si.Name, b, err)
			}
		}
		if strings.Contains(out.String(), si.SecretKey) || strings.Contains(out.String(), si.NATSPassword) {
			t.Error("the endpoint table prints a secret")
		}
		// The broker takes the agent's login from lab.json, and nothing
		// without it.
		if si.NATSUser != agentUser || len(si.NATSPassword) < 32 {
			t.Errorf("site %s: nats login %q/%d characters in lab.json", si.Name, si.NATSUser, len(si.NATSPassword))
		}
		if nc, err := si.ConnectNATS(); err != nil {
			t.Errorf("site %s: connecting as the agent: %v", si.Name, err)
		} else {
			nc.Close()
		}
		if nc, err := (SiteInfo{NATSURL: si.NATSURL, NATSCA: si.NATSCA}).ConnectNATS(); err == nil {
			nc.Close()
			t.Errorf("site %s: the broker takes a client without a password", si.Name)
		}
		checkLabTLS(t, dir, si)
	}
	for _, want := range []string{"aws --endpoint-url " + in.Sites[0].S3Endpoint + " s3 cp file s3://demo/file", in.Sites[2].NATSURL, "a-b a-c b-c"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	putAndAwaitEvent(t, in.Sites[0], "demo", "hello.txt")

	// A second lab on the same directory is refused.
	if _, err := Start(context.Background(), Options{Dir: dir, S3meshBin: l.o.S3meshBin, VersityBin: l.o.VersityBin}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second lab: %v", err)
	}

	ctl := func(verb string, args ...string) string {
		t.Helper()
		out, err := CtlClient(dir, verb, args...)
		if err != nil {
			t.Fatalf("ctl %s %v: %v", verb, args, err)
		}
		return out
	}
	// Agent kill / start updates lab.json.
	old := in.Sites[1].AgentPID
	ctl("kill", "b")
	eventually(t, 5*time.Second, "agent b gone", func() bool { return !alive(old) })
	ctl("start", "b")
	in2, _ := ReadInfo(filepath.Join(dir, "lab.json"))
	if p := in2.Sites[1].AgentPID; p == 0 || p == old || !alive(p) {
		t.Errorf("agent b pid after start = %d (was %d)", p, old)
	}

	// versitygw killed from outside is restarted and serves again.
	c := l.byName["c"]
	s3pid := c.s3.pid()
	syscallKill(s3pid)
	eventually(t, 20*time.Second, "versitygw c restarted and serving", func() bool {
		p := c.s3.pid()
		return p != 0 && p != s3pid && c.s3.ready(context.Background()) == nil
	})
	putAndAwaitEvent(t, in.Sites[2], "demo", "after-restart")

	// Broker restart: versitygw is restarted with it and its events flow
	// to the new broker.
	s3pid = c.s3.pid()
	ctl("kill-broker", "c")
	ctl("start-broker", "c")
	if p := c.s3.pid(); p == 0 || p == s3pid {
		t.Errorf("versitygw not restarted by start-broker (pid %d, was %d)", p, s3pid)
	}
	putAndAwaitEvent(t, in.Sites[2], "demo", "after-broker-restart")

	ctl("stop-s3", "a")
	if _, err := siteClient(in.Sites[0]).HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("demo")}); err == nil {
		t.Error("site a's S3 answers after stop-s3")
	}
	ctl("start-s3", "a")
	putAndAwaitEvent(t, in.Sites[0], "demo", "after-start-s3")

	// Stop leaves no process and no open port behind.
	st := l.Status()
	var pids []int
	for _, s := range st.Sites {
		pids = append(pids, s.Broker.PID, s.Versitygw.PID, s.Agent.PID)
	}
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if p == 0 || alive(p) {
			t.Errorf("pid %d alive after Stop (or never ran): %+v", p, st)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, CtlSocket)); !os.IsNotExist(err) {
		t.Errorf("ctl.sock left: %v", err)
	}
	assertPortsFree(t, dir)
}

func assertPortsFree(t *testing.T, dir string) {
	t.Helper()
	pf, err := loadPorts(filepath.Join(dir, "ports.json"), nil, noStorePorts)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for n, sp := range pf.Sites {
		for i, p := range sp.all() {
			m[fmt.Sprintf("%s/%d", n, i)] = p
		}
	}
	for n, p := range pf.Links {
		m[n] = p
	}
	if err := checkPortsFree(m); err != nil {
		t.Error(err)
	}
}

func TestLabLinksResumeFresh(t *testing.T) {
	dir := t.TempDir()
	l, _ := startFakeLab(t, Options{Dir: dir, Sites: 2})
	in := l.Info()

	// A message published at a reaches a subscriber at b over the leaf
	// link (through the proxy) until the link is cut. (The state page
	// subject is one that a confined link lets through.)
	ping := broker.StatePageSubject(in.Sites[1].Name)
	na, err := in.Sites[0].ConnectNATS()
	if err != nil {
		t.Fatal(err)
	}
	defer na.Close()
	nb, err := in.Sites[1].ConnectNATS()
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	sub, _ := nb.SubscribeSync(ping)
	nb.Flush()
	reaches := func(d time.Duration) bool {
		for deadline := time.Now().Add(d); time.Now().Before(deadline); {
			na.Publish(ping, []byte("x"))
			na.Flush()
			if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
				return true
			}
		}
		return false
	}
	if !reaches(15 * time.Second) {
		t.Fatal("a -> b does not pass over the leaf link")
	}
	if _, err := l.Ctl("cut", "b", "a"); err != nil {
		t.Fatal(err)
	}
	for { // drain what passed before the cut
		if _, err := sub.NextMsg(200 * time.Millisecond); err != nil {
			break
		}
	}
	if reaches(time.Second) {
		t.Fatal("a -> b passes while the link is cut")
	}
	if _, err := l.Ctl("heal", "a", "b"); err != nil {
		t.Fatal(err)
	}
	if !reaches(15 * time.Second) {
		t.Fatal("a -> b does not pass after heal")
	}

	if _, err := siteClient(in.Sites[0]).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("demo"), Key: aws.String("kept"), Body: strings.NewReader("data")}); err != nil {
		t.Fatal(err)
	}
	l.Stop()

	// Resume: same ports, credentials and data.
	l2, _ := startFakeLab(t, Options{Dir: dir, Sites: 2})
	in2 := l2.Info()
	for i := range in.Sites {
		a, b := in.Sites[i], in2.Sites[i]
		a.AgentPID, b.AgentPID = 0, 0
		if !reflect.DeepEqual(a, b) {
			t.Errorf("site changed on resume:\n%+v\n%+v", a, b)
		}
	}
	if _, err := siteClient(in2.Sites[0]).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String("kept")}); err != nil {
		t.Errorf("object lost on resume: %v", err)
	}
	l2.Stop()

	// Fresh: data and credentials are new.
	l3, _ := startFakeLab(t, Options{Dir: dir, Sites: 2, Fresh: true})
	in3 := l3.Info()
	if in3.Sites[0].SecretKey == in.Sites[0].SecretKey {
		t.Error("--fresh kept the credentials")
	}
	if _, err := siteClient(in3.Sites[0]).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("demo"), Key: aws.String("kept")}); err == nil {
		t.Error("--fresh kept the data")
	}
	l3.Stop()
	assertPortsFree(t, dir)
}

func TestLabAgentFailureIsReported(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(fakeEnv, "1")
	exe, _ := os.Executable()
	start := time.Now()
	_, err := Start(context.Background(), Options{
		Dir: dir, Sites: 2, S3meshBin: exe, VersityBin: testenv.VersityBin(t), Log: testLogger(t),
		AgentExtraEnv: []string{fakeAgentEnv + "=fail"}, ReadyTimeout: 30 * time.Second,
	})
	if err == nil {
		t.Fatal("Start succeeded with failing agents")
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("failure noticed after %v", time.Since(start))
	}
	for _, want := range []string{"site a", filepath.Join(dir, "a", "logs", "agent.log"), "agent of a failing on purpose"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	assertPortsFree(t, dir)
	if _, err := os.Stat(filepath.Join(dir, CtlSocket)); !os.IsNotExist(err) {
		t.Errorf("ctl.sock exists after a failed start: %v", err)
	}
}

// checkLabTLS: a site of a secure lab takes TLS only, on its client and
// its leaf listener; lab.json names the CA that verifies it, and a client
// that does not trust that CA, or speaks plain text, is refused even with
// the agent's password.
func checkLabTLS(t *testing.T, dir string, si SiteInfo) {
	t.Helper()
	if !strings.HasPrefix(si.NATSURL, "tls://") || si.NATSCA != filepath.Join(dir, "ca.pem") {
		t.Errorf("site %s: nats_url %s, nats_ca %q", si.Name, si.NATSURL, si.NATSCA)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lab CA key: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, si.Name, "nats-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("site %s broker key: %v %v", si.Name, fi, err)
	}
	login := nats.UserInfo(si.NATSUser, si.NATSPassword)
	if nc, err := nats.Connect(si.NATSURL, login, nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Errorf("site %s: connected over TLS without trusting the lab CA", si.Name)
	}
	plain := "nats://" + strings.TrimPrefix(si.NATSURL, "tls://")
	if nc, err := nats.Connect(plain, login, nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Errorf("site %s: connected in plain text", si.Name)
	}
	cfg, err := config.Load(si.Config)
	if err != nil {
		t.Fatal(err)
	}
	for what, addr := range map[string]string{"client": cfg.NATS.Embedded.Listen, "leaf": cfg.NATS.Embedded.LeafListen} {
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("site %s %s listener: %v", si.Name, what, err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil || !strings.Contains(line, `"tls_required":true`) {
			t.Errorf("site %s %s listener: INFO %q (%v), want tls_required", si.Name, what, line, err)
		}
	}
}
