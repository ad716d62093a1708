// Package testenv starts real external servers for tests.
//
// It currently knows how to run versitygw (the S3 gateway used by the lab)
// with its posix backend on loopback. Every child process is started in its
// own process group with a parent-death signal, and is killed with SIGKILL
// when the test that started it ends, so no server outlives `go test`.
//
// Nothing here fakes S3: tests that use testenv talk to the same binary the
// lab runs (bin/versitygw, pinned in go.mod as a tool dependency).
package testenv
