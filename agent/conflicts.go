package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/schema"
)

// conflictLog appends every conflict decision to CONFLICTS_<site> (and logs
// it). A record applied again after a crash decides the same conflict again;
// the message id drops the repeat within the dedup window.
type conflictLog struct {
	site string
	js   jetstream.JetStream
	log  *slog.Logger
}

func (c *conflictLog) Conflict(ctx context.Context, e schema.ConflictEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	id := "conflict:" + e.Winner.ID + ":" + e.Loser.ID + ":" + e.Outcome
	if _, err := c.js.Publish(ctx, broker.ConflictsSubject(c.site), data, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("conflict log: %w", err)
	}
	c.log.Warn("conflict", "bucket", e.Bucket, "key", e.Key, "policy", e.Policy, "outcome", e.Outcome,
		"winner", e.Winner.ID, "loser", e.Loser.ID, "loser_kept_as", e.LoserKeptAs)
	return nil
}
