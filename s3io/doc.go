// Package s3io is the thin layer between s3mesh and an S3 endpoint.
//
// It wraps aws-sdk-go-v2 with the few operations replication needs (Head,
// Get, Put, Delete, List, Copy, EnsureBucket) and gives them the semantics
// the rest of s3mesh relies on:
//
//   - ETags are returned without quotes; conditional requests take them the
//     same way.
//   - An absent key is a value (ObjectInfo.Exists == false), not an error,
//     for Head; the other calls report it as ErrNotFound.
//   - Put streams bodies of any size with bounded memory: bodies up to
//     PutInput.PartSize go in one PutObject, larger ones by multipart upload
//     with at most two part buffers alive at a time.
//   - Every error names the operation, bucket and key, keeps errors.Is
//     working for the sentinels (ErrNotFound, ErrPreconditionFailed,
//     ErrNoSuchBucket, ErrInvalidKey, ErrInvalidInput) and can be sorted by
//     Classify into Transient, Permanent, Precondition or NotFound: the
//     caller retries the first, dead-letters the second.
//
// Behaviour measured against versitygw v1.8.0 (posix backend) is written
// next to the code that depends on it and pinned by the package tests,
// which run against a real versitygw started by internal/testenv.
package s3io
