package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// tableSeverities is the display order, most severe first.
var tableSeverities = []string{"critical", "high", "medium", "low", "info"}

// WriteTable writes the report for people: a summary line, then per
// namespace each Secret with its severity, reader count and most exposed
// readers, then the findings with their counts by rule, and the errors.
// Columns are aligned and every list is sorted, so two runs over the same
// world print the same text.
func WriteTable(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	ew.printf("keyhole %s: %d Secrets, %d findings (%s)",
		r.Tool.Version, r.Summary.Secrets, countFindings(r.Summary), severityCounts(r.Summary.FindingsBySeverity))
	if r.Summary.Suppressed > 0 {
		ew.printf(", %d suppressed", r.Summary.Suppressed)
	}
	ew.printf("\n")
	writeEncryptionAtRest(ew, r.Posture)

	if len(r.Secrets) > 0 {
		ew.printf("\nSECRETS\n")
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMESPACE\tSECRET\tTYPE\tSEVERITY\tSCORE\tREADERS\tRECOMMENDATION\tMOST EXPOSED TO")
		lastNS := ""
		for _, s := range r.Secrets {
			ns := s.Namespace
			if ns == lastNS {
				ns = ""
			} else {
				lastNS = ns
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", ns, s.Name, s.Type, s.Exposure.Severity, s.Exposure.Score, s.Readers.Len(), s.Recommendation.Short(), topReaders(s))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		writeRecommendations(ew, r.Secrets)
		if err := writeCrossEnvironment(ew, r.Secrets); err != nil {
			return err
		}
	}

	if len(r.Findings) > 0 {
		ew.printf("\nFINDINGS\n")
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tRULE\tOBJECT\tLOCATION\tMESSAGE")
		for _, f := range r.Findings {
			sev := f.Severity
			if f.Suppressed != nil {
				sev += " (suppressed)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", sev, f.Rule, f.Object, locationString(f.Location), f.Message)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Summary.FindingsByRule) > 0 {
		ew.printf("\nFINDINGS BY RULE\n")
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RULE\tTITLE\tSEVERITY\tCOUNT")
		for _, rc := range ruleCounts(r) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", rc.rule, rc.title, rc.severity, rc.count)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(r.Errors) > 0 {
		ew.printf("\nERRORS (the report is incomplete)\n")
		for _, e := range r.Errors {
			line := e.Message
			if e.Impact != "" {
				line += " (" + e.Impact + ")"
			}
			ew.printf("  %s: %s\n", e.Source, line)
		}
	}
	if len(r.Coverage.NotAnalysed) > 0 {
		ew.printf("\nNOT ANALYSED\n")
		for _, n := range r.Coverage.NotAnalysed {
			ew.printf("  %s\n", n)
		}
	}
	ew.printf("\nAuthorizers: %s\n", r.Coverage.Authorizers)
	return ew.err
}

// writeRecommendations lists, per Secret with a suggestion, the target and
// the reason, then each further action.
func writeRecommendations(ew *errWriter, secrets []Secret) {
	header := false
	for _, s := range secrets {
		rec := s.Recommendation
		if rec.Status != "suggested" {
			continue
		}
		if !header {
			ew.printf("\nRECOMMENDATIONS (docs/remediation.md)\n")
			header = true
		}
		ew.printf("  %s/%s: %s: %s\n", s.Namespace, s.Name, rec.Short(), rec.Reason)
		for _, a := range rec.Actions {
			ew.printf("    - %s: %s\n", a.ID, a.Text)
		}
	}
}

// writeCrossEnvironment lists, per Secret readable from a lower
// environment, each such reader: where it comes from, its path and why it
// belongs there (docs/environments.md).
func writeCrossEnvironment(ew *errWriter, secrets []Secret) error {
	var tw *tabwriter.Writer
	for _, s := range secrets {
		for _, c := range s.CrossEnv {
			if tw == nil {
				ew.printf("\nCROSS-ENVIRONMENT READERS (KH610, docs/environments.md)\n")
				tw = tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAMESPACE\tSECRET\tENVIRONMENT\tFROM\tREADER\tPATH\tBECAUSE")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Environment, c.FromEnvironment, c.Subject, c.Path, c.BasisText())
		}
	}
	if tw == nil {
		return nil
	}
	return tw.Flush()
}

func topReaders(s Secret) string {
	if len(s.Exposure.Top) == 0 {
		return "-"
	}
	names := make([]string, len(s.Exposure.Top))
	for i, t := range s.Exposure.Top {
		names[i] = t.String()
	}
	out := strings.Join(names, ", ")
	if more := s.Exposure.Principals - len(names); more > 0 {
		out += fmt.Sprintf(" (+%d more)", more)
	}
	return out
}

// locationString is PATH[:LINE], and for a git finding @COMMIT (the
// introducing commit, abbreviated to 12 digits as the messages name it).
func locationString(l *Location) string {
	if l == nil || l.Path == "" {
		return "-"
	}
	s := l.Path
	if l.Line > 0 {
		s += fmt.Sprintf(":%d", l.Line)
	}
	if l.Commit != "" {
		s += "@" + ShortCommit(l.Commit)
	}
	return s
}

// ShortCommit abbreviates a commit hash to the 12 digits people are shown.
func ShortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func countFindings(s Summary) int {
	n := 0
	for _, c := range s.FindingsBySeverity {
		n += c
	}
	return n
}

func severityCounts(m map[string]int) string {
	parts := make([]string, 0, len(tableSeverities))
	for _, sev := range tableSeverities {
		parts = append(parts, fmt.Sprintf("%d %s", m[sev], sev))
	}
	return strings.Join(parts, ", ")
}

type ruleCount struct {
	rule, title, severity string
	count                 int
}

// ruleCounts lists the rules with unsuppressed findings, sorted by id, with
// the title and the highest severity of their counted findings (a finding
// may raise its rule's default severity).
func ruleCounts(r *Report) []ruleCount {
	byRule := map[string]*ruleCount{}
	for rule, n := range r.Summary.FindingsByRule {
		byRule[rule] = &ruleCount{rule: rule, count: n, title: "-", severity: "-"}
	}
	for _, f := range r.Findings {
		rc := byRule[f.Rule]
		if rc == nil || f.Suppressed != nil {
			continue
		}
		if f.Title != "" {
			rc.title = f.Title
		}
		if severityRank(f.Severity) > severityRank(rc.severity) {
			rc.severity = f.Severity
		}
	}
	out := make([]ruleCount, 0, len(byRule))
	for _, rc := range byRule {
		out = append(out, *rc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rule < out[j].rule })
	return out
}

// severityRank orders severity names, most severe highest; unknown names
// rank below info.
func severityRank(sev string) int {
	for i, s := range tableSeverities {
		if s == sev {
			return len(tableSeverities) - i
		}
	}
	return 0
}

// errWriter keeps the first write error so that the table code can print
// without checking each call.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
