package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/config"
)

// newKeysCmd is `s3mesh keys`: record signing keys (docs/security.md, "Signed change
// records").
func newKeysCmd() *cobra.Command {
	c := &cobra.Command{Use: "keys", Short: "Make and inspect record signing keys (nkeys user seeds)"}
	var out string
	var force bool
	gen := &cobra.Command{
		Use:   "gen --out FILE",
		Short: "Write a new signing seed to FILE (mode 0600) and print its public key",
		Long: `gen writes a new nkeys user seed ("SU...") to FILE with mode 0600 and prints its
public key ("U..."). Point the site's signing.key at FILE ({file: FILE}) and add the
public key to public_keys of this site in every peer's peers: list. The seed is never
printed. An existing FILE is not overwritten unless --force is given.

The same kind of seed logs an agent in to its broker (nats.nkey: {file: FILE}) or a
restricted client (nats.embedded.users[].nkey: its public key); use a seed of its own
for each purpose.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE is required (the seed is never printed)")
			}
			kp, err := nkeys.CreateUser()
			if err != nil {
				return err
			}
			seed, err := kp.Seed()
			if err != nil {
				return err
			}
			pub, err := kp.PublicKey()
			if err != nil {
				return err
			}
			if err := writeSeed(out, seed, force); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), pub)
			return nil
		},
	}
	gen.Flags().StringVar(&out, "out", "", "file to write the seed to (created with mode 0600)")
	gen.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	var keyFile string
	pub := &cobra.Command{
		Use:   "public --key FILE",
		Short: "Print the public key of the seed in FILE",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" {
				return errors.New("--key FILE is required")
			}
			b, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			k, err := config.ParseSeed(string(b))
			if err != nil {
				return fmt.Errorf("%s: %w", keyFile, err)
			}
			s, err := config.PublicKeyString(k.Public().(ed25519.PublicKey))
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), s)
			return nil
		},
	}
	pub.Flags().StringVar(&keyFile, "key", "", "seed file (as signing.key names it)")
	c.AddCommand(gen, pub)
	return c
}

// writeSeed writes seed to path with mode 0600, atomically, refusing to
// replace an existing file unless force.
func writeSeed(path string, seed []byte, force bool) error {
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("%s exists: not overwritten (--force replaces it; its peers then need the new public key)", path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".seed-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(seed, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
