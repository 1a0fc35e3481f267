package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keyhole-sec/keyhole/internal/finding"
)

// markdownLimit bounds the summary in bytes. A GitHub comment holds at most
// 65,536 characters; a byte is never less than a character, and the margin
// leaves room for a bot to add a line of its own.
const markdownLimit = 60000

// markdownTopSecrets is how many Secrets the summary lists.
const markdownTopSecrets = 10

// Cell lengths, in characters. They keep one pathological name or message
// from filling the comment on its own.
const (
	mdMaxName    = 200
	mdMaxMessage = 500
)

// WriteMarkdown writes a compact summary for a pull-request comment: the
// counts by severity, the unsuppressed critical and high findings, the
// others folded away, and the most exposed Secrets. The report does not
// know the gate's threshold, so every unsuppressed finding counts as new.
// Names and messages are escaped, so that an object name cannot inject
// markup or mention someone, and the whole stays under GitHub's comment size
// limit: findings that do not fit are counted in a note instead.
func WriteMarkdown(w io.Writer, r *Report) error {
	_, err := io.WriteString(w, renderMarkdown(r, markdownLimit))
	return err
}

func renderMarkdown(r *Report, limit int) string {
	var high, rest []Finding
	for _, f := range r.Findings {
		if f.Suppressed != nil {
			continue
		}
		if f.Severity == "critical" || f.Severity == "high" {
			high = append(high, f)
		} else {
			rest = append(rest, f)
		}
	}

	head := mdHead(r)
	errs := mdErrors(r.Errors)
	secrets := mdSecrets(r.Secrets) + mdCrossEnvironment(r.Secrets)
	foot := mdFooter(r)

	// The fixed sections are small and bounded; the findings get what is
	// left, critical and high first, but always leaving room to count the
	// others.
	budget := limit - len(head) - len(errs) - len(secrets) - len(foot)
	restNote := 0
	if len(rest) > 0 {
		restNote = len(mdTruncatedNote(len(rest)))
	}
	highPart := "No unsuppressed critical or high findings.\n\n"
	if len(high) > 0 {
		highPart = mdFindings(high, budget-restNote, "### Critical and high findings", "", "")
	}
	restPart := ""
	if len(rest) > 0 {
		summary := fmt.Sprintf("<details>\n<summary>%s</summary>\n\n", mdPlural(len(rest), "medium, low or info finding"))
		restPart = mdFindings(rest, budget-len(highPart), "", summary, "</details>\n\n")
	}
	return head + errs + highPart + restPart + secrets + foot
}

func mdHead(r *Report) string {
	var b strings.Builder
	n := countFindings(r.Summary)
	fmt.Fprintf(&b, "## keyhole: %s, %s", mdPlural(n, "finding"), mdPlural(r.Summary.Secrets, "Secret"))
	if len(r.Errors) > 0 {
		b.WriteString(" (incomplete)")
	}
	b.WriteString("\n\n| Severity | Findings | Secrets |\n| --- | ---: | ---: |\n")
	for _, sev := range tableSeverities {
		fmt.Fprintf(&b, "| %s | %d | %d |\n", sev, r.Summary.FindingsBySeverity[sev], r.Summary.SecretsBySeverity[sev])
	}
	b.WriteString("\n")
	if s := r.Summary.Suppressed; s > 0 {
		fmt.Fprintf(&b, "%s suppressed by annotation or baseline: not counted and not listed.\n\n", mdPlural(s, "finding"))
	}
	b.WriteString(mdEncryptionAtRest(r.Posture))
	return b.String()
}

// mdMaxErrors is how many input errors the summary lists.
const mdMaxErrors = 10

func mdErrors(errs []Error) string {
	if len(errs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**The report is incomplete:** %s could not be read or analysed, so findings may be missing.\n\n",
		mdPlural(len(errs), "input"))
	for i, e := range errs {
		if i == mdMaxErrors {
			fmt.Fprintf(&b, "- and %d more\n", len(errs)-mdMaxErrors)
			break
		}
		line := e.Message
		if e.Impact != "" {
			line += " (" + e.Impact + ")"
		}
		fmt.Fprintf(&b, "- %s: %s\n", mdText(clip(e.Source, mdMaxName)), mdText(clip(line, mdMaxMessage)))
	}
	b.WriteString("\n")
	return b.String()
}

