package analysis

import (
	"fmt"
	"sort"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// uncommitted reports a git finding on a value the index or the working
// tree holds and HEAD does not: a value nobody can have accepted yet. Git
// fingerprints do not depend on the value, so a baseline entry for the
// same key of the same file would otherwise let a pre-commit hook pass a
// new plaintext value; an annotation still exempts it.
func uncommitted(f report.Finding) bool {
	l := f.Location
	return l != nil && l.Commit == "" && l.PresentAtHead != nil && !*l.PresentAtHead
}

// applyOverrides applies the config's rule overrides and then the
// baseline to every finding raised. A disabled rule's findings are dropped
// and counted in a coverage note, never silently: a reader of the report
// must be able to tell "no finding" from "not looked for". An annotation's
// suppression wins over the baseline's, being the more specific.
func (a *analyzer) applyOverrides() {
	if len(a.opts.Rules) == 0 && a.opts.Suppress == nil {
		return
	}
	dropped := map[string]int{}
	kept := a.report.Findings[:0]
	for _, f := range a.report.Findings {
		o := a.opts.Rules[f.Rule]
		if o.Disabled {
			dropped[f.Rule]++
			continue
		}
		if o.Severity != nil {
			f.Severity = o.Severity.String()
		}
		if f.Suppressed == nil && a.opts.Suppress != nil && !uncommitted(f) {
			f.Suppressed = a.opts.Suppress(f)
		}
		kept = append(kept, f)
	}
	a.report.Findings = kept
	var disabled []string
	for id, o := range a.opts.Rules {
		if o.Disabled {
			disabled = append(disabled, id)
		}
	}
	sort.Strings(disabled)
	for _, id := range disabled {
		note := "rule " + id + " disabled by config"
		if n := dropped[id]; n > 0 {
			note += fmt.Sprintf(": %d finding(s) not reported", n)
		}
		a.report.Coverage.NotAnalysed = append(a.report.Coverage.NotAnalysed, note)
	}
}
