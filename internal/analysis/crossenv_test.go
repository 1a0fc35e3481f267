package analysis

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/environment"
	"github.com/keyhole-sec/keyhole/internal/exposure"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/manifests"
)

// crossEnvWorld: prod Secrets read by a staging ServiceAccount, a dev
// user (through a pod in dev) and a prod one; a staging Secret read by the
// dev ServiceAccounts' group; a Secret exempted from KH610; a namespace
// two environments select, holding a Secret and a ServiceAccount that
// reads prod.
const crossEnvWorld = `
apiVersion: v1
kind: Namespace
metadata: {name: dev, labels: {env: dev, pod-security.kubernetes.io/enforce: restricted}}
---
apiVersion: v1
kind: Namespace
metadata: {name: stage, labels: {env: staging, pod-security.kubernetes.io/enforce: restricted}}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod, pod-security.kubernetes.io/enforce: restricted}}
---
apiVersion: v1
kind: Namespace
metadata: {name: both, labels: {env: prod, legacy: dev, pod-security.kubernetes.io/enforce: restricted}}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: prod}
stringData: {password: KEYHOLE-CANARY-crossenv-db}
---
apiVersion: v1
kind: Secret
metadata: {name: api, namespace: prod}
stringData: {key: KEYHOLE-CANARY-crossenv-api}
---
apiVersion: v1
kind: Secret
metadata:
  name: exempt
  namespace: prod
  annotations: {keyhole.io/ignore: KH610, keyhole.io/ignore-reason: "staging smoke tests use it, until TICKET-1"}
stringData: {key: KEYHOLE-CANARY-crossenv-exempt}
---
apiVersion: v1
kind: Secret
metadata: {name: fixtures, namespace: stage}
stringData: {key: KEYHOLE-CANARY-crossenv-fixtures}
---
apiVersion: v1
kind: Secret
metadata: {name: mixed, namespace: both}
stringData: {key: KEYHOLE-CANARY-crossenv-mixed}
---
apiVersion: v1
kind: Secret
metadata: {name: orphan, namespace: nowhere}
stringData: {key: KEYHOLE-CANARY-crossenv-orphan}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: secret-reader}
rules: [{apiGroups: [""], resources: ["secrets"], verbs: ["get"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pod-creator}
rules: [{apiGroups: [""], resources: ["pods"], verbs: ["create"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: readers, namespace: prod}
subjects:
  - {kind: ServiceAccount, name: app, namespace: stage}
  - {kind: ServiceAccount, name: app, namespace: dev}
  - {kind: ServiceAccount, name: app, namespace: prod}
  - {kind: ServiceAccount, name: app, namespace: both}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: secret-reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dev-pods, namespace: dev}
subjects:
  - {kind: User, name: dana, apiGroup: rbac.authorization.k8s.io}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-creator}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: fixtures-readers, namespace: stage}
subjects:
  - {kind: Group, name: "system:serviceaccounts:dev", apiGroup: rbac.authorization.k8s.io}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: secret-reader}
`

