// Package containers runs the three-site lab as containers (the image
// s3mesh:local that `make images` builds FROM scratch; nothing is pulled)
// with testcontainers-go, cuts sites off the inter-site network and kills
// containers, and checks convergence and that no acknowledged write is lost.
//
// The tests need a Docker engine. Without one they are skipped with a loud
// message on a developer machine; with CI=true (or S3MESH_REQUIRE_DOCKER=1)
// they fail instead, so CI never passes without having run them.
// The reaper (Ryuk) must stay disabled (TESTCONTAINERS_RYUK_DISABLED=true, as
// `make test` sets): its image cannot be pulled here. Every container,
// network and volume a test creates is removed by the tests themselves.
package containers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	mnet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/s3mesh/s3mesh/s3io"
)

// Image is the locally built image every container runs.
const Image = "s3mesh:local"

const bucket = "demo"

var siteNames = []string{"a", "b", "c"}

// The lab is shared by the tests of the package (starting it costs ~20 s)
// and torn down by TestMain.
var (
	labOnce  sync.Once
	theLab   *lab
	labErr   error
	noDocker string // why the tests cannot run, when no Docker engine answers
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theLab != nil {
		theLab.close()
	}
	os.Exit(code)
}

// getLab returns the shared lab, starting it on first use, or skips the
// test loudly when no Docker engine answers.
func getLab(t *testing.T) *lab {
	t.Helper()
	labOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err == nil {
			_, err = cli.Ping(ctx, client.PingOptions{})
		}
		if err != nil {
			if cli != nil {
				cli.Close()
			}
			noDocker = fmt.Sprintf("no Docker engine: the container tests did not run (%v)", err)
			return
		}
		if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") != "true" {
			// Ryuk's image would be pulled; nothing can be pulled here.
			os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
		theLab, labErr = startLab(ctx, cli)
	})
	if noDocker != "" {
		if why := dockerRequired(); why != "" {
			fmt.Fprintln(os.Stderr, "\n*** FAILED: "+noDocker+" ***")
			t.Fatalf("%s; with %s that is a failure, not a skip: start Docker (`docker version` must answer)", noDocker, why)
		}
		fmt.Fprintln(os.Stderr, "\n*** SKIPPED: "+noDocker+" ***")
		t.Skip("SKIPPED: " + noDocker)
	}
	if labErr != nil {
		t.Fatalf("start the container lab: %v", labErr)
	}
	return theLab
}

// dockerRequired says why a missing Docker engine must fail the tests
// rather than skip them (CI=true, or S3MESH_REQUIRE_DOCKER=1), or "" when a
// skip is allowed (a developer machine).
func dockerRequired() string {
	if ci := os.Getenv("CI"); strings.EqualFold(ci, "true") || ci == "1" {
		return "CI=" + ci
	}
	if os.Getenv("S3MESH_REQUIRE_DOCKER") == "1" {
		return "S3MESH_REQUIRE_DOCKER=1"
	}
	return ""
}

// site is one site's three long-running containers.
type site struct {
	name              string
	nats, s3, agent   testcontainers.Container
	natsReq, agentReq testcontainers.GenericContainerRequest
}

type lab struct {
	cli     *testcontainers.DockerClient
	run     string // random suffix of every name the lab creates
	mesh    *testcontainers.DockerNetwork
	nets    map[string]*testcontainers.DockerNetwork // per site
	sites   map[string]*site
	volumes []string
	created []testcontainers.Container // every container, for close
	root    string                     // the repository root
	secrets map[string]string
	// secretMu guards the broker passwords in secrets (secret).
	secretMu sync.Mutex
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test directory")
		}
		dir = parent
	}
}

// ensureImage builds s3mesh:local with `make images` every time, so the
// containers run the code under test, never a stale image (the Go build
// cache makes a rebuild quick). An image is never pulled: testcontainers
// pulls only missing images, and this one exists once built.
func ensureImage(ctx context.Context, cli *testcontainers.DockerClient, root string) error {
	cmd := exec.CommandContext(ctx, "make", "images")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("`make images` failed (image %s): %w", Image, err)
	}
	_, err := cli.ImageInspect(ctx, Image)
	return err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loopbackPorts publishes the given container ports on 127.0.0.1 only, on
