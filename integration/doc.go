// Package integration holds the end-to-end tests of s3mesh: a real lab
// (versitygw per site, NATS brokers as their own processes, agent processes,
// cuttable leaf-node links) started from the test, driven through S3 and the
// lab's controls, and checked through S3 and the JetStream streams.
package integration
