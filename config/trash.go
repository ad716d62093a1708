package config

import (
	"fmt"
	"strings"
	"time"
)

// Trash configures how long a site keeps what a peer's record deleted or
// replaced (under .s3mesh-trash/ in the same bucket; which writes, per
// bucket: Bucket.Trash).
type Trash struct {
	// Retention: a trash object older than this is purged by the scanner
	// (default 7 days).
	Retention time.Duration `yaml:"retention"`
}

// DefaultTrashRetention is how long trash is kept unless configured.
const DefaultTrashRetention = 7 * 24 * time.Hour

// Trash modes of a bucket (Bucket.Trash).
const (
	TrashDeletes = "deletes" // keep what a peer's delete removed (default)
	TrashAll     = "all"     // also what a peer's overwrite replaced
	TrashNone    = "none"    // keep nothing
)

// trashPrefix is schema.TrashPrefix (config imports no other s3mesh package).
const trashPrefix = ".s3mesh-trash/"

func (s *Site) trashDefaults() {
	if s.Trash.Retention == 0 {
		s.Trash.Retention = DefaultTrashRetention
	}
	for i := range s.Buckets {
		if s.Buckets[i].Trash == "" {
			s.Buckets[i].Trash = TrashDeletes
		}
	}
}

func (s *Site) validateTrash() error {
	if s.Trash.Retention < time.Second {
		return fieldErr("trash.retention", "%v: want at least 1s (default %v)", s.Trash.Retention, DefaultTrashRetention)
	}
	for i, b := range s.Buckets {
		switch b.Trash {
		case TrashDeletes, TrashAll, TrashNone:
		default:
			return fieldErr(fmt.Sprintf("buckets[%d].trash", i), "%q: want deletes, all or none", b.Trash)
		}
		if strings.HasPrefix(b.Conflicts.LosersPrefix, trashPrefix) {
			return fieldErr(fmt.Sprintf("buckets[%d].conflicts.losers_prefix", i),
				"%q: under %s, which is never replicated (kept losers must replicate)", b.Conflicts.LosersPrefix, trashPrefix)
		}
	}
	return nil
}
