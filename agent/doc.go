// Package agent wires one site together: state store, S3 clients, the NATS
// connection (or embedded server), streams, producer (events, webhook,
// scanner), consumer (appliers for every peer) and the HTTP endpoint with
// /healthz, /metrics and the webhook. Configuration comes in as a validated
// config.Site; the pieces themselves take plain structs.
package agent
