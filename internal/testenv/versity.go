package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Credentials and region every test versitygw is started with.
const (
	VersityAccessKey = "s3mesh-test-access"
	VersitySecretKey = "s3mesh-test-secret-key"
	VersityRegion    = "us-east-1"
)

// readyTimeout bounds how long StartVersity and Start wait for the gateway
// to answer HTTP.
const readyTimeout = 30 * time.Second

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error

	binMu sync.Mutex // serialises builds inside one test binary
)

// RepoRoot returns the directory holding go.mod, found by walking up from the
// current working directory. It fails the test if there is none.
func RepoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("testenv: no go.mod above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("testenv: repo root: %v", rootErr)
	}
	return rootDir
}

// VersityBin returns the path of bin/versitygw at the repo root. If the
// binary is missing it is built with the version pinned in go.mod.
func VersityBin(t testing.TB) string {
	t.Helper()
	return toolBin(t, "versitygw", "", "github.com/versity/versitygw/cmd/versitygw")
}

// toolBin returns bin/<name> at the repo root, building pkg (in the module
// at dir, relative to the root) first if it is missing. Builds go to a
// temporary name and are renamed into place, so test binaries of several
// packages running at once never see a half-written file.
func toolBin(t testing.TB, name, dir, pkg string) string {
	t.Helper()
	root := RepoRoot(t)
	bin := filepath.Join(root, "bin", name)
	binMu.Lock()
	defer binMu.Unlock()
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-trimpath", "-o", tmp, pkg)
	cmd.Dir = filepath.Join(root, dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		t.Fatalf("testenv: building %s: %v\n%s", name, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		_ = os.Remove(tmp)
		t.Fatalf("testenv: installing %s: %v", name, err)
	}
	return bin
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Versity is a versitygw process with a posix backend, listening on
// loopback. It is stopped automatically when the test ends.
type Versity struct {
	Endpoint  string // http://127.0.0.1:<port>
	Region    string
	AccessKey string
	SecretKey string
	Dir       string // posix backend root; each sub-directory is a bucket

	t       testing.TB
	bin     string
	port    int
	extra   []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
}

// StartVersity starts versitygw on a free loopback port with a fresh backend
// directory and waits until it answers HTTP. extraArgs are global options
// placed before the "posix" command, e.g. "--event-nats-url", url,
// "--event-nats-topic", subject. The server is killed when the test ends.
func StartVersity(t testing.TB, extraArgs ...string) *Versity {
	t.Helper()
	bin := VersityBin(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "posix")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	v := &Versity{
		Region:    VersityRegion,
		AccessKey: VersityAccessKey,
		SecretKey: VersitySecretKey,
		Dir:       dir,
		t:         t,
		bin:       bin,
		extra:     append([]string(nil), extraArgs...),
		logPath:   filepath.Join(tmp, "versitygw.log"),
	}
	t.Cleanup(v.Stop)
	// The port from FreePort can be taken by someone else before versitygw
	// binds it; try a few ports before giving up.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		v.port = FreePort(t)
		v.Endpoint = "http://127.0.0.1:" + strconv.Itoa(v.port)
		if err = v.start(); err == nil {
			return v
		}
		v.Stop()
	}
	t.Fatalf("testenv: versitygw did not start: %v", err)
	return nil
}

// LogTail returns the last n bytes of the gateway's log (stdout and
// stderr of every run), for failure reports.
func (v *Versity) LogTail(n int) string { return tail(v.logPath, n) }

// Port returns the TCP port the gateway listens on.
func (v *Versity) Port() int { return v.port }

// Start restarts a stopped gateway on the same port and directory and waits
// until it answers HTTP. It fails the test if the gateway does not come up.
func (v *Versity) Start() {
	v.t.Helper()
	if err := v.start(); err != nil {
		v.t.Fatalf("testenv: restarting versitygw: %v", err)
	}
}

// Stop kills the gateway (SIGKILL to its process group) and waits for it to
// exit. Stopping a stopped gateway does nothing.
func (v *Versity) Stop() {
	v.mu.Lock()
	cmd, done := v.cmd, v.done
	v.cmd, v.done = nil, nil
	v.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

func (v *Versity) args() []string {
	args := []string{
		"--port", "127.0.0.1:" + strconv.Itoa(v.port),
		"--access", v.AccessKey,
		"--secret", v.SecretKey,
		"--region", v.Region,
		"--keep-alive",
		"--quiet",
	}
	args = append(args, v.extra...)
	return append(args, "posix", v.Dir)
}

func (v *Versity) start() error {
	v.mu.Lock()
	running := v.cmd != nil
	v.mu.Unlock()
	if running {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(v.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(v.bin, v.args()...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Keep credentials out of the environment the child inherits from
	// the developer's shell; they are passed as flags.
	cmd.Env = filteredEnv()
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	v.mu.Lock()
	v.cmd, v.done = cmd, done
	v.mu.Unlock()

	if err := waitHTTP(v.Endpoint, done, readyTimeout); err != nil {
		return fmt.Errorf("%w\n--- versitygw log ---\n%s", err, tail(v.logPath, 4096))
	}
	return nil
}

// waitHTTP polls url until any HTTP response arrives, the process exits
// (done closes) or the timeout passes.
func waitHTTP(url string, done <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	delay := 5 * time.Millisecond
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil // any status (403 without signature) means it serves
		}
		select {
		case <-done:
			return errors.New("versitygw exited before answering HTTP")
		case <-ctx.Done():
			return fmt.Errorf("versitygw not answering on %s after %v: %v", url, timeout, err)
		case <-time.After(delay):
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if hasAnyPrefix(kv, "ROOT_ACCESS_KEY", "ROOT_SECRET", "VGW_", "AWS_", "WEBHOOK=", "LOGFILE=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// RcloneBin returns bin/rclone, building it first if missing (`make build`
// does too): the pinned rclone of tools/rclone, whose `serve s3` is the
// lab's second S3 implementation.
func RcloneBin(t testing.TB) string {
	t.Helper()
	return toolBin(t, "rclone", filepath.Join("tools", "rclone"), "github.com/rclone/rclone")
}

// MinioBin returns bin/minio, building it first if missing (`make stores`
// does too): the pinned MinIO server of tools/minio, a store of the mixed
// lab (`s3mesh lab --stores minio,...`). The build takes minutes (docs/stores.md).
//
// It builds bin/minio-users beside it too, which the lab runs to make the
// peers' read-only MinIO users.
func MinioBin(t testing.TB) string {
	t.Helper()
	toolBin(t, "minio-users", filepath.Join("tools", "minio"), "./users")
	return toolBin(t, "minio", filepath.Join("tools", "minio"), "github.com/minio/minio")
}

// WeedBin returns bin/weed, building it first if missing (`make stores`
// does too): the pinned SeaweedFS of tools/seaweedfs, whose `weed server
// -s3` is a store of the mixed lab. The build takes minutes (docs/stores.md).
func WeedBin(t testing.TB) string {
	t.Helper()
	return toolBin(t, "weed", filepath.Join("tools", "seaweedfs"), "github.com/seaweedfs/seaweedfs/weed")
}
