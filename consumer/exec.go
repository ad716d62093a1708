package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// errRefused: the local store refused a conditional effect (a local write
// got there first).
var errRefused = errors.New("the local store refused a conditional write")

// execute carries out the effects the state machine asks of a consumer for
// record rec, in order, and returns their outcome: Written when every write
// succeeded, Refused when the store refused a conditional one, Logged when
// a conflict was logged and nothing written.
func (a *Applier) execute(ctx context.Context, k lifecycle.Key, rec *schema.Record, effs []lifecycle.Effect) (lifecycle.Input, error) {
	var etag string
	wrote, logged := false, false
	for _, ef := range effs {
		var err error
		switch ef := ef.(type) {
		case lifecycle.LogConflict:
			if a.Conflict != nil {
				err = a.Conflict.Conflict(ctx, ef.Entry)
			}
			logged = true
		case lifecycle.CopyLoser:
			err = a.copyLoser(ctx, k, ef)
		case lifecycle.Trash:
			err = a.trash(ctx, k, ef)
		case lifecycle.Put:
			if etag, err = a.put(ctx, k, ef); err == nil {
				a.expectEcho(k, etag)
			}
			wrote = true
		case lifecycle.Delete:
			if err = a.delete(ctx, k, ef); err == nil {
				a.expectEcho(k, "")
			}
			wrote = true
		case lifecycle.CheckAbsent:
			err = a.checkAbsent(ctx, k)
			wrote = true
		case lifecycle.Hold:
			err = a.hold(k, ef)
		case lifecycle.Park:
			return nil, fmt.Errorf("apply %s/%s: %s concurrent with held %s: %w", k.Bucket, k.Key, ef.Parked.ID, ef.Held.ID, ErrParked)
		case lifecycle.Note:
			lvl := slog.LevelInfo
			if ef.Warn {
				lvl = slog.LevelWarn
			}
			a.Log.Log(ctx, lvl, ef.Msg, append([]any{"bucket", k.Bucket, "key", k.Key}, ef.Args...)...)
		default:
			err = fmt.Errorf("consumer: unexpected effect %T for %s/%s", ef, k.Bucket, k.Key)
		}
		if errors.Is(err, errRefused) {
			return lifecycle.Refused{}, nil
		}
		if err != nil {
			return nil, err
		}
	}
	if !wrote {
		if logged {
			return lifecycle.Logged{Record: rec, Policy: a.policy(k.Bucket)}, nil
		}
		return nil, nil
	}
	if h := a.Hooks.AfterWrite; h != nil {
		h(k.Bucket, k.Key)
	}
	return lifecycle.Written{Record: rec, ETag: etag}, nil
}

// expectEcho tells the producer a replica write was made, so the storage
// event it causes is recognised without a HEAD (we hold the key's lock).
func (a *Applier) expectEcho(k lifecycle.Key, etag string) {
	if a.Local != nil {
		a.Local.ExpectEcho(k.Bucket, k.Key, etag)
	}
}

// refusal maps a conditional write's 412 or 404 to errRefused.
func refusal(err error) error {
	if c := s3io.Classify(err); err != nil && (c == s3io.Precondition || c == s3io.NotFound) {
		return errRefused
	}
	return err
}

// put writes the record's body (inline or fetched from a site holding the
// version) with its replica marker, conditionally.
func (a *Applier) put(ctx context.Context, k lifecycle.Key, p lifecycle.Put) (string, error) {
	rec := p.Record
	at := rec.Attrs
	in := s3io.PutInput{
		Bucket: k.Bucket, Key: k.Key, Size: rec.Version.Size, PartSize: a.PartSize,
		IfMatch: p.IfMatch, IfNoneMatch: p.IfNoneMatch, Share: a.Shares[rec.Version.Origin],
		Attrs: s3io.Attrs{ContentType: at.ContentType, CacheControl: at.CacheControl,
			ContentEncoding: at.ContentEncoding, ContentDisposition: at.ContentDisposition, Meta: p.Meta},
	}
	// A fetched body with a single-part origin ETag must have that MD5:
	// the store checks it when it can (Content-MD5), the verifier does
	// otherwise. Either way other bytes are never stored.
	storeChecks := false
	if !rec.Inline {
		if sum, ok := bodyMD5(rec.Version.ETag); ok {
			in.ContentMD5 = sum
			if c, ok := a.S3.(BodyChecker); ok {
				storeChecks = c.ChecksContentMD5(in)
			}
		}
	}
	body, err := a.OpenBody(ctx, rec, storeChecks)
	if err != nil {
		return "", err
	}
	defer body.Close()
	in.Body = body
	etag, err := a.S3.Put(ctx, in)
	var se *s3io.Error
	if vr, ok := body.(*verifier); ok && errors.As(err, &se) && se.Code == "BadDigest" {
		// The store checked the bytes (Content-MD5) and refused them: the
		// site that served them is distrusted as if the verifier had.
		_ = vr.fail(fmt.Errorf("the store refused the body from %s: not the MD5 %s origin %s signed", vr.site, rec.Version.ETag, vr.origin))
	}
	return etag, refusal(err)
}

