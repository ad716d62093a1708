package agent

import (
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/lifecycle"
	"github.com/s3mesh/s3mesh/schema"
)

// The producer never publishes (nor counts toward a delete guard) a key of
// the trash, whatever its name; a user's key that only looks like one is
// replicated.
func TestTrashIgnored(t *testing.T) {
	for _, k := range []string{
		schema.TrashKey("b", "k", 1, "a.x.1", 0),
		schema.TrashKey("b", strings.Repeat("k", 1020), 1, "a.x.1", 0),
		schema.TrashKey("b", "dir/", 1, "a.x.1", 0),
		schema.TrashPrefix + "anything",
	} {
		if !trashIgnore.MatchString(k) {
			t.Errorf("trash key %q is not ignored", k)
		}
	}
	for _, k := range []string{".s3mesh-trashy", "x/.s3mesh-trash/k", ".s3mesh-trash", "s3mesh-trash/k"} {
		if trashIgnore.MatchString(k) {
			t.Errorf("user key %q is ignored", k)
		}
	}
}

func TestTrashMode(t *testing.T) {
	for mode, want := range map[string]lifecycle.TrashMode{config.TrashDeletes: lifecycle.TrashDeletes, config.TrashAll: lifecycle.TrashAll, config.TrashNone: lifecycle.TrashNone} {
		if got := trashMode(mode); got != want {
			t.Errorf("trashMode(%q) = %v, want %v", mode, got, want)
		}
	}
}
