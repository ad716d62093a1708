package integration

import (
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/agent"
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
	// Every agent probed its store: both implementations honour
	// conditional writes; each status names its event source.
	probed := e.probedStores(t, [][2]string{{lab.StoreVersity, lab.EventsNATS}, {lab.StoreRclone, lab.EventsPoll}, {lab.StoreVersity, lab.EventsWebhook}})
	for _, n := range e.names {
		st := probed[n]
		if st.Store == nil || !st.Store.Conditional() || st.Store.KeyBytes != 1024 || !st.Store.Unicode || !st.Store.Multipart {
			t.Errorf("site %s: store probe %+v", n, st.Store)
		}
		// versitygw names a multipart upload md5-N and tells its part
		// sizes; rclone names it by the MD5 of its bytes and needs none.
		if st.Store != nil && st.Store.PartLayout != (st.Store.MultipartETag == "md5-N") {
			t.Errorf("site %s: multipart ETag %q with part layout %v", n, st.Store.MultipartETag, st.Store.PartLayout)
		}
		if len(st.Sources) == 0 || st.Sources[0].Type != e.info.Sites[slices.Index(e.names, n)].Events {
			t.Errorf("site %s: sources %+v", n, st.Sources)
		}
	}
	// c's events really come from versitygw's webhook sink (the scan
	// would hide it if they did not): its agent counts them by source.
	deadline := time.Now().Add(converge)
	for n := webhookEvents(t, e.info.Sites[2].HTTPAddr); n == 0; n = webhookEvents(t, e.info.Sites[2].HTTPAddr) {
		if time.Now().After(deadline) {
			t.Fatal("site c's agent received no event from versitygw's webhook sink")
		}
		time.Sleep(200 * time.Millisecond)
	}
	runStoreTests(t, e)
}

// polled reports whether site's agent learns of its store's changes by
// polling (no events).
func (e *env) polled(site string) bool {
	for _, s := range e.info.Sites {
		if s.Name == site {
			return s.Events == lab.EventsPoll
		}
	}
	return false
}

// webhookEvents reads s3mesh_events_received_total{source="vgw"} from the
// agent's /metrics at addr.
func webhookEvents(t *testing.T, addr string) float64 {
	t.Helper()
	return metricValue(t, addr, `s3mesh_events_received_total{source="vgw"}`)
}

// metricValue reads one sample (its name and labels as /metrics prints
// them) from the agent's /metrics at addr; 0 if absent.
func metricValue(t *testing.T, addr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// probedStores checks that the lab's sites run the stores and event sources
// want names, in site order, and returns each site's status once its agent
// has probed its store (failing the test if one has not within converge).
func (e *env) probedStores(t *testing.T, want [][2]string) map[string]agent.Status {
	t.Helper()
	for i, w := range want {
		if si := e.info.Sites[i]; si.Store != w[0] || si.Events != w[1] {
			t.Fatalf("site %s runs %s with %s events, want %s with %s", si.Name, si.Store, si.Events, w[0], w[1])
		}
	}
	out := map[string]agent.Status{}
	for _, n := range e.names {
		deadline := time.Now().Add(converge)
		st := e.siteStatus(t, n)
		for st.Store == nil && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			st = e.siteStatus(t, n)
		}
		if st.Store == nil {
			t.Fatalf("site %s: no store probe after %v", n, converge)
		}
		out[n] = st
	}
	return out
}

// storeTests are the tests every mixed-store lab runs: replication, every
// conflict policy, and the partition and agent-crash workloads with the
// no-silent-loss checker.
var storeTests = []struct {
	name string
	f    func(*testing.T, *env)
}{
	{"PutAtEverySiteReplicatesWithAttributes", testPutAtEverySiteReplicatesWithAttributes},
	{"OverwriteAndDeletePropagate", testOverwriteAndDeletePropagate},
	// Multipart ETags differ between the implementations: verify
	// compares such objects by sha256 of their bytes.
	{"CopyMultipartAndMultiDelete", testCopyMultipartAndMultiDelete},
	{"AwkwardKeysReplicate", testAwkwardKeysReplicate},
	// (TestUnstorableKeyGoesToDLQ is versitygw's file/directory clash:
	// not a property of every store, not run here.)
	{"ConcurrentWritesConvergeLWWAndKeepLosers", testConcurrentWritesConvergeLWWAndKeepLosers},
	{"SitePriorityWins", testSitePriorityWins},
	{"DeleteVersusPut", testDeleteVersusPut},
	{"ManualConflictParkedThenResolved", testManualConflictParkedThenResolved},
	{"WorkloadWithPartitionNoSilentLoss", testWorkloadWithPartitionNoSilentLoss},
	{"FaultAgentCrashes", testFaultAgentCrashes},
}

// runStoreTests runs storeTests on e in order, stopping at the first that
// fails (the later ones would fail for the same reason).
func runStoreTests(t *testing.T, e *env) {
	for _, tc := range storeTests {
		if !t.Run(tc.name, func(t *testing.T) { tc.f(t, e) }) {
			return
		}
	}
}
