package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc supervises one child process (a broker, a versitygw or an agent).
// The child runs in its own process group, with a parent-death signal on
// Linux, and its stdout and stderr are appended to logPath. All methods are
// safe for concurrent use.
type proc struct {
	name    string // "a/agent": for logs, errors and status
	bin     string
	args    []string
	env     []string
	logPath string
	// redact are secrets replaced by [redacted] in the child's output
	// before it reaches logPath (versitygw prints its NATS sink URL,
	// password included).
	redact []string
	log    *slog.Logger
	// onExit, if set, is called in its own goroutine after the child exits
	// without having been asked to (crash, or killed from outside).
	onExit func(p *proc)
	// ready, if set, succeeds once the child serves (see waitReady);
	// readyWhat says what it checks, for errors.
	ready     func(context.Context) error
	readyWhat string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed once cmd is reaped
	stopping bool          // the current exit was requested (kill/stop)
	starts   int
	lastExit string
}

// ProcStatus is the state of one process in Status.
type ProcStatus struct {
	Running  bool   `json:"running"`
	PID      int    `json:"pid,omitempty"`
	Starts   int    `json:"starts"`
	LastExit string `json:"last_exit,omitempty"`
	Log      string `json:"log"`
}

var errRunning = errors.New("already running")

// start starts the child. It does not wait for readiness.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s: %w (pid %d)", p.name, errRunning, p.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	fmt.Fprintf(logf, "=== %s lab: starting %s %s\n", time.Now().Format(time.RFC3339), p.bin, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	var out io.Writer = logf
	var rw *redactWriter
	if len(p.redact) > 0 {
		rw = &redactWriter{w: logf, secrets: p.redact}
		out = rw
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = p.env
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: start %s: %w", p.name, p.bin, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.stopping = cmd, done, false
	p.starts++
	p.log.Debug("process started", "proc", p.name, "pid", cmd.Process.Pid)
	go p.wait(cmd, logf, rw, done)
	return nil
}

func (p *proc) wait(cmd *exec.Cmd, logf *os.File, rw *redactWriter, done chan struct{}) {
	err := cmd.Wait()
	if rw != nil {
		rw.flush()
	}
	// Anything the child left in its group goes with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	exit := "exit status 0"
	if err != nil {
		exit = err.Error()
	}
	fmt.Fprintf(logf, "=== %s lab: %s\n", time.Now().Format(time.RFC3339), exit)
	logf.Close()
	p.mu.Lock()
	unexpected := !p.stopping
	p.cmd, p.lastExit = nil, exit
	p.mu.Unlock()
	close(done)
	if unexpected {
		p.log.Warn("process exited unexpectedly", "proc", p.name, "pid", cmd.Process.Pid, "exit", exit, "log", p.logPath)
		if p.onExit != nil {
			go p.onExit(p)
		}
	}
}

// pid returns the child's pid, 0 if it is not running.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) running() bool { return p.pid() != 0 }

// exited returns a channel closed when the current child exits (already
// closed if none runs).
func (p *proc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.done
}

func (p *proc) status() ProcStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := ProcStatus{Starts: p.starts, LastExit: p.lastExit, Log: p.logPath}
	if p.cmd != nil {
		st.Running, st.PID = true, p.cmd.Process.Pid
	}
	return st
}

// kill sends SIGKILL to the child's process group and waits for it to be
// reaped. It reports whether a child was running.
func (p *proc) kill() bool { return p.stop(0) }

// stop sends SIGTERM to the child's process group, waits up to grace, then
// sends SIGKILL (at once if grace is 0), and waits until the child is
// reaped. It reports whether a child was running.
func (p *proc) stop(grace time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd != nil {
		p.stopping = true
	}
	p.mu.Unlock()
	if cmd == nil {
		return false
	}
	pgid := cmd.Process.Pid
	if grace > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
			return true
		case <-time.After(grace):
			p.log.Warn("process ignored SIGTERM, killing it", "proc", p.name, "pid", pgid, "grace", grace)
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-done
	return true
}

// waitReady polls check until it succeeds, the process exits, ctx ends or
// timeout passes. The error names the process and its log, with the log's
// last lines.
func (p *proc) waitReady(ctx context.Context, what string, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	exited := p.exited()
	delay := 10 * time.Millisecond
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		var why string
		select {
		case <-exited:
			why = fmt.Sprintf("exited (%s) before %s", p.status().LastExit, what)
		case <-ctx.Done():
			why = fmt.Sprintf("not %s after %v (last error: %v)", what, timeout, last)
		case <-time.After(delay):
			delay = min(2*delay, 250*time.Millisecond)
			continue
		}
		return fmt.Errorf("%s %s; see %s\n%s", p.name, why, p.logPath, indent(tail(p.logPath, 12)))
	}
}

// checkNATS succeeds once a NATS server answers on addr (it sends its INFO
// line first on every connection).
func checkNATS(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetReadDeadline(dl)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "INFO ") {
			return fmt.Errorf("not a NATS server: %.40q", line)
		}
		return nil
	}
}

var readyClient = &http.Client{Timeout: 2 * time.Second}

// checkHTTP succeeds once url answers HTTP; with want200, only a 200 counts.
func checkHTTP(url string, want200 bool) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := readyClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if want200 && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// tail returns about the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > 16<<10 {
		b = b[len(b)-16<<10:]
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func indent(s string) string { return "    | " + strings.ReplaceAll(s, "\n", "\n    | ") }

// childEnv is the environment of every child: the lab's own, minus
// credentials and settings that would change how versitygw or the AWS SDK
// behave, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if hasAnyPrefix(kv, "ROOT_ACCESS_KEY", "ROOT_SECRET", "VGW_", "AWS_", "WEBHOOK=", "LOGFILE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// redactWriter writes whole lines to w with every secret replaced. A line
// is held until its newline (or flush), so a secret split across two
// writes is still found.
type redactWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
	partial []byte
}

func (r *redactWriter) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partial = append(r.partial, b...)
	if i := bytes.LastIndexByte(r.partial, '\n'); i >= 0 {
		if _, err := r.w.Write(r.redacted(r.partial[:i+1])); err != nil {
			return 0, err
		}
		r.partial = append(r.partial[:0], r.partial[i+1:]...)
	}
	return len(b), nil
}

func (r *redactWriter) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.partial) > 0 {
		_, _ = r.w.Write(r.redacted(r.partial))
		r.partial = r.partial[:0]
	}
}

func (r *redactWriter) redacted(b []byte) []byte {
	for _, s := range r.secrets {
		if s != "" {
			b = bytes.ReplaceAll(b, []byte(s), []byte("[redacted]"))
		}
	}
	return b
}
