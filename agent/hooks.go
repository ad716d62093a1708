package agent

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// testHooks are fault injections for the integration tests, read at start
// from the file $S3MESH_TEST_HOOKS_DIR/<site> (one key=value a line). They
// do nothing unless that variable is set; never set it in production.
//
//	crash-after-apply-write=N  SIGKILL this agent at the N-th apply, between the S3 write and the state update
//	crash-after-publish=N      SIGKILL this agent at the N-th publish, between the publish and the state update
//	crash-after-trash=N        SIGKILL this agent at the N-th trash copy, between the copy and the replica write
//	drop-events=1              acknowledge storage events without reading them (a lossy event pipeline)
//	s3-delay=DURATION          delay every request to this site's own S3 (a slow store)
//	clock-skew=DURATION        shift the origin time of this site's writes (a clock running ahead)
//	record-clock-skew=DURATION shift the clock this site checks its peers' record times against (negative: a clock running behind)
type testHooks struct {
	crashAfterApply   int64
	crashAfterPublish int64
	crashAfterTrash   int64
	dropEvents        bool
	s3Delay           time.Duration
	clockSkew         time.Duration
	recordClockSkew   time.Duration
}

func loadHooks(site string) (testHooks, error) {
	var h testHooks
	dir := os.Getenv("S3MESH_TEST_HOOKS_DIR")
	if dir == "" {
		return h, nil
	}
	f, err := os.Open(filepath.Join(dir, site))
	if os.IsNotExist(err) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		var err error
		switch k {
		case "crash-after-apply-write":
			h.crashAfterApply, err = strconv.ParseInt(v, 10, 64)
		case "crash-after-publish":
			h.crashAfterPublish, err = strconv.ParseInt(v, 10, 64)
		case "crash-after-trash":
			h.crashAfterTrash, err = strconv.ParseInt(v, 10, 64)
		case "drop-events":
			h.dropEvents = v == "1" || v == "true"
		case "s3-delay":
			h.s3Delay, err = time.ParseDuration(v)
		case "clock-skew":
			h.clockSkew, err = time.ParseDuration(v)
		case "record-clock-skew":
			h.recordClockSkew, err = time.ParseDuration(v)
		default:
			err = fmt.Errorf("unknown hook")
		}
		if err != nil {
			return h, fmt.Errorf("test hook %q: %v", line, err)
		}
	}
	return h, sc.Err()
}

// recordClock is the clock this site checks its peers' record times
// against (schema.Limits.Now): the wall clock, shifted by the
// record-clock-skew hook.
func (h testHooks) recordClock() time.Time { return time.Now().Add(h.recordClockSkew) }

// crashAt returns a hook that SIGKILLs the process at its n-th call.
func crashAt(n int64) func(string, string) {
	var calls atomic.Int64
	return func(string, string) {
		if calls.Add(1) == n {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never continue past the crash point
		}
	}
}

// slowTransport delays every request (the s3-delay hook).
type slowTransport struct {
	delay time.Duration
	next  http.RoundTripper
}

func (t slowTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case <-time.After(t.delay):
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return t.next.RoundTrip(r)
}