// ports Docker picks.
func loopbackPorts(ports ...string) func(*container.HostConfig) {
	return func(hc *container.HostConfig) {
		hc.PortBindings = mnet.PortMap{}
		for _, p := range ports {
			hc.PortBindings[mnet.MustParsePort(p)] = []mnet.PortBinding{{HostIP: mustAddr("127.0.0.1")}}
		}
	}
}

func startLab(ctx context.Context, cli *testcontainers.DockerClient) (l *lab, err error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if err := ensureImage(ctx, cli, root); err != nil {
		return nil, err
	}
	l = &lab{cli: cli, run: randHex(4), nets: map[string]*testcontainers.DockerNetwork{},
		sites: map[string]*site{}, root: root, secrets: map[string]string{}}
	defer func() {
		if err != nil {
			l.close()
			l = nil
		}
	}()
	if l.mesh, err = network.New(ctx); err != nil {
		return l, fmt.Errorf("network mesh: %w", err)
	}
	for _, s := range siteNames {
		if l.nets[s], err = network.New(ctx); err != nil {
			return l, fmt.Errorf("network site-%s: %w", s, err)
		}
		l.secrets[s] = "test-secret-" + s + "-" + randHex(8)
		l.sites[s] = &site{name: s}
	}
	// Brokers first (versitygw needs its event sink at start), then the
	// stores and their buckets, then the agents.
	for _, s := range siteNames {
		if err := l.startNATS(ctx, l.sites[s]); err != nil {
			return l, err
		}
	}
	for _, s := range siteNames {
		if err := l.startS3(ctx, l.sites[s]); err != nil {
			return l, err
		}
		// The bucket and the peers' read-only users (compose's init-<site>).
		if err := l.initSite(ctx, s); err != nil {
			return l, err
		}
	}
	// Every site's own streams and mirror-feeding consumers before any agent
	// creates a mirror (as compose's init-streams-<site> do).
	for _, s := range siteNames {
		if err := l.initStreams(ctx, s); err != nil {
			return l, err
		}
	}
	// Agents concurrently: each creates its mirrors of the peers' streams.
	var wg sync.WaitGroup
	errs := make([]error, len(siteNames))
	for i, s := range siteNames {
		st := l.sites[s]
		st.agentReq = l.agentRequest(s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.startAgent(ctx, st)
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return l, e
		}
	}
	// Warm-up: one object written at every site must reach every site
	// before the tests start (it proves every leaf link and mirror works).
	if err := l.warmUp(ctx, 60*time.Second); err != nil {
		l.dumpLogs(ctx)
		return l, err
	}
	return l, nil
}

