package lifecycle

import "github.com/s3mesh/s3mesh/schema"

// TrashMode is what a peer's record removes that a site keeps in its
// trash (schema.TrashPrefix in the same bucket) before the replica write.
type TrashMode uint8

// Trash modes. The zero value keeps nothing; the configuration's default
// is TrashDeletes.
const (
	TrashNone    TrashMode = iota // nothing is kept
	TrashDeletes                  // what a peer's delete removes
	TrashAll                      // also what a peer's overwrite replaces
)

func (t TrashMode) String() string {
	switch t {
	case TrashDeletes:
		return "deletes"
	case TrashAll:
		return "all"
	}
	return "none"
}

// Trash: copy the local object (its ETag IfMatch, the held version
// Replaced) into the trash, under a name of Replaced and At (schema.TrashKey),
// before the write of By deletes or replaces it. The copy is conditional on
// IfMatch, so it holds exactly the bytes the write removes; a refused copy
// makes the apply's outcome Refused (a local write got there first). It
// comes after the apply intent is durable: a crash between the copy and
// the write leaves the intent, Recover drops it (the store still shows the
// held version), the record is received again and copied again. An extra
// copy costs storage for the retention; no copy is ever missing.
type Trash struct {
	IfMatch  string
	Replaced schema.Version
	By       schema.Version // the record's version (origin: the peer)
	At       int64          // unix ms
}

func (Trash) effect() {}

// Op is the trash operation: the record deletes the key or overwrites it.
func (t Trash) Op() string {
	if t.By.Deleted {
		return schema.TrashOpDelete
	}
	return schema.TrashOpOverwrite
}

// trash is the trash copy of the held object before rec's write removes
// it, if the bucket's policy keeps what rec removes: a delete under
// TrashDeletes or TrashAll, an overwrite under TrashAll. Nothing is copied
// where the store keeps old versions itself (Versioned), or where the site
// holds no object.
func (m Machine) trash(e Entry, rec *schema.Record, pol BucketPolicy, now int64) (Trash, bool) {
	if !e.Present() || pol.Versioned || e.LocalETag == "" {
		return Trash{}, false
	}
	switch {
	case pol.Trash == TrashAll, pol.Trash == TrashDeletes && rec.Version.Deleted:
		return Trash{IfMatch: e.LocalETag, Replaced: e.Held, By: rec.Version, At: now}, true
	}
	return Trash{}, false
}
