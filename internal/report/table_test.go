package report

import (
	"bytes"
	"strings"
	"testing"
)

func TestTableFindingsByRule(t *testing.T) {
	r := richReport()
	// KH103's finding raised above its rule's default severity shows as such.
	r.Findings[3].Severity = "high"
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	_, section, ok := strings.Cut(out, "\nFINDINGS BY RULE\n")
	if !ok {
		t.Fatalf("no FINDINGS BY RULE section:\n%s", out)
	}
	section, _, _ = strings.Cut(section, "\n\n")
	want := strings.Join([]string{
		"RULE   TITLE                               SEVERITY  COUNT",
		"KH101  Secret readable by everyone         critical  1",
		"KH103  Secret readable by many principals  high      1",
		"KH999  A rule from a newer keyhole         info      1",
	}, "\n")
	if section != want {
		t.Errorf("FINDINGS BY RULE:\n%s\nwant:\n%s", section, want)
	}
	// KH102 and KH110 are suppressed: not counted, so not listed.
	if strings.Contains(section, "KH102") || strings.Contains(section, "KH110") {
		t.Error("a rule with only suppressed findings is counted")
	}
}

// TestTableGitLocation: a git finding's location names the commit that
// introduced the value, abbreviated as its message does.
func TestTableGitLocation(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, richReport()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "  history/old.yaml:3@abc123  ") {
		t.Errorf("no git location in:\n%s", buf.String())
	}
	for l, want := range map[*Location]string{
		nil:              "-",
		{Path: "a.yaml"}: "a.yaml",
		{Path: "a.yaml", Line: 2, Commit: "0123456789abcdef0123456789abcdef01234567"}: "a.yaml:2@0123456789ab",
	} {
		if got := locationString(l); got != want {
			t.Errorf("locationString(%+v) = %q, want %q", l, got, want)
		}
	}
}
