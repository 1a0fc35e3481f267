package metrics

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// canary stands for a Secret value. Values never reach a report, but the
// test world puts this one everywhere a careless sink could pick it up
// from, to prove no label carries it.
const canary = "KEYHOLE-CANARY-metrics"

func reader(kind, ns, name, path string, expected bool) report.Reader {
	return report.Reader{Subject: report.Subject{Kind: kind, Namespace: ns, Name: name}, Path: path, Expected: expected}
}

// world is a report with two Secrets and findings of every shape the
// roll-ups treat differently: two of a rule in one namespace, a
// cluster-scoped one, and a suppressed one.
func world() *report.Report {
	return &report.Report{
		APIVersion: report.APIVersion, Kind: report.Kind,
		Secrets: []report.Secret{
			{
				Namespace: "a", Name: "db", Type: "Opaque", Keys: []string{"password"},
				Readers: report.Readers([]report.Reader{
					reader("Group", "", "system:masters", "direct", true),
					reader("User", "", "alice", "direct", false),
					reader("ServiceAccount", "ci", "deployer", "pod-create", false),
					reader("User", "", "bob", "pod-create", false),
					reader("ServiceAccount", "kube-system", "generic-garbage-collector", "token-mint", true),
				}...),
				Exposure:      report.Exposure{Score: 42, Severity: "high", Reasons: []string{"readable by " + canary}},
				EnvInjections: 2,
			},
			{
				Namespace: "b", Name: "api", Type: "Opaque", Keys: []string{"token"},
				Readers:   report.Readers([]report.Reader{reader("Group", "", "system:masters", "direct", true)}...),
				Exposure:  report.Exposure{Score: 0, Severity: "info"},
				ManagedBy: "external-secrets",
			},
		},
		Findings: []report.Finding{
			{Rule: "KH102", Severity: "high", Message: canary, Object: report.ObjectRef{Kind: "Secret", Namespace: "a", Name: "db"}, Fingerprint: "f1"},
			{Rule: "KH102", Severity: "high", Object: report.ObjectRef{Kind: "RoleBinding", Namespace: "a", Name: "x"}, Fingerprint: "f2"},
			{Rule: "KH110", Severity: "critical", Object: report.ObjectRef{Kind: "ClusterRoleBinding", Name: "ci"}, Fingerprint: "f3"},
			{Rule: "KH102", Severity: "high", Object: report.ObjectRef{Kind: "Secret", Namespace: "b", Name: "api"}, Fingerprint: "f4"},
			{Rule: "KH410", Severity: "low", Object: report.ObjectRef{Kind: "Secret", Namespace: "b", Name: "api"}, Fingerprint: "f5",
				Suppressed: &report.Suppressed{By: "annotation", Reason: canary}},
		},
	}
}

// withGit adds a scanned repository to r: plaintext values still at HEAD
// and only in history, and findings keyhole_git_plaintext_secrets must
// not count (suppressed, a ConfigMap credential, a placeholder).
func withGit(r *report.Report) *report.Report {
	r.Coverage.Sources = append(r.Coverage.Sources, report.SourceCoverage{Kind: "git", Target: "gitops"})
	at := func(head bool) *report.Location {
		return &report.Location{Path: "deploy/db.yaml", Line: 3, Commit: "c0ffee", PresentAtHead: &head}
	}
	obj := report.ObjectRef{Kind: "Secret", Namespace: "a", Name: "db"}
	r.Findings = append(r.Findings,
		report.Finding{Rule: "KH301", Severity: "high", Object: obj, Location: at(true), Fingerprint: "g1"},
		report.Finding{Rule: "KH302", Severity: "high", Object: obj, Location: at(true), Fingerprint: "g2"},
		report.Finding{Rule: "KH301", Severity: "critical", Object: obj, Location: at(false), Fingerprint: "g3"},
		report.Finding{Rule: "KH301", Severity: "high", Object: obj, Location: at(true), Fingerprint: "g4",
			Suppressed: &report.Suppressed{By: "baseline", Reason: "accepted"}},
		report.Finding{Rule: "KH303", Severity: "high", Object: report.ObjectRef{Kind: "ConfigMap", Namespace: "a", Name: "cfg"}, Location: at(true), Fingerprint: "g5"},
		report.Finding{Rule: "KH310", Severity: "info", Object: obj, Location: at(true), Fingerprint: "g6"},
	)
	return r
}