// mdFindings renders a findings table between open and closing text,
// adding rows while they fit in budget and counting the rest in a note.
func mdFindings(fs []Finding, budget int, heading, open, closing string) string {
	const tableHead = "| Severity | Rule | Object | Location | Message |\n| --- | --- | --- | --- | --- |\n"
	var b strings.Builder
	if heading != "" {
		fmt.Fprintf(&b, "%s (%d)\n\n", heading, len(fs))
	}
	b.WriteString(open)
	b.WriteString(tableHead)
	// Room for the blank line after the table, the note (whose length
	// grows with the count, at most len(fs)) and the closing text.
	noteRoom := 1 + len(mdTruncatedNote(len(fs))) + len(closing)
	shown := 0
	for _, f := range fs {
		row := fmt.Sprintf("| %s | %s | %s | %s | %s |\n", f.Severity, mdRule(f.Rule), mdCodeCell(f.Object.String()),
			mdCodeCell(locationString(f.Location)), mdText(clip(f.Message, mdMaxMessage)))
		if b.Len()+len(row)+noteRoom > budget {
			break
		}
		b.WriteString(row)
		shown++
	}
	if shown == 0 && b.Len()+noteRoom > budget {
		// Not even the table fits: say so in one line.
		return mdTruncatedNote(len(fs))
	}
	b.WriteString("\n")
	if shown < len(fs) {
		b.WriteString(mdTruncatedNote(len(fs) - shown))
	}
	b.WriteString(closing)
	return b.String()
}

func mdTruncatedNote(n int) string {
	return fmt.Sprintf("_%s not shown to stay within the comment size limit: the JSON or SARIF report lists every finding._\n\n",
		mdPlural(n, "more finding"))
}

func mdRule(id string) string {
	if rule, ok := finding.Lookup(id); ok {
		return "[" + mdText(id) + "](" + rule.HelpURI() + ")"
	}
	return mdText(id)
}