func (l *lab) warmUp(ctx context.Context, timeout time.Duration) error {
	g := newLedger()
	for _, s := range siteNames {
		c, err := l.s3(ctx, s)
		if err != nil {
			return err
		}
		if err := g.put(ctx, c, "warm-up/"+s, []byte("warm-up written at "+s)); err != nil {
			return fmt.Errorf("warm-up write at %s: %w", s, err)
		}
	}
	start := time.Now()
	for {
		problem := l.divergence(ctx, g)
		if problem == "" {
			fmt.Fprintf(os.Stderr, "containers: lab up, warm-up replicated everywhere in %v\n", time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("warm-up: no convergence after %v: %s", timeout, problem)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// dumpLogs prints the last lines of every container's log (on failure).
func (l *lab) dumpLogs(ctx context.Context) {
	for _, c := range l.created {
		rc, err := c.Logs(ctx)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		name, _ := c.Name(ctx)
		fmt.Fprintf(os.Stderr, "----- %s (last %d lines)\n%s\n", name, len(lines), strings.Join(lines, "\n"))
	}
}

// aliases gives a container the compose service name on its site network
// and on the mesh network (so the docker/ config files work unchanged).
func (l *lab) aliases(s, name string) (nets []string, al map[string][]string) {
	sn, mn := l.nets[s].Name, l.mesh.Name
	// The site network first: published ports are bound through it, so a
	// container cut off the mesh stays reachable from the test.
	// <name>.site only on the site network: the site's own traffic (agent
	// to broker and store, store to broker) never crosses the mesh, as in
	// docker-compose.yml, so cutting a site off the mesh leaves it whole.
	return []string{sn, mn}, map[string][]string{sn: {name, name + ".site"}, mn: {name}}
}

func (l *lab) volume(name string) testcontainers.ContainerMount {
	v := "s3mesh-test-" + l.run + "-" + name
	l.volumes = append(l.volumes, v)
	return testcontainers.VolumeMount(v, testcontainers.ContainerMountTarget("/data"))
}

func (l *lab) start(ctx context.Context, req testcontainers.GenericContainerRequest) (testcontainers.Container, error) {
	req.Started = true
	c, err := testcontainers.GenericContainer(ctx, req)
	if c != nil {
		l.created = append(l.created, c)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", req.Name, err)
	}
	return c, nil
}

func (l *lab) startNATS(ctx context.Context, st *site) error {
	nets, al := l.aliases(st.name, "nats-"+st.name)
	st.natsReq = testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
		Image:          Image,
		Name:           "s3mesh-test-" + l.run + "-nats-" + st.name,
		Entrypoint:     []string{"/nats-server"},
		Cmd:            []string{"-c", "/etc/nats/nats.conf"},
		Env:            natsEnv(st.name, l.secret),
		Networks:       nets,
		NetworkAliases: al,
		Mounts:         testcontainers.Mounts(l.volume("nats-" + st.name)),
		Files: []testcontainers.ContainerFile{{
			HostFilePath: filepath.Join(l.root, "docker", "nats-"+st.name+".conf"), ContainerFilePath: "/etc/nats/nats.conf", FileMode: 0o644}},
		ExposedPorts:       []string{"4222/tcp"},
		HostConfigModifier: loopbackPorts("4222/tcp"),
		WaitingFor: wait.ForExec([]string{"/s3mesh", "probe", "--ok200", "http://127.0.0.1:8222/healthz"}).
			WithPollInterval(300 * time.Millisecond).WithStartupTimeout(60 * time.Second),
	}}
	c, err := l.start(ctx, st.natsReq)
	st.nats = c
	return err
}

func (l *lab) startS3(ctx context.Context, st *site) error {
	s := st.name
	nets, al := l.aliases(s, "s3-"+s)
	c, err := l.start(ctx, testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
		Image:      Image,
		Name:       "s3mesh-test-" + l.run + "-s3-" + s,
		Entrypoint: []string{"/versitygw"},
		Cmd: []string{"--port=:7070", "--region=us-east-1", "--keep-alive", "--quiet",
			"--event-nats-topic=s3mesh.events." + s + ".nats", "--iam-dir=/iam",
			"posix", "/data"},
		Env: map[string]string{"ROOT_ACCESS_KEY_ID": "s3mesh-" + s, "ROOT_SECRET_ACCESS_KEY": l.secrets[s],
			"VGW_EVENT_NATS_URL": "nats://events:" + l.secret("NATS_EVENTS_"+strings.ToUpper(s)) + "@nats-" + s + ".site:4222"},
		Networks:       nets,
		NetworkAliases: al,
		Mounts: testcontainers.Mounts(l.volume("s3-"+s), testcontainers.VolumeMount(l.volName("s3-iam-"+s),
			testcontainers.ContainerMountTarget("/iam"))),
		ExposedPorts:       []string{"7070/tcp"},
		HostConfigModifier: loopbackPorts("7070/tcp"),
		WaitingFor: wait.ForExec([]string{"/s3mesh", "probe", "http://127.0.0.1:7070/"}).
			WithPollInterval(300 * time.Millisecond).WithStartupTimeout(60 * time.Second),
	}})
	st.s3 = c
	return err
}

