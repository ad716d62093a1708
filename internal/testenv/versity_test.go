package testenv

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestRepoRootAndBin(t *testing.T) {
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot %q has no go.mod: %v", root, err)
	}
	bin := VersityBin(t)
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("VersityBin %q not executable: %v", bin, err)
	}
}

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(p)))
	if err != nil {
		t.Fatalf("port %d from FreePort not bindable: %v", p, err)
	}
	l.Close()
}

func TestVersityStopStart(t *testing.T) {
	v := StartVersity(t)
	if v.Endpoint == "" || v.AccessKey == "" || v.SecretKey == "" || v.Region == "" {
		t.Fatalf("incomplete Versity: %+v", v)
	}
	get := func() error {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(v.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("running gateway: %v", err)
	}
	// A bucket is a directory of the posix backend; it must survive a restart.
	if err := os.Mkdir(filepath.Join(v.Dir, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	pid := v.cmd.Process.Pid
	v.Stop()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists after Stop: %v", pid, err)
	}
	if err := get(); err == nil {
		t.Fatal("stopped gateway still answers")
	}
	v.Stop() // idempotent
	v.Start()
	if err := get(); err != nil {
		t.Fatalf("restarted gateway: %v", err)
	}
	if _, err := os.Stat(filepath.Join(v.Dir, "keep")); err != nil {
		t.Fatalf("backend dir lost across restart: %v", err)
	}
}

func TestVersityExtraArgsBadFlag(t *testing.T) {
	// A bad global flag makes versitygw exit; waitHTTP must notice the exit
	// rather than wait for the whole timeout.
	v := &Versity{
		t: t, bin: VersityBin(t), port: FreePort(t), Dir: t.TempDir(),
		AccessKey: VersityAccessKey, SecretKey: VersitySecretKey, Region: VersityRegion,
		extra: []string{"--no-such-flag"}, logPath: filepath.Join(t.TempDir(), "log"),
	}
	v.Endpoint = "http://127.0.0.1:" + itoa(v.port)
	t.Cleanup(v.Stop)
	start := time.Now()
	if err := v.start(); err == nil {
		t.Fatal("start with a bad flag succeeded")
	}
	if d := time.Since(start); d > readyTimeout/2 {
		t.Fatalf("exit noticed only after %v", d)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
