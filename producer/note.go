package producer

import (
	"context"
	"log/slog"

	"github.com/s3mesh/s3mesh/lifecycle"
)

// note logs a Note effect of the state machine.
func note(log *slog.Logger, k lifecycle.Key, n lifecycle.Note) {
	lvl := slog.LevelInfo
	if n.Warn {
		lvl = slog.LevelWarn
	}
	log.Log(context.Background(), lvl, n.Msg, append([]any{"bucket", k.Bucket, "key", k.Key}, n.Args...)...)
}
