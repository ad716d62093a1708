package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/metrics"
	"github.com/s3mesh/s3mesh/producer"
	"github.com/s3mesh/s3mesh/state"
)

// deleteGuard is the site's guard against a peer's mass deletes (config
// deletes:), with the holds its state keeps loaded.
func deleteGuard(cfg *config.Site, st *state.Store, m *metrics.Metrics, log *slog.Logger) (*consumer.DeleteGuard, error) {
	g := &consumer.DeleteGuard{Fraction: cfg.Deletes.MaxFraction, Window: cfg.Deletes.Window, Min: cfg.Deletes.Min,
		Store: st, M: m, Log: log.With("part", "deletes")}
	if err := g.Load(); err != nil {
		return nil, fmt.Errorf("held deletes: %w", err)
	}
	return g, nil
}

// HeldBatch is one peer's held deletes in one bucket, as `s3mesh deletes
// list` shows them.
type HeldBatch struct {
	Peer      string    `json:"peer"`
	Bucket    string    `json:"bucket"`
	Count     int       `json:"count"`
	Since     time.Time `json:"since"`
	FirstKeys []string  `json:"first_keys"`
}

// heldFirstKeys is how many keys of a batch the list names.
const heldFirstKeys = 10

// deletesVerbs are the admin verbs of `s3mesh deletes`. Like every admin
// verb they are served on this site's own broker, on subjects no peer's
// link can reach (broker/links.go).
func (a *Agent) deletesVerbs() map[string]func(context.Context, AdminRequest) (string, error) {
	return map[string]func(context.Context, AdminRequest) (string, error){
		"deletes.list":    a.listHeld,
		"deletes.release": a.releaseHeld,
		"deletes.discard": a.discardHeld,
	}
}

// listHeld answers with the held batches as JSON ([]HeldBatch), of
// req.Peer and req.Bucket if given.
func (a *Agent) listHeld(_ context.Context, req AdminRequest) (string, error) {
	var out []HeldBatch
	idx := map[[2]string]int{}
	err := a.Applier.HeldDeletes(req.Peer, req.Bucket, func(h state.HeldDelete) error {
		k := [2]string{h.Peer, h.Record.Bucket}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, HeldBatch{Peer: h.Peer, Bucket: h.Record.Bucket, Since: time.UnixMilli(h.Since).UTC()})
		}
		b := &out[i]
		b.Count++
		if s := time.UnixMilli(h.Since).UTC(); s.Before(b.Since) {
			b.Since = s
		}
		if len(b.FirstKeys) < heldFirstKeys {
			b.FirstKeys = append(b.FirstKeys, h.Record.Key)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	js, err := json.Marshal(out)
	return string(js), err
}

func (a *Agent) checkHeldRequest(req AdminRequest) error {
	if req.Peer == "" {
		return fmt.Errorf("--peer is required")
	}
	if !slices.Contains(a.cfg.PeerNames(), req.Peer) {
		return fmt.Errorf("--peer %q: not a peer of site %s", req.Peer, a.cfg.Site)
	}
	if req.Bucket != "" && !slices.Contains(a.cfg.BucketNames(), req.Bucket) {
		return fmt.Errorf("--bucket %q: not a replicated bucket", req.Bucket)
	}
	return nil
}

// releaseHeld applies the held deletes of req.Peer (in req.Bucket, or
// every bucket) through the normal apply path, in the order held.
func (a *Agent) releaseHeld(ctx context.Context, req AdminRequest) (string, error) {
	if err := a.checkHeldRequest(req); err != nil {
		return "", err
	}
	res, err := a.Applier.Release(ctx, req.Peer, req.Bucket)
	a.log.Warn("held deletes released by an operator", "peer", req.Peer, "bucket", req.Bucket,
		"released", res.Done, "applied", res.Applied, "skipped", res.Skipped, "failed", len(res.Failed))
	return settledReply(res, err)
}

// discardHeld refuses the held deletes of req.Peer (in req.Bucket, or every
// bucket) for good: each key's object here is published again as this
// site's new version over the delete's clock.
func (a *Agent) discardHeld(ctx context.Context, req AdminRequest) (string, error) {
	if err := a.checkHeldRequest(req); err != nil {
		return "", err
	}
	res, err := a.Applier.Discard(ctx, req.Peer, req.Bucket, func(ctx context.Context, h state.HeldDelete) (bool, error) {
		r, _, err := a.Producer.Refuse(ctx, h.Record.Bucket, h.Record.Key, h.Record.Version)
		return err == nil && r == producer.Published, err
	})
	a.log.Warn("held deletes discarded by an operator: the objects are published again", "peer", req.Peer, "bucket", req.Bucket,
		"discarded", res.Done, "published", res.Applied, "nothing_to_write", res.Skipped, "failed", len(res.Failed))
	return settledReply(res, err)
}

func settledReply(res consumer.Settled, err error) (string, error) {
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(res)
	return string(b), err
}

// heldDeleteWarnings are status warnings for the holds in force.
func heldDeleteWarnings(hs []consumer.HeldSummary) []string {
	var out []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("bucket %s: %d deletes from %s held since %s; `s3mesh deletes list`, then `deletes release --peer %s` or `deletes discard --peer %s`",
			h.Bucket, h.Count, h.Peer, h.Since.Format(time.RFC3339), h.Peer, h.Peer))
	}
	return out
}
