package producer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
	"github.com/s3mesh/s3mesh/state"
)

// errChanged means the object changed while it was being read; Reconcile
// starts again.
var errChanged = errors.New("object changed while reading")

// drive runs the per-key state machine from in until it is handled, with
// the producer as its executor. The caller holds the key's lock.
func (p *Producer) drive(ctx context.Context, k lifecycle.Key, e state.Entry, in lifecycle.Input) (lifecycle.Step, error) {
	st, err := lifecycle.Drive(p.core, k, e, in, lifecycle.Executor{
		Persist: func(e lifecycle.Entry, lazy bool) error {
			if lazy {
				return p.store.PutLazy(k.Bucket, k.Key, e)
			}
			return p.store.Put(k.Bucket, k.Key, e)
		},
		Execute: func(effs []lifecycle.Effect) (lifecycle.Input, error) { return p.execute(ctx, k, effs) },
		Now:     func() int64 { return p.cfg.Now().UnixMilli() },
	})
	switch {
	case err != nil:
		return st, err
	case st.Err != nil:
		return st, fmt.Errorf("reconcile %s/%s: %w", k.Bucket, k.Key, st.Err)
	case st.Next == lifecycle.Again:
		return st, errChanged
	}
	return st, nil
}

// execute carries out the effects the state machine asks of a producer.
func (p *Producer) execute(ctx context.Context, k lifecycle.Key, effs []lifecycle.Effect) (lifecycle.Input, error) {
	var next lifecycle.Input
	for _, ef := range effs {
		switch ef := ef.(type) {
		case lifecycle.Publish:
			in, err := p.publish(ctx, k, ef)
			if err != nil {
				return nil, err
			}
			next = in
		case lifecycle.Inspect:
			info, err := p.s3.Head(ctx, k.Bucket, k.Key)
			if err != nil {
				return nil, fmt.Errorf("settle %s/%s: %w", k.Bucket, k.Key, err)
			}
			in := lifecycle.Inspected{Object: ObjectOf(info)}
			if ef.Copy != "" {
				// The loser copy a tombstone's apply makes before it deletes.
				if info, err = p.s3.Head(ctx, k.Bucket, ef.Copy); err != nil {
					return nil, fmt.Errorf("settle %s/%s: loser copy %s: %w", k.Bucket, k.Key, ef.Copy, err)
				}
				in.Copy = ObjectOf(info)
			}
			next = in
		case lifecycle.Note:
			note(p.log, k, ef)
		default:
			return nil, fmt.Errorf("producer: unexpected effect %T for %s/%s", ef, k.Bucket, k.Key)
		}
	}
	return next, nil
}

// publish sends the record of a Publish effect, with its body inline if
// asked (PublishChanged if the object changed before it could be read).
func (p *Producer) publish(ctx context.Context, k lifecycle.Key, ef lifecycle.Publish) (lifecycle.Input, error) {
	rec := *ef.Record
	if ef.ReadInline {
		body, err := p.readInline(ctx, k, rec.Version)
		switch {
		case errors.Is(err, errChanged) && ef.Republish:
			// A record that may already have left the site goes out as
			// it was, its body fetched by peers from where it is held.
		case errors.Is(err, errChanged):
			return lifecycle.PublishChanged{}, nil
		case err != nil:
			return nil, err
		default:
			rec.Inline, rec.Body = true, body
		}
	}
	if !rec.Inline && !rec.Version.Deleted {
		if err := p.addParts(ctx, k, &rec); err != nil {
			return nil, err
		}
	}
	if d := p.digests[k.Bucket]; d != "" {
		rec.Schema, rec.Filter = schema.FilterSchema, d // peers with another filter say so
	}
	data, err := p.send(ctx, &rec)
	if err != nil {
		return nil, err
	}
	// The entry keeps the signed record, bodyless, as the proof of its
	// version (lifecycle.Entry.Proof).
	proof := data
	if rec.Inline || len(data) > schema.MaxProof {
		if proof, err = rec.SignProof(p.cfg.SigningKey); err != nil {
			return nil, fmt.Errorf("proof of %s: %w", rec.Version.ID, err)
		}
	}
	if h := p.Hooks.AfterPublish; h != nil && !ef.Republish {
		h(k.Bucket, k.Key)
	}
	p.log.Debug("published", "bucket", k.Bucket, "key", k.Key, "id", rec.Version.ID, "deleted", rec.Version.Deleted, "clock", rec.Version.Clock.String())
	return lifecycle.PublishAcked{Publish: ef, Proof: proof}, nil
}

