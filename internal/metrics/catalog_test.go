package metrics

import (
	"flag"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/docsync"
)

var update = flag.Bool("update", false, "rewrite the generated reference in docs/metrics.md")

var docsPath = filepath.Join("..", "..", "docs", "metrics.md")

// TestDocs keeps docs/metrics.md's reference equal to what the catalog
// generates; -update rewrites it.
func TestDocs(t *testing.T) {
	docsync.Check(t, docsPath, DocsBegin, DocsEnd, Reference(), *update, "go test ./internal/metrics -run TestDocs -update after an intended change")
}

// TestCatalogWellFormed: names, types and labels follow the house rules
// before any collector uses them.
func TestCatalogWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Catalog {
		if seen[d.Name] {
			t.Errorf("%s is in the catalog twice", d.Name)
		}
		seen[d.Name] = true
		if !strings.HasPrefix(d.Name, "keyhole_") {
			t.Errorf("%s does not start with keyhole_", d.Name)
		}
		// A final _info is the info-metric convention, not a severity.
		words := strings.Split(strings.TrimSuffix(d.Name, "_info"), "_")
		for _, sev := range []string{"info", "low", "medium", "high", "critical"} {
			if slices.Contains(words, sev) {
				t.Errorf("%s has a severity in its name; severity goes in a label", d.Name)
			}
		}
		if (d.Type == Counter) != strings.HasSuffix(d.Name, "_total") {
			t.Errorf("%s is a %s: only counters, and every counter, end in _total", d.Name, d.Type)
		}
		if d.Help == "" || d.Cardinality == "" {
			t.Errorf("%s lacks help or cardinality", d.Name)
		}
		if !slices.ContainsFunc(sets, func(s setHeading) bool { return s.set == d.Set }) {
			t.Errorf("%s is in set %q, which the reference does not list", d.Name, d.Set)
		}
		for _, l := range d.Labels {
			if !allowedLabels[l] {
				t.Errorf("%s has label %q, which is not an allowed label name", d.Name, l)
			}
		}
	}
}

// recorder is a Registerer that keeps what is registered on it.
type recorder struct{ collectors []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}
func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
}
func (r *recorder) Unregister(prometheus.Collector) bool { return false }

var fqName = regexp.MustCompile(`^Desc\{fqName: "([^"]*)"`)

// descName is a descriptor's metric name; the client library does not
// expose it but in String.
func descName(d *prometheus.Desc) string {
	m := fqName.FindStringSubmatch(d.String())
	if m == nil {
		return "unparsed: " + d.String()
	}
	return m[1]
}

// TestCatalogMatchesCollectors: every descriptor that Findings (all
// options on) and Self describe is in the catalog, and every catalog
// entry is described; and what they emit has the catalog's type, help and
// labels.
func TestCatalogMatchesCollectors(t *testing.T) {
	findings := newHolder(withAudit(withCrossEnv(withPosture(withGit(world()))), true)).collector(Options{PerSecret: true, ReaderInfo: true})
	rec := &recorder{}
	self := NewSelf(rec, "v1.2.3")
	audit := NewAudit(rec, func() (int, uint64) { return 1, 0 })
	collectors := append([]prometheus.Collector{findings}, rec.collectors...)

	described := map[string]bool{}
	for _, c := range collectors {
		for _, d := range describe(c) {
			name := descName(d)
			if described[name] {
				t.Errorf("%s is described twice", name)
			}
			described[name] = true
		}
	}
	for name := range described {
		if !slices.ContainsFunc(Catalog, func(d Definition) bool { return d.Name == name }) {
			t.Errorf("%s is described but not in the catalog", name)
		}
	}
	for _, d := range Catalog {
		if !described[d.Name] {
			t.Errorf("%s is in the catalog but no collector describes it", d.Name)
		}
	}

	// Give every vector a child so that every metric is gathered.
	self.AnalysisDone(time.Second, time.Unix(1, 0), nil)
	self.Event("secrets")
	self.SourceUp("secrets", true)
	audit.Request(200)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectors...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gathered := map[string]*dto.MetricFamily{}
	for _, mf := range families {
		gathered[mf.GetName()] = mf
	}
	types := map[Type]dto.MetricType{Gauge: dto.MetricType_GAUGE, Counter: dto.MetricType_COUNTER, Histogram: dto.MetricType_HISTOGRAM}
	for _, d := range Catalog {
		mf, ok := gathered[d.Name]
		if !ok {
			t.Errorf("%s: nothing gathered", d.Name)
			continue
		}
		if mf.GetType() != types[d.Type] {
			t.Errorf("%s is a %s, the catalog says %s", d.Name, mf.GetType(), d.Type)
		}
		if mf.GetHelp() != d.Help {
			t.Errorf("%s has help %q, the catalog says %q", d.Name, mf.GetHelp(), d.Help)
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName())
			}
			if want := slices.Sorted(slices.Values(d.Labels)); !slices.Equal(labels, want) {
				t.Errorf("%s has labels %v, the catalog says %v", d.Name, labels, want)
			}
		}
	}
}

// TestManagersDocumented: keyhole_secret_managed's help names every
// manager the analysis can report.
func TestManagersDocumented(t *testing.T) {
	help := definition(nameSecretManaged).Help
	for _, m := range append(analysis.Managers(), noManager) {
		if !strings.Contains(help, m) {
			t.Errorf("%s's help does not name manager %q", nameSecretManaged, m)
		}
	}
}

// TestDefinitionUnknown: asking for a metric the catalog lacks is a
// programming error and says which.
func TestDefinitionUnknown(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "keyhole_nope") {
			t.Errorf("recovered %v, want a panic naming keyhole_nope", r)
		}
	}()
	definition("keyhole_nope")
	t.Error("definition of an unknown metric returned")
}
