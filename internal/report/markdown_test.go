package report

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func renderMD(t *testing.T, r *Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, "markdown", r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestMDText(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, with: colons/slashes": "plain text, with: colons/slashes",
		"a|b":                              `a\|b`,
		"<script>alert(1)</script>":        "&lt;script&gt;alert(1)&lt;/script&gt;",
		"AT&T":                             "AT&amp;T",
		"*bold* _it_ `code` ~del~":         `\*bold\* \_it\_ \` + "`" + `code\` + "`" + ` \~del\~`,
		"[link](http://x) ![img](y)":       `\[link\](http://x) \!\[img\](y)`,
		"line1\nline2\r\n":                 "line1 line2  ",
		`back\slash`:                       `back\\slash`,
		"# heading":                        `\# heading`,
		"$x$":                              `\$x\$`,
		"@octocat and @org/team":           "@&#8203;octocat and @&#8203;org/team",
		"User/@admins":                     "User/@&#8203;admins",
		"auditor@example.com":              "auditor@example.com",
	} {
		if got := mdText(in); got != want {
			t.Errorf("mdText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMDCodeCell(t *testing.T) {
	for in, want := range map[string]string{
		"Secret/a/b": "`Secret/a/b`",
		"a|b":        "`a\\|b`",
		"a`b":        "``a`b``",
		"`x":         "`` `x ``",
		"a``b`":      "``` a``b` ```",
		"two\nlines": "`two lines`",
		"":           "-",
		"-":          "-",
		"<b>@x</b>":  "`<b>@x</b>`",
	} {
		if got := mdCodeCell(in); got != want {
			t.Errorf("mdCodeCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// hostileReport has names and messages that try to break out of a table
// cell, inject HTML, and mention people.
func hostileReport() *Report {
	return &Report{
		Tool:     Tool{Name: "keyhole", Version: "dev"},
		Coverage: Coverage{Authorizers: AuthorizersNote},
		Summary: Summary{
			Secrets:            1,
			FindingsBySeverity: map[string]int{"critical": 1, "high": 0, "medium": 1, "low": 0, "info": 0},
			SecretsBySeverity:  map[string]int{"critical": 1},
			Suppressed:         1,
		},
		Secrets: []Secret{{
			Namespace: "ns", Name: "a|b",
			Exposure: Exposure{Score: 90, Severity: "critical", Principals: 7,
				Top: []Subject{{Kind: "Group", Name: "@org/admins | <img src=x>"}, {Kind: "User", Name: "eve\n| x | y |"}}},
		}},
		Findings: []Finding{
			{Rule: "KH101", Severity: "critical", Title: "t",
				Message: "Secret/ns/a|b is readable by Group/@org/admins | <img src=x onerror=alert(1)>\n| injected | row |",
				Object:  ObjectRef{Kind: "Secret", Namespace: "ns", Name: "a|b"}},
			{Rule: "KH103", Severity: "medium", Title: "t", Message: "many readers",
				Object: ObjectRef{Kind: "Secret", Namespace: "ns", Name: "a|b"}},
			{Rule: "KH102", Severity: "high", Title: "t", Message: "SUPPRESSED-MESSAGE",
				Object:     ObjectRef{Kind: "Secret", Namespace: "ns", Name: "a|b"},
				Suppressed: &Suppressed{By: "baseline", Reason: "r"}},
		},
		Errors: []Error{{Source: "cluster", Message: "cannot list <secrets> | forbidden", Impact: "no Secrets"}},
	}
}

// cells counts the cells of a table row: the pipes not escaped by a
// backslash, less one.
func cells(row string) int {
	n := 0
	for i := 0; i < len(row); i++ {
		switch row[i] {
		case '\\':
			i++
		case '|':
			n++
		}
	}
	return n - 1
}

func TestMarkdownEscapesNamesAndMessages(t *testing.T) {
	out := renderMD(t, hostileReport())
	// A code span shows its text as is, HTML included; elsewhere HTML
	// must be written as entities.
	text := regexp.MustCompile("`[^`]*`").ReplaceAllString(out, "CODE")
	if strings.Contains(text, "<img") {
		t.Errorf("raw HTML from a name or message reached the output:\n%s", out)
	}
	if strings.Contains(out, "SUPPRESSED-MESSAGE") {
		t.Errorf("a suppressed finding is listed:\n%s", out)
	}
	// Every table row keeps its column count: nothing escaped the cell.
	width := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "|") {
			width = 0
			continue
		}
		if width == 0 {
			width = cells(line)
			continue
		}
		if got := cells(line); got != width {
			t.Errorf("row has %d cells, its table %d: %s", got, width, line)
		}
	}
	// A mention outside a code span is defused.
	if strings.Contains(text, " @org") || strings.Contains(text, "/@org") {
		t.Errorf("an @mention survives outside code:\n%s", out)
	}
	for _, want := range []string{
		"`ns/a\\|b`",
		"`Group/@org/admins \\| <img src=x>`",
		"and 5 more",
		"1 finding suppressed by annotation or baseline",
		"**The report is incomplete:** 1 input could not be read",
		"cannot list &lt;secrets&gt; \\| forbidden (no Secrets)",
		"<summary>1 medium, low or info finding</summary>",
		"### Critical and high findings (1)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestMarkdownNoFindings(t *testing.T) {
	out := renderMD(t, &Report{Tool: Tool{Name: "keyhole", Version: "dev"}})
	for _, want := range []string{"## keyhole: 0 findings, 0 Secrets", "No unsuppressed critical or high findings."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"<details>", "Most exposed", "incomplete"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("output has %q:\n%s", unwanted, out)
		}
	}
}

func TestMarkdownTopSecrets(t *testing.T) {
	r := &Report{Tool: Tool{Name: "keyhole", Version: "dev"}}
	for i := 0; i < 25; i++ {
		r.Secrets = append(r.Secrets, Secret{Namespace: "ns", Name: fmt.Sprintf("s%02d", i),
			Exposure: Exposure{Score: i * 3 % 25, Severity: "low"}})
	}
	out := renderMD(t, r)
	if !strings.Contains(out, "The 10 highest scores of 25 Secrets.") {
		t.Errorf("no note on the Secrets left out:\n%s", out)
	}
	var listed []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| `ns/") {
			listed = append(listed, strings.Fields(line)[1])
		}
	}
	// Scores i*3%25 for i < 25: 24 (i=8), 23 (i=16), 22 (i=24), 21 (i=7), ...
	want := []string{"`ns/s08`", "`ns/s16`", "`ns/s24`", "`ns/s07`", "`ns/s15`", "`ns/s23`", "`ns/s06`", "`ns/s14`", "`ns/s22`", "`ns/s05`"}
	if strings.Join(listed, " ") != strings.Join(want, " ") {
		t.Errorf("listed %v, want %v", listed, want)
	}
}

func TestMarkdownStaysUnderCommentLimit(t *testing.T) {
	r := &Report{Tool: Tool{Name: "keyhole", Version: "dev"}, Coverage: Coverage{Authorizers: AuthorizersNote}}
	long := strings.Repeat("very long message | with pipes <and> tags ", 40)
	for i := 0; i < 3000; i++ {
		sev := []string{"critical", "high", "medium", "low"}[i%4]
		r.Findings = append(r.Findings, Finding{Rule: "KH102", Severity: sev, Message: long,
			Object:   ObjectRef{Kind: "Secret", Namespace: "ns", Name: fmt.Sprintf("secret-%04d", i)},
			Location: &Location{Path: "deploy/" + strings.Repeat("d/", 150) + "x.yaml", Line: i + 1}})
		r.Summary.FindingsBySeverity = map[string]int{"critical": 750, "high": 750, "medium": 750, "low": 750}
	}
	for i := 0; i < 50; i++ {
		r.Secrets = append(r.Secrets, Secret{Namespace: strings.Repeat("n", 63), Name: strings.Repeat("s", 253),
			Exposure: Exposure{Score: 50, Severity: "medium", Principals: 9,
				Top: []Subject{{Kind: "User", Name: strings.Repeat("u", 1000)}, {Kind: "User", Name: strings.Repeat("v", 1000)}}}})
		r.Errors = append(r.Errors, Error{Source: "manifests", Message: long})
	}
	out := renderMD(t, r)
	if n := utf8.RuneCountInString(out); n > 65536 || len(out) > markdownLimit {
		t.Errorf("summary is %d bytes, %d characters: over the limit", len(out), n)
	}
	for _, want := range []string{"more findings not shown", "- and 40 more", "</sub>"} {
		if !strings.Contains(out, want) {
			t.Errorf("truncated summary lacks %q", want)
		}
	}
	// A table is never cut mid-row, and the details block is closed.
	if strings.Count(out, "<details>") != strings.Count(out, "</details>") {
		t.Error("unbalanced <details>")
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "|") && !strings.HasSuffix(line, "|") {
			t.Errorf("cut row: %.80s", line)
		}
	}

	// With a tiny budget the findings collapse to notes, still closed.
	small := renderMarkdown(r, 100)
	if strings.Count(small, "<details>") != strings.Count(small, "</details>") || !strings.Contains(small, "1500 more findings not shown") {
		t.Errorf("tiny budget:\n%s", small)
	}
}

func TestClip(t *testing.T) {
	if got := clip("héllo", 10); got != "héllo" {
		t.Errorf("clip short = %q", got)
	}
	if got := clip("héllo wörld", 5); got != "héll…" || utf8.RuneCountInString(got) != 5 {
		t.Errorf("clip long = %q", got)
	}
}
