package integration

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/s3io"
)

// The MinIO/SeaweedFS lab: site a runs a MinIO server whose own bucket
// notifications reach a's broker over MinIO's NATS target, b runs `weed
// server -s3` (SeaweedFS sends no S3 events: b's agent polls it), c runs
// versitygw with its NATS sink. The same replication, conflict and fault
// tests as in TestMixedStores run on it. Both builds are made through
// testenv when bin/ lacks them (`make stores`).
var (
	mswOnce sync.Once
	msw     *env
	mswErr  error
	mswDir  string
)

func minioSeaweedEnv(t *testing.T) *env {
	t.Helper()
	s3meshBin, versity := testenv.S3meshBin(t), testenv.VersityBin(t)
	minio, weed := testenv.MinioBin(t), testenv.WeedBin(t)
	mswOnce.Do(func() {
		mswDir, mswErr = os.MkdirTemp("", "s3mesh-msw-lab-")
		if mswErr != nil {
			return
		}
		msw, mswErr = startEnv(mswDir, s3meshBin, versity, func(o *lab.Options) {
			o.Stores = []string{lab.StoreMinio, lab.StoreSeaweed, lab.StoreVersity}
			o.MinioBin, o.WeedBin = minio, weed
		})
	})
	if mswErr != nil {
		t.Fatalf("start the MinIO/SeaweedFS lab: %v", mswErr)
	}
	return msw
}

func TestMinioSeaweedLab(t *testing.T) {
	t.Parallel() // a lab of its own: see parallelTests
	e := minioSeaweedEnv(t)
	probed := e.probedStores(t, [][2]string{{lab.StoreMinio, lab.EventsNATS}, {lab.StoreSeaweed, lab.EventsPoll}, {lab.StoreVersity, lab.EventsNATS}})
	// Every agent probed its store. SeaweedFS and versitygw honour both
	// conditional writes; MinIO honours conditional PUTs and ignores
	// If-Match on DELETE (the lab sets s3.unconditional_writes there, so
	// its agent HEAD-checks replica deletes only). Each holds a key with a
	// tab, a decomposed letter, a trailing dot or space and a backslash
	// under its exact name.
	for i, n := range e.names {
		p := *probed[n].Store
		wantDelete := e.info.Sites[i].Store != lab.StoreMinio
		if !p.ConditionalPut || p.ConditionalDelete != wantDelete || !p.Multipart || p.KeyBytes != 1024 || !p.Unicode {
			t.Errorf("site %s (%s): store probe %+v", n, e.info.Sites[i].Store, p)
		}
		holds := map[string]bool{}
		for _, kc := range p.KeyClasses {
			holds[kc.Name] = kc.Holds
		}
		for _, class := range []string{"control 0x09", "NFD", "trailing dot", "trailing space", "backslash", s3io.CasePair} {
			if !holds[class] {
				t.Errorf("site %s (%s) does not hold a key with %s: %+v", n, e.info.Sites[i].Store, class, p.KeyClasses)
			}
		}
	}
	if t.Failed() {
		return
	}
	// Every peer key is read-only at every store, MinIO's included (the lab
	// makes MinIO users with a read-only policy through minio-users, and
	// SeaweedFS identities with Read and List): no agent runs with
	// allow_writable_key here.
	e.waitPeerKeysReadOnly(t)
	// a's events really come from MinIO's own notifications over NATS (the
	// scan would hide it if they did not).
	key := prefix("minio-event") + "k"
	e.put(t, "a", key, object{body: []byte("v")})
	deadline := time.Now().Add(converge)
	for natsEvents(t, e.info.Sites[0].HTTPAddr) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("site a's agent received no event from MinIO's NATS notification target")
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.waitObject(t, key, object{body: []byte("v")}, converge)
	runStoreTests(t, e)
}

// natsEvents reads s3mesh_events_received_total{source="nats"} from the
// agent's /metrics at addr.
func natsEvents(t *testing.T, addr string) float64 {
	t.Helper()
	return metricValue(t, addr, `s3mesh_events_received_total{source="nats"}`)
}

// waitPeerKeysReadOnly waits until every site's agent has found each of
// its peer keys read-only on every bucket, and fails the test on a key
// found writable, on allow_writable_key, or on no verdict within converge.
func (e *env) waitPeerKeysReadOnly(t *testing.T) {
	t.Helper()
	for _, n := range e.names {
		deadline := time.Now().Add(converge)
		for {
			st := e.siteStatus(t, n)
			settled, want := 0, (len(e.names)-1)*len(e.info.Buckets)
			for _, k := range st.PeerKeys {
				switch {
				case k.AllowWritable || k.Key == "writable":
					t.Fatalf("site %s: its key at %s's store (bucket %s) is %s, allow_writable_key %v: want read-only", n, k.Peer, k.Bucket, k.Key, k.AllowWritable)
				case k.Key == "read-only":
					settled++
				}
			}
			if settled == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("site %s: %d of %d peer keys found read-only after %v: %+v", n, settled, want, converge, st.PeerKeys)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