// TestGitPlaintextRollUp counts a repository's plaintext values by
// whether HEAD still holds them, and says nothing of repositories when
// none was scanned.
func TestGitPlaintextRollUp(t *testing.T) {
	c := newHolder(withGit(world())).collector(Options{})
	want := `
# HELP keyhole_git_plaintext_secrets ` + definition(nameGitPlaintext).Help + `
# TYPE keyhole_git_plaintext_secrets gauge
keyhole_git_plaintext_secrets{repo="gitops",state="history"} 1
keyhole_git_plaintext_secrets{repo="gitops",state="present"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), nameGitPlaintext); err != nil {
		t.Error(err)
	}
	none := newHolder(world()).collector(Options{})
	if n := testutil.CollectAndCount(none, nameGitPlaintext); n != 0 {
		t.Errorf("%d keyhole_git_plaintext_secrets series without a repository, want none", n)
	}
}

// holder is what the daemon does: an atomic pointer to the latest report,
// and whether this replica exports.
type holder struct {
	report    atomic.Pointer[report.Report]
	exporting atomic.Bool
}

func newHolder(r *report.Report) *holder {
	h := &holder{}
	h.report.Store(r)
	h.exporting.Store(true)
	return h
}

func (h *holder) collector(opts Options) *Findings {
	return NewFindings(h.report.Load, h.exporting.Load, opts)
}

var (
	rollUpsWorld = `
# HELP keyhole_findings ` + "Findings by the namespace of their object, rule and severity; namespace is empty for cluster-scoped objects. Suppressed findings (exemption annotation, baseline) are not counted; a combination with no finding has no series." + `
# TYPE keyhole_findings gauge
keyhole_findings{namespace="",rule="KH110",severity="critical"} 1
keyhole_findings{namespace="a",rule="KH102",severity="high"} 2
keyhole_findings{namespace="b",rule="KH102",severity="high"} 1
# HELP keyhole_findings_cluster Findings in the whole cluster by rule and severity, suppressed findings not counted; a combination with no finding has no series.
# TYPE keyhole_findings_cluster gauge
keyhole_findings_cluster{rule="KH102",severity="high"} 3
keyhole_findings_cluster{rule="KH110",severity="critical"} 1
# HELP keyhole_indirect_analysis_complete ` + definition(nameIndirectComplete).Help + `
# TYPE keyhole_indirect_analysis_complete gauge
keyhole_indirect_analysis_complete 1
# HELP keyhole_secrets Secrets analysed, by namespace.
# TYPE keyhole_secrets gauge
keyhole_secrets{namespace="a"} 1
keyhole_secrets{namespace="b"} 1
`
	perSecretWorld = `
# HELP keyhole_secret_env_injections Containers that take the Secret as environment variables.
# TYPE keyhole_secret_env_injections gauge
keyhole_secret_env_injections{namespace="a",secret="db"} 2
keyhole_secret_env_injections{namespace="b",secret="api"} 0
# HELP keyhole_secret_exposure_score The Secret's exposure score (docs/scoring.md).
# TYPE keyhole_secret_exposure_score gauge
keyhole_secret_exposure_score{namespace="a",secret="db"} 42
keyhole_secret_exposure_score{namespace="b",secret="api"} 0
# HELP keyhole_secret_managed The tool that writes the Secret, in the manager label: sealed-secrets, external-secrets, vault-secrets-operator, helm, or none; one series per Secret, value 1.
# TYPE keyhole_secret_managed gauge
keyhole_secret_managed{manager="external-secrets",namespace="b",secret="api"} 1
keyhole_secret_managed{manager="none",namespace="a",secret="db"} 1
# HELP keyhole_secret_readers Subjects that can obtain the Secret's value, by the kind of their shortest path: direct, or the first step of an indirect path (docs/paths.md). Expected readers (system:masters, control-plane identities, the allowlist) are not counted; a path kind with no other reader has no series.
# TYPE keyhole_secret_readers gauge
keyhole_secret_readers{namespace="a",path="direct",secret="db"} 1
keyhole_secret_readers{namespace="a",path="pod-create",secret="db"} 2
# HELP keyhole_secret_severity The Secret's exposure severity, in the severity label; one series per Secret, value 1.
# TYPE keyhole_secret_severity gauge
keyhole_secret_severity{namespace="a",secret="db",severity="high"} 1
keyhole_secret_severity{namespace="b",secret="api",severity="info"} 1
`
	readerInfoWorld = `
# HELP keyhole_secret_reader_info A subject that can obtain the Secret's value, and the kind of its shortest path; value 1. subject is namespace/name for a ServiceAccount, the name for a User or Group. Expected readers are left out, as in keyhole_secret_readers.
# TYPE keyhole_secret_reader_info gauge
keyhole_secret_reader_info{namespace="a",path="direct",secret="db",subject="alice",subject_kind="User"} 1
keyhole_secret_reader_info{namespace="a",path="pod-create",secret="db",subject="bob",subject_kind="User"} 1
keyhole_secret_reader_info{namespace="a",path="pod-create",secret="db",subject="ci/deployer",subject_kind="ServiceAccount"} 1
`
)

// TestFindingsFollowTheReport: the series are those of the report the
// holder points to at scrape time. When a Secret and a finding leave the
// report, their series leave the next scrape, with nothing to delete.
func TestFindingsFollowTheReport(t *testing.T) {
	h := newHolder(world())
	c := h.collector(Options{PerSecret: true})
	if err := testutil.CollectAndCompare(c, strings.NewReader(rollUpsWorld+perSecretWorld)); err != nil {
		t.Fatal(err)
	}

	// b/api is deleted, taking its findings with it; a/db's cluster-wide
	// grant is removed.
	next := world()
	next.Secrets = next.Secrets[:1]
	next.Findings = next.Findings[:2]
	h.report.Store(next)
	want := `
# HELP keyhole_findings ` + definition(nameFindings).Help + `
# TYPE keyhole_findings gauge
keyhole_findings{namespace="a",rule="KH102",severity="high"} 2
# HELP keyhole_findings_cluster ` + definition(nameFindingsCluster).Help + `
# TYPE keyhole_findings_cluster gauge
keyhole_findings_cluster{rule="KH102",severity="high"} 2
# HELP keyhole_indirect_analysis_complete ` + definition(nameIndirectComplete).Help + `
# TYPE keyhole_indirect_analysis_complete gauge
keyhole_indirect_analysis_complete 1
# HELP keyhole_secrets Secrets analysed, by namespace.
# TYPE keyhole_secrets gauge
keyhole_secrets{namespace="a"} 1
# HELP keyhole_secret_env_injections Containers that take the Secret as environment variables.
# TYPE keyhole_secret_env_injections gauge
keyhole_secret_env_injections{namespace="a",secret="db"} 2
# HELP keyhole_secret_exposure_score The Secret's exposure score (docs/scoring.md).
# TYPE keyhole_secret_exposure_score gauge
keyhole_secret_exposure_score{namespace="a",secret="db"} 42
# HELP keyhole_secret_managed ` + definition(nameSecretManaged).Help + `
# TYPE keyhole_secret_managed gauge
keyhole_secret_managed{manager="none",namespace="a",secret="db"} 1
# HELP keyhole_secret_readers ` + definition(nameSecretReaders).Help + `
# TYPE keyhole_secret_readers gauge
keyhole_secret_readers{namespace="a",path="direct",secret="db"} 1
keyhole_secret_readers{namespace="a",path="pod-create",secret="db"} 2
# HELP keyhole_secret_severity ` + definition(nameSecretSeverity).Help + `
# TYPE keyhole_secret_severity gauge
keyhole_secret_severity{namespace="a",secret="db",severity="high"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	// And back: the collector holds nothing of its own.
	h.report.Store(world())
	if err := testutil.CollectAndCompare(c, strings.NewReader(rollUpsWorld+perSecretWorld)); err != nil {
		t.Fatal(err)
	}
}

// TestFindingsNotExporting: a follower, or a leader without a report yet,
// emits no findings series at all.
func TestFindingsNotExporting(t *testing.T) {
	all := Options{PerSecret: true, ReaderInfo: true}
	h := newHolder(world())
	h.exporting.Store(false)
	if n := testutil.CollectAndCount(h.collector(all)); n != 0 {
		t.Errorf("not exporting: %d series, want none", n)
	}
	h = newHolder(nil)
	if n := testutil.CollectAndCount(h.collector(all)); n != 0 {
		t.Errorf("no report yet: %d series, want none", n)
	}
	// The same collector starts exporting when told to.
	h.report.Store(world())
	if n := testutil.CollectAndCount(h.collector(all)); n == 0 {
		t.Error("exporting with a report: no series")
	}
}

// TestFindingsOptions: PerSecret=false drops exactly the per-Secret
// families, and ReaderInfo adds reader info, independently of PerSecret.
func TestFindingsOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
		want string
	}{
		{"roll-ups only", Options{}, rollUpsWorld},
		{"per-Secret", Options{PerSecret: true}, rollUpsWorld + perSecretWorld},
		{"reader info without per-Secret", Options{ReaderInfo: true}, rollUpsWorld + readerInfoWorld},
		{"everything", Options{PerSecret: true, ReaderInfo: true}, rollUpsWorld + perSecretWorld + readerInfoWorld},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newHolder(world()).collector(tt.opts)
			if err := testutil.CollectAndCompare(c, strings.NewReader(tt.want)); err != nil {
				t.Error(err)
			}
			// Describe announces exactly the families Collect emits.
			described := map[string]bool{}
			for _, d := range describe(c) {
				described[descName(d)] = true
			}
			for _, d := range Catalog {
				// The git roll-up is described always but has series only
				// when a repository was scanned: TestGitPlaintextRollUp.
				// Cross-environment readers, only with environments:
				// TestCrossEnvironmentReaders. Encryption at rest, only
				// once /metrics was read: TestEtcdEncryption. Actual and
				// unused readers, only with an audit source:
				// TestAuditCounts.
				if d.Set == SelfMetrics || d.Name == nameGitPlaintext || d.Name == nameCrossEnvReaders || d.Name == nameEtcdEncryption ||
					d.Name == nameSecretActualReaders || d.Name == nameSecretUnusedReaders {
					continue
				}
				inWant := strings.Contains(tt.want, "# TYPE "+d.Name+" ")
				if described[d.Name] != inWant {
					t.Errorf("%s: described %v, collected %v", d.Name, described[d.Name], inWant)
				}
			}
		})
	}
}

