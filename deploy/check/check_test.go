package check

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func exported(t *testing.T) map[string]bool {
	t.Helper()
	names, err := Exported()
	if err != nil {
		t.Fatal(err)
	}
	// The collection itself: vectors without children, histograms, up.
	for _, n := range []string{"s3mesh_peer_watermark_age_seconds", "s3mesh_scan_failures_total", "s3mesh_apply_lag_seconds_bucket", "up", "s3mesh_build_info"} {
		if !names[n] {
			t.Fatalf("%s missing from the exported names %v", n, names)
		}
	}
	return names
}

// TestAlertRules parses deploy/prometheus/alerts.yml with Prometheus' rule
// parser and checks that every metric its expressions select is one the
// agent exports, that every alert says what it means and what to do, and
// that the alerts docs/operations.md describes are there.
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := ParseRules(b)
	if err != nil {
		t.Fatal(err)
	}
	var exprs, alerts []string
	for _, r := range rules {
		exprs = append(exprs, r.Expr)
		alerts = append(alerts, r.Alert)
		if r.Alert == "" {
			t.Errorf("rule %q is not an alert", r.Expr)
		}
		if len(r.Annotations["summary"]) < 20 || len(r.Annotations["description"]) < 80 {
			t.Errorf("alert %s: a summary and a description of what to do are required: %v", r.Alert, r.Annotations)
		}
	}
	bad, err := Unknown(exprs, exported(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("alert expressions select metrics the agent does not export:\n%s", strings.Join(bad, "\n"))
	}
	for _, want := range []string{"S3meshAgentDown", "S3meshPeerSilent", "S3meshApplyLagHigh", "S3meshWatermarkNotAdvancing",
		"S3meshDeadLettersGrowing", "S3meshDeletesHeld", "S3meshScansFailing", "S3meshClockSkew", "S3meshStreamFilling", "S3meshStreamFull"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alert %s missing (have %v)", want, alerts)
		}
	}
	t.Logf("%d alerts, every metric exported", len(rules))
}

// TestCheckerCatchesUnknownMetric: a rule naming a metric that does not
// exist is reported, and so is a selector by __name__ or without a name.
func TestCheckerCatchesUnknownMetric(t *testing.T) {
	rules, err := ParseRules([]byte(`groups:
  - name: typo
    rules:
      - alert: Typo
        expr: s3mesh_peer_silent_seconds > 60 or rate(s3mesh_records_aplied_total[5m]) > 0
        annotations: {summary: x, description: y}
      - alert: ByName
        expr: '{__name__="s3mesh_no_such_metric"} > 0'
      - alert: Fine
        expr: up{job="s3mesh"} == 0
`))
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, r := range rules {
		exprs = append(exprs, r.Expr)
	}
	bad, err := Unknown(exprs, exported(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 2 || !strings.HasSuffix(bad[0], ": s3mesh_records_aplied_total") || !strings.HasSuffix(bad[1], ": s3mesh_no_such_metric") {
		t.Errorf("unknown metrics reported: %q, want s3mesh_records_aplied_total and s3mesh_no_such_metric", bad)
	}
	if _, err := ParseRules([]byte("groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: rate(s3mesh_conflicts_total[5m] > 0\n")); err == nil {
		t.Error("a rule that is not PromQL was accepted")
	}
	// A selector without a metric name selects series of any metric: not
	// one the agent is known to export.
	if bad, err := Unknown([]string{`{job="s3mesh"} > 0`}, exported(t)); err != nil || len(bad) != 1 {
		t.Errorf("a nameless selector: %q %v, want it reported", bad, err)
	}
}

// TestGrafanaDashboard: deploy/grafana/s3mesh.json is JSON, every PromQL
// expression in it parses and selects only exported metrics, and it has
// panels for what an operator watches.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../grafana/s3mesh.json")
	if err != nil {
		t.Fatal(err)
	}
	exprs, err := DashboardExprs(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(exprs) == 0 {
		t.Fatal("no expressions in the dashboard")
	}
	bad, err := Unknown(exprs, exported(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("dashboard expressions select metrics the agent does not export:\n%s", strings.Join(bad, "\n"))
	}
	used := map[string]bool{}
	for _, x := range exprs {
		names, _ := ExprMetrics(x)
		for _, n := range names {
			used[n] = true
		}
	}
	for _, want := range []string{"s3mesh_apply_lag_seconds_bucket", "s3mesh_peer_watermark_age_seconds", "s3mesh_peer_records_pending",
		"s3mesh_peer_silent_seconds", "s3mesh_dead_letters", "s3mesh_conflicts_total", "s3mesh_scans_total", "s3mesh_scan_failures_total",
		"s3mesh_peer_clock_offset_seconds"} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
	t.Logf("%d expressions, every metric exported", len(exprs))
}
