package producer

import (
	"context"
	"errors"
	"fmt"

	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
)

// Refuse refuses a peer's held delete del of bucket/key for good: the
// object this site holds is published again as this site's new version,
// over the delete's clock (lifecycle.Refuse), so every site, the deleting
// one included, holds it again. The result is Published, or Unchanged when
// nothing needs writing (the key moved past the delete, or the object is
// gone here too); with Published, the version published.
func (p *Producer) Refuse(ctx context.Context, bucket, key string, del schema.Version) (Result, schema.Version, error) {
	for attempt := 0; ; attempt++ {
		res, v, err := p.refuseOnce(ctx, bucket, key, del)
		if errors.Is(err, errChanged) && attempt < 5 {
			continue // the object changed while its body was read: look again
		}
		return res, v, err
	}
}

func (p *Producer) refuseOnce(ctx context.Context, bucket, key string, del schema.Version) (Result, schema.Version, error) {
	k := lifecycle.Key{Bucket: bucket, Key: key}
	unlock := p.store.Lock(bucket, key)
	defer unlock()
	e, err := p.load(ctx, k)
	if err != nil {
		return Unchanged, schema.Version{}, fmt.Errorf("refuse delete of %s/%s: %w", bucket, key, err)
	}
	obs, err := p.observe(ctx, k, e)
	if err == nil && obs.Object.Exists {
		obs, err = p.untilETag(ctx, k, e, obs)
	}
	if err != nil {
		return Unchanged, schema.Version{}, fmt.Errorf("refuse delete of %s/%s: %w", bucket, key, err)
	}
	st, err := p.drive(ctx, k, e, lifecycle.Refuse{Object: obs.Object, Policy: obs.Policy, Delete: del})
	if err != nil {
		return Unchanged, schema.Version{}, fmt.Errorf("refuse delete of %s/%s: %w", bucket, key, err)
	}
	return st.Result, st.Entry.Held, nil
}
