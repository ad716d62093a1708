package lifecycle_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/s3mesh/s3mesh/schema"

	"pgregory.net/rapid"
)

// Equivocation: a Byzantine origin signs a second version under the id of
// one of its records (another origin time; for a record with its body
// inline, other bytes too) and sends it to one site alone, besides the
// honest record every site gets. No site can tell which of the two the
// origin "meant"; the honest sites must not lose an honest write or wedge
// a key, and a site that ends up holding the variant while the others
// hold something else must have caught the equivocation (the record it
// then got under the held id is bad-record, dead-lettered): a divergence
// that is reported, not hidden. It lasts until a write of the key made
// after both versions.

// equivocate sends s a variant of one of the records sent so far.
func (w *simWorld) equivocate(s *simSite) {
	rec := w.decode(w.sent[w.draw(len(w.sent), "equivocate-from")])
	if rec.Version.Origin == s.name {
		return // a site does not receive its own records
	}
	rec.Version.TS += 1 + int64(w.draw(2000, "equivocate-ts"))
	if rec.Inline && !rec.Version.Deleted {
		rec.Body = append(bytes.Clone(rec.Body), '!')
		rec.Version.Size, rec.Version.ETag = int64(len(rec.Body)), simETag(rec.Body)
	}
	data, err := rec.Encode()
	if err != nil {
		w.t.Fatalf("equivocate: %v", err)
	}
	w.variants[rec.Version.ID] = append(w.variants[rec.Version.ID], data)
	w.stat("equivocations")
	w.t.Logf("equivocation by %s for %s: %s", rec.Version.Origin, s.name, simV(rec.Version))
	s.inbox = append(s.inbox, &simDelivery{data: data})
}

// equivocal reports whether the origin of version id equivocated on it.
func (w *simWorld) equivocal(id string) bool { return len(w.variants[id]) > 0 }

// heldVariant reports whether s holds, for key, a variant of an equivocated
// version rather than the version its origin published to every site.
func (w *simWorld) heldVariant(s *simSite, key string) bool { return w.isVariant(s.entry(key).Held) }

// isVariant reports whether v is an equivocation's variant, not the
// version its origin published to every site.
func (w *simWorld) isVariant(v schema.Version) bool {
	p, ok := w.pubs[v.ID]
	return ok && w.equivocal(v.ID) && p.v.CheckSame(v) != nil
}

// equivocationDiverged reports whether key is allowed to differ between
// the sites: some site caught an equivocation of one of the key's versions
// (it dead-lettered a record under an id it already held otherwise). Such
// a site may hold the variant, or may have decided a conflict by it (the
// variant beat a write there that won elsewhere) and moved on to a later
// version: either way the key differs until a write made after both. A
// site holding a variant without having caught it fails the test.
func (w *simWorld) equivocationDiverged(key string) bool {
	diverged := false
	for _, s := range w.sites {
		if !w.heldVariant(s, key) {
			continue
		}
		id := s.entry(key).Held.ID
		if !slices.ContainsFunc(s.dlq, func(d simDead) bool { return d.id == id }) {
			w.t.Fatalf("%s holds a variant of %s for %s and never caught the equivocation", s.name, simV(s.entry(key).Held), key)
		}
		diverged = true
	}
	for _, s := range w.sites {
		diverged = diverged || slices.ContainsFunc(s.dlq, func(d simDead) bool {
			p, ok := w.pubs[d.id]
			return ok && p.key == key && w.equivocal(d.id)
		})
	}
	if diverged {
		w.stat("equivocation diverged, caught")
		w.t.Logf("KNOWN LIMIT (equivocation): %s differs between the sites; the site holding the variant dead-lettered the other version", key)
	}
	return diverged
}

// TestSimulationEquivocation is TestSimulation with a Byzantine origin that
// also equivocates: the honest invariants hold on every step, and the
// sites converge but for keys where a caught equivocation left a site
// holding the variant.
func TestSimulationEquivocation(t *testing.T) {
	tot := simTotals{}
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(2, 5).Draw(rt, "sites")
		w := newSimWorld(rt, n, simPolicy(rt, n, false))
		w.equivocating = true
		w.run()
		w.settle()
		w.checkAll()
		tot.add(w)
	})
	tot.log(t)
}
