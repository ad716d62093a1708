package integration

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/verify"
)

// TestUnrepresentableKeys: in the mixed lab (b runs rclone serve s3, which
// cannot hold a key with a tab or another control byte under its exact
// name, and lists it as U+2409 and the like), keys with a tab and with
// 0x01 written at a stay at a and c with their bytes; b dead-letters their
// records as unrepresentable-key; and nothing is renamed, invented or
// deleted anywhere, whatever b's listing shows — also after b scans, and
// for such a key written by a user at b itself.
func TestUnrepresentableKeys(t *testing.T) {
	e := mixedEnv(t)
	ctx := ctxT(t)
	keys := map[string]string{"unrep/tab\tkey": "tab body", "unrep/soh\x01key": "soh body"}
	for k, body := range keys {
		e.putIn(t, "a", bucket, k, []byte(body))
	}
	for k, body := range keys {
		e.waitAt(t, []string{"a", "c"}, bucket, k, body, converge)
	}
	// b's DLQ names each key's record, with the reason.
	for k := range keys {
		e.waitDeadLetter(t, "b", fmt.Sprintf("%q", k), func(d consumer.DeadLetter) bool { return d.Key == k }, consumer.ReasonUnrepresentable)
	}
	// A user writes such a key at b itself. b's agent publishes it under
	// the name the user wrote if it looks before rclone forgets that name
	// (its directory cache, 1 s in the lab), else not at all: either way a
	// local fault of b. What must never happen: rclone's name for it
	// published as a key nobody wrote, or the exact name, which b's store
	// no longer finds, published as a delete.
	e.putIn(t, "b", bucket, "unrep/at-b\tkey", []byte("written at b"))
	testenv.Eventually(t, converge, "b listing its keys under rclone's names", func() error {
		var listed []string
		if err := e.sites["b"].s3.List(ctx, bucket, "unrep/", 100, func(le s3io.ListEntry) error {
			listed = append(listed, le.Key)
			return nil
		}); err != nil {
			return err
		}
		if !slices.Contains(listed, "unrep/at-b\u2409key") {
			return fmt.Errorf("b lists %q", listed)
		}
		return nil
	})
	e.quiesce(t, converge)
	want := []string{"unrep/soh\x01key", "unrep/tab\tkey"}
	if got, ok := e.bodyAt(t, "a", bucket, "unrep/at-b\tkey"); ok {
		if string(got) != "written at b" {
			t.Fatalf("unrep/at-b\\tkey at a: %q", got)
		}
		keys["unrep/at-b\tkey"] = "written at b" // published in time: it must stay
		want = append([]string{"unrep/at-b\tkey"}, want...)
	}
	t.Logf("the key written at b was published under its own name: %v", len(want) == 3)
	// b scans: its listing shows the stand-in names and lacks the exact
	// ones; nothing may come of either.
	lab := filepath.Join(e.info.Dir, "lab.json")
	if out, err := exec.Command(testenv.S3meshBin(t), "scan", "now", "--bucket", bucket, "--lab", lab, "--site", "b").CombinedOutput(); err != nil {
		t.Fatalf("scan now at b: %v %s", err, out)
	}
	e.quiesce(t, converge)
	for _, s := range []string{"a", "c"} {
		for k, body := range keys {
			if got, ok := e.bodyAt(t, s, bucket, k); !ok || string(got) != body {
				t.Errorf("%q at %s after b's scan: %q (present %v), want %q", k, s, got, ok, body)
			}
		}
		var listed []string
		if err := e.sites[s].s3.List(ctx, bucket, "unrep/", 100, func(le s3io.ListEntry) error {
			if strings.HasPrefix(le.Key, "unrep/") {
				listed = append(listed, le.Key)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// versitygw lists 0x01 as U+FFFD (the exact name is what HEAD and
		// GET find): compare the exact names that exist instead.
		var exact []string
		for _, k := range listed {
			if _, ok := e.bodyAt(t, s, bucket, k); ok {
				exact = append(exact, k)
			}
		}
		for k := range keys {
			if !slices.Contains(exact, k) {
				exact = append(exact, k) // held by its exact name (checked above), listed otherwise
			}
		}
		slices.Sort(exact)
		exact = slices.Compact(exact)
		if !slices.Equal(exact, want) {
			t.Errorf("keys under unrep/ at %s: %q, want %q (nothing invented)", s, exact, want)
		}
	}
	// verify says what b's store did, rather than "missing". (It compares
	// listed names: versitygw lists 0x01 as U+FFFD, so the 0x01 key is out
	// of its reach.)
	out, err := exec.Command(testenv.S3meshBin(t), "verify", "--json", "--bucket", bucket, "--lab", lab).Output()
	var rep verify.Report
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("verify: %v %v\n%s", err, jerr, out)
	}
	kinds := map[string]string{}
	for _, d := range rep.Differences {
		if strings.HasPrefix(d.Key, "unrep/") {
			kinds[d.Key] += d.Kind + ": " + d.Detail + ";"
		}
	}
	for k, want := range map[string]string{
		"unrep/tab\tkey":      "unrepresentable at b",
		"unrep/at-b\u2409key": "a name nobody wrote, made by the store at b",
	} {
		if got := kinds[k]; !strings.Contains(got, want) || strings.Contains(got, "missing") {
			t.Errorf("verify on %q: %q, want %q and no missing", k, got, want)
		}
	}
}
