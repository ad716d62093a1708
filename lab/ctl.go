package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// CtlSocket is the control socket's file name inside the lab directory.
const CtlSocket = "ctl.sock"

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// holds 108 bytes including the terminating NUL).
const maxSocketPath = 107

// CtlUsage describes the verbs of Lab.Ctl and `s3mesh lab ctl`.
const CtlUsage = `verbs (X, Y are site names):
  status               JSON: every process (running, pid, starts, log) and every link (cut, delay)
  cut X Y              cut the leaf-node link between X and Y (its proxy closes every connection)
  heal X Y             let the X-Y link connect again
  delay X Y DURATION   add latency to the X-Y link in both directions (0 removes it)
  kill X               SIGKILL site X's agent
  start X              start X's agent again on the same state (waits for /healthz)
  stop-s3 X            stop X's versitygw (it is not restarted until start-s3)
  start-s3 X           start X's versitygw again
  kill-broker X        SIGKILL X's broker (NATS server)
  start-broker X       start X's broker again, then restart X's versitygw so its event sink reconnects
  wipe X [--broker]    lose X's disk: SIGKILL X's agent, delete every bucket and object of X's store
                       and X's per-key state; --broker: X's JetStream store too (its broker restarts
                       empty). X's store keeps serving, empty; the agent stays stopped until start X
  help                 this text`

// ctlRequest and ctlResponse are the socket protocol: POST /v1/ctl with a
// request, answered by a response (HTTP 200 on success, 400 otherwise).
type ctlRequest struct {
	Verb string   `json:"verb"`
	Args []string `json:"args,omitempty"`
}

type ctlResponse struct {
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
}

// maxCtlRequest bounds a request body (a verb and its arguments); a larger
// one is answered 413.
const maxCtlRequest = 64 << 10

// ctlHandler runs one verb.
type ctlHandler func(verb string, args ...string) (string, error)

// ctlServer serves a ctlHandler on a unix socket.
type ctlServer struct {
	path string
	srv  *http.Server
	done chan struct{}
}

// serveCtl listens on the unix socket path (replacing a stale socket file:
// the caller holds the lab directory's lock) and serves h.
func serveCtl(path string, h ctlHandler, log *slog.Logger) (*ctlServer, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("lab: control socket path %s is %d bytes, over the %d-byte limit of unix sockets; use a shorter --dir", path, len(path), maxSocketPath)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lab: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("lab: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("lab: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/ctl", func(w http.ResponseWriter, r *http.Request) {
		var req ctlRequest
		var resp ctlResponse
		code := http.StatusOK
		var tooLarge *http.MaxBytesError
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCtlRequest)).Decode(&req); errors.As(err, &tooLarge) {
			resp.Error, code = fmt.Sprintf("request over %d bytes", maxCtlRequest), http.StatusRequestEntityTooLarge
		} else if err != nil {
			resp.Error, code = "bad request: "+err.Error(), http.StatusBadRequest
		} else if out, err := h(req.Verb, req.Args...); err != nil {
			resp.Output, resp.Error, code = out, err.Error(), http.StatusBadRequest
			log.Info("ctl", "verb", req.Verb, "args", req.Args, "err", err)
		} else {
			resp.Output = out
			if req.Verb != "status" && req.Verb != "help" {
				log.Info("ctl", "verb", req.Verb, "args", req.Args)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(resp)
	})
	s := &ctlServer{
		path: path,
		// A verb runs before its response is written: start X waits for the
		// agent's health, wipe for the broker and versitygw. WriteTimeout
		// (counted from the end of the headers) is therefore the client's
		// ctlTimeout, not shorter; the socket is the lab owner's (0600).
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: ctlTimeout, IdleTimeout: 2 * time.Minute},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// close stops serving (a verb in progress is given a few seconds) and
// removes the socket file.
func (s *ctlServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	_ = os.Remove(s.path)
}

// ctlTimeout bounds one request from CtlClient (start X waits for the
// agent's health, start-broker and wipe for the broker and versitygw).
const ctlTimeout = 5 * time.Minute

// CtlClient runs verb with args in the lab running in dir, over its
// control socket, and returns the verb's output.
func CtlClient(dir string, verb string, args ...string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	path := filepath.Join(abs, CtlSocket)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no lab running in %s (no %s): start one with `s3mesh lab --dir %s`", dir, CtlSocket, dir)
	}
	if len(path) > maxSocketPath {
		return "", fmt.Errorf("control socket path %s is over the %d-byte limit of unix sockets", path, maxSocketPath)
	}
	c := &http.Client{
		Timeout: ctlTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		},
	}
	defer c.CloseIdleConnections()
	body, _ := json.Marshal(ctlRequest{Verb: verb, Args: args})
	resp, err := c.Post("http://lab/v1/ctl", "application/json", bytes.NewReader(body))
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "", fmt.Errorf("no lab running in %s (stale %s)", dir, CtlSocket)
		}
		return "", fmt.Errorf("lab ctl: %w", err)
	}
	defer resp.Body.Close()
	var out ctlResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("lab ctl: bad answer (%s): %w", resp.Status, err)
	}
	if out.Error != "" {
		return out.Output, errors.New(out.Error)
	}
	return out.Output, nil
}