func crossEnvEnvironments(t testing.TB) []environment.Environment {
	t.Helper()
	var out []environment.Environment
	for _, e := range [][2]string{{"dev", "env=dev"}, {"staging", "env=staging"}, {"prod", "env=prod"}, {"legacy", "legacy=dev"}} {
		env, err := environment.Parse(e[0], e[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

func loadYAML(t testing.TB, text string) []any {
	t.Helper()
	b := inventory.NewBuilder()
	_, problems := manifests.Load([]string{"-"}, b, manifests.Options{Stdin: strings.NewReader(text)})
	if len(problems) > 0 {
		t.Fatalf("loading the world: %+v", problems)
	}
	inv := b.Build()
	var out []any
	for _, o := range inv.Namespaces {
		out = append(out, o)
	}
	for _, o := range inv.Secrets {
		out = append(out, o)
	}
	for _, o := range inv.ClusterRoles {
		out = append(out, o)
	}
	for _, o := range inv.RoleBindings {
		out = append(out, o)
	}
	if len(out) != inv.Counts()["Namespace"]+inv.Counts()["Secret"]+inv.Counts()["ClusterRole"]+inv.Counts()["RoleBinding"] {
		t.Fatalf("the world has kinds loadYAML does not carry: %v", inv.Counts())
	}
	return out
}

func crossEnvRun(t testing.TB, objs []any, envs []environment.Environment) *report.Report {
	t.Helper()
	expected := map[rbac.Subject]bool{}
	return Run(Input{Inventory: build(t, objs), Aggregation: rbac.AggregationComputed},
		Options{Exposure: exposure.Options{Expected: expected}, Environments: envs})
}

func secretOf(t *testing.T, r *report.Report, ns, name string) report.Secret {
	t.Helper()
	for _, s := range r.Secrets {
		if s.Namespace == ns && s.Name == name {
			return s
		}
	}
	t.Fatalf("no Secret %s/%s in the report", ns, name)
	return report.Secret{}
}

func crossReads(s report.Secret) []string {
	var out []string
	for _, c := range s.CrossEnv {
		out = append(out, fmt.Sprintf("%s %s/%s/%s %s %s %s", c.FromEnvironment, c.Subject.Kind, c.Subject.Namespace, c.Subject.Name, c.Path, c.Basis, strings.Join(c.Namespaces, ",")))
	}
	return out
}

func TestCrossEnvironment(t *testing.T) {
	objs := loadYAML(t, crossEnvWorld)
	r := crossEnvRun(t, objs, crossEnvEnvironments(t))

	db := secretOf(t, r, "prod", "db")
	if db.Environment != "prod" {
		t.Errorf("prod/db environment %q, want prod", db.Environment)
	}
	wantDB := []string{
		"staging ServiceAccount/stage/app direct namespace stage",
		"dev ServiceAccount/dev/app direct namespace dev",
		"dev User//dana run-as-sa bindings dev",
	}
	if got := crossReads(db); !sameSet(got, wantDB) {
		t.Errorf("prod/db cross-environment reads:\n got %q\nwant %q", got, wantDB)
	}
	// dana's pods in dev run as dev ServiceAccounts, whose group reads
	// stage/fixtures.
	wantFixtures := []string{"dev Group//system:serviceaccounts:dev direct namespace dev", "dev User//dana run-as-sa bindings dev"}
	if got := crossReads(secretOf(t, r, "stage", "fixtures")); !slices.Equal(got, wantFixtures) {
		t.Errorf("stage/fixtures cross-environment reads:\n got %q\nwant %q", got, wantFixtures)
	}
	// The namespace both environments select is in neither: its Secret
	// has no environment, and its ServiceAccount's read of prod is not
	// counted. A namespace without a Namespace object has none either.
	for _, s := range []report.Secret{secretOf(t, r, "both", "mixed"), secretOf(t, r, "nowhere", "orphan")} {
		if s.Environment != "" || len(s.CrossEnv) != 0 {
			t.Errorf("%s/%s: environment %q, cross reads %q; want none", s.Namespace, s.Name, s.Environment, crossReads(s))
		}
	}

	// One finding per Secret and lower environment, high, naming its
	// readers; the exempted Secret's is suppressed.
	var got []string
	for _, f := range r.Findings {
		if f.Rule != finding.CrossEnvironmentRead {
			continue
		}
		line := f.Object.String() + " " + f.Severity
		if f.Suppressed != nil {
			line += " suppressed by " + f.Suppressed.By
		}
		got = append(got, line)
		if f.Object.Name == "db" && strings.Contains(f.Message, "lower environment dev") {
			for _, want := range []string{"Secret/prod/db (environment prod)", "2 readers", "ServiceAccount/dev/app (direct; namespace dev)", "User/dana (run-as-sa; bound only in dev)"} {
				if !strings.Contains(f.Message, want) {
					t.Errorf("message %q lacks %q", f.Message, want)
				}
			}
		}
	}
	want := []string{
		"Secret/prod/api high", "Secret/prod/api high",
		"Secret/prod/db high", "Secret/prod/db high",
		"Secret/prod/exempt high suppressed by annotation", "Secret/prod/exempt high suppressed by annotation",
		"Secret/stage/fixtures high",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("KH610 findings:\n got %q\nwant %q", got, want)
	}
	// The two findings of prod/db (from dev, from staging) are told apart.
	fps := map[string]bool{}
	for _, f := range r.Findings {
		if f.Rule == finding.CrossEnvironmentRead {
			fps[f.Fingerprint] = true
		}
	}
	if len(fps) != len(want) {
		t.Errorf("%d distinct fingerprints for %d findings", len(fps), len(want))
	}

	// The conflict is an error naming the namespace and both environments.
	var conflict []string
	for _, e := range r.Errors {
		if e.Source == "config" {
			conflict = append(conflict, e.Message)
		}
	}
	if len(conflict) != 1 || !strings.Contains(conflict[0], "namespace both") || !strings.Contains(conflict[0], "prod (env=prod)") || !strings.Contains(conflict[0], "legacy (legacy=dev)") {
		t.Errorf("conflict errors %q", conflict)
	}
	notes := strings.Join(r.Coverage.NotAnalysed, "\n")
	if !strings.Contains(notes, "1 namespace(s) holding Secrets have no Namespace object in the input, so no labels and no environment: nowhere") {
		t.Errorf("no note on the namespace without an object:\n%s", notes)
	}
	if !strings.Contains(notes, "environment legacy (legacy=dev) selects no namespace") {
		t.Errorf("no note on legacy, whose only namespace is in conflict:\n%s", notes)
	}

	out := render(t, r)
	if strings.Contains(out, "KEYHOLE-CANARY") {
		t.Error("a value reached the report")
	}
}

// TestCrossEnvironmentOff: without environments nothing changes: no
// environment, no reads, no KH610, no note.
func TestCrossEnvironmentOff(t *testing.T) {
	r := crossEnvRun(t, loadYAML(t, crossEnvWorld), nil)
	for _, s := range r.Secrets {
		if s.Environment != "" || s.CrossEnv != nil {
			t.Errorf("%s/%s: environment %q, cross reads %q", s.Namespace, s.Name, s.Environment, crossReads(s))
		}
	}
	for _, f := range r.Findings {
		if f.Rule == finding.CrossEnvironmentRead {
			t.Errorf("KH610 without environments: %s", f.Message)
		}
	}
	if len(r.Errors) != 0 {
		t.Errorf("errors: %+v", r.Errors)
	}
}

// TestCrossEnvironmentDeterministic: the same world in any order gives
// the same report.
func TestCrossEnvironmentDeterministic(t *testing.T) {
	objs := loadYAML(t, crossEnvWorld)
	envs := crossEnvEnvironments(t)
	want := render(t, crossEnvRun(t, objs, envs))
	for seed := range uint64(5) {
		shuffled := slices.Clone(objs)
		rand.New(rand.NewPCG(seed, seed)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := render(t, crossEnvRun(t, shuffled, envs)); got != want {
			t.Fatalf("seed %d: the report depends on the input order", seed)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
