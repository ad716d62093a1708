// Package check tests deploy/prometheus/alerts.yml and
// deploy/grafana/s3mesh.json against the metrics the agent exports. It is a
// module of its own so that Prometheus (its rule and PromQL parsers) stays
// out of s3mesh's go.mod; `make test` runs it.
package check

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/s3mesh/s3mesh/metrics"
)

// Exported is every metric name an agent exports: the names its
// registry's collectors describe (Gather would leave out vectors without
// children), the series names of its histograms and summaries, and
// Prometheus' own `up`.
func Exported() (map[string]bool, error) {
	m := metrics.New()
	names := map[string]bool{"up": true}
	descs := make(chan *prometheus.Desc)
	go func() {
		m.Registry.Describe(descs)
		close(descs)
	}()
	for d := range descs {
		name, err := descName(d)
		if err != nil {
			return nil, err
		}
		names[name] = true
	}
	// Histograms and summaries are series name_bucket, name_sum, name_count;
	// Gather tells their type (the agent's histograms are not vectors, so
	// they are gathered without children).
	mfs, err := m.Registry.Gather()
	if err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[mf.GetName()+"_bucket"] = true
			fallthrough
		case dto.MetricType_SUMMARY:
			names[mf.GetName()+"_sum"], names[mf.GetName()+"_count"] = true, true
		}
	}
	return names, nil
}

// descName reads the fully-qualified name out of a Desc (it has no getter):
// Desc{fqName: "…", help: …}.
func descName(d *prometheus.Desc) (string, error) {
	s := d.String()
	const pre = `Desc{fqName: "`
	if !strings.HasPrefix(s, pre) {
		return "", fmt.Errorf("unexpected Desc %s", s)
	}
	s = s[len(pre):]
	i := strings.IndexByte(s, '"')
	if i < 0 {
		return "", fmt.Errorf("unexpected Desc %s", d)
	}
	return s[:i], nil
}

// ExprMetrics is every metric name expr selects.
func ExprMetrics(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			out = append(out, "{"+vs.String()+"}") // no name: never exported as such
			return nil
		}
		out = append(out, name)
		return nil
	})
	return out, nil
}

// promql is Prometheus' PromQL parser with its default options.
var promql = parser.NewParser(parser.Options{})

// Rule is one alerting rule of a rules file.
type Rule struct {
	Alert, Expr string
	Annotations map[string]string
}

// ParseRules parses a Prometheus rules file with Prometheus' own parser
// (which also checks every expression and template).
func ParseRules(content []byte) ([]Rule, error) {
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		return nil, fmt.Errorf("rules: %s", strings.Join(msgs, "; "))
	}
	var out []Rule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out = append(out, Rule{Alert: r.Alert, Expr: r.Expr, Annotations: r.Annotations})
		}
	}
	return out, nil
}

// Unknown lists, per expression, the metric names it selects that are not
// in exported ("expr: name").
func Unknown(exprs []string, exported map[string]bool) ([]string, error) {
	var bad []string
	for _, x := range exprs {
		names, err := ExprMetrics(x)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", x, err)
		}
		for _, n := range names {
			if !exported[n] {
				bad = append(bad, fmt.Sprintf("%s: %s", x, n))
			}
		}
	}
	sort.Strings(bad)
	return bad, nil
}

// DashboardExprs is every "expr" of a Grafana dashboard's panels (nested
// rows included), with Grafana's interval variables replaced by a duration
// so that PromQL parses them.
func DashboardExprs(content []byte) ([]string, error) {
	var d any
	if err := json.Unmarshal(content, &d); err != nil {
		return nil, err
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					out = append(out, grafanaVars.Replace(s))
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(d)
	sort.Strings(out)
	return out, nil
}

var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")
