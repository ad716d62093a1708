package s3io

import "testing"

// TestKeyClassJudgements: a key falls in a class the store cannot hold by
// the class's characters; a listed name is a store-made alias only by a
// distinctive stand-in of a class the store cannot hold (rclone lists a
// tab as U+2409), never by an ASCII one ("_" would make every key with an
// underscore look made up).
func TestKeyClassJudgements(t *testing.T) {
	classes := make([]KeyClass, len(KeyClassProbes))
	for i, p := range KeyClassProbes {
		classes[i] = KeyClass{Name: p.Name, Holds: true}
		switch p.Name {
		case "control 0x09":
			classes[i] = KeyClass{Name: p.Name, ListedAs: "\u2409"}
		case "control 0x01":
			classes[i] = KeyClass{Name: p.Name, ListedAs: "_"}
		case "trailing dot":
			classes[i] = KeyClass{Name: p.Name}
		}
	}
	caps := Capabilities{KeyClasses: classes}
	for _, tc := range []struct{ key, unrep, alias string }{
		{"plain/key.txt", "", ""},
		{"tab\tkey", "control 0x09", ""},
		{"tab\u2409key", "", "control 0x09"},
		{"soh\x01key", "control 0x01", ""},
		{"under_score", "", ""},
		{"dir./x", "trailing dot", ""},
		{"dir/x.", "trailing dot", ""},
		{"e\u0301", "", ""},
	} {
		if got := caps.Unrepresentable(tc.key); got != tc.unrep {
			t.Errorf("Unrepresentable(%q) = %q, want %q", tc.key, got, tc.unrep)
		}
		if got := caps.ListedAlias(tc.key); got != tc.alias {
			t.Errorf("ListedAlias(%q) = %q, want %q", tc.key, got, tc.alias)
		}
	}
}
