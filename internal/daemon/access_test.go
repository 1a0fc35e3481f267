package daemon

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/environment"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
)

// TestAccessLog: the kept access stage is handed to the next analysis
// only when nothing it reads changed since the last one started, the
// last one succeeded and it is not the first; the first change drops it
// at once; a change during an analysis keeps that analysis's stage from
// being kept.
func TestAccessLog(t *testing.T) {
	acc := &analysis.Access{}
	l := newAccessLog(false)
	if got, why := l.take(); got != nil || why != "first analysis" {
		t.Fatalf("first take: %v %q", got, why)
	}
	l.keep(acc)
	if got, why := l.take(); got != acc || why != "" {
		t.Fatalf("after a quiet analysis: %v %q, want the kept stage", got, why)
	}

	l.keep(acc)
	l.record("rolebindings added")
	l.record("pods updated")
	if l.access != nil {
		t.Error("a change did not drop the kept stage at once")
	}
	if got, why := l.take(); got != nil || why != "rolebindings added" {
		t.Fatalf("after changes: %v %q, want none and the first change", got, why)
	}

	// A change while the analysis runs: its stage is not kept.
	l.record("secrets deleted")
	l.keep(acc)
	if got, why := l.take(); got != nil || why != "secrets deleted" {
		t.Fatalf("after a change during the analysis: %v %q", got, why)
	}

	l.keep(acc)
	l.take()
	l.failed()
	if got, why := l.take(); got != nil || why != "previous analysis failed" {
		t.Fatalf("after a failure: %v %q", got, why)
	}

	// --analysis.keep-access=false: nothing is ever kept.
	l = newAccessLog(true)
	l.take()
	l.keep(acc)
	if got, why := l.take(); got != nil || why != "" {
		t.Fatalf("with DropAccess: %v %q, want nothing kept", got, why)
	}
}

// TestAccessReads: which changes of the cluster the access stage reads.
func TestAccessReads(t *testing.T) {
	for _, tc := range []struct {
		c    cluster.Change
		want bool
	}{
		{cluster.Change{Resource: "configmaps", Kind: "ConfigMap", Op: cluster.Added}, false},
		{cluster.Change{Resource: "configmaps", Kind: "ConfigMap", Op: cluster.Deleted}, false},
		{cluster.Change{Resource: "ingresses", Kind: "Ingress", Op: cluster.Updated}, false},
		{cluster.Change{Resource: "secrets", Kind: "Secret", Op: cluster.Updated}, false},
		{cluster.Change{Resource: "secrets", Kind: "Secret", Op: cluster.Updated, TokenChanged: true}, true},
		{cluster.Change{Resource: "secrets", Kind: "Secret", Op: cluster.Added}, true},
		{cluster.Change{Resource: "secrets", Kind: "Secret", Op: cluster.Deleted}, true},
		{cluster.Change{Resource: "rolebindings", Kind: "RoleBinding", Op: cluster.Added}, true},
		{cluster.Change{Resource: "clusterroles", Kind: "ClusterRole", Op: cluster.Updated}, true},
		{cluster.Change{Resource: "namespaces", Kind: "Namespace", Op: cluster.Updated}, true},
		{cluster.Change{Resource: "pods", Kind: "Pod", Op: cluster.Updated}, true},
		{cluster.Change{Resource: "deployments", Kind: "Deployment", Op: cluster.Updated}, true},
		{cluster.Change{Resource: "serviceaccounts", Kind: "ServiceAccount", Op: cluster.Updated}, true},
		{cluster.Change{Resource: "nodes", Kind: "Node", Op: cluster.Added}, true},
		{cluster.Change{Resource: "persistentvolumes", Kind: "PersistentVolume", Op: cluster.Updated}, true},
		{cluster.Change{Resource: "widgets", Kind: "Widget", Op: cluster.Updated}, true},
	} {
		if got := accessReads(tc.c); got != tc.want {
			t.Errorf("%s %s (token changed %v): %v, want %v", tc.c.Resource, tc.c.Op, tc.c.TokenChanged, got, tc.want)
		}
	}
}