// TestFindingsLint: promlint finds nothing to say about any findings
// metric.
func TestFindingsLint(t *testing.T) {
	c := newHolder(withGit(world())).collector(Options{PerSecret: true, ReaderInfo: true})
	if n := testutil.CollectAndCount(c); n == 0 {
		t.Fatal("nothing collected, so nothing linted")
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// allowedLabels are the only label names any keyhole metric may carry:
// bounded identifiers, never values, paths or free text.
var allowedLabels = map[string]bool{
	"namespace": true, "secret": true, "path": true, "severity": true, "manager": true, "rule": true,
	"subject_kind": true, "subject": true, "resource": true, "version": true, "goversion": true,
	"repo": true, "state": true, "provider": true, "from_environment": true, "code": true,
}

// TestFindingsCanary: no emitted label is outside the allowed names, and no
// label value holds the canary, though the report carries it in a finding
// message, a suppression reason, an exposure reason and a coverage note.
func TestFindingsCanary(t *testing.T) {
	c := newHolder(stopped(withPosture(withGit(world())))).collector(Options{PerSecret: true, ReaderInfo: true})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := checkLabels(t, families)
	if series == 0 {
		t.Fatal("nothing gathered, so nothing checked")
	}
}

// checkLabels fails the test for a label name outside allowedLabels or a
// label value holding the canary, and returns the number of series seen.
func checkLabels(t *testing.T, families []*dto.MetricFamily) int {
	t.Helper()
	n := 0
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			n++
			for _, lp := range m.GetLabel() {
				if !allowedLabels[lp.GetName()] {
					t.Errorf("%s has label %q, which is not an allowed label name", mf.GetName(), lp.GetName())
				}
				if strings.Contains(lp.GetValue(), "CANARY") {
					t.Errorf("%s{%s} carries the canary", mf.GetName(), lp.GetName())
				}
			}
		}
	}
	return n
}

