package main

import "testing"

// The CPU split counts every S3 server the lab runs as a store, whatever
// S3MESH_BENCH_STORES chose, and rclone as a store only when it serves S3
// (the baseline copier is a tool).
func TestGroupOf(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"/x/bin/versitygw", "posix"}, "stores"},
		{[]string{"/x/bin/minio", "server"}, "stores"},
		{[]string{"/x/bin/weed", "server", "-s3"}, "stores"},
		{[]string{"/x/bin/rclone", "serve", "s3", "/d"}, "stores"},
		{[]string{"/x/bin/rclone", "copy", "a:", "b:"}, "tools"},
		{[]string{"/x/bin/s3mesh", "broker", "--config", "c"}, "brokers"},
		{[]string{"/x/bin/s3mesh", "agent", "--config", "c"}, "agents"},
		{nil, "tools"},
	} {
		if got := groupOf(tc.argv); got != tc.want {
			t.Errorf("groupOf(%q) = %q, want %q", tc.argv, got, tc.want)
		}
	}
}