// delete removes the local object if it is the one the entry says. A
// conditional DELETE of an absent key succeeds on some stores (versitygw
// answers 204), which would absorb an unrecorded local delete: look first.
func (a *Applier) delete(ctx context.Context, k lifecycle.Key, d lifecycle.Delete) error {
	info, err := a.S3.Head(ctx, k.Bucket, k.Key)
	if err != nil {
		return err
	}
	if !info.Exists || info.ETag != d.IfMatch {
		return errRefused
	}
	return refusal(a.S3.Delete(ctx, k.Bucket, k.Key, d.IfMatch))
}

// checkAbsent confirms the local store holds nothing for the key: an object
// there is a local write nobody has recorded yet.
func (a *Applier) checkAbsent(ctx context.Context, k lifecycle.Key) error {
	info, err := a.S3.Head(ctx, k.Bucket, k.Key)
	if err != nil {
		return err
	}
	if info.Exists {
		return errRefused
	}
	return nil
}

// copyLoser keeps a conflict loser's bytes under its loser key before the
// winner replaces it. The copy is a local write and replicates like any
// object.
//
// A store may check the copy source's If-Match and then read the source
// again (rclone serve s3 v1.76.0: gofakes3 checks the condition on a HEAD,
// the backend copies from a GET of its own), so a local overwrite landing in
// between is copied instead of the loser, and the copy, published as this
// site's kept loser, holds bytes that are no loser's. So the copy is looked
// at: one of a single-part loser showing another ETag is removed again (If-
// Match its ETag) and the apply is refused as overtaken by a local write,
// which is then recorded and decided like any other. Multipart ETags differ
// between a copy and its source on some stores; they are not compared.
func (a *Applier) copyLoser(ctx context.Context, k lifecycle.Key, c lifecycle.CopyLoser) error {
	err := refusal(a.S3.CopyIfMatch(ctx, k.Bucket, k.Key, c.To, c.IfMatch))
	if err != nil && !errors.Is(err, errRefused) {
		return fmt.Errorf("keep loser %s as %s: %w", c.Loser, c.To, err)
	}
	if err != nil {
		return err
	}
	if _, single := bodyMD5(c.IfMatch); single {
		info, err := a.S3.Head(ctx, k.Bucket, c.To)
		if err != nil {
			return fmt.Errorf("keep loser %s as %s: look at the copy: %w", c.Loser, c.To, err)
		}
		if info.Exists && info.ETag != "" && !strings.EqualFold(info.ETag, c.IfMatch) {
			if err := refusal(a.S3.Delete(ctx, k.Bucket, c.To, info.ETag)); err != nil && !errors.Is(err, errRefused) {
				return fmt.Errorf("keep loser %s as %s: remove a copy of other bytes: %w", c.Loser, c.To, err)
			}
			a.Log.Info("conflict loser copy held other bytes (the key was overwritten locally during the copy): removed, the apply starts over",
				"bucket", k.Bucket, "key", k.Key, "loser", c.Loser, "kept_as", c.To, "loser_etag", c.IfMatch, "copy_etag", info.ETag)
			return errRefused
		}
	}
	a.Log.Info("conflict loser kept", "bucket", k.Bucket, "key", k.Key, "loser", c.Loser, "kept_as", c.To)
	return nil
}
