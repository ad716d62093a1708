package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/internal/testenv"
	"github.com/s3mesh/s3mesh/lab"
	"github.com/s3mesh/s3mesh/s3io"
	"github.com/s3mesh/s3mesh/schema"
)

// TestDashboard loads site a's dashboard in a real headless chromium and
// checks what an operator relies on: it loads without a console error or an
// exception, shows the three sites, shows a record written at b arriving
// (peer b's last record and watermark move), and shows the a–b link down
// once the lab cuts it. With S3MESH_UPDATE_SCREENSHOT=1 it writes its
// screenshot to docs/dashboard.png.
func TestDashboard(t *testing.T) {
	browser := chromiumPath(t)
	e := labEnv(t)
	var site lab.SiteInfo
	for _, s := range e.info.Sites {
		if s.Name == "a" {
			site = s
		}
	}
	base := "http://" + site.HTTPAddr + "/"
	pg := newPage(t, browser)
	eval, waitFor, checkProblems := pg.eval, pg.waitFor, pg.checkProblems

	start := time.Now()
	pg.open(base)
	if got := eval(`[...document.querySelectorAll("#mesh [data-site]")].map((e) => e.getAttribute("data-site")).sort().join(",")`); got != "a,b,c" {
		t.Fatalf("the mesh shows sites %q, want a,b,c", got)
	}
	if got := eval(`[...document.querySelectorAll("#peers tr[data-peer]")].map((e) => e.getAttribute("data-peer")).join(",")`); got != "b,c" {
		t.Fatalf("the peers table shows %q, want b,c", got)
	}
	if got := eval(`document.querySelector("#rebuild").textContent`); !strings.Contains(got, "never rebuilt") {
		t.Fatalf("the scanner section says %q of rebuilds, want that a was never rebuilt", got)
	}
	// No peer's deletes are held in the shared lab.
	if got := eval(`document.getElementById("held").textContent`); !strings.Contains(got, "no deletes held") {
		t.Fatalf("the held deletes section says %q, want none held", got)
	}
	// The store's key classes in one line: a's versitygw cannot hold a
	// segment over 255 bytes (a file name), and the classes are not
	// dumped as objects.
	waitFor("the store's key classes", `document.getElementById("store").textContent.includes("segment over 255 bytes")`, 30*time.Second)
	if got := eval(`document.getElementById("store").textContent`); strings.Contains(got, "[object") {
		t.Fatalf("the store section shows raw objects: %q", got)
	}
	checkProblems("after loading")

	// A write at b: its record reaches a, and the dashboard shows b's last
	// record and watermark move past it.
	row := `document.querySelector('#peers tr[data-peer="b"]')`
	before, err := strconv.ParseUint(eval(row+`.getAttribute("data-last-seq")`), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	e.put(t, "b", fmt.Sprintf("dashboard/%d", written.UnixNano()), object{body: []byte("seen on the dashboard")})
	waitFor("peer b's new record and a lag figure", fmt.Sprintf(`Number(%s.getAttribute("data-last-seq")) > %d && /\d/.test(%[1]s.querySelector(".silent").textContent) && /\d/.test(%[1]s.querySelector(".lag").textContent)`, row, before), 30*time.Second)
	if statusHasWatermark(t, base) {
		waitFor("peer b's watermark past the write", fmt.Sprintf(`Date.parse(%s.getAttribute("data-watermark")) >= %d && /\d/.test(%[1]s.querySelector(".watermark-age").textContent)`,
			row, written.Add(-time.Second).UnixMilli()), 30*time.Second)
	} else {
		t.Log("site a's status has no watermark field yet: only the last record and lag figures are checked")
	}
	waitFor("a chart value for b", `[...document.querySelectorAll('#charts .legend [data-peer="b"]')].some((e) => /\d/.test(e.textContent))`, 10*time.Second)
	t.Logf("b's write shown on a's dashboard after %v: %s", time.Since(written).Round(time.Millisecond), eval(row+".innerText"))

	update := os.Getenv("S3MESH_UPDATE_SCREENSHOT") == "1"
	if update {
		// For the screenshot in README.md and docs/operations.md only: a few minutes of bursts at b
		// and c, so the charts have a history to show.
		for i := range 12 {
			for _, s := range []string{"b", "c"} {
				for j := range 40 {
					e.put(t, s, fmt.Sprintf("dashboard/burst-%s-%d-%d", s, i, j), object{body: []byte("burst")})
				}
			}
			time.Sleep(10 * time.Second) // pacing the workload, not synchronisation
		}
	}

	// Cut a–b: the link shows down, the one to c stays up.
	e.mustCtl(t, "cut", "a", "b")
	t.Cleanup(func() {
		e.mustCtl(t, "heal", "a", "b")
		waitLinkUp(t, base, "b")
	})
	cut := time.Now()
	waitFor("the a–b link down", `document.querySelector('#mesh line[data-peer="b"]').getAttribute("data-state") === "stalled" && `+
		row+`.getAttribute("data-state") === "stalled" && `+row+`.innerText.includes("down")`, 40*time.Second)
	if got := eval(`document.querySelector('#mesh line[data-peer="c"]').getAttribute("data-state")`); got != "ok" {
		t.Errorf("the a–c link shows %q, want ok", got)
	}
	waitFor("a warning about b", `document.getElementById("warnings").innerText.includes("nothing heard from b")`, 10*time.Second)
	t.Logf("the cut a–b link shown down after %v", time.Since(cut).Round(time.Millisecond))
	if update {
		// b keeps writing while cut off: a hears nothing of it.
		for i := range 20 {
			e.put(t, "b", fmt.Sprintf("dashboard/while-cut-%d", i), object{body: []byte("unseen at a")})
			time.Sleep(time.Second) // pacing
		}
		waitFor("b silent for over 20 s", row+`.querySelector(".silent").textContent.includes("s") && parseFloat(`+row+`.querySelector(".silent").textContent) >= 20`, 30*time.Second)
	}

	sctx, cancel := context.WithTimeout(pg.ctx, 20*time.Second)
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	cancel()
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if update {
		shot = filepath.Join(testenv.RepoRoot(t), "docs", "dashboard.png")
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot (%d bytes): %s", len(png), shot)
	checkProblems("at the end")
	t.Logf("dashboard checked in %v", time.Since(start).Round(time.Millisecond))
}

// agentPeers reads the peers of a site's /api/status.
func agentPeers(base string) ([]map[string]any, error) {
	r, err := http.Get(base + "api/status")
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", r.Status)
	}
	var st struct {
		Peers []map[string]any `json:"peers"`
	}
	err = json.NewDecoder(r.Body).Decode(&st)
	return st.Peers, err
}

// statusHasWatermark reports whether the agent's status carries the
// caught-up watermark per peer.
func statusHasWatermark(t *testing.T, base string) bool {
	t.Helper()
	ps, err := agentPeers(base)
	if err != nil || len(ps) == 0 {
		t.Fatalf("%sapi/status: %v %v", base, ps, err)
	}
	_, ok := ps[0]["watermark"]
	return ok
}

// waitLinkUp waits until the agent at base hears from peer again, so that
// the next test starts on a whole mesh.
func waitLinkUp(t *testing.T, base, peer string) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for {
		ps, err := agentPeers(base)
		for _, p := range ps {
			if p["peer"] == peer && p["stalled"] == false {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("after the heal, %s still does not hear from %s: %v %v", base, peer, ps, err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// chromiumPath finds Debian's chromium, or fails the test saying how to
// install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the dashboard test drives Debian's chromium, and there is none on PATH (%v): "+
			"`make test` installs it when run as root with apt-get; otherwise: apt-get install -y chromium", err)
	}
	return browser
}

// page is one tab of a headless chromium of the test's own, recording
// every console error, uncaught exception and error of the browser's log
// (a CSP violation, a resource that failed to load).
type page struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newPage(t *testing.T, browser string) *page {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	p := &page{t: t, ctx: ctx}
	problem := func(format string, args ...any) {
		p.mu.Lock()
		p.problems = append(p.problems, fmt.Sprintf(format, args...))
		p.mu.Unlock()
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problem("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			problem("exception at %s:%d: %s", d.URL, d.LineNumber, desc)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				problem("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("start %s: %v", browser, err)
	}
	return p
}

// open loads url and waits for the dashboard's first update.
func (p *page) open(url string) {
	p.t.Helper()
	sctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	err := chromedp.Do(sctx, chromedp.Navigate(url))
	cancel()
	if err != nil {
		p.t.Fatalf("open %s: %v", url, err)
	}
	p.waitFor("its first update", `document.body.getAttribute("data-ready") === "1"`, 20*time.Second)
}

func (p *page) checkProblems(when string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.problems) > 0 {
		p.t.Fatalf("%s: the page wrote errors:\n%s", when, strings.Join(p.problems, "\n"))
	}
}

func (p *page) eval(expr string) string {
	p.t.Helper()
	sctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls the page until cond (a JavaScript expression) holds.
func (p *page) waitFor(what, cond string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for p.eval("String(!!("+cond+"))") != "true" {
		if time.Now().After(deadline) {
			p.t.Fatalf("after %s the dashboard does not show %s; it shows:\n%s", timeout, what, p.eval("document.body.innerText"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hostileText would run script or load an image if the page parsed data
// as markup.
const hostileText = "</script><script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">\"'&\u2028ünï\tcode+%"

// TestDashboardHostileData renders a dashboard whose status, dead letter
// and conflict hold markup in keys, errors, warnings and source names (an
// in-process broker holds the streams; no lab): all of it shows as text,
// nothing runs or loads, and the console stays clean.
func TestDashboardHostileData(t *testing.T) {
	browser := chromiumPath(t)
	srv, err := broker.StartServer(broker.ServerConfig{Site: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := ctxT(t)
	if err := broker.EnsureStreams(ctx, js, broker.Topology{Site: "a", Peers: []string{"b", "c"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	pub := func(subject string, v any) {
		b, _ := json.Marshal(v)
		if _, err := js.Publish(ctx, subject, b); err != nil {
			t.Fatal(err)
		}
	}
	pub(broker.DLQSubject("a", "apply"), consumer.DeadLetter{Reason: consumer.ReasonBadSignature, Error: hostileText, Peer: "b", Bucket: "demo",
		Key: hostileText, Attempts: 1, LastFailure: now})
	pub(broker.ConflictsSubject("a"), schema.ConflictEntry{Site: "a", Bucket: "demo", Key: hostileText, Policy: "lww", Outcome: "apply-winner",
		Winner: schema.VersionInfo{Origin: "b", ETag: hostileText, Size: 1, OriginTime: now}, Loser: schema.VersionInfo{Origin: "a", Deleted: true, OriginTime: now},
		LoserKeptAs: hostileText, DecidedAt: now})
	st := agent.Status{Site: "a", Time: now, Warnings: []string{hostileText}, Retention: "168h0m0s",
		Peers: []agent.PeerStatus{
			{Peer: "b", Error: hostileText, Stalled: true, SilentFor: -1, WatermarkAgeSeconds: -1},
			{Peer: "c", SilentFor: 0.5, CaughtUp: true, Watermark: now, WatermarkAgeSeconds: 0.5},
		},
		Sources:   []agent.SourceStatus{{Name: hostileText, Type: "nats", Lag: hostileText}},
		Store:     &s3io.Capabilities{ConditionalPut: true, Notes: []string{hostileText}},
		RebuiltAt: &now,
	}
	hs := httptest.NewServer(agent.DashboardHandler("a", func(context.Context) (agent.Status, error) { return st, nil }, js))
	t.Cleanup(hs.Close)

	pg := newPage(t, browser)
	pg.open(hs.URL + "/")
	pg.waitFor("the dead letter and the conflict", `document.querySelector("#dlq td.key") && document.querySelector("#conflicts td.key")`, 10*time.Second)
	lit, _ := json.Marshal(hostileText) // a JavaScript string literal
	quoted := "JSON.stringify(" + string(lit) + ")"
	for what, cond := range map[string]string{
		"the dead letter's key, quoted":  `document.querySelector("#dlq td.key").textContent === ` + quoted,
		"the dead letter's error":        `document.querySelector("#dlq td.err").textContent === ` + string(lit),
		"the conflict's key, quoted":     `document.querySelector("#conflicts td.key").textContent === ` + quoted,
		"the warning":                    `document.querySelector("#warnings li").textContent === ` + string(lit),
		"the last rebuild":               `document.querySelector("#rebuild").textContent.startsWith("last rebuild of this site")`,
		"b's error":                      `document.querySelector('#peers tr[data-peer="b"] .err').textContent === ` + string(lit),
		"the source":                     `document.querySelector("#sources td").textContent === ` + string(lit),
		"the store's note":               `document.getElementById("store").textContent.includes(` + string(lit) + `)`,
		"no element made from the data":  `document.querySelectorAll("main img, main script, main iframe, main object").length === 0`,
		"nothing ran":                    `window.__pwned === undefined`,
		"the link b never heard (error)": `document.querySelector('#mesh line[data-peer="b"]').getAttribute("data-state") === "error"`,
	} {
		if pg.eval("String(!!("+cond+"))") != "true" {
			t.Errorf("the page does not show %s (%s)", what, cond)
		}
	}
	pg.checkProblems("with hostile data")
}