// addParts gives the record of a multipart object its part layout, read
// from the store (one HEAD per part; only for multipart ETags, and only
// when the record is published, not at every observation), so peers can
// check its bytes from any site that holds them (schema.Parts). The
// layout is not in the durable pending intent: a republish reads it again.
// Where the store cannot tell, or the layout it tells does not fit the
// object, the record goes without one (schema 2) and its body is fetched
// from this site only: a publish never waits on a layout.
func (p *Producer) addParts(ctx context.Context, k lifecycle.Key, rec *schema.Record) error {
	v := rec.Version
	_, n, multipart := schema.MultipartETag(v.ETag)
	pl, ok := p.s3.(PartLister)
	if !multipart || !ok {
		return nil
	}
	sizes, err := pl.PartSizes(ctx, k.Bucket, k.Key, v.ETag, n)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("part layout of %s/%s: %w", k.Bucket, k.Key, err)
	}
	if err != nil || sizes == nil {
		// Changed since it was observed (its record is then stale anyway:
		// the next one follows), or the store failed or cannot tell.
		p.log.Debug("multipart record without a part layout: peers fetch its body from this site only",
			"bucket", k.Bucket, "key", k.Key, "id", v.ID, "err", err)
		return nil
	}
	parts := schema.PartsOf(sizes)
	if parts == nil {
		p.log.Info("multipart record without a part layout (too many unequal parts to list): peers fetch its body from this site only",
			"bucket", k.Bucket, "key", k.Key, "id", v.ID, "parts", n)
		return nil
	}
	if err := parts.Check(v.Size, v.ETag); err != nil {
		p.log.Warn("the store told a part layout that does not fit the object: published without one, peers fetch its body from this site only",
			"bucket", k.Bucket, "key", k.Key, "id", v.ID, "err", err)
		return nil
	}
	rec.Schema, rec.Parts = schema.PartsSchema, parts
	return nil
}

func (p *Producer) readInline(ctx context.Context, k lifecycle.Key, v schema.Version) ([]byte, error) {
	if body, ok := peekedBody(ctx, v.ETag, v.Size); ok {
		return body, nil // read with the object's info (observeHint)
	}
	rc, got, err := p.s3.Get(ctx, k.Bucket, k.Key, v.ETag)
	if err != nil {
		if c := s3io.Classify(err); c == s3io.Precondition || c == s3io.NotFound || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errChanged
		}
		return nil, fmt.Errorf("read %s/%s: %w", k.Bucket, k.Key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, p.cfg.InlineThreshold+1))
	if err != nil && ctx.Err() == nil {
		// A read of the local object cut short: a store whose overwrites
		// are not atomic (rclone serve s3 replaces the file under an open
		// read) ends the body early. The object is changing; the pending
		// record is dropped and the object observed again, rather than
		// the intent left behind and republished later without its body.
		p.log.Debug("local read cut short; observing again", "bucket", k.Bucket, "key", k.Key, "err", err)
		return nil, errChanged
	}
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", k.Bucket, k.Key, err)
	}
	if int64(len(body)) != v.Size || got.ETag != v.ETag {
		return nil, errChanged
	}
	return body, nil
}

func (p *Producer) send(ctx context.Context, rec *schema.Record) ([]byte, error) {
	if p.cfg.SigningKey == nil {
		return nil, fmt.Errorf("publish %s: no signing key (signing.key): peers refuse unsigned records", rec.Version.ID)
	}
	data, err := rec.Sign(p.cfg.SigningKey) // once per record; ~50 µs
	if errors.Is(err, schema.ErrBadRecord) {
		// Out of a bound every peer enforces (a clock counter bumped past
		// schema.MaxCounter, ...): refused here rather than published and
		// dead-lettered at every peer.
		return nil, fmt.Errorf("refusing to publish %s/%s version %s, its peers would reject it: %w", rec.Bucket, rec.Key, rec.Version.ID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("encode record %s: %w", rec.Version.ID, err)
	}
	part := schema.Partition(rec.Bucket, rec.Key, p.cfg.Partitions)
	if err := p.pub.PublishRecord(ctx, part, data, rec.Version.ID); err != nil {
		return nil, fmt.Errorf("publish %s: %w", rec.Version.ID, err)
	}
	p.m.RecordsPublished.Inc()
	return data, nil
}

// ObjectOf is what the state machine sees of a HEAD answer.
func ObjectOf(info s3io.ObjectInfo) lifecycle.Object {
	o := lifecycle.Object{Exists: info.Exists, ETag: info.ETag, Size: info.Size, Meta: info.Meta, Attrs: attrsOf(info)}
	if !info.LastModified.IsZero() {
		o.LastModified = info.LastModified.UnixMilli()
	}
	return o
}

// attrsOf is the replicated attributes of an object (s3mesh's own metadata
// removed).
func attrsOf(info s3io.ObjectInfo) schema.Attrs {
	return schema.Attrs{
		ContentType: info.ContentType, CacheControl: info.CacheControl,
		ContentEncoding: info.ContentEncoding, ContentDisposition: info.ContentDisposition,
		Meta: schema.UserMeta(info.Meta),
	}
}
