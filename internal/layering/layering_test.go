package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const (
	module  = "github.com/s3mesh/s3mesh"
	msgpack = "github.com/vmihailenco/msgpack/v5"
)

// layer says what the production (non-test) code of a package, and of every
// package under it, may import. A package may always import its own
// subpackages. Tests may import any s3mesh package that importedOnlyBy lets
// them.
type layer struct {
	// uses lists the s3mesh packages (each with the packages under it)
	// that the code may import.
	uses []string
	// anyUse lets the code import any s3mesh package (cmd, integration);
	// importedOnlyBy still applies.
	anyUse bool
	// external, when not nil, lists the only modules outside the standard
	// library the code may import. nil allows any.
	external []string
}

// core is what the executors (producer, consumer) build on.
var core = []string{"schema", "lifecycle", "state", "s3io", "broker", "metrics"}

// mayImport is the layering, from the pure core up to the commands. The key
// is a package path relative to the module; the longest key that is the
// package or a parent of it gives the package's row.
var mayImport = map[string]layer{
	// The pure core: decisions and the per-key state machine, no I/O.
	"schema":    {external: []string{msgpack}},
	"lifecycle": {uses: []string{"schema"}, external: []string{msgpack}},
	// The edges: storage, S3, NATS, configuration, metrics.
	"state":   {uses: []string{"schema", "lifecycle"}},
	"s3io":    {},
	"broker":  {},
	"config":  {},
	"metrics": {},
	"pki":     {},
	// What builds on the edges.
	"verify": {uses: []string{"schema", "s3io"}},
	// rebuild checks the bytes it copies with the consumer's own body
	// verifier (consumer.CheckedBody): one check for every path a body
	// takes into a site.
	"rebuild":  {uses: []string{"schema", "lifecycle", "state", "s3io", "broker", "consumer"}},
	"producer": {uses: core},
	"consumer": {uses: core},
	"agent":    {uses: append(slices.Clone(core), "config", "producer", "consumer")},
	"lab":      {uses: []string{"config", "pki", "internal/versityiam"}},
	// deploy gen writes the broker's confined link accounts (broker.AccountsConfig).
	"deploy": {uses: []string{"broker", "pki"}},
	// versitygw's admin API (users, bucket policies): the lab and
	// `s3mesh bucket create --reader` make peers' read-only keys with it.
	"internal/versityiam": {},
	// Helpers for tests.
	"internal/brokertest": {uses: []string{"broker"}},
	"internal/testenv":    {},
	"internal/layering":   {},
	"internal/docs":       {},
	// The top: commands and the end-to-end tests.
	"cmd":         {anyUse: true},
	"integration": {anyUse: true},
}

// audience says who may import a package (and the packages under it) besides
// its own subpackages and their tests.
type audience struct {
	by    []string // s3mesh packages (each with the packages under it), code or tests
	tests bool     // the tests of any package
}

// importedOnlyBy restricts who imports a package. Packages without a row
// here may be imported by anyone their importer's mayImport row allows.
var importedOnlyBy = map[string]audience{
	"cmd":                 {},
	"integration":         {},
	"lab":                 {by: []string{"cmd"}, tests: true},
	"internal/testenv":    {tests: true},
	"internal/brokertest": {tests: true},
}

const table = "(the tables in internal/layering/layering_test.go)"

// pkgImports is one s3mesh package and what it imports.
type pkgImports struct {
	Path  string   // relative to the module: "schema", "lab/proxy"
	Code  []string // import paths used by the non-test files
	Tests []string // import paths used by the _test.go files only
}

// under reports whether pkg is root or a package under it.
func under(pkg, root string) bool {
	return pkg == root || strings.HasPrefix(pkg, root+"/")
}

func underAny(pkg string, roots []string) bool {
	for _, r := range roots {
		if under(pkg, r) {
			return true
		}
	}
	return false
}

// longest returns the longest key of rows that is pkg or a parent of it.
func longest[V any](rows map[string]V, pkg string) (string, bool) {
	best, ok := "", false
	for k := range rows {
		if under(pkg, k) && len(k) >= len(best) {
			best, ok = k, true
		}
	}
	return best, ok
}

// relative returns an s3mesh import path relative to the module.
func relative(imp string) (string, bool) {
	if imp == module {
		return ".", true
	}
	rel, ok := strings.CutPrefix(imp, module+"/")
	return rel, ok
}

