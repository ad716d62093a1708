package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTrashConfig(t *testing.T) {
	s, err := Parse([]byte(setup(t)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Trash.Retention != DefaultTrashRetention || s.Buckets[0].Trash != TrashDeletes || s.Buckets[1].Trash != TrashDeletes {
		t.Fatalf("defaults: retention %v, buckets %q %q; want %v, deletes", s.Trash.Retention, s.Buckets[0].Trash, s.Buckets[1].Trash, DefaultTrashRetention)
	}
	y := strings.Replace(setup(t), "  - name: demo\n", "  - name: demo\n    trash: all\n", 1)
	y = strings.Replace(y, "  - name: photos.archive\n", "  - name: photos.archive\n    trash: none\n", 1) + "trash: {retention: 36h}\n"
	if s, err = Parse([]byte(y)); err != nil {
		t.Fatal(err)
	}
	if s.Trash.Retention != 36*time.Hour || s.Buckets[0].Trash != TrashAll || s.Buckets[1].Trash != TrashNone {
		t.Fatalf("explicit: retention %v, buckets %q %q", s.Trash.Retention, s.Buckets[0].Trash, s.Buckets[1].Trash)
	}
}

func TestTrashConfigErrors(t *testing.T) {
	cases := []struct {
		name, old, new, field, msg string
	}{
		{"unknown mode", "  - name: demo\n", "  - name: demo\n    trash: everything\n", "buckets[0].trash", "want deletes, all or none"},
		{"negative retention", "http_addr:", "trash: {retention: -1h}\nhttp_addr:", "trash.retention", "want at least 1s"},
		{"retention under a second", "http_addr:", "trash: {retention: 10ms}\nhttp_addr:", "trash.retention", "want at least 1s"},
		{"losers in the trash", "  - name: demo\n", "  - name: demo\n    conflicts: {losers_prefix: .s3mesh-trash/losers/}\n", "buckets[0].conflicts.losers_prefix", "never replicated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(setup(t), c.old, c.new, 1)))
			var ce *Error
			if !errors.As(err, &ce) || ce.Field != c.field || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v, want a config error on %s saying %q", err, c.field, c.msg)
			}
		})
	}
}