// Ctl runs one control verb (see CtlUsage) and returns its output: the
// same verbs as the control socket, for in-process use.
func (l *Lab) Ctl(verb string, args ...string) (string, error) {
	nargs := map[string]int{
		"help": 0, "status": 0, "cut": 2, "heal": 2, "delay": 3,
		"kill": 1, "start": 1, "stop-s3": 1, "start-s3": 1, "kill-broker": 1, "start-broker": 1,
		"wipe": 1, // and an optional --broker
	}
	n, ok := nargs[verb]
	if !ok {
		return "", fmt.Errorf("unknown verb %q (see help)", verb)
	}
	var wipeBroker bool
	if verb == "wipe" {
		site, withBroker, err := parseWipeArgs(args)
		if err != nil {
			return "", err
		}
		args, wipeBroker = []string{site}, withBroker
	}
	if len(args) != n {
		return "", fmt.Errorf("%s takes %d argument(s), got %d (see help)", verb, n, len(args))
	}
	switch verb {
	case "help":
		return CtlUsage, nil
	case "status":
		b, err := json.MarshalIndent(l.Status(), "", "  ")
		return string(b), err
	case "cut", "heal", "delay":
		lk, err := l.link(args[0], args[1])
		if err != nil {
			return "", err
		}
		switch verb {
		case "cut":
			lk.proxy.Cut()
			return fmt.Sprintf("link %s cut", lk.name()), nil
		case "heal":
			lk.proxy.Heal()
			return fmt.Sprintf("link %s healed", lk.name()), nil
		}
		d, err := time.ParseDuration(args[2])
		if err != nil || d < 0 {
			return "", fmt.Errorf("delay: %q is not a duration such as 200ms", args[2])
		}
		lk.setDelay(d)
		return fmt.Sprintf("link %s delay %v", lk.name(), d), nil
	}
	s, ok := l.byName[args[0]]
	if !ok {
		return "", fmt.Errorf("unknown site %q (sites: %s)", args[0], strings.Join(l.names(), ", "))
	}
	// Process verbs are serialised with each other, with versitygw
	// restarts and with Stop.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return "", errors.New("the lab is stopping")
	}
	switch verb {
	case "kill":
		if !s.agent.kill() {
			return "", fmt.Errorf("site %s: agent is not running", s.name)
		}
		l.writeInfo()
		return fmt.Sprintf("site %s: agent killed", s.name), nil
	case "start":
		if err := l.startAgent(l.ctx, s); err != nil {
			return "", err
		}
		l.writeInfo()
		return fmt.Sprintf("site %s: agent running (pid %d)", s.name, s.agent.pid()), nil
	case "stop-s3":
		s.s3Wanted = false
		if !s.s3.stop(stopGrace) {
			return "", fmt.Errorf("site %s: versitygw is not running", s.name)
		}
		return fmt.Sprintf("site %s: versitygw stopped", s.name), nil
	case "start-s3":
		if err := l.startS3(l.ctx, s); err != nil {
			return "", err
		}
		return fmt.Sprintf("site %s: versitygw running (pid %d)", s.name, s.s3.pid()), nil
	case "kill-broker":
		if !s.broker.kill() {
			return "", fmt.Errorf("site %s: broker is not running", s.name)
		}
		return fmt.Sprintf("site %s: broker killed", s.name), nil
	case "start-broker":
		if err := l.startBroker(l.ctx, s); err != nil {
			return "", err
		}
		msg := fmt.Sprintf("site %s: broker running (pid %d)", s.name, s.broker.pid())
		if !s.s3Wanted {
			return msg + "; versitygw left stopped (start-s3 starts it)", nil
		}
		// versitygw's NATS client gives up after ~2 minutes of outage and
		// then drops every event: restart it so its sink reconnects.
		s.s3.stop(stopGrace)
		if err := l.startS3(l.ctx, s); err != nil {
			return msg, fmt.Errorf("%s, but versitygw did not restart: %w", msg, err)
		}
		return fmt.Sprintf("%s; versitygw restarted (pid %d)", msg, s.s3.pid()), nil
	case "wipe":
		return l.wipeSite(s, wipeBroker)
	}
	return "", fmt.Errorf("verb %q not handled", verb) // unreachable
}
