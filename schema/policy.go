package schema

import (
	"fmt"
)

// Conflict modes of a bucket.
const (
	ModeLWW          = "lww"           // newest origin time wins, site name breaks ties (default)
	ModeSitePriority = "site-priority" // a configured site order wins, then lww
	ModeManual       = "manual"        // conflicts are parked in the DLQ for an operator
)

// Delete rules: how a delete that conflicts with a put is decided.
const (
	DeletesLWW  = "lww"         // like any other version (default)
	DeleteWins  = "delete-wins" // the delete wins
	PutWins     = "put-wins"    // the put wins
	maxPriority = 255
)

// Policy is a bucket's conflict policy. It must be the same at every site
// for the semantics below; convergence does not depend on it, because the
// rank that orders versions is computed once, at the origin, and travels in
// the record.
type Policy struct {
	Mode     string   // ModeLWW, ModeSitePriority or ModeManual
	Priority []string // ModeSitePriority: sites, highest priority first
	Deletes  string   // DeletesLWW, DeleteWins or PutWins
}

// Validate checks the policy.
func (p Policy) Validate() error {
	switch p.Mode {
	case "", ModeLWW, ModeManual:
		if len(p.Priority) > 0 {
			return fmt.Errorf("priority is only for mode %s", ModeSitePriority)
		}
	case ModeSitePriority:
		if len(p.Priority) == 0 {
			return fmt.Errorf("mode %s needs a priority list", ModeSitePriority)
		}
		if len(p.Priority) > maxPriority {
			return fmt.Errorf("at most %d sites in a priority list", maxPriority)
		}
		seen := map[string]bool{}
		for _, s := range p.Priority {
			if seen[s] {
				return fmt.Errorf("site %q twice in the priority list", s)
			}
			seen[s] = true
		}
	default:
		return fmt.Errorf("mode %q: want %s, %s or %s", p.Mode, ModeLWW, ModeSitePriority, ModeManual)
	}
	switch p.Deletes {
	case "", DeletesLWW, DeleteWins, PutWins:
	default:
		return fmt.Errorf("deletes %q: want %s, %s or %s", p.Deletes, DeletesLWW, DeleteWins, PutWins)
	}
	return nil
}

// String names the policy as the conflict log shows it.
func (p Policy) String() string {
	m := p.Mode
	if m == "" {
		m = ModeLWW
	}
	if p.Deletes != "" && p.Deletes != DeletesLWW {
		m += "+" + p.Deletes
	}
	return m
}

// level is the priority of a site: the first listed site has the highest,
// unlisted sites 0.
func (p Policy) level(site string) uint64 {
	if p.Mode != ModeSitePriority {
		return 0
	}
	for i, s := range p.Priority {
		if s == site {
			return uint64(len(p.Priority) - i)
		}
	}
	return 0
}

func (p Policy) flag(deleted bool) uint64 {
	switch {
	case p.Deletes == DeleteWins && deleted:
		return 1
	case p.Deletes == PutWins && !deleted:
		return 1
	}
	return 0
}

// Rank layout: epoch << 16 | flag << 8 | level.
const (
	rankLevelBits = 8
	rankFlagBits  = 8
)

// Rank is the rank of a new local write at origin (a tombstone if deleted)
// over held (nil if the site never saw the key). Versions are ordered by
// (Rank, TS, Origin, ID), so the rank is where a policy's preference lives:
// the flag (delete or put wins) first, then the site's priority level.
//
// The order must agree with causality (a write sorts above what it
// replaced, even when the policy prefers the replaced version) and must
// compare any two writes over the same version by the policy alone. Both
// hold when the rank's epoch is a function of the replaced version only: a
// write over a version with a non-zero preference starts a new epoch, which
// outranks the old one. What operators see: the policy decides between
// versions written over the same version; between versions written over
// different histories, the one that replaced more preferred versions (a
// deeper history) wins, then the policy, then the time. With plain lww no
// version has a preference, so it is the newest origin time that wins.
func (p Policy) Rank(origin string, deleted bool, held *Version) uint64 {
	pr := p.flag(deleted)<<rankLevelBits | p.level(origin)
	if held == nil {
		return pr
	}
	epoch := held.Rank >> (rankLevelBits + rankFlagBits)
	if held.Rank&(1<<(rankLevelBits+rankFlagBits)-1) != 0 {
		epoch++
	}
	// Saturate, never fail: a held version at the bound (only a peer that
	// forged its rank gets there) must not make this site's own next write
	// of the key impossible. The write still follows the held version in
	// its clock, which is what orders the two.
	epoch = min(epoch, MaxRankEpoch)
	return epoch<<(rankLevelBits+rankFlagBits) | pr
}

// CheckRankOf refuses v's rank unless its level and flag are what this
// site's policy gives v's origin and tombstone flag: a rank is the origin's
// claim, and a peer that claims another level or flag would outrank what
// the policy prefers (a site-priority level it does not have, a put
// dressed as a delete under delete-wins). The epoch depends on history the
// receiver may not hold; CheckRank bounds it.
func (p Policy) CheckRankOf(v Version) error {
	level := v.Rank & (1<<rankLevelBits - 1)
	flag := v.Rank >> rankLevelBits & (1<<rankFlagBits - 1)
	if wl, wf := p.level(v.Origin), p.flag(v.Deleted); level != wl || flag != wf {
		return badField("Version.Rank", "%#x has level %d and flag %d; policy %s gives a %s of %s level %d and flag %d",
			v.Rank, level, flag, p, map[bool]string{true: "delete", false: "put"}[v.Deleted], trunc(v.Origin), wl, wf)
	}
	return CheckRank(v.Rank)
}
