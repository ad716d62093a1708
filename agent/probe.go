package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/s3mesh/s3mesh/s3io"
)

// probeStore finds out once, with a few small objects under
// s3io.ProbePrefix in the first replicated bucket, what the site's store
// supports (status shows it). It retries while the store cannot be
// reached. A store that ignores conditional writes is refused unless
// s3.unconditional_writes accepts the weaker mode.
func (a *Agent) probeStore(ctx context.Context) error {
	bucket := a.cfg.BucketNames()[0]
	delay, warned := time.Second, time.Time{}
	for {
		caps, err := a.local.Probe(ctx, bucket, a.cfg.Site)
		if ctx.Err() != nil {
			// Stopped mid-probe: what the probe found is the cancellation,
			// not the store.
			return nil
		}
		if err == nil {
			a.caps.Store(&caps)
			a.local.TrustContentMD5(caps.ContentMD5)
			if err := a.judge(caps); err != nil {
				return err
			}
			// The weaker mode only for the writes the store ignores the
			// conditions of (the probe saw the store itself: the client
			// emulates nothing before this).
			if a.cfg.S3.UnconditionalWrites {
				a.local.EmulateConditions(!caps.ConditionalPut, !caps.ConditionalDelete)
			}
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(warned) > 30*time.Second {
			a.log.Warn("probing the store: not reachable or not writable yet; nothing is applied until it is", "bucket", bucket, "err", err)
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// judge decides whether the agent may apply records to a store with caps.
func (a *Agent) judge(caps s3io.Capabilities) error {
	a.log.Info("store probed", "conditional_put", caps.ConditionalPut, "conditional_delete", caps.ConditionalDelete,
		"metadata_bytes", caps.MetadataBytes, "key_bytes", caps.KeyBytes, "unicode_keys", caps.Unicode, "content_md5", caps.ContentMD5, "notes", caps.Notes)
	switch {
	case !caps.Conditional() && !a.cfg.S3.UnconditionalWrites:
		return fmt.Errorf("the store at %s does not honour conditional writes (%v): applying records there could overwrite local writes unseen; "+
			"use a store that does, or accept the weaker mode with s3.unconditional_writes: true (docs/stores.md)", a.cfg.S3.Endpoint, caps.Notes)
	case caps.Conditional() && a.cfg.S3.UnconditionalWrites:
		a.log.Warn("s3.unconditional_writes is set but the store honours conditional writes: remove it (it changes nothing here)")
	case !caps.Conditional():
		var weak []string
		if !caps.ConditionalPut {
			weak = append(weak, "PUT")
		}
		if !caps.ConditionalDelete {
			weak = append(weak, "DELETE")
		}
		a.log.Warn("s3.unconditional_writes: the store ignores the conditions of "+strings.Join(weak, " and ")+
			": those replica writes are checked by a HEAD first and then sent unconditionally, so a local write landing between the two is lost without a conflict record (docs/stores.md)",
			"emulated", weak)
	}
	return nil
}
