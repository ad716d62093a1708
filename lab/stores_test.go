package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --stores takes MinIO and SeaweedFS in any mix; each store's event sources
// are checked, a missing binary and a bucket name MinIO refuses are named.
func TestOptionsStores(t *testing.T) {
	dir := t.TempDir()
	bin := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := Options{S3meshBin: bin("s3mesh"), VersityBin: bin("versitygw"), MinioBin: bin("minio"), WeedBin: bin("weed")}
	for _, tc := range []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{"minio, seaweedfs, versitygw", func(o *Options) { o.Stores = []string{StoreMinio, StoreSeaweed, StoreVersity} }, ""},
		{"any order and mix", func(o *Options) { o.Stores = []string{StoreSeaweed, StoreMinio, StoreMinio} }, ""},
		{"MinIO sends NATS events", func(o *Options) {
			o.Stores = []string{StoreMinio, StoreSeaweed, StoreVersity}
			o.Events = []string{EventsNATS, EventsPoll, EventsWebhook}
		}, ""},
		{"SeaweedFS sends none", func(o *Options) {
			o.Stores = []string{StoreMinio, StoreSeaweed, StoreVersity}
			o.Events = []string{EventsNATS, EventsNATS, EventsNATS}
		}, "site 2 runs seaweedfs, which sends no nats events: use poll"},
		{"MinIO's webhook is not wired", func(o *Options) {
			o.Stores = []string{StoreMinio, StoreSeaweed, StoreVersity}
			o.Events = []string{EventsWebhook, EventsPoll, EventsNATS}
		}, "site 1 runs minio, which sends no webhook events: use nats or poll"},
		{"unknown store", func(o *Options) { o.Stores = []string{StoreMinio, "ceph", StoreVersity} }, `store 2 is "ceph"`},
		{"MinIO bucket names", func(o *Options) {
			o.Stores = []string{StoreMinio, StoreSeaweed, StoreVersity}
			o.Buckets = []string{"demo", "ab"}
		}, `bucket "ab": MinIO needs bucket names of 3 characters or more`},
		{"short names without MinIO", func(o *Options) {
			o.Stores = []string{StoreSeaweed, StoreVersity, StoreVersity}
			o.Buckets = []string{"ab"}
		}, ""},
		{"missing weed", func(o *Options) {
			o.Stores = []string{StoreMinio, StoreSeaweed, StoreVersity}
			o.WeedBin = filepath.Join(dir, "nope")
		}, "seaweedfs not found at " + filepath.Join(dir, "nope") + ": run `make stores`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mod(&o)
			got, err := o.withDefaults()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case err == nil && len(got.Stores) != 3:
				t.Fatalf("stores %v", got.Stores)
			}
		})
	}
}

// A MinIO site's site.yaml takes its NATS events URL-encoded (MinIO
// encodes keys as S3 does); versitygw's stay raw; SeaweedFS is polled.
func TestStoreEventSources(t *testing.T) {
	o := Options{Poll: 2e9}
	for _, tc := range []struct{ store, events, typ, enc string }{
		{StoreMinio, EventsNATS, "nats", "url"},
		{StoreVersity, EventsNATS, "nats", "raw"},
		{StoreSeaweed, EventsPoll, "poll", "raw"},
	} {
		s := &site{name: "a", store: tc.store, events: tc.events}
		ev := s.yEvents(o)
		if ev[0].Type != tc.typ || ev[0].KeyEncoding != tc.enc {
			t.Errorf("%s with %s: first source %+v, want type %s, keys %s", tc.store, tc.events, ev[0], tc.typ, tc.enc)
		}
		if tc.typ == "nats" && ev[0].Subject != eventsSubject("a") {
			t.Errorf("%s: subject %q, want %q (the events user may publish only there)", tc.store, ev[0].Subject, eventsSubject("a"))
		}
	}
}
