package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// root is the repository, seen from this package's directory.
const root = "../.."

// userDocs returns README.md and every docs/*.md, relative to root.
func userDocs() ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	files := []string{"README.md"}
	for _, d := range docs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			return nil, err
		}
		files = append(files, rel)
	}
	return files, nil
}

// prose returns the lines of a Markdown text outside fenced code blocks,
// with inline code spans blanked out, each with its line number.
func prose(text string) map[int]string {
	lines := map[int]string{}
	fence := false
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fence = !fence
			continue
		}
		if !fence {
			lines[i+1] = codeSpan.ReplaceAllString(l, "``")
		}
	}
	return lines
}

var (
	codeSpan = regexp.MustCompile("`[^`]*`")
	// link matches [text](target) and ![alt](target); the target ends at
	// the first space or closing parenthesis.
	link    = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	heading = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
)

// anchors returns the anchors GitHub makes of a Markdown text's headings:
// lower case, every character but letters, digits, spaces, '-' and '_'
// dropped, spaces made '-', and "-1", "-2", ... for repeats.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fence := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fence = !fence
			continue
		}
		m := heading.FindStringSubmatch(l)
		if fence || m == nil {
			continue
		}
		a := slug(m[1])
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// brokenLinks returns, for the Markdown file rel under dir, every relative
// link whose file does not exist, or whose #anchor names no heading of the
// Markdown file it points at.
func brokenLinks(dir, rel string) ([]string, error) {
	text, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		return nil, err
	}
	var bad []string
	lines := prose(string(text))
	for n := 1; n <= len(strings.Split(string(text), "\n")); n++ {
		l, ok := lines[n]
		if !ok {
			continue
		}
		for _, m := range link.FindAllStringSubmatch(l, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := filepath.Join(dir, filepath.Dir(rel), file)
			if file == "" {
				path = filepath.Join(dir, rel)
			}
			where := fmt.Sprintf("%s:%d: %s", rel, n, target)
			if _, err := os.Stat(path); err != nil {
				bad = append(bad, where+": no such file")
				continue
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(path, ".md") {
				bad = append(bad, where+": an anchor into a file that is not Markdown")
				continue
			}
			md, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			if !anchors(string(md))[anchor] {
				bad = append(bad, where+": no heading makes that anchor")
			}
		}
	}
	return bad, nil
}
