// Command s3mesh is the s3mesh agent, broker, lab and operator CLI.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "s3mesh",
		Short:         "Active-active replication between S3-compatible object stores over NATS JetStream",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newAgentCmd(), newBrokerCmd(), newLabCmd(), newBenchCmd(), newConflictsCmd(), newDLQCmd(), newTrashCmd(), newStatusCmd(), newScanCmd(), newVerifyCmd(), newStreamsCmd(), newProbeCmd(), newBucketCmd(), newDeployCmd())
	root.AddCommand(newReplayCmd())
	root.AddCommand(newRebuildCmd())
	root.AddCommand(newKeysCmd())
	root.AddCommand(newDeletesCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "s3mesh:", err)
		os.Exit(1)
	}
}
