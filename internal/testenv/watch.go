package testenv

import (
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
)

// Canary records the subjects of the messages that reach a connection on
// subjects an attack must never reach.
type Canary struct {
	mu   sync.Mutex
	seen []string
}

// Watch subscribes nc to subjects until the test ends and records every
// message whose payload is mark (every message, with mark ""), so that the
// legitimate traffic on the same subjects can be told apart.
func Watch(t testing.TB, nc *nats.Conn, mark string, subjects ...string) *Canary {
	t.Helper()
	c := &Canary{}
	for _, s := range subjects {
		sub, err := nc.Subscribe(s, func(m *nats.Msg) {
			if mark != "" && string(m.Data) != mark {
				return
			}
			c.mu.Lock()
			c.seen = append(c.seen, m.Subject)
			c.mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Got returns the subjects recorded so far.
func (c *Canary) Got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}
