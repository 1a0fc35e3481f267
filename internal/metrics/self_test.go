package metrics

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSelf: each method moves its metric, and only its metric.
func TestSelf(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := NewSelf(reg, "v1.2.3")

	s.AnalysisDone(1500*time.Millisecond, time.Unix(1700000000, 500000000), nil)
	s.AnalysisDone(20*time.Millisecond, time.Unix(1700000100, 0), errors.New("analysis: boom"))
	s.Event("secrets")
	s.Event("secrets")
	s.Event("pods")
	s.SourceUp("secrets", true)
	s.SourceUp("pods", false)
	s.Leader(true)

	want := `
# HELP keyhole_analysis_errors_total Analyses that failed.
# TYPE keyhole_analysis_errors_total counter
keyhole_analysis_errors_total 1
# HELP keyhole_build_info ` + definition(nameBuildInfo).Help + `
# TYPE keyhole_build_info gauge
keyhole_build_info{goversion="` + runtime.Version() + `",version="v1.2.3"} 1
# HELP keyhole_events_total Watch events received, by resource.
# TYPE keyhole_events_total counter
keyhole_events_total{resource="pods"} 1
keyhole_events_total{resource="secrets"} 2
# HELP keyhole_last_analysis_timestamp_seconds ` + definition(nameLastAnalysis).Help + `
# TYPE keyhole_last_analysis_timestamp_seconds gauge
keyhole_last_analysis_timestamp_seconds 1.7000000005e+09
# HELP keyhole_leader ` + definition(nameLeader).Help + `
# TYPE keyhole_leader gauge
keyhole_leader 1
# HELP keyhole_source_up ` + definition(nameSourceUp).Help + `
# TYPE keyhole_source_up gauge
keyhole_source_up{resource="pods"} 0
keyhole_source_up{resource="secrets"} 1
`
	// The histogram is checked on its own below: its bucket lines would
	// only restate analysisBuckets.
	names := []string{nameAnalysisErrors, nameBuildInfo, nameEvents, nameLastAnalysis, nameLeader, nameSourceUp}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, nameAnalysisDuration); err != nil || n != 1 {
		t.Errorf("%s: %d series (%v), want 1", nameAnalysisDuration, n, err)
	}
	// The catalog's cardinality describes these buckets.
	if n := len(analysisBuckets); n != 15 || analysisBuckets[0] != 0.01 || analysisBuckets[n-1] != 163.84 {
		t.Errorf("buckets %v are not those the catalog documents for %s", analysisBuckets, nameAnalysisDuration)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != nameAnalysisDuration {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 2 || h.GetSampleSum() != 1.52 {
			t.Errorf("%s: count %d sum %g, want both analyses, failed one included: 2 and 1.52", nameAnalysisDuration, h.GetSampleCount(), h.GetSampleSum())
		}
	}

	// A later failure leaves the timestamp of the last success; leadership
	// is lost.
	s.AnalysisDone(time.Second, time.Unix(1800000000, 0), errors.New("analysis: boom"))
	s.Leader(false)
	if got := testutil.ToFloat64(s.last); got != 1.7000000005e+09 {
		t.Errorf("after a failure the last analysis is %g, want the last success's", got)
	}
	if got := testutil.ToFloat64(s.errors); got != 2 {
		t.Errorf("%g errors, want 2", got)
	}
	if got := testutil.ToFloat64(s.leader); got != 0 {
		t.Errorf("leader %g after losing the lease, want 0", got)
	}
}

// TestSelfLint: promlint finds nothing to say about the self-metrics.
func TestSelfLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := NewSelf(reg, "v1.2.3")
	s.AnalysisDone(time.Second, time.Now(), nil)
	s.Event("secrets")
	s.SourceUp("secrets", true)
	s.Leader(true)
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n == 0 {
		t.Fatalf("gathered %d series (%v): nothing to lint", n, err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	checkLabels(t, families)
}

// TestSelfOwnRegistry: NewSelf registers on the registry it is given and
// leaves the global one alone.
func TestSelfOwnRegistry(t *testing.T) {
	before, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	NewSelf(prometheus.NewRegistry(), "v1.2.3")
	after, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range after {
		if strings.HasPrefix(mf.GetName(), "keyhole_") {
			t.Errorf("%s is on the global registry", mf.GetName())
		}
	}
	if len(after) != len(before) {
		t.Errorf("the global registry went from %d to %d families", len(before), len(after))
	}
}
