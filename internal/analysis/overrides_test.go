package analysis

import (
	"reflect"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
)

func TestOverrides(t *testing.T) {
	plain := Run(Input{Inventory: build(t, world())}, Options{})
	rules := map[string]int{}
	for _, f := range plain.Findings {
		rules[f.Rule]++
	}
	if rules["KH102"] == 0 || rules["KH120"] == 0 || rules["KH110"] == 0 {
		t.Fatalf("the world lacks the findings this test needs: %v", rules)
	}
	low := finding.Low
	var asked []string
	r := Run(Input{Inventory: build(t, world())}, Options{
		Rules: map[string]finding.Override{
			"KH102": {Severity: &low},
			"KH120": {Disabled: true},
			"KH122": {Disabled: true}, // raises nothing here: still said
		},
		Suppress: func(f report.Finding) *report.Suppressed {
			asked = append(asked, f.Rule)
			if f.Rule == "KH110" {
				return &report.Suppressed{By: "baseline", Reason: "in baseline b.json"}
			}
			return nil
		},
	})
	got := map[string]int{}
	for _, f := range r.Findings {
		got[f.Rule]++
		switch f.Rule {
		case "KH102":
			if f.Severity != "low" {
				t.Errorf("KH102 severity %s, want the configured low", f.Severity)
			}
		case "KH110":
			if f.Suppressed == nil || f.Suppressed.By != "baseline" {
				t.Errorf("KH110 not suppressed by the baseline: %+v", f.Suppressed)
			}
		}
	}
	if got["KH120"] != 0 || got["KH102"] != rules["KH102"] {
		t.Errorf("findings by rule %v (before overrides %v)", got, rules)
	}
	for _, rule := range asked {
		if rule == "KH120" {
			t.Error("the baseline was asked about a disabled rule's finding")
		}
	}
	wantNotes := []string{"rule KH120 disabled by config: 1 finding(s) not reported", "rule KH122 disabled by config"}
	var notes []string
	for _, n := range r.Coverage.NotAnalysed {
		if len(n) > 5 && n[:5] == "rule " {
			notes = append(notes, n)
		}
	}
	if !reflect.DeepEqual(notes, wantNotes) {
		t.Errorf("notes %q, want %q", notes, wantNotes)
	}
	if r.Summary.FindingsBySeverity["high"] != plain.Summary.FindingsBySeverity["high"]-rules["KH102"]-rules["KH110"] {
		t.Errorf("summary does not follow the overrides: %v (before %v)", r.Summary.FindingsBySeverity, plain.Summary.FindingsBySeverity)
	}
	if r.Summary.Suppressed != rules["KH110"] || r.Summary.FindingsByRule["KH120"] != 0 {
		t.Errorf("summary %+v", r.Summary)
	}
}
