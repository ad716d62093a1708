package config

import "fmt"

// Bucket modes (Topology.Mode).
const (
	// ModeActive: the site applies its peers' records and publishes its own
	// writes (the default).
	ModeActive = "active"
	// ModeReplica: the site applies every peer's record and publishes
	// nothing; a local write is drift, reported and never replicated.
	ModeReplica = "replica"
	// ModeArchive: the site applies every peer's put and overwrite and no
	// delete (the object stays), and publishes nothing.
	ModeArchive = "archive"
)

// MaxFilterPrefixes bounds each of a bucket's include and exclude lists.
const MaxFilterPrefixes = 100

// Topology is how one bucket replicates at this site: its mode, and which
// keys replicate at all. The filters must be the same at every site (a site
// whose filters differ from a peer's says so in status); the mode may
// differ.
type Topology struct {
	Mode string `yaml:"mode"` // active (default), replica or archive
	// Include: only keys starting with one of these prefixes replicate
	// (empty: every key).
	Include []string `yaml:"include"`
	// Exclude: keys starting with one of these prefixes never replicate,
	// even when an include prefix matches.
	Exclude []string `yaml:"exclude"`
}

// Publishes reports whether the site publishes its own writes of the bucket.
func (t Topology) Publishes() bool { return t.Mode == ModeActive || t.Mode == "" }

func (t *Topology) applyDefaults() {
	if t.Mode == "" {
		t.Mode = ModeActive
	}
}

func (t Topology) validate(f string) error {
	switch t.Mode {
	case ModeActive, ModeReplica, ModeArchive:
	default:
		return fieldErr(f+".mode", "%q: want active, replica or archive", t.Mode)
	}
	for _, l := range []struct {
		name string
		list []string
	}{{"include", t.Include}, {"exclude", t.Exclude}} {
		if len(l.list) > MaxFilterPrefixes {
			return fieldErr(f+"."+l.name, "%d prefixes: at most %d", len(l.list), MaxFilterPrefixes)
		}
		seen := map[string]bool{}
		for j, p := range l.list {
			pf := fmt.Sprintf("%s.%s[%d]", f, l.name, j)
			switch {
			case p == "":
				return fieldErr(pf, "an empty prefix matches every key: leave the list out instead")
			case len(p) > 1024:
				return fieldErr(pf, "%d bytes: a key prefix is at most 1024", len(p))
			case seen[p]:
				return fieldErr(pf, "%q listed twice", p)
			}
			seen[p] = true
		}
	}
	return nil
}
