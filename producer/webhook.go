package producer

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// EventPublisher stores a raw event durably (JetStream publish with ack).
type EventPublisher interface {
	PublishEvent(ctx context.Context, source string, data []byte) error
}

// WebhookSource is one webhook event source.
type WebhookSource struct {
	Name     string
	Token    string
	Encoding KeyEncoding
}

// Webhook accepts S3 event notifications over HTTP at POST /events/<source>.
// It requires "Authorization: Bearer <token>" (or the token as the password
// of HTTP basic auth), checks the JSON, and answers
// 200 only once the event is durable in EVENTS_<site>; a client (MinIO, Ceph
// RGW) therefore retries what was not stored.
type Webhook struct {
	Sources map[string]WebhookSource
	Pub     EventPublisher
	Log     *slog.Logger
	OnBad   func(source string) // counts rejected bodies
}

// ErrUnauthorized is the webhook's answer to a missing or wrong token.
var ErrUnauthorized = errors.New("unauthorized")

// MaxEventBytes bounds one webhook request body.
const MaxEventBytes = 1 << 20

// ServeHTTP implements http.Handler.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/events/")
	src, ok := w.Sources[name]
	if !ok || strings.Contains(name, "/") {
		http.Error(rw, "unknown event source", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", "POST")
		http.Error(rw, "POST only", http.StatusMethodNotAllowed)
		return
	}
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found {
		// The token as the password of HTTP basic auth (any user name):
		// for stores whose webhook can only carry credentials in its URL
		// (versitygw: http://s3mesh:TOKEN@host/events/<source>).
		_, tok, found = r.BasicAuth()
	}
	if !found || subtle.ConstantTimeCompare([]byte(tok), []byte(src.Token)) != 1 {
		http.Error(rw, ErrUnauthorized.Error(), http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxEventBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(rw, fmt.Sprintf("event larger than %d bytes", MaxEventBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := ParseEvent(body, src.Encoding); err != nil {
		if w.OnBad != nil {
			w.OnBad(name)
		}
		w.Log.Warn("webhook: event rejected", "source", name, "err", err)
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := w.Pub.PublishEvent(ctx, name, body); err != nil {
		w.Log.Error("webhook: event not stored", "source", name, "err", err)
		http.Error(rw, "event not stored, retry", http.StatusServiceUnavailable)
		return
	}
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write([]byte("stored\n"))
}
