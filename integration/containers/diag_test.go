package containers

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/schema"
)

// diagnose prints, for a failure report, every site's view of its mirrors
// and of the consumers feeding its peers' mirrors (through the NATS port
// published on 127.0.0.1), then the last lines of every container's log.
func (l *lab) diagnose(context.Context) {
	// A fresh context: the test's own may be nearly spent.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range siteNames {
		fmt.Fprintf(os.Stderr, "----- site %s: %s\n", s, l.brokerState(ctx, s))
	}
	l.dumpLogs(ctx)
}

func (l *lab) brokerState(ctx context.Context, s string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := l.sites[s].nats.MappedPort(ctx, "4222/tcp")
	if err != nil {
		return err.Error()
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", p.Num()), nats.Timeout(3*time.Second),
		nats.UserInfo("agent", l.secret("NATS_PASSWORD_"+strings.ToUpper(s))))
	if err != nil {
		return err.Error()
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err.Error()
	}
	var peers []string
	for _, p := range siteNames {
		if p != s {
			peers = append(peers, p)
		}
	}
	out := ""
	ms, err := broker.Mirrors(ctx, js, broker.Topology{Site: s, Peers: peers})
	if err != nil {
		out += "mirrors: " + err.Error()
	}
	for _, m := range ms {
		out += "\n  mirror " + m.String()
	}
	for _, p := range peers {
		c, err := js.Consumer(ctx, broker.ChangesStream(s), broker.MirrorConsumer(p))
		if err != nil {
			out += fmt.Sprintf("\n  consumer %s on %s: %v", broker.MirrorConsumer(p), broker.ChangesStream(s), err)
			continue
		}
		ci := c.CachedInfo()
		out += fmt.Sprintf("\n  consumer %s on %s: delivered=%d ack_floor=%d pending=%d ack_pending=%d push_bound=%v",
			ci.Name, broker.ChangesStream(s), ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumPending, ci.NumAckPending, ci.PushBound)
	}
	return out
}

// publishedAt reports whether site s's own CHANGES stream holds a record of
// key (bucket demo): s's agent saw the write and published it.
func (l *lab) publishedAt(ctx context.Context, s, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := l.sites[s].nats.MappedPort(ctx, "4222/tcp")
	if err != nil {
		return false, err
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", p.Num()), nats.Timeout(3*time.Second),
		nats.UserInfo("agent", l.secret("NATS_PASSWORD_"+strings.ToUpper(s))))
	if err != nil {
		return false, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false, err
	}
	found := false
	err = broker.ReadStream(ctx, js, broker.ChangesStream(s), time.Time{}, func(_ uint64, data []byte) error {
		if r, err := schema.Decode(data); err == nil && r.Bucket == "demo" && r.Key == key {
			found = true
		}
		return nil
	})
	return found, err
}