func describe(roots []string) string {
	var s []string
	for _, r := range roots {
		s = append(s, r+"/...")
	}
	return strings.Join(s, ", ")
}

// check returns one message per layering violation in pkgs, sorted. std is
// the set of standard-library import paths.
func check(pkgs []pkgImports, std map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	report := func(format string, args ...any) {
		if m := fmt.Sprintf(format, args...); !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	for _, p := range pkgs {
		root, ok := longest(mayImport, p.Path)
		if !ok {
			report("package %s has no row in mayImport %s: add one saying which s3mesh packages it may import", p.Path, table)
			continue
		}
		row := mayImport[root]
		for _, imp := range p.Code {
			if std[imp] {
				continue
			}
			rel, ours := relative(imp)
			switch {
			case !ours:
				if row.external != nil && !underAny(imp, row.external) {
					report("%s imports %s: %s may import only the standard library and %s %s",
						p.Path, imp, root, strings.Join(row.external, ", "), table)
				}
				continue
			case under(rel, root):
				continue
			case !row.anyUse && !underAny(rel, row.uses):
				allowed := "no s3mesh package"
				if len(row.uses) > 0 {
					allowed = "only " + describe(row.uses)
				}
				report("%s imports %s: %s may import %s (mayImport %s)", p.Path, imp, root, allowed, table)
			}
			checkAudience(report, p.Path, rel, false)
		}
		for _, imp := range p.Tests {
			if rel, ours := relative(imp); ours {
				checkAudience(report, p.Path, rel, true)
			}
		}
	}
	sort.Strings(out)
	return out
}

// checkAudience reports importer (a test file when test is set) importing
// imported if importedOnlyBy does not allow it.
func checkAudience(report func(string, ...any), importer, imported string, test bool) {
	root, ok := longest(importedOnlyBy, imported)
	if !ok || under(importer, root) {
		return
	}
	a := importedOnlyBy[root]
	if underAny(importer, a.by) || (test && a.tests) {
		return
	}
	who := []string{"its own packages " + describe([]string{root})}
	if len(a.by) > 0 {
		who = append(who, describe(a.by))
	}
	if a.tests {
		who = append(who, "tests")
	}
	what := "code"
	if test {
		what = "tests"
	}
	report("%s (%s) imports %s%s: %s may be imported only by %s (importedOnlyBy %s)",
		importer, what, module+"/", imported, root, strings.Join(who, ", "), table)
}

// goList runs the go command in the module and returns its standard output.
func goList(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// listModule returns every package of the module (with the soak tests, which
// sit behind a build tag) and the standard library's import paths.
func listModule(t *testing.T) ([]pkgImports, map[string]bool) {
	t.Helper()
	std := map[string]bool{}
	for _, p := range strings.Fields(string(goList(t, "std"))) {
		std[p] = true
	}
	dec := json.NewDecoder(bytes.NewReader(goList(t, "-tags", "soak", "-json", module+"/...")))
	var pkgs []pkgImports
	for {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list -json: %v", err)
		}
		rel, ok := relative(p.ImportPath)
		if !ok {
			t.Fatalf("go list %s/... listed %s", module, p.ImportPath)
		}
		pkgs = append(pkgs, pkgImports{Path: rel, Code: p.Imports, Tests: append(p.TestImports, p.XTestImports...)})
	}
	return pkgs, std
}

// TestLayering checks the module's real import graph against the tables.
func TestLayering(t *testing.T) {
	pkgs, std := listModule(t)
	found := map[string]bool{}
	for _, p := range pkgs {
		found[p.Path] = true
	}
	// The tables must describe the module as it is: a row that matches no
	// package is stale (a package was renamed and its rules lost).
	for _, rows := range [][]string{keys(mayImport), keys(importedOnlyBy)} {
		for _, root := range rows {
			if !slices.ContainsFunc(keys(found), func(p string) bool { return under(p, root) }) {
				t.Errorf("the layering tables have a row for %s, but the module has no such package: remove or rename the row %s", root, table)
			}
		}
	}
	for _, v := range check(pkgs, std) {
		t.Error(v)
	}
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestCheckCatchesViolations feeds check a fabricated import graph: each case
// adds one bad import to a clean graph, and check must name it.
func TestCheckCatchesViolations(t *testing.T) {
	std := map[string]bool{"fmt": true, "time": true, "os/exec": true}
	ours := func(p string) string { return module + "/" + p }
	clean := func() []pkgImports {
		return []pkgImports{
			{Path: "schema", Code: []string{"fmt", msgpack}, Tests: []string{"pgregory.net/rapid"}},
			{Path: "lifecycle", Code: []string{"time", ours("schema")}},
			{Path: "state", Code: []string{ours("schema"), ours("lifecycle"), "github.com/cockroachdb/pebble"}},
			{Path: "broker", Code: []string{"github.com/nats-io/nats.go"}, Tests: []string{ours("lab/proxy")}},
			{Path: "s3io", Tests: []string{ours("internal/testenv")}},
			{Path: "producer", Code: []string{ours("state"), ours("broker"), ours("lifecycle")}},
			{Path: "lab", Code: []string{ours("config"), ours("lab/proxy"), "os/exec"}},
			{Path: "lab/proxy"},
			{Path: "cmd/s3mesh", Code: []string{ours("lab"), ours("agent")}},
			{Path: "integration", Tests: []string{ours("lab"), ours("internal/testenv"), ours("integration")}},
			{Path: "integration/containers", Tests: []string{ours("s3io")}},
		}
	}
	if v := check(clean(), std); len(v) != 0 {
		t.Fatalf("the clean graph has violations:\n%s", strings.Join(v, "\n"))
	}
	cases := []struct {
		name  string
		pkg   string
		code  string // an import added to the package's code, or
		test  string // to its tests
		wants []string
	}{
		{"schema imports NATS", "schema", "github.com/nats-io/nats.go", "", []string{"schema imports github.com/nats-io/nats.go", "only the standard library and " + msgpack}},
		{"schema imports state", "schema", ours("state"), "", []string{"schema imports " + ours("state"), "schema may import no s3mesh package"}},
		{"lifecycle imports pebble", "lifecycle", "github.com/cockroachdb/pebble", "", []string{"lifecycle imports github.com/cockroachdb/pebble"}},
		{"lifecycle imports state", "lifecycle", ours("state"), "", []string{"lifecycle imports " + ours("state"), "only schema/..."}},
		{"state imports producer", "state", ours("producer"), "", []string{"state imports " + ours("producer")}},
		{"broker imports s3io", "broker", ours("s3io"), "", []string{"broker imports " + ours("s3io")}},
		{"producer imports consumer", "producer", ours("consumer"), "", []string{"producer imports " + ours("consumer")}},
		{"producer code imports lab", "producer", ours("lab"), "", []string{"producer imports " + ours("lab"), "producer (code) imports " + ours("lab") + ": lab may be imported only by"}},
		{"lab code imports testenv", "lab", ours("internal/testenv"), "", []string{"lab (code) imports " + ours("internal/testenv")}},
		{"cmd imports integration", "cmd/s3mesh", ours("integration"), "", []string{"cmd/s3mesh (code) imports " + ours("integration")}},
		{"a test imports cmd", "state", "", ours("cmd/s3mesh"), []string{"state (tests) imports " + ours("cmd/s3mesh")}},
		{"a test imports integration", "integration/containers", "", ours("integration"), nil}, // its own subtree
		{"another test imports integration", "s3io", "", ours("integration/containers"), []string{"s3io (tests) imports " + ours("integration/containers")}},
		{"a package without a row", "newpkg", "fmt", "", []string{"package newpkg has no row in mayImport"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pkgs := clean()
			i := slices.IndexFunc(pkgs, func(p pkgImports) bool { return p.Path == c.pkg })
			if i < 0 {
				pkgs = append(pkgs, pkgImports{Path: c.pkg})
				i = len(pkgs) - 1
			}
			if c.code != "" {
				pkgs[i].Code = append(pkgs[i].Code, c.code)
			}
			if c.test != "" {
				pkgs[i].Tests = append(pkgs[i].Tests, c.test)
			}
			got := strings.Join(check(pkgs, std), "\n")
			if c.wants == nil && got != "" {
				t.Fatalf("want no violation, got:\n%s", got)
			}
			if c.wants != nil && got == "" {
				t.Fatalf("want a violation, got none")
			}
			for _, w := range c.wants {
				if !strings.Contains(got, w) {
					t.Errorf("want a message containing %q, got:\n%s", w, got)
				}
			}
		})
	}
}
