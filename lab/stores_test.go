package lab

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/config"
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
	base := Options{S3meshBin: bin("s3mesh"), VersityBin: bin("versitygw"), MinioBin: bin("minio"), MinioUsersBin: bin("minio-users"), WeedBin: bin("weed")}
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
		{"missing minio-users", func(o *Options) {
			o.Stores = []string{StoreMinio, StoreSeaweed, StoreVersity}
			o.MinioUsersBin = filepath.Join(dir, "nope")
		}, "minio-users not found at " + filepath.Join(dir, "nope") + ": run `make stores`"},
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

// The site.yaml of a minio,seaweedfs,versitygw lab: MinIO's site accepts
// that its store ignores If-Match on DELETE and reads its NATS events
// URL-encoded; its peers fetch from it with its root key, marked writable;
// SeaweedFS's peers get identities of their own with Read and List only;
// the versitygw site is as before.
func TestStoreSiteConfigs(t *testing.T) {
	dir := t.TempDir()
	stores := []string{StoreMinio, StoreSeaweed, StoreVersity}
	sites, pf := preparedSites(t, dir, func(n string) int { return storePorts(stores[n[0]-'a']) }, func(s *site) {
		s.store, s.events = stores[s.name[0]-'a'], storeEvents(stores[s.name[0]-'a'])[0]
	})
	if err := writeWeedIdentities(sites[1], sites); err != nil {
		t.Fatal(err)
	}
	leaf := func(x, y *site) string { return loopback(pf.Links[linkName(x.name, y.name)]) }
	cfg := map[string]*config.Site{}
	for _, s := range sites {
		if err := writeConfig(s, sites, Options{Buckets: []string{"demo"}, ScanInterval: 15 * time.Second, Poll: 2 * time.Second}, leaf); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(s.configPath())
		if err != nil {
			t.Fatal(err)
		}
		cfg[s.name] = c
	}
	if a := cfg["a"]; !a.S3.UnconditionalWrites || a.Events[0].Type != "nats" || a.Events[0].KeyEncoding != "url" {
		t.Errorf("MinIO site a: s3 %+v, first event source %+v", a.S3, a.Events[0])
	}
	for _, n := range []string{"b", "c"} {
		if c := cfg[n]; c.S3.UnconditionalWrites {
			t.Errorf("site %s (%s) accepts unconditional writes", n, sites[n[0]-'a'].store)
		}
	}
	if b := cfg["b"]; b.Events[0].Type != "poll" {
		t.Errorf("SeaweedFS site b: first event source %+v, want poll", b.Events[0])
	}
	// No store of this lab lacks read-only keys: MinIO's peers get MinIO
	// users (minio-users), SeaweedFS's identities with Read and List.
	for _, p := range cfg["b"].Peers {
		if p.S3.AllowWritableKey || p.S3.AccessKey == sites[p.Name[0]-'a'].accessKey {
			t.Errorf("b's key at %s: allow_writable_key %v, access key %s (the store's own is %s): want a read-only key of b's own", p.Name, p.S3.AllowWritableKey, p.S3.AccessKey, sites[p.Name[0]-'a'].accessKey)
		}
	}
	raw, err := os.ReadFile(sites[1].weedIdentityPath())
	if err != nil {
		t.Fatal(err)
	}
	var ids struct {
		Identities []struct {
			Name        string
			Credentials []struct{ AccessKey, SecretKey string }
			Actions     []string
		}
	}
	if err := json.Unmarshal(raw, &ids); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, id := range ids.Identities {
		if len(id.Credentials) != 1 {
			t.Fatalf("identity %s: %d credentials", id.Name, len(id.Credentials))
		}
		got[id.Credentials[0].AccessKey] = strings.Join(id.Actions, ",")
	}
	want := map[string]string{
		sites[1].accessKey:               "Admin,Read,List,Tagging,Write",
		sites[0].peerKeys["b"].accessKey: "Read,List",
		sites[2].peerKeys["b"].accessKey: "Read,List",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SeaweedFS identities %v, want %v", got, want)
	}
	for _, p := range cfg["a"].Peers {
		if p.Name == "b" && p.S3.AccessKey != sites[0].peerKeys["b"].accessKey {
			t.Errorf("a's key at b is %s, not the one b's identity file grants", p.S3.AccessKey)
		}
	}
}
