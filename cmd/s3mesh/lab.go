package main

import "github.com/spf13/cobra"

// newLabCmd: `s3mesh lab` (being written in lab/).
func newLabCmd() *cobra.Command {
	return &cobra.Command{Use: "lab", Short: "Run a local multi-site lab"}
}
