package integration

import (
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lab"
)

// The mixed lab: site b runs `rclone serve s3` (a second, independent S3
// implementation that sends no events, so b's agent polls it), a and c
// versitygw; a's events come over NATS, c's from versitygw's webhook sink
// into c's agent (token-protected). The same replication, conflict and
// fault tests as on the all-versitygw lab run on it.
var (
	mixedOnce sync.Once
	mixed     *env
	mixedErr  error
	mixedDir  string
)

func mixedEnv(t *testing.T) *env {
	t.Helper()
	s3meshBin, versity, rclone := testenv.S3meshBin(t), testenv.VersityBin(t), testenv.RcloneBin(t)
	mixedOnce.Do(func() {
		mixedDir, mixedErr = os.MkdirTemp("", "s3mesh-mixed-lab-")
		if mixedErr != nil {
			return
		}
		mixed, mixedErr = startEnv(mixedDir, s3meshBin, versity, func(o *lab.Options) {
			o.Stores = []string{lab.StoreVersity, lab.StoreRclone, lab.StoreVersity}
			o.Events = []string{lab.EventsNATS, lab.EventsPoll, lab.EventsWebhook}
			o.RcloneBin = rclone
		})
	})
	if mixedErr != nil {
		t.Fatalf("start the mixed lab: %v", mixedErr)
	}
	return mixed
}

func TestMixedStores(t *testing.T) {
	e := mixedEnv(t)
	for i, want := range [][2]string{{lab.StoreVersity, lab.EventsNATS}, {lab.StoreRclone, lab.EventsPoll}, {lab.StoreVersity, lab.EventsWebhook}} {
		if si := e.info.Sites[i]; si.Store != want[0] || si.Events != want[1] {
			t.Fatalf("site %s runs %s with %s events, want %s with %s", si.Name, si.Store, si.Events, want[0], want[1])
		}
	}
	// Every agent probed its store: both implementations honour
	// conditional writes; each status names its event source.
	for _, n := range e.names {
		deadline := time.Now().Add(converge)
		st := e.siteStatus(t, n)
		for st.Store == nil && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			st = e.siteStatus(t, n)
		}
		if st.Store == nil || !st.Store.Conditional() || st.Store.KeyBytes != 1024 || !st.Store.Unicode {
			t.Errorf("site %s: store probe %+v", n, st.Store)
		}
		if len(st.Sources) == 0 || st.Sources[0].Type != e.info.Sites[slices.Index(e.names, n)].Events {
			t.Errorf("site %s: sources %+v", n, st.Sources)
		}
	}
	for _, tc := range []struct {
		name string
		f    func(*testing.T, *env)
	}{
		{"PutAtEverySiteReplicatesWithAttributes", testPutAtEverySiteReplicatesWithAttributes},
		{"OverwriteAndDeletePropagate", testOverwriteAndDeletePropagate},
		{"ConcurrentWritesConvergeLWWAndKeepLosers", testConcurrentWritesConvergeLWWAndKeepLosers},
		{"WorkloadWithPartitionNoSilentLoss", testWorkloadWithPartitionNoSilentLoss},
		{"FaultAgentCrashes", testFaultAgentCrashes},
	} {
		if !t.Run(tc.name, func(t *testing.T) { tc.f(t, e) }) {
			return // the later ones would fail for the same reason
		}
	}
}
