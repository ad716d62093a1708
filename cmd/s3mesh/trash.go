package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/producer"
)

func newTrashCmd() *cobra.Command {
	var t target
	var asJSON, force bool
	var bucket, key, version string
	c := &cobra.Command{Use: "trash", Short: "List and restore what peers' records deleted or replaced at a site (kept for trash.retention)"}
	t.flags(c)
	c.PersistentFlags().BoolVar(&asJSON, "json", false, "JSON output")
	list := &cobra.Command{
		Use: "list [--bucket B]", Short: "List a site's trash (in a bucket the store versions: its noncurrent versions)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			buckets := []string{bucket}
			if bucket == "" {
				var p agent.TrashPage
				if err := adminJSON(s, "trash.list", agent.AdminRequest{}, &p); err != nil {
					return err
				}
				buckets = p.Buckets
			}
			var es []agent.TrashEntry
			for _, b := range buckets {
				after := ""
				for {
					var p agent.TrashPage
					if err := adminJSON(s, "trash.list", agent.AdminRequest{Bucket: b, After: after}, &p); err != nil {
						return fmt.Errorf("bucket %s: %w", b, err)
					}
					es = append(es, p.Entries...)
					if p.Truncated {
						fmt.Fprintf(cmd.ErrOrStderr(), "bucket %s: only the first %d noncurrent versions are shown (the store versions the bucket; list the rest with an S3 client)\n", b, len(p.Entries))
					}
					if p.Next == "" {
						break
					}
					after = p.Next
				}
			}
			return printTrashEntries(cmd.OutOrStdout(), es, asJSON)
		},
	}
	list.Flags().StringVar(&bucket, "bucket", "", "only this bucket")
	restore := &cobra.Command{
		Use:   "restore --bucket B --key K [--version ID]",
		Short: "Write a trashed version back to its key as a new local write of the site (it replicates everywhere)",
		Long: "Write a trashed version back to its key as a new local write of the site: the site publishes it and every site\n" +
			"holds it again. Without --version, the newest trashed version of the key. In a bucket the store versions,\n" +
			"--version is the store's version id of a noncurrent version. An object now at the key is not replaced\n" +
			"without --force.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bucket == "" || key == "" {
				return errors.New("--bucket and --key are required")
			}
			s, err := t.connect()
			if err != nil {
				return err
			}
			defer s.close()
			out, err := s.admin("trash.restore", agent.AdminRequest{Bucket: bucket, Key: key, Version: version, Force: force})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	restore.Flags().StringVar(&bucket, "bucket", "", "the bucket")
	restore.Flags().StringVar(&key, "key", "", "the key to restore")
	restore.Flags().StringVar(&version, "version", "", "the version to restore (default: the newest trashed)")
	restore.Flags().BoolVar(&force, "force", false, "replace an object now at the key")
	c.AddCommand(list, restore)
	return c
}

// adminJSON asks the site's agent for verb and decodes its JSON answer.
func adminJSON(s *site, verb string, req agent.AdminRequest, v any) error {
	out, err := s.admin(verb, req)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), v)
}

func printTrashEntries(w io.Writer, es []agent.TrashEntry, asJSON bool) error {
	if asJSON {
		return printJSONLines(w, es)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET\tKEY\tWHEN\tSIZE\tOP\tBY PEER\tVERSION\tKEPT AS")
	for _, e := range es {
		key, by, kept, op := fmt.Sprintf("%q", e.Key), e.Peer, e.TrashKey, e.Op
		if e.Key == "" {
			key = "(tag " + e.Tag + ")"
		}
		if e.Versioned {
			by, kept, op = "-", "(noncurrent version)", "-"
		}
		if e.Error != "" {
			op = "? " + e.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", e.Bucket, key, e.When.Format(time.RFC3339), e.Size, op, by, e.VersionID, kept)
	}
	return tw.Flush()
}

// printTrash is the trash part of a site's status.
func printTrash(w io.Writer, ts []producer.TrashStatus) {
	if len(ts) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRASH OF BUCKET\tKEEPS\tOBJECTS\tBYTES\tPURGED LAST SCAN")
	for _, t := range ts {
		keeps := t.Mode
		if t.Versioned {
			keeps = "nothing copied: the store versions the bucket (trash restore --version)"
		}
		if t.Error != "" {
			keeps += " (last look failed: " + t.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", t.Bucket, keeps, t.Objects, t.Bytes, t.Purged)
	}
	tw.Flush()
}
