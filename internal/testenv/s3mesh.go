package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	s3meshOnce sync.Once
	s3meshBin  string
	s3meshErr  error
	s3meshOut  []byte
)

// S3meshBin builds the s3mesh command from the current source once per test
// process (into a temporary directory, so a stale bin/s3mesh is never used)
// and returns its path.
func S3meshBin(t testing.TB) string {
	t.Helper()
	root := RepoRoot(t)
	s3meshOnce.Do(func() {
		dir, err := os.MkdirTemp("", "s3mesh-bin-")
		if err != nil {
			s3meshErr = err
			return
		}
		s3meshBin = filepath.Join(dir, "s3mesh")
		cmd := exec.Command("go", "build", "-o", s3meshBin, "./cmd/s3mesh")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		s3meshOut, s3meshErr = cmd.CombinedOutput()
	})
	if s3meshErr != nil {
		t.Fatalf("testenv: build s3mesh: %v\n%s", s3meshErr, s3meshOut)
	}
	return s3meshBin
}
