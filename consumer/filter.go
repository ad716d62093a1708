package consumer

import "context"

// filter acknowledges, without applying it, a record of a key outside this
// site's prefix filter of its bucket (counted: s3mesh_records_filtered_total;
// not a dead letter, the key is simply not replicated here). It also notes
// the filter digest the record's origin published it under: a peer whose
// filter differs from this site's is reported (status, metric, a warning)
// instead of the two sites diverging silently.
func (r *Runner) filter(next handler) handler {
	return func(ctx context.Context, d *delivery) error {
		b := d.rec.Bucket
		if !r.A.Replicated(b) {
			return next(ctx, d) // the applier refuses it, with its reason
		}
		f := r.Filters[b]
		own := r.digests[b]
		if r.M.Topo.NotePeerFilter(b, d.peer, d.rec.Filter, own) {
			r.Log.Warn("a peer replicates the bucket with other prefix filters than this site: the sites hold different keys (filters must be the same at every site)",
				"peer", d.peer, "bucket", b, "peer_filter", digestOrNone(d.rec.Filter), "site_filter", digestOrNone(own))
		}
		if !f.Match(d.rec.Key) {
			r.M.Topo.NoteFiltered(b, d.peer)
			return nil
		}
		return next(ctx, d)
	}
}

func digestOrNone(d string) string {
	if d == "" {
		return "none"
	}
	return d
}
