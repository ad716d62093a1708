package broker

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ContinueChanges makes site's own CHANGES stream continue the sequence its
// peers' mirrors already hold. Mirrors keep their origin's sequence numbers
// and drop every message whose sequence they already hold, so a CHANGES
// stream created again empty (the site's JetStream store was lost) would
// publish records 1, 2, ... that every peer's mirror silently discards until
// the sequence passes the last one it holds (measured with nats-server
// v2.15 in TestRecreatedChangesStreamContinuesSequence).
//
// peerLast is the highest last sequence of any peer's mirror of the stream.
// An empty stream behind it is moved on by purging up to peerLast+1 (the
// server then starts at peerLast+1; its consumers, those feeding the peers'
// mirrors included, are kept). A stream that is behind but holds records
// already published from a lower sequence cannot be repaired: an error.
// It returns the stream's next sequence and whether it moved it.
func ContinueChanges(ctx context.Context, js jetstream.JetStream, site string, peerLast uint64) (uint64, bool, error) {
	name := ChangesStream(site)
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0, false, fmt.Errorf("broker: stream %s: %w", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("broker: stream %s: %w", name, err)
	}
	last := info.State.LastSeq
	if last >= peerLast {
		return last + 1, false, nil
	}
	if info.State.Msgs > 0 {
		return last + 1, false, fmt.Errorf("broker: %s holds records up to %d, but the peers' mirrors of it already hold %d: "+
			"the records from %d on were published again from a lower sequence and the mirrors drop them; "+
			"republish them (s3mesh rebuild after deleting the stream) — the peers do not have them",
			name, last, peerLast, info.State.FirstSeq)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(peerLast+1)); err != nil {
		return 0, false, fmt.Errorf("broker: move %s on to sequence %d: %w", name, peerLast+1, err)
	}
	info, err = s.Info(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("broker: stream %s: %w", name, err)
	}
	if info.State.LastSeq != peerLast {
		return 0, false, fmt.Errorf("broker: %s: purged to %d, but its last sequence is %d", name, peerLast+1, info.State.LastSeq)
	}
	return peerLast + 1, true, nil
}
