package agent

import (
	"context"
	"log/slog"

	"github.com/s3mesh/s3mesh/schema"
)

// conflictLogger logs every conflict decision. (The CONFLICTS_<site> stream
// and keep-losers come with the conflicts issue.)
type conflictLogger struct{ log *slog.Logger }

func (c *conflictLogger) Conflict(ctx context.Context, rec *schema.Record, d schema.Decision) error {
	c.log.Warn("conflict decided by lww", "bucket", rec.Bucket, "key", rec.Key,
		"winner", d.Winner.ID, "winner_origin", d.Winner.Origin, "winner_ts", d.Winner.TS,
		"loser", d.Loser.ID, "loser_origin", d.Loser.Origin, "loser_ts", d.Loser.TS)
	return nil
}
