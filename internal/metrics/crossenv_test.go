package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// withCrossEnv puts a/db in environment prod, read from staging by one
// reader and from dev by two, and b/api in prod with no lower reader.
func withCrossEnv(r *report.Report) *report.Report {
	read := func(from, kind, ns, name, path, basis string) report.CrossEnvRead {
		return report.CrossEnvRead{FromEnvironment: from, Subject: report.Subject{Kind: kind, Namespace: ns, Name: name},
			Path: path, Basis: basis, Namespaces: []string{ns}}
	}
	for i := range r.Secrets {
		s := &r.Secrets[i]
		s.Environment = "prod"
		if s.Name == "db" {
			s.CrossEnv = []report.CrossEnvRead{
				read("dev", "Group", "", "dev-team", "pod-create", "bindings"),
				read("staging", "ServiceAccount", "stage", "app", "direct", "namespace"),
				read("dev", "ServiceAccount", "dev", canary, "direct", "namespace"),
			}
		}
	}
	return r
}

// TestCrossEnvironmentReaders: one series per Secret and lower
// environment, counting its readers; series follow the report (a fixed
// exposure's series is gone at the next scrape); per-Secret off and a
// follower emit none.
func TestCrossEnvironmentReaders(t *testing.T) {
	h := newHolder(withCrossEnv(world()))
	c := h.collector(Options{PerSecret: true})
	head := "\n# HELP keyhole_cross_environment_readers " + definition(nameCrossEnvReaders).Help + "\n# TYPE keyhole_cross_environment_readers gauge\n"
	want := head + `keyhole_cross_environment_readers{from_environment="dev",namespace="a",secret="db"} 2
keyhole_cross_environment_readers{from_environment="staging",namespace="a",secret="db"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), nameCrossEnvReaders); err != nil {
		t.Error(err)
	}

	// Staging loses its grant: its series goes.
	fixed := withCrossEnv(world())
	fixed.Secrets[0].CrossEnv = fixed.Secrets[0].CrossEnv[:1]
	h.report.Store(fixed)
	want = head + `keyhole_cross_environment_readers{from_environment="dev",namespace="a",secret="db"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), nameCrossEnvReaders); err != nil {
		t.Error(err)
	}
	h.report.Store(world())
	if n := testutil.CollectAndCount(c, nameCrossEnvReaders); n != 0 {
		t.Errorf("no environments: %d series, want none", n)
	}

	h.report.Store(withCrossEnv(world()))
	if n := testutil.CollectAndCount(h.collector(Options{}), nameCrossEnvReaders); n != 0 {
		t.Errorf("per-Secret off: %d series, want none", n)
	}
	h.exporting.Store(false)
	if n := testutil.CollectAndCount(c, nameCrossEnvReaders); n != 0 {
		t.Errorf("not exporting: %d series, want none", n)
	}
}

// TestCrossEnvironmentReadersLint: promlint is silent, and no label holds
// a subject or the canary (a reader's name is in the report, not in the
// metric).
func TestCrossEnvironmentReadersLint(t *testing.T) {
	c := newHolder(withCrossEnv(world())).collector(Options{PerSecret: true})
	if n := testutil.CollectAndCount(c, nameCrossEnvReaders); n == 0 {
		t.Fatal("nothing collected, so nothing linted")
	}
	problems, err := testutil.CollectAndLint(c, nameCrossEnvReaders)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if checkLabels(t, families) == 0 {
		t.Fatal("nothing gathered, so nothing checked")
	}
}