func (l *lab) agentRequest(s string) testcontainers.GenericContainerRequest {
	nets, al := l.aliases(s, "agent-"+s)
	env := l.siteEnv(s) // site s's secrets only, as in docker-compose.yml
	// The compose file's site config, with a short rescan so a lost event
	// is repaired within the test's time.
	return testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
		Image:          Image,
		Name:           "s3mesh-test-" + l.run + "-agent-" + s,
		Cmd:            []string{"agent", "--config", "/etc/s3mesh/site.yaml"},
		Env:            env,
		Networks:       nets,
		NetworkAliases: al,
		Mounts: testcontainers.Mounts(testcontainers.VolumeMount(l.volName("agent-"+s),
			testcontainers.ContainerMountTarget("/state"))),
		Files: []testcontainers.ContainerFile{{
			HostFilePath: filepath.Join(l.root, "docker", "site-"+s+".yaml"), ContainerFilePath: "/etc/s3mesh/site.yaml", FileMode: 0o644}},
		ExposedPorts:       []string{"9090/tcp"},
		HostConfigModifier: loopbackPorts("9090/tcp"),
		WaitingFor: wait.ForExec([]string{"/s3mesh", "probe", "--ok200", "http://127.0.0.1:9090/healthz"}).
			WithPollInterval(300 * time.Millisecond).WithStartupTimeout(90 * time.Second),
	}}
}

// secret returns the lab's random secret of that name (a broker or link
// password), the same on every call.
func (l *lab) secret(name string) string {
	l.secretMu.Lock()
	defer l.secretMu.Unlock()
	if v, ok := l.secrets["var:"+name]; ok {
		return v
	}
	v := "test-" + strings.ToLower(name) + "-" + randHex(12)
	l.secrets["var:"+name] = v
	return v
}

func (l *lab) volName(name string) string {
	v := "s3mesh-test-" + l.run + "-" + name
	l.volumes = append(l.volumes, v)
	return v
}

func (l *lab) startAgent(ctx context.Context, st *site) error {
	c, err := l.start(ctx, st.agentReq)
	st.agent = c
	return err
}

// s3 returns a client for site s's store through its published port.
func (l *lab) s3(ctx context.Context, s string) (*s3io.Client, error) {
	// The ports are published on 127.0.0.1 (testcontainers' Host() may
	// name another address of the engine, not bound here).
	p, err := l.sites[s].s3.MappedPort(ctx, "7070/tcp")
	if err != nil {
		return nil, err
	}
	ep := fmt.Sprintf("http://127.0.0.1:%d", p.Num())
	return s3io.New(s3io.Endpoint{URL: ep, AccessKey: "s3mesh-" + s, SecretKey: l.secrets[s], PathStyle: true},
		s3io.WithMaxAttempts(1))
}

// siteEnv is the environment of agent-<s> and init-streams-<s>, as
// docker-compose.yml gives it: site s's store secret, broker password and
// signing seed, and its read-only keys at its peers' stores. Nothing of
// another site.
func (l *lab) siteEnv(s string) map[string]string {
	S := strings.ToUpper(s)
	env := map[string]string{"S3_SECRET_" + S: l.secrets[s], "NATS_PASSWORD_" + S: l.secret("NATS_PASSWORD_" + S)}
	k, v := l.signingEnv(s)
	env[k] = v
	for _, p := range siteNames {
		if p != s {
			env["PEER_S3_SECRET_"+strings.ToUpper(p)] = l.peerSecret(s, p)
		}
	}
	return env
}

// peerSecret is the secret of site s's read-only key (access key
// s3mesh-peer-<s>) at peer p's store.
func (l *lab) peerSecret(s, p string) string {
	return l.secret("PEER_SECRET_" + strings.ToUpper(s) + "_AT_" + strings.ToUpper(p))
}

