// Package verify checks that every site holds the same objects: the
// offline proof that replication converged.
//
// Run lists one bucket at every site in parallel, page by page, and
// merge-joins the listings by key (ListObjectsV2 returns keys in UTF-8 byte
// order; a listing that is not strictly increasing stops the run with
// ErrUnsorted). Memory is bounded by a page per site plus a fixed number of
// keys being compared, whatever the number of keys.
//
// For each key of the union:
//
//   - a site that does not list it (or no longer has it at HEAD time) is
//     a "missing" difference;
//   - among the sites that hold it, the object is HEADed and compared by
//     size ("size"), content ("content"), Content-Type, Cache-Control,
//     Content-Encoding, Content-Disposition and user metadata ("metadata").
//     s3mesh's own metadata (s3mesh-*, see schema.IsOwnMeta) differs
//     legitimately between sites and is ignored.
//
// Content is compared by ETag when every site's ETag is single-part (no
// "-"): an MD5 of the bytes. Otherwise (a multipart ETag depends on the part
// sizes, so equal bytes can carry different ETags) the objects are streamed
// through sha256, one site per distinct single-part ETag, conditional on the
// HEADed ETag; an object that changed meanwhile is reported as "changed".
// Zero-byte objects are equal by size alone.
//
// Nothing is excluded: keys under the conflict-losers prefix
// (.s3mesh-conflicts/) are ordinary replicated objects. Directory
// placeholders need no special case either: versitygw (posix backend) lists
// only objects written with a key ending in "/", never the directories it
// creates implicitly for "a/b" (pinned by TestVersityListsNoImplicitDirectories),
// and such objects replicate like any other.
package verify
