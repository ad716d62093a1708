package rebuild

import (
	"errors"

	"github.com/s3mesh/s3mesh/schema"
)

// verify returns, for each peer's item of k, the record its version's
// origin signed (nil where none backs it): a proof from any peer's item of
// that version, opened with the origin's keys, naming exactly the version
// the item states, and within o.Limits. A peer's state is as hostile as
// its records: an item without such a record is not adopted (counted and
// logged), unless o.TrustUnsigned.
func (o *Options) verify(bucket string, k key, st *Stats) []*schema.Record {
	out := make([]*schema.Record, len(k.peers))
	unverified := false
	for i, it := range k.peers {
		if it == nil {
			continue
		}
		var why error
		for _, other := range k.peers {
			if other == nil || other.Held.ID != it.Held.ID || len(other.Proof) == 0 {
				continue
			}
			r, err := o.Keys.OpenProof(other.Proof, bucket, k.name, it.Held)
			if err == nil {
				if err = r.ValidateFor(o.Limits); errors.Is(err, schema.ErrEarly) {
					err = nil
				}
			}
			if err == nil {
				out[i] = r
				break
			}
			why = err
		}
		if out[i] != nil {
			continue
		}
		if why == nil {
			why = errors.New("no peer has a record of it signed by its origin")
		}
		if o.TrustUnsigned {
			out[i] = &schema.Record{Schema: schema.RecordSchema, Bucket: bucket, Key: k.name, Version: it.Held}
			continue
		}
		unverified = true
		o.Log.Warn("a peer's state names a version its origin's signature does not back: not adopted from it",
			"bucket", bucket, "key", k.name, "peer", o.Peers[i].Name, "version", it.Held.ID, "origin", it.Held.Origin, "err", why)
	}
	if unverified {
		st.Unverified++
	}
	return out
}
