package consumer

import (
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/schema"
)

func TestTrashMeta(t *testing.T) {
	ti := schema.TrashInfo{Key: "dir/k", Tag: schema.KeyTag("b", "dir/k"), VID: "a.x.1", By: "b.x.2", Peer: "b", At: 7, Op: schema.TrashOpDelete}
	obj := map[string]string{"color": "red", schema.MetaVID: "a.x.1", schema.MetaClock: "a:1"}
	m, dropped := trashMeta(obj, ti)
	if m["color"] != "red" || m[schema.MetaVID] != "" || m[schema.MetaTrashVID] != "a.x.1" || m[schema.MetaTrashKey] != "dir/k" || len(dropped) != 0 {
		t.Fatalf("small metadata: %v (dropped %v): want the user's kept, the replica marker gone, the trash marks there", m, dropped)
	}
	// Too much: the original key goes first, then user metadata; the trash
	// marks that find the object stay.
	big := map[string]string{"a": strings.Repeat("x", 1500), "b": strings.Repeat("y", 400)}
	ti.Key = strings.Repeat("k", 600)
	m, dropped = trashMeta(big, ti)
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	if n > maxMetaBytes || m[schema.MetaTrashTag] == "" || m[schema.MetaTrashVID] == "" || len(dropped) == 0 || dropped[0] != schema.MetaTrashKey {
		t.Fatalf("large metadata: %d bytes, dropped %v, marks %v", n, dropped, m[schema.MetaTrashTag])
	}
	if _, err := schema.ParseTrashMeta(m); err != nil {
		t.Fatalf("what is left does not read as trash: %v", err)
	}
}
