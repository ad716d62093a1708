package rebuild

import (
	"context"
	"errors"
	"io"

	"github.com/s3mesh/s3mesh/schema"
)

// maxProvenBody bounds the bytes read to complete a cut proof (a body that
// travelled inline: at most the inline threshold's bound).
const maxProvenBody = 1 << 20

// verify returns, for each peer's item of k, the record its version's
// origin signed (nil where none backs it): a proof from any peer's item of
// that version, opened with the origin's keys, naming exactly the version
// the item states, and within o.Limits. An item whose only proofs are cut
// ones (a body that travelled inline) gets that proof in cut: the
// version's bytes complete it (prove). A peer's state is as hostile as its
// records: an item with neither is not adopted (logged; unverified is
// set), unless o.TrustUnsigned.
func (o *Options) verify(bucket string, k key) (signed []*schema.Record, cut [][]byte, unverified bool) {
	signed, cut = make([]*schema.Record, len(k.peers)), make([][]byte, len(k.peers))
	for i, it := range k.peers {
		if it == nil {
			continue
		}
		var why error
		for _, other := range k.peers {
			if other == nil || other.Held.ID != it.Held.ID || len(other.Proof) == 0 {
				continue
			}
			if schema.IsCutProof(other.Proof) {
				cut[i] = other.Proof
				continue
			}
			r, err := o.open(other.Proof, nil, bucket, k.name, it.Held)
			if err == nil {
				signed[i], cut[i] = r, nil
				break
			}
			why = err
		}
		if signed[i] != nil || cut[i] != nil {
			continue
		}
		if why == nil {
			why = errors.New("no peer has a record of it signed by its origin (a state entry written by an earlier build has none: --trust-unsigned adopts such versions as stated)")
		}
		if o.TrustUnsigned {
			signed[i] = &schema.Record{Schema: schema.RecordSchema, Bucket: bucket, Key: k.name, Version: it.Held}
			continue
		}
		unverified = true
		o.Log.Warn("a peer's state names a version its origin's signature does not back: not adopted from it",
			"bucket", bucket, "key", k.name, "peer", o.Peers[i].Name, "version", it.Held.ID, "origin", it.Held.Origin, "err", why)
	}
	return signed, cut, unverified
}

// open opens a proof of v (completed by body when it is a cut one) and
// checks the record within o.Limits (an early time is no reason to refuse
// a version the peers hold).
func (o *Options) open(proof, body []byte, bucket, key string, v schema.Version) (*schema.Record, error) {
	r, err := o.Keys.OpenProofBody(proof, body, bucket, key, v)
	if err != nil {
		return nil, err
	}
	if err := r.ValidateFor(o.Limits); err != nil && !errors.Is(err, schema.ErrEarly) {
		return nil, err
	}
	return r, nil
}

// prove completes the cut proof of peer i's version with the version's
// bytes, read from the site's own object or from a peer holding it; nil
// when no holder's bytes complete it (each that served other bytes is
// logged and counted as refused).
func (o *Options) prove(ctx context.Context, bucket string, k *key, i int, proof []byte, st *Stats) *schema.Record {
	v := k.peers[i].Held
	if v.Size > maxProvenBody {
		return nil
	}
	type holder struct {
		name    string
		s       Store
		ifMatch string
	}
	var hs []holder
	if k.local != nil {
		hs = append(hs, holder{o.Site, o.Local, v.ETag})
	}
	for j, it := range k.peers {
		if it != nil && it.Held.ID == v.ID && it.ETag != "" {
			hs = append(hs, holder{o.Peers[j].Name, o.Peers[j].S3, it.ETag})
		}
	}
	for _, h := range hs {
		rc, _, err := h.s.Get(ctx, bucket, k.name, h.ifMatch)
		if err != nil {
			continue
		}
		body, err := io.ReadAll(io.LimitReader(rc, v.Size+1))
		rc.Close()
		if err != nil || int64(len(body)) != v.Size {
			continue
		}
		r, err := o.open(proof, body, bucket, k.name, v)
		if err == nil {
			return r
		}
		if h.name != o.Site {
			st.Refused++
			if k.refused == nil {
				k.refused = map[string]bool{}
			}
			k.refused[h.name] = true
		}
		o.Log.Warn("bytes that do not complete the version's signed record: not used for it",
			"bucket", bucket, "key", k.name, "version", v.ID, "from", h.name, "err", err)
	}
	return nil
}
