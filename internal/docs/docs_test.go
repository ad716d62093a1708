package docs

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/s3mesh/s3mesh/config"
)

// TestLinks: every relative link and image in README.md and docs/*.md
// names a file that exists and, with #anchor, a heading of that file.
func TestLinks(t *testing.T) {
	files, err := userDocs()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		bad, err := brokenLinks(root, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bad {
			t.Errorf("broken link %s", b)
		}
	}
}

// TestLinkCheckFindsBrokenLinks: the check above fails on a missing file,
// on a missing heading, and on either form of a link, and passes good ones.
func TestLinkCheckFindsBrokenLinks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/b.md", "# B\n\n## Peers' S3 keys: read-only\n\n## `s3mesh status --all`\n\n## Twice\n\n## Twice\n")
	write("docs/pic.png", "png")
	write("README.md", strings.Join([]string{
		"[ok](docs/b.md) ![ok](docs/pic.png) [ok](docs/b.md#peers-s3-keys-read-only)",
		"[ok](docs/b.md#s3mesh-status---all) [ok](docs/b.md#twice-1) [ok](#top) [ok](https://example.com/x)",
		"# Top",
		"```",
		"[not a link in code](docs/nothing.md)",
		"```",
		"`[nor in a code span](docs/nothing.md)`",
		"[missing file](docs/c.md) ![missing image](docs/gone.png)",
		"[missing heading](docs/b.md#peers-s3-keys) [missing here](#nowhere) [anchor into a picture](docs/pic.png#x)",
	}, "\n"))
	bad, err := brokenLinks(dir, "README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"README.md:8: docs/c.md: no such file",
		"README.md:8: docs/gone.png: no such file",
		"README.md:9: docs/b.md#peers-s3-keys: no heading makes that anchor",
		"README.md:9: #nowhere: no heading makes that anchor",
		"README.md:9: docs/pic.png#x: an anchor into a file that is not Markdown",
	}
	if !slices.Equal(bad, want) {
		t.Errorf("found\n%s\nwant\n%s", strings.Join(bad, "\n"), strings.Join(want, "\n"))
	}
}

const configDoc = "docs/configuration.md"

// documentedKeys returns the keys docs/configuration.md's "Every key"
// table lists: the backquoted names in each row's first cell.
func documentedKeys(text string) ([]string, error) {
	_, table, ok := strings.Cut(text, "\n## Every key\n")
	if !ok {
		return nil, errNoTable
	}
	if next := strings.Index(table, "\n## "); next >= 0 {
		table = table[:next]
	}
	var keys []string
	for _, l := range strings.Split(table, "\n") {
		if !strings.HasPrefix(l, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(l, "| "), " |")
		for _, m := range quoted.FindAllStringSubmatch(cell, -1) {
			keys = append(keys, m[1])
		}
	}
	return keys, nil
}

var (
	quoted     = regexp.MustCompile("`([^`]+)`")
	errNoTable = os.ErrNotExist
)

// keyDiff returns the keys the code accepts that docs do not list, the
// keys docs list that the code does not accept, and the keys docs list more
// than once.
func keyDiff(code, docs []string) (undocumented, unknown, twice []string) {
	seen := map[string]int{}
	for _, k := range docs {
		seen[k]++
		if seen[k] == 2 {
			twice = append(twice, k)
		}
	}
	for _, k := range code {
		if seen[k] == 0 {
			undocumented = append(undocumented, k)
		}
	}
	for k := range seen {
		if !slices.Contains(code, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	return undocumented, unknown, twice
}

// TestConfigKeysDocumented: docs/configuration.md lists exactly the keys
// config.Site accepts, each once.
func TestConfigKeysDocumented(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(root, configDoc))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := documentedKeys(string(text))
	if err != nil {
		t.Fatalf("%s has no \"## Every key\" section", configDoc)
	}
	code := configKeys(reflect.TypeFor[config.Site]())
	if len(code) < 50 {
		t.Fatalf("the walk of config.Site found only %d keys: %v", len(code), code)
	}
	undocumented, unknown, twice := keyDiff(code, docs)
	for _, k := range undocumented {
		t.Errorf("%s: config key %s is accepted by the code but not in the \"Every key\" table", configDoc, k)
	}
	for _, k := range unknown {
		t.Errorf("%s: %s is in the \"Every key\" table but the code accepts no such key", configDoc, k)
	}
	for _, k := range twice {
		t.Errorf("%s: %s is in the \"Every key\" table more than once", configDoc, k)
	}
}

// TestConfigKeyCheckFindsDifferences: the check above fails on a field the
// code has that the table lacks (a nested one in a list included) and on a
// documented key the code does not have.
func TestConfigKeyCheckFindsDifferences(t *testing.T) {
	type inner struct {
		Peer   string        `yaml:"peer"`
		Secret config.Secret `yaml:"secret"`
	}
	type site struct {
		Name  string   `yaml:"name"`
		Links []inner  `yaml:"links"`
		Tags  []string `yaml:"tags"`
		Topo  struct {
			Mode string `yaml:"mode"`
		} `yaml:",inline"`
		Limits *struct {
			Max int `yaml:"max"`
		} `yaml:"limits"`
	}
	code := configKeys(reflect.TypeFor[site]())
	want := []string{"limits.max", "links[].peer", "links[].secret", "mode", "name", "tags"}
	if !slices.Equal(code, want) {
		t.Fatalf("keys %v, want %v", code, want)
	}
	docs, err := documentedKeys("# C\n\n## Every key\n\n| key | what |\n|---|---|\n" +
		"| `name`, `mode` | x |\n| `links[].peer` | x |\n| `tags` | x |\n| `limits.max` | x |\n| `links[].url` | x |\n| `name` | again |\n\n## Next\n\n| `not.a.key` | x |\n")
	if err != nil {
		t.Fatal(err)
	}
	undocumented, unknown, twice := keyDiff(code, docs)
	if !slices.Equal(undocumented, []string{"links[].secret"}) || !slices.Equal(unknown, []string{"links[].url"}) || !slices.Equal(twice, []string{"name"}) {
		t.Errorf("undocumented %v, unknown %v, twice %v", undocumented, unknown, twice)
	}
	if _, err := documentedKeys("# C\n\nno table\n"); err == nil {
		t.Error("a document without the table passed")
	}
}

// TestConfigExampleIsValid: the example configuration in
// docs/configuration.md decodes into config.Site with unknown fields
// refused, as the agent reads its file.
func TestConfigExampleIsValid(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(root, configDoc))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(text), "```yaml\n")
	if !ok {
		t.Fatalf("%s has no yaml example", configDoc)
	}
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("%s: the yaml example does not end", configDoc)
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(example)))
	dec.KnownFields(true)
	var s config.Site
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("%s: the example does not decode as a configuration: %v", configDoc, err)
	}
	if s.Site == "" || len(s.Peers) == 0 || len(s.Events) == 0 {
		t.Errorf("%s: the example decoded to little: %+v", configDoc, s)
	}
}
