package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestCtlSocketLimits: a request over maxCtlRequest is answered 413 and
// runs no verb, one just under it runs; every timeout of the server is set
// and a verb may take as long as CtlClient waits for it.
func TestCtlSocketLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), CtlSocket)
	ran := make(chan string, 4)
	srv, err := serveCtl(path, func(verb string, args ...string) (string, error) { ran <- verb; return "ok", nil }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	post := func(body []byte) (int, ctlResponse) {
		t.Helper()
		r, err := c.Post("http://lab/v1/ctl", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		var resp ctlResponse
		if err := json.Unmarshal(b, &resp); err != nil {
			t.Fatalf("%d %q: %v", r.StatusCode, b, err)
		}
		return r.StatusCode, resp
	}
	// A JSON request led by spaces to n bytes (the decoder reads them all:
	// it stops at the end of the value).
	padded := func(n int) []byte {
		b := []byte(`{"verb":"status"}`)
		return append(bytes.Repeat([]byte(" "), n-len(b)), b...)
	}
	if code, resp := post(padded(maxCtlRequest + 1)); code != http.StatusRequestEntityTooLarge || !strings.Contains(resp.Error, "request over") {
		t.Errorf("request over the limit: %d %+v, want 413", code, resp)
	}
	if code, resp := post(padded(maxCtlRequest)); code != http.StatusOK || resp.Output != "ok" {
		t.Errorf("request at the limit: %d %+v, want 200", code, resp)
	}
	if v := <-ran; v != "status" {
		t.Errorf("ran %q", v)
	}
	select {
	case v := <-ran:
		t.Errorf("ran %q a second time: the request over the limit ran", v)
	default:
	}
	s := srv.srv
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout < s.ReadHeaderTimeout || s.IdleTimeout <= 0 || s.WriteTimeout < ctlTimeout {
		t.Errorf("timeouts: header %v, read %v, write %v (want >= ctlTimeout %v), idle %v",
			s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, ctlTimeout, s.IdleTimeout)
	}
}
