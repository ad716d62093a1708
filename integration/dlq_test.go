package integration

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
)

func (e *env) dlqCount(ctx context.Context, t *testing.T, site string) uint64 {
	t.Helper()
	s, err := e.sites[site].js.Stream(ctx, broker.DLQStream(site))
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

func (e *env) lastDLQ(ctx context.Context, t *testing.T, site string) consumer.DeadLetter {
	t.Helper()
	s, err := e.sites[site].js.Stream(ctx, broker.DLQStream(site))
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, broker.DLQSubjectFilter(site))
	if err != nil {
		t.Fatal(err)
	}
	var dl consumer.DeadLetter
	if err := json.Unmarshal(m.Data, &dl); err != nil {
		t.Fatal(err)
	}
	return dl
}
