// Package schema is the pure core of s3mesh: vector clocks, versions, the
// change record that travels on the bus, and the conflict decision.
//
// It does no I/O and imports no NATS or AWS packages: every function takes
// values and returns values, so the rules that keep sites convergent can be
// tested exhaustively (table tests and property tests) without servers.
//
// The one rule everything rests on: versions are totally ordered by
// (Rank, TS, Origin, ID), and that order is consistent with causality (a
// version written after seeing another always sorts above it, because its TS
// is at least the predecessor's TS+1 and its Rank never decreases). A site
// therefore only has to keep the greatest version it has seen, merge clocks,
// and every site ends with the same winner in any delivery order.
package schema