// TestAnalysisOptionsAreAudits: the daemon, which runs the analysis in
// two stages, analyses as audit.Analyze does, with every audit option
// set, each to a value that shows in the report of the test's world (so
// that an option audit.AnalysisOptions dropped would show too); MaxPaths,
// which hides the others when it shows, in a run of its own.
func TestAnalysisOptionsAreAudits(t *testing.T) {
	size := synthetic.Scale(200)
	size.Pods, size.Nodes, size.Indirect = 60, 2, true
	b := inventory.NewBuilder()
	for _, o := range synthetic.Generate(2, size) {
		if _, _, err := b.Add(o, inventory.Location{Layer: "cluster"}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	written := metav1.NewTime(now.Add(-100 * 24 * time.Hour))
	old := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "old", CreationTimestamp: written,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m", Operation: metav1.ManagedFieldsOperationUpdate, Time: &written,
			FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:data":{"f:password":{}}}`)}}}}
	// A reader to expect, and a pod creator in a namespace without a Pod
	// Security label, which only the cluster default makes privileged.
	bind := func(name, verb, resource string) []any {
		return []any{
			&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{resource}, Verbs: []string{verb}}}},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}},
		}
	}
	for _, o := range append(append([]any{old}, bind("expected-reader", "get", "secrets")...), bind("pod-maker", "create", "pods")...) {
		if _, _, err := b.Add(o, inventory.Location{Layer: "cluster"}); err != nil {
			t.Fatal(err)
		}
	}
	in := audit.LiveInput(b, source.Coverage{Kind: "cluster", Target: "https://test"}, nil)
	high := finding.High
	sel, err := labels.Parse(synthetic.LabelPodSecurityEnforce + "=privileged")
	must(t, err)
	prod, err := labels.Parse(synthetic.LabelPodSecurityEnforce + "=restricted")
	must(t, err)
	opts := audit.Options{
		ToolVersion:        "test",
		Expected:           []rbac.Subject{{Kind: rbac.KindUser, Name: "expected-reader"}},
		ManyPrincipals:     2,
		Rules:              map[string]finding.Override{finding.MigrationSuggested: {Severity: &high}},
		Suppress:           func(f report.Finding) *report.Suppressed { return &report.Suppressed{By: "baseline", Reason: f.Rule} },
		Now:                now,
		StaleAfter:         200 * 24 * time.Hour,
		MaxDepth:           2,
		PodSecurityDefault: "restricted",
		Environments:       []environment.Environment{{Name: "dev", Selector: sel}, {Name: "prod", Selector: prod}},
	}
	analyzeJSON := func(o audit.Options) string {
		rep, err := audit.Analyze(in, o)
		must(t, err)
		return reportText(t, rep)
	}
	want := analyzeJSON(opts)
	v := reflect.ValueOf(opts)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if name == "MaxPaths" {
			// A budget shows only by stopping the search, which hides
			// what MaxDepth and PodSecurityDefault change: checked on
			// its own below.
			continue
		}
		if v.Field(i).IsZero() {
			t.Errorf("audit.Options.%s is not set here: set it to a value that shows in the report", name)
			continue
		}
		without := opts
		reflect.ValueOf(&without).Elem().Field(i).SetZero()
		if analyzeJSON(without) == want {
			t.Errorf("audit.Options.%s = %v does not show in the report of the test's world", name, v.Field(i))
		}
	}
	budget := opts
	budget.MaxPaths = 1
	if analyzeJSON(budget) == want {
		t.Errorf("audit.Options.MaxPaths = %d does not show in the report of the test's world", budget.MaxPaths)
	}
	for _, o := range []audit.Options{opts, budget} {
		aopts, err := audit.AnalysisOptions(o)
		must(t, err)
		if got, want := reportText(t, analysis.RunWith(in, aopts, analysis.NewAccess(in, aopts))), analyzeJSON(o); got != want {
			t.Errorf("with MaxPaths %d, the daemon's analysis differs from audit.Analyze's", o.MaxPaths)
		}
	}
}

func reportText(t testing.TB, r *report.Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := report.WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
