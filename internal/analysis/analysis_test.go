package analysis

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyhole-sec/keyhole/internal/exposure"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
)

func meta(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

var readAll = []rbacv1.PolicyRule{{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"secrets"}}}

func world() []any {
	return []any{
		&corev1.Secret{ObjectMeta: meta("a", "db"), StringData: map[string]string{"password": "KEYHOLE-CANARY-analysis"}},
		&corev1.Secret{ObjectMeta: meta("a", "tls")},
		&corev1.Secret{ObjectMeta: meta("b", "api")},
		&rbacv1.ClusterRole{ObjectMeta: meta("", "reader"), Rules: readAll},
		&rbacv1.Role{ObjectMeta: meta("a", "named"), Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"db"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: meta("", "ci"), RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "reader"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "ci", Name: "deployer"}, {Kind: "ServiceAccount", Name: "no-namespace"}}},
		&rbacv1.RoleBinding{ObjectMeta: meta("a", "app"), RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "named"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "app"}}},
		&rbacv1.RoleBinding{ObjectMeta: meta("b", "gone"), RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "deleted"},
			Subjects: []rbacv1.Subject{{Kind: "User", Name: "bob"}}},
	}
}

func build(t testing.TB, objs []any) *inventory.Inventory {
	t.Helper()
	b := inventory.NewBuilder()
	for _, o := range objs {
		if _, _, err := b.Add(o, inventory.Location{}); err != nil {
			t.Fatal(err)
		}
	}
	return b.Build()
}

func render(t testing.TB, r *report.Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := report.WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestDeterministic: the same world read in any order gives the same
// report, byte for byte.
func TestDeterministic(t *testing.T) {
	want := render(t, Run(Input{Inventory: build(t, world())}, Options{}))
	for seed := uint64(0); seed < 20; seed++ {
		objs := world()
		rand.New(rand.NewPCG(seed, seed)).Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
		if got := render(t, Run(Input{Inventory: build(t, objs)}, Options{})); got != want {
			t.Fatalf("seed %d: the report depends on input order", seed)
		}
	}
	if strings.Contains(want, "KEYHOLE-CANARY") {
		t.Fatal("the report contains a Secret value")
	}
}

func findings(r *report.Report) map[string]report.Finding {
	out := map[string]report.Finding{}
	for _, f := range r.Findings {
		out[f.Rule+" "+f.Object.String()] = f
	}
	return out
}

func TestFindings(t *testing.T) {
	r := Run(Input{Inventory: build(t, world())}, Options{})
	got := findings(r)
	for _, want := range []string{
		"KH102 Secret/a/db", "KH102 Secret/a/tls", "KH102 Secret/b/api",
		"KH110 ClusterRoleBinding/ci",
		"KH120 RoleBinding/b/gone",
		"KH121 ClusterRoleBinding/ci",
		// a/db holds a database password: Vault's database engine.
		"KH501 Secret/a/db",
	} {
		if _, ok := got[want]; !ok {
			t.Errorf("missing finding %s; have %v", want, keys(got))
		}
	}
	if len(got) != 7 {
		t.Errorf("findings %v, want exactly 7", keys(got))
	}
	if !strings.Contains(got["KH110 ClusterRoleBinding/ci"].Message, "ServiceAccount/ci/deployer") {
		t.Errorf("KH110 message %q does not name the subject", got["KH110 ClusterRoleBinding/ci"].Message)
	}
	if r.Summary.FindingsBySeverity["high"] != 4 || r.Summary.FindingsBySeverity["low"] != 2 {
		t.Errorf("summary %+v", r.Summary.FindingsBySeverity)
	}
	// The app's name-restricted grant reaches db only.
	for _, s := range r.Secrets {
		app := false
		for rd := range s.Readers.All() {
			if rd.Subject.String() == "ServiceAccount/a/app" {
				app = true
				if strings.Join(rd.Verbs, ",") != "get" || rd.Path != "direct" || len(rd.Steps) != 0 {
					t.Errorf("app reader on %s: %+v", s.Name, rd)
				}
			}
		}
		if app != (s.Namespace == "a" && s.Name == "db") {
			t.Errorf("app reads %s/%s: %v", s.Namespace, s.Name, app)
		}
	}
}

func TestExpectedReadersDoNotRaiseSeverity(t *testing.T) {
	deployer := rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "ci", Name: "deployer"}
	r := Run(Input{Inventory: build(t, world())}, Options{})
	r2 := Run(Input{Inventory: build(t, world())}, Options{Exposure: exposureWith(deployer)})
	if len(findings(r2)) >= len(findings(r)) {
		t.Errorf("allowlisting the deployer did not remove findings: %v", keys(findings(r2)))
	}
	for _, s := range r2.Secrets {
		if s.Exposure.Severity == "high" {
			t.Errorf("%s/%s still high with its cluster-wide reader expected", s.Namespace, s.Name)
		}
	}
}

