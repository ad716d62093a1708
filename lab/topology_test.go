package lab

import "testing"

func TestModeOptions(t *testing.T) {
	o := Options{Sites: 3, Archive: []string{"c"}, Replica: []string{"b"}}
	if err := o.checkModes(); err != nil {
		t.Fatal(err)
	}
	if m := o.topology("c", "demo").Mode; m != "archive" {
		t.Errorf("c: mode %q", m)
	}
	if m := o.topology("b", "demo").Mode; m != "replica" {
		t.Errorf("b: mode %q", m)
	}
	if m := o.topology("a", "demo").Mode; m != "" {
		t.Errorf("a: mode %q, want the default", m)
	}
	for _, bad := range []Options{
		{Sites: 3, Archive: []string{"d"}},
		{Sites: 3, Replica: []string{"ab"}},
		{Sites: 3, Archive: []string{"b"}, Replica: []string{"b"}},
	} {
		if err := bad.checkModes(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
