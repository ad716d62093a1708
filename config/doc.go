// Package config loads and validates an s3mesh site configuration (YAML).
//
// Secrets (S3 secret keys, NATS passwords, webhook tokens) are never written
// inline in plain fields: they come from an environment variable or a file
// (see Secret), and their values are never logged. Load reports the first
// problem with the name of the field, before anything starts.
package config
