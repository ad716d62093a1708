package config

import (
	"errors"
	"strings"
	"testing"
)

func TestTopologyDefaultsAndValues(t *testing.T) {
	y := strings.Replace(setup(t), "  - name: photos.archive\n",
		"  - name: photos.archive\n    mode: archive\n    include: [img/, raw/]\n    exclude: [img/tmp/]\n", 1)
	s, err := Parse([]byte(y))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if m := s.Buckets[0].Mode; m != ModeActive || !s.Buckets[0].Publishes() {
		t.Errorf("default mode %q (publishes %v), want active", m, s.Buckets[0].Publishes())
	}
	b := s.Buckets[1]
	if b.Mode != ModeArchive || b.Publishes() {
		t.Errorf("mode %q (publishes %v), want archive, publishing nothing", b.Mode, b.Publishes())
	}
	if strings.Join(b.Include, ",") != "img/,raw/" || strings.Join(b.Exclude, ",") != "img/tmp/" {
		t.Errorf("include %q exclude %q", b.Include, b.Exclude)
	}
}

func TestTopologyFieldErrors(t *testing.T) {
	many := "[" + strings.TrimSuffix(strings.Repeat("p/,", MaxFilterPrefixes+1), ",") + "]"
	tests := []struct{ name, add, field string }{
		{"unknown mode", "    mode: mirror\n", "buckets[1].mode"},
		{"mode in capitals", "    mode: Replica\n", "buckets[1].mode"},
		{"empty include prefix", "    include: [\"\"]\n", "buckets[1].include[0]"},
		{"duplicate exclude prefix", "    exclude: [a/, b/, a/]\n", "buckets[1].exclude[2]"},
		{"prefix longer than a key", "    include: [" + strings.Repeat("k", 1025) + "]\n", "buckets[1].include[0]"},
		{"too many prefixes", "    exclude: " + many + "\n", "buckets[1].exclude"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(setup(t), "  - name: photos.archive\n", "  - name: photos.archive\n"+tc.add, 1)
			_, err := Parse([]byte(y))
			var ce *Error
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("err = %v, want a config error of field %s", err, tc.field)
			}
		})
	}
}