// initSite runs compose's init-<s>: `s3mesh bucket create` of the bucket
// and of a read-only user per peer at s's store, with s's root key and the
// peers' secrets for it, on s's network only.
func (l *lab) initSite(ctx context.Context, s string) error {
	env := map[string]string{"AWS_ACCESS_KEY_ID": "s3mesh-" + s, "AWS_SECRET_ACCESS_KEY": l.secrets[s]}
	cmd := []string{"bucket", "create", "--endpoint", "http://s3-" + s + ".site:7070", "--bucket", bucket, "--wait", "60s"}
	for _, p := range siteNames {
		if p != s {
			env["READER_SECRET_"+strings.ToUpper(p)] = l.peerSecret(p, s)
			cmd = append(cmd, "--reader", "s3mesh-peer-"+p+"=READER_SECRET_"+strings.ToUpper(p))
		}
	}
	return l.oneShot(ctx, "init-"+s, cmd, env, []string{l.nets[s].Name}, nil)
}

// cut disconnects site s's containers from the mesh network; heal
// reconnects them with their service names as aliases.
func (l *lab) cut(ctx context.Context, s string) error {
	st := l.sites[s]
	for _, c := range []testcontainers.Container{st.nats, st.s3, st.agent} {
		if _, err := l.cli.NetworkDisconnect(ctx, l.mesh.ID, client.NetworkDisconnectOptions{Container: c.GetContainerID(), Force: true}); err != nil {
			return fmt.Errorf("disconnect %s: %w", c.GetContainerID()[:12], err)
		}
	}
	return nil
}

func (l *lab) heal(ctx context.Context, s string) error {
	st := l.sites[s]
	for name, c := range map[string]testcontainers.Container{"nats-" + s: st.nats, "s3-" + s: st.s3, "agent-" + s: st.agent} {
		if _, err := l.cli.NetworkConnect(ctx, l.mesh.ID, client.NetworkConnectOptions{
			Container: c.GetContainerID(), EndpointConfig: &mnet.EndpointSettings{Aliases: []string{name}}}); err != nil {
			return fmt.Errorf("connect %s: %w", name, err)
		}
	}
	return nil
}

// close removes every container, network and volume of the lab.
func (l *lab) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := len(l.created) - 1; i >= 0; i-- {
		if err := testcontainers.TerminateContainer(l.created[i], testcontainers.StopTimeout(0)); err != nil {
			fmt.Fprintln(os.Stderr, "containers: terminate:", err)
		}
	}
	for _, n := range append([]*testcontainers.DockerNetwork{l.mesh}, mapValues(l.nets)...) {
		if n != nil {
			if err := n.Remove(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "containers: remove network:", err)
			}
		}
	}
	for _, v := range l.volumes {
		if _, err := l.cli.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true}); err != nil && !isNotFound(err) {
			fmt.Fprintln(os.Stderr, "containers: remove volume:", err)
		}
	}
	l.cli.Close()
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// initStreams runs compose's init-streams-<s>: `s3mesh streams ensure
// --origin-only` with site s's configuration and secrets only, on s's
// network.
func (l *lab) initStreams(ctx context.Context, s string) error {
	files := []testcontainers.ContainerFile{{HostFilePath: filepath.Join(l.root, "docker", "site-"+s+".yaml"),
		ContainerFilePath: "/etc/s3mesh/site.yaml", FileMode: 0o644}}
	return l.oneShot(ctx, "init-streams-"+s, []string{"streams", "ensure", "--origin-only", "--config", "/etc/s3mesh/site.yaml"},
		l.siteEnv(s), []string{l.nets[s].Name}, files)
}

// oneShot runs a one-shot s3mesh container and waits for it to exit 0.
func (l *lab) oneShot(ctx context.Context, name string, cmd []string, env map[string]string, nets []string, files []testcontainers.ContainerFile) error {
	c, err := l.start(ctx, testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
		Image: Image, Name: "s3mesh-test-" + l.run + "-" + name, Cmd: cmd, Env: env,
		Networks: nets, Files: files,
		WaitingFor: wait.ForExit().WithExitTimeout(90 * time.Second),
	}})
	if err != nil {
		return err
	}
	st, err := c.State(ctx)
	if err != nil {
		return err
	}
	if st.ExitCode != 0 {
		rc, _ := c.Logs(ctx)
		var out []byte
		if rc != nil {
			out, _ = io.ReadAll(rc)
		}
		return fmt.Errorf("%s exited %d: %s", name, st.ExitCode, out)
	}
	return nil
}
