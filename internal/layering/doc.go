// Package layering holds no code, only a test: it keeps s3mesh's packages in
// layers. The pure core (schema, lifecycle) imports nothing but the standard
// library and msgpack; the edges (state, s3io, broker, config, metrics) import
// no s3mesh package above them; cmd and integration code is imported by
// nobody, lab only by cmd and by tests, internal/testenv only by tests.
//
// The rules are two tables in layering_test.go. A new package needs a row
// there; the test says so.
package layering