func TestIgnoreAnnotation(t *testing.T) {
	objs := world()
	objs[0].(*corev1.Secret).Annotations = map[string]string{
		IgnoreAnnotation:       "KH102, KH999",
		IgnoreReasonAnnotation: "CI must read it",
	}
	r := Run(Input{Inventory: build(t, objs)}, Options{})
	f := findings(r)["KH102 Secret/a/db"]
	if f.Suppressed == nil || f.Suppressed.By != "annotation" || f.Suppressed.Reason != "CI must read it" {
		t.Fatalf("finding not suppressed by annotation: %+v", f)
	}
	if r.Summary.Suppressed != 1 || r.Summary.FindingsBySeverity["high"] != 3 {
		t.Errorf("summary does not count the suppression apart: %+v", r.Summary)
	}
	if !strings.Contains(strings.Join(r.Coverage.NotAnalysed, "\n"), `unknown rule "KH999"`) {
		t.Errorf("no warning for the unknown rule id: %v", r.Coverage.NotAnalysed)
	}
	if findings(r)["KH102 Secret/a/tls"].Suppressed != nil {
		t.Error("the annotation on one Secret suppressed another's finding")
	}
}

func TestAggregationDriftIsReportedLiveOnly(t *testing.T) {
	sel := rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"x": "true"}}}}
	objs := []any{
		&rbacv1.ClusterRole{ObjectMeta: meta("", "agg"), AggregationRule: &sel, Rules: readAll}, // stored rules nobody declares
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "member", Labels: map[string]string{"x": "true"}}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
		&rbacv1.ClusterRole{ObjectMeta: meta("", "in-sync"), AggregationRule: &sel, Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
	}
	live := findings(Run(Input{Inventory: build(t, objs), Aggregation: rbac.AggregationStored}, Options{}))
	if _, ok := live["KH122 ClusterRole/agg"]; !ok || len(live) != 1 {
		t.Errorf("live findings %v, want KH122 on agg only", keys(live))
	}
	offline := findings(Run(Input{Inventory: build(t, objs), Aggregation: rbac.AggregationComputed}, Options{}))
	if len(offline) != 0 {
		t.Errorf("offline findings %v, want none", keys(offline))
	}
}

func TestRuleSeveritiesComeFromTheCatalog(t *testing.T) {
	r := Run(Input{Inventory: build(t, world())}, Options{})
	for _, f := range r.Findings {
		rl, ok := finding.Lookup(f.Rule)
		if !ok || f.Title != rl.Title {
			t.Errorf("finding %s has title %q", f.Rule, f.Title)
		}
	}
}

func keys(m map[string]report.Finding) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func exposureWith(s rbac.Subject) exposure.Options {
	return exposure.Options{Expected: map[rbac.Subject]bool{s: true}}
}

// TestIndirectBudget: when the search for indirect paths passes its
// budget, the report says so, in a note for people and in
// coverage.indirectStopped for the metrics, and holds the direct readers
// only. A search that finishes sets neither.
func TestIndirectBudget(t *testing.T) {
	objs := append(world(),
		&rbacv1.Role{ObjectMeta: meta("a", "pods"), Rules: []rbacv1.PolicyRule{{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
		&rbacv1.RoleBinding{ObjectMeta: meta("a", "dev-pods"), RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "pods"},
			Subjects: []rbacv1.Subject{{Kind: "User", Name: "dev"}}})
	indirect := func(r *report.Report) int {
		n := 0
		for _, s := range r.Secrets {
			n += s.Exposure.Indirect
		}
		return n
	}
	r := Run(Input{Inventory: build(t, objs)}, Options{})
	if indirect(r) == 0 {
		t.Fatal("the world has no indirect reader: the test checks nothing")
	}
	warned := func(r *report.Report) bool {
		for _, note := range r.Coverage.NotAnalysed {
			if strings.Contains(note, "indirect exposure not analysed") {
				return true
			}
		}
		return false
	}
	if r.Coverage.IndirectStopped || warned(r) {
		t.Errorf("a search within its budget: indirectStopped %v, notes %v; want neither", r.Coverage.IndirectStopped, r.Coverage.NotAnalysed)
	}
	if b := coverageJSON(t, r); strings.Contains(b, "indirectStopped") {
		t.Errorf("a search within its budget: coverage %s names indirectStopped", b)
	}
	r = Run(Input{Inventory: build(t, objs)}, Options{Paths: paths.Options{MaxHits: 1}})
	if n := indirect(r); n != 0 {
		t.Errorf("past the budget the report still lists %d indirect readers", n)
	}
	if !warned(r) {
		t.Errorf("the report does not say the indirect analysis stopped: %v", r.Coverage.NotAnalysed)
	}
	if !r.Coverage.IndirectStopped {
		t.Error("past the budget coverage.indirectStopped is false")
	}
	if b := coverageJSON(t, r); !strings.Contains(b, `"indirectStopped":true`) {
		t.Errorf("past the budget: coverage %s lacks \"indirectStopped\":true", b)
	}
}

// coverageJSON is the report's coverage as the json format writes it.
func coverageJSON(t *testing.T, r *report.Report) string {
	t.Helper()
	b, err := json.Marshal(r.Coverage)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