// TestFindingsInvalidUTF8: a name that is not UTF-8 is exported with the
// bad bytes replaced, rather than panicking in the collector or failing
// the scrape.
func TestFindingsInvalidUTF8(t *testing.T) {
	r := world()
	r.Secrets[0].Name = "db\xff"
	r.Findings[0].Rule = "KH\xfe"
	c := newHolder(r).collector(Options{PerSecret: true, ReaderInfo: true})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	found := false
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "secret" && lp.GetValue() == "db\uFFFD" {
					found = true
				}
			}
		}
	}
	if !found {
		t.Error(`no series for Secret "db\uFFFD"`)
	}
}

// describe returns what a collector's Describe sends.
func describe(c prometheus.Collector) []*prometheus.Desc {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var out []*prometheus.Desc
	for d := range ch {
		out = append(out, d)
	}
	return out
}

// TestFindingsEmitSorted: the per-Secret families and reader info come out
// in the order the registry sorts them into, which spares it most of the
// sorting (see perSecret).
func TestFindingsEmitSorted(t *testing.T) {
	c := newHolder(largeReport(400)).collector(Options{PerSecret: true, ReaderInfo: true})
	unordered := map[*prometheus.Desc]bool{c.findings: true, c.findingsCluster: true, c.secrets: true, c.indirectComplete: true}
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	last := map[*prometheus.Desc][]string{}
	failed := map[*prometheus.Desc]bool{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		// Label pairs come sorted by name, as the registry compares them.
		var values []string
		for _, lp := range pb.GetLabel() {
			values = append(values, lp.GetValue())
		}
		d := m.Desc()
		if prev, ok := last[d]; ok && !unordered[d] && !failed[d] && slices.Compare(prev, values) >= 0 {
			t.Errorf("%s: %q comes after %q", descName(d), values, prev)
			failed[d] = true
		}
		last[d] = values
	}
	if len(last) != len(unordered)+6 {
		t.Errorf("%d families collected, want every findings family", len(last))
	}
}