func mdSecrets(secrets []Secret) string {
	if len(secrets) == 0 {
		return ""
	}
	top := append([]Secret(nil), secrets...)
	sort.SliceStable(top, func(i, j int) bool {
		a, b := top[i], top[j]
		if a.Exposure.Score != b.Exposure.Score {
			return a.Exposure.Score > b.Exposure.Score
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	var b strings.Builder
	b.WriteString("### Most exposed Secrets\n\n")
	if len(top) > markdownTopSecrets {
		fmt.Fprintf(&b, "The %d highest scores of %d Secrets.\n\n", markdownTopSecrets, len(top))
		top = top[:markdownTopSecrets]
	}
	b.WriteString("| Secret | Severity | Score | Principals | Most exposed to | Recommendation |\n| --- | --- | ---: | ---: | --- | --- |\n")
	for _, s := range top {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s |\n", mdCodeCell(s.Namespace+"/"+s.Name), mdText(s.Exposure.Severity),
			s.Exposure.Score, s.Exposure.Principals, mdTopReaders(s), mdRecommendation(s.Recommendation))
	}
	b.WriteString("\n")
	return b.String()
}

// mdCrossEnvMaxReaders is how many readers a cross-environment row names.
const mdCrossEnvMaxReaders = 3

// mdCrossEnvironment lists the Secrets readable from a lower environment,
// a row per Secret and lower environment, at most markdownTopSecrets rows
// and mdCrossEnvMaxReaders readers a row: bounded, like every fixed
// section.
func mdCrossEnvironment(secrets []Secret) string {
	type row struct {
		secret, env, from string
		readers           []string
	}
	var rows []row
	for _, s := range secrets {
		at := map[string]int{}
		for _, c := range s.CrossEnv {
			i, ok := at[c.FromEnvironment]
			if !ok {
				i = len(rows)
				at[c.FromEnvironment] = i
				rows = append(rows, row{secret: s.Namespace + "/" + s.Name, env: s.Environment, from: c.FromEnvironment})
			}
			rows[i].readers = append(rows[i].readers, mdCodeCell(clip(c.Subject.String(), mdMaxName))+" ("+mdText(c.Path)+")")
		}
	}
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("### Readable from a lower environment (KH610)\n\n")
	if len(rows) > markdownTopSecrets {
		fmt.Fprintf(&b, "The first %d of %d Secrets and environments; the JSON report lists every reader.\n\n", markdownTopSecrets, len(rows))
		rows = rows[:markdownTopSecrets]
	}
	b.WriteString("| Secret | Environment | From | Readers |\n| --- | --- | --- | --- |\n")
	for _, r := range rows {
		readers := r.readers
		more := ""
		if len(readers) > mdCrossEnvMaxReaders {
			more = fmt.Sprintf(" and %d more", len(readers)-mdCrossEnvMaxReaders)
			readers = readers[:mdCrossEnvMaxReaders]
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s%s |\n", mdCodeCell(clip(r.secret, mdMaxName)), mdText(clip(r.env, mdMaxName)), mdText(clip(r.from, mdMaxName)),
			strings.Join(readers, ", "), more)
	}
	b.WriteString("\n")
	return b.String()
}

// mdRecommendation is the target and the reason, as one cell.
func mdRecommendation(r Recommendation) string {
	short := r.Short()
	if r.Status != "suggested" {
		return mdText(short)
	}
	return "**" + mdText(short) + "**: " + mdText(clip(r.Reason, mdMaxMessage))
}

func mdTopReaders(s Secret) string {
	if len(s.Exposure.Top) == 0 {
		return "-"
	}
	names := make([]string, len(s.Exposure.Top))
	for i, t := range s.Exposure.Top {
		names[i] = mdCodeCell(t.String())
	}
	out := strings.Join(names, ", ")
	if more := s.Exposure.Principals - len(names); more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}

func mdFooter(r *Report) string {
	parts := []string{mdText(clip(r.Tool.Name+" "+r.Tool.Version, mdMaxName))}
	if n := len(r.Coverage.NotAnalysed); n > 0 {
		parts = append(parts, mdPlural(n, "input")+" read but not analysed")
	}
	if r.Coverage.Authorizers != "" {
		parts = append(parts, mdText(clip(r.Coverage.Authorizers, mdMaxMessage)))
	}
	return "<sub>" + strings.Join(parts, " · ") + "</sub>\n"
}

func mdPlural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// clip shortens s to at most n characters, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// mdText escapes s as Markdown text, safe in a table cell or a list item:
// ASCII punctuation that GitHub Flavored Markdown gives a meaning to is
// backslash-escaped (including the pipe that would end a table cell), HTML
// is written as entities, line breaks become spaces, and an @ that would
// mention a user or team gets a zero-width space after it.
func mdText(s string) string {
	var b strings.Builder
	prev := ' '
	for _, c := range s {
		switch c {
		case '\n', '\r', '\t':
			b.WriteByte(' ')
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '@':
			b.WriteByte('@')
			if !isWordRune(prev) {
				b.WriteString("&#8203;")
			}
		case '\\', '`', '*', '_', '[', ']', '|', '~', '#', '!', '$':
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
		prev = c
	}
	return b.String()
}

func isWordRune(c rune) bool {
	return c == '_' || unicode.IsLetter(c) || unicode.IsDigit(c)
}

// mdCodeCell writes s as a code span inside a table cell. A code span shows
// its text as is (no markup, no mentions); the fence is longer than any run
// of backticks in s, and a pipe is escaped, which GitHub Flavored Markdown
// tables require even inside code.
func mdCodeCell(s string) string {
	s = clip(strings.Map(func(c rune) rune {
		if c == '\n' || c == '\r' || c == '\t' {
			return ' '
		}
		return c
	}, s), mdMaxName)
	if s == "" || s == "-" {
		return "-"
	}
	longest, run := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || strings.TrimSpace(s) == "" {
		s = " " + s + " "
	}
	return fence + strings.ReplaceAll(s, "|", `\|`) + fence
}
