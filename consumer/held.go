package consumer

import (
	"context"
	"errors"
	"fmt"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// ErrNoGuard: the applier holds no deletes (no delete guard).
var ErrNoGuard = errors.New("this site holds no deletes (no delete guard)")

// hold keeps a delete the state machine held: durable before the record is
// acknowledged. The caller holds the key's lock.
func (a *Applier) hold(k lifecycle.Key, h lifecycle.Hold) error {
	if a.Guard == nil {
		return fmt.Errorf("hold %s/%s: %w", k.Bucket, k.Key, ErrNoGuard)
	}
	peer := h.Record.Version.Origin
	_, added, err := a.Store.HoldDelete(peer, h.Record, a.Now())
	if err == nil && added {
		a.Guard.heldOne(peer, k.Bucket, k.Key, a.Now())
	}
	return err
}

// dropSuperseded forgets the held deletes of k that the key's entry e has
// moved past (lifecycle.Superseded): a later version of the key went
// through. The caller holds the key's lock.
func (a *Applier) dropSuperseded(k lifecycle.Key, e state.Entry) error {
	if a.Guard == nil || !a.Guard.anyHeld() {
		return nil
	}
	hs, err := a.Store.HeldFor(k.Bucket, k.Key)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if !lifecycle.Superseded(e.Clock, h.Record.Version) {
			continue
		}
		if err := a.forgetHeld(h); err != nil {
			return err
		}
		a.Log.Info("held delete superseded by a later version of the key: dropped",
			"peer", h.Peer, "bucket", k.Bucket, "key", k.Key, "delete", h.Record.Version.ID, "clock", e.Clock.String())
	}
	return nil
}

// forgetHeld drops h from the state and the guard's counts.
func (a *Applier) forgetHeld(h state.HeldDelete) error {
	gone, err := a.Store.DropHeld(h)
	if err == nil && gone {
		a.Guard.dropped(h.Peer, h.Record.Bucket)
	}
	return err
}

// HeldDeletes calls fn with the held deletes of peer ("" for all) in bucket
// ("" for all), each group in the order held.
func (a *Applier) HeldDeletes(peer, bucket string, fn func(state.HeldDelete) error) error {
	return a.Store.ScanHeld(peer, bucket, fn)
}

// Settled is what a release or discard did.
type Settled struct {
	Done    int      `json:"done"`    // held deletes handled
	Applied int      `json:"applied"` // release: deletes applied; discard: objects published again
	Skipped int      `json:"skipped"` // superseded, or nothing to do
	Failed  []string `json:"failed,omitempty"`
}

// Release applies peer's held deletes in bucket ("" for every bucket)
// through the normal apply path, in the order they were held: a delete a
// later version of its key has superseded is skipped by the normal
// decision. A delete that fails stays held (its error is in Failed); a
// failure of the state store stops the release.
func (a *Applier) Release(ctx context.Context, peer, bucket string) (Settled, error) {
	return a.settle(ctx, peer, bucket, func(h state.HeldDelete) (bool, error) {
		rec := h.Record
		d, err := a.applyGuarded(ctx, &rec, false)
		if err != nil {
			return false, err
		}
		return d.Outcome == schema.Apply || d.Outcome == schema.ApplyWinner, nil
	})
}

// Discard refuses peer's held deletes in bucket ("" for every bucket) for
// good: refuse writes each key's object again as this site's own new
// version (the producer's Refuse) and reports whether it wrote one. A
// delete with nothing to write again (the key moved past it, or its object
// is gone here too) takes the normal apply path instead, so its clock is
// merged like any record's (a superseded one is skipped there).
func (a *Applier) Discard(ctx context.Context, peer, bucket string, refuse func(ctx context.Context, h state.HeldDelete) (bool, error)) (Settled, error) {
	return a.settle(ctx, peer, bucket, func(h state.HeldDelete) (bool, error) {
		did, err := refuse(ctx, h)
		if err != nil || did {
			return did, err
		}
		rec := h.Record
		_, err = a.applyGuarded(ctx, &rec, false)
		return false, err
	})
}

func (a *Applier) settle(ctx context.Context, peer, bucket string, do func(state.HeldDelete) (bool, error)) (Settled, error) {
	var out Settled
	if a.Guard == nil {
		return out, ErrNoGuard
	}
	if peer == "" {
		return out, errors.New("a peer is required")
	}
	var hs []state.HeldDelete
	if err := a.Store.ScanHeld(peer, bucket, func(h state.HeldDelete) error {
		hs = append(hs, h)
		return nil
	}); err != nil {
		return out, err
	}
	groups := map[string]bool{}
	for _, h := range hs {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("stopped after %d of %d held deletes (the rest stay held: run the command again to go on): %w", out.Done, len(hs), err)
		}
		groups[h.Record.Bucket] = true
		did, err := do(h)
		if err != nil {
			out.Failed = append(out.Failed, fmt.Sprintf("%s/%s: %v", h.Record.Bucket, h.Record.Key, err))
			continue
		}
		if err := a.forgetHeld(h); err != nil {
			return out, err
		}
		out.Done++
		if did {
			out.Applied++
		} else {
			out.Skipped++
		}
	}
	for b := range groups {
		a.Guard.settled(peer, b)
	}
	return out, nil
}
