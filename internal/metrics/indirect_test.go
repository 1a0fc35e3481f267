package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// stopped is r as the analysis leaves it when the search for indirect
// paths passes its budget: coverage.indirectStopped, and the note.
func stopped(r *report.Report) *report.Report {
	r.Coverage.IndirectStopped = true
	r.Coverage.NotAnalysed = append(r.Coverage.NotAnalysed, "warning: indirect exposure not analysed: "+canary)
	return r
}

// TestIndirectAnalysisComplete: keyhole_indirect_analysis_complete is one
// series, 1 for a report whose search finished and 0 for one whose search
// was stopped, follows the report the holder points to at each scrape,
// and is absent when the replica does not export findings.
func TestIndirectAnalysisComplete(t *testing.T) {
	head := "\n# HELP " + nameIndirectComplete + " " + definition(nameIndirectComplete).Help + "\n# TYPE " + nameIndirectComplete + " gauge\n"
	want := func(v string) *strings.Reader { return strings.NewReader(head + nameIndirectComplete + " " + v + "\n") }

	h := newHolder(world())
	c := h.collector(Options{})
	for _, step := range []struct {
		name   string
		report *report.Report
		want   string
	}{
		{"search finished", world(), "1"},
		{"search stopped", stopped(world()), "0"},
		{"search stopped, git and posture too", stopped(withPosture(withGit(world()))), "0"},
		{"finished again", world(), "1"},
	} {
		h.report.Store(step.report)
		if err := testutil.CollectAndCompare(c, want(step.want), nameIndirectComplete); err != nil {
			t.Errorf("%s: %v", step.name, err)
		}
	}

	// The other findings metrics of a stopped search are those of the
	// direct readers the report holds: the collector changes nothing but
	// this one series.
	h.report.Store(stopped(world()))
	all := Options{PerSecret: true, ReaderInfo: true}
	if err := testutil.CollectAndCompare(h.collector(all), strings.NewReader(strings.Replace(rollUpsWorld, "\n"+nameIndirectComplete+" 1\n", "\n"+nameIndirectComplete+" 0\n", 1)+perSecretWorld+readerInfoWorld)); err != nil {
		t.Error(err)
	}

	h.exporting.Store(false)
	if n := testutil.CollectAndCount(c, nameIndirectComplete); n != 0 {
		t.Errorf("not exporting: %d series, want none", n)
	}
}
