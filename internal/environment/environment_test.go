package environment

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/source/manifests"
)

// load builds an inventory from YAML documents.
func load(t *testing.T, docs ...string) *inventory.Inventory {
	t.Helper()
	b := inventory.NewBuilder()
	_, problems := manifests.Load([]string{"-"}, b, manifests.Options{Stdin: strings.NewReader(strings.Join(docs, "\n---\n"))})
	if len(problems) > 0 {
		t.Fatalf("loading the world: %+v", problems)
	}
	return b.Build()
}

func mustParse(t *testing.T, name, selector string) Environment {
	t.Helper()
	e, err := Parse(name, selector)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// threeEnvs is dev < staging < prod.
func threeEnvs(t *testing.T) []Environment {
	return []Environment{
		mustParse(t, "dev", "environment=dev"),
		mustParse(t, "staging", "environment in (staging, stage)"),
		mustParse(t, "prod", "environment in (prod, production)"),
	}
}

func namespace(name, env string) string {
	labels := "pod-security.kubernetes.io/enforce: restricted"
	if env != "" {
		labels += ", environment: " + env
	}
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {%s}}", name, labels)
}

func roleBinding(ns, name, roleKind, role string, subjects ...string) string {
	return fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: %s, namespace: %s}\nsubjects: [%s]\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: %s, name: %s}",
		name, ns, strings.Join(subjects, ", "), roleKind, role)
}

func clusterRoleBinding(name, role string, subjects ...string) string {
	return fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: %s}\nsubjects: [%s]\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %s}",
		name, strings.Join(subjects, ", "), role)
}

func user(name string) string {
	return "{kind: User, name: " + name + ", apiGroup: rbac.authorization.k8s.io}"
}
func group(name string) string {
	return "{kind: Group, name: \"" + name + "\", apiGroup: rbac.authorization.k8s.io}"
}
func sa(ns, name string) string {
	return "{kind: ServiceAccount, namespace: " + ns + ", name: " + name + "}"
}

func role(ns, name, rules string) string {
	return fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: %s, namespace: %s}\nrules: %s", name, ns, rules)
}

func clusterRole(name, rules string) string {
	return fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: %s}\nrules: %s", name, rules)
}

func secret(ns, name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: %s}\nstringData: {k: KEYHOLE-CANARY-env}", name, ns)
}

const (
	readSecrets = `[{apiGroups: [""], resources: ["secrets"], verbs: ["get"]}]`
	createPods  = `[{apiGroups: [""], resources: ["pods"], verbs: ["create"]}]`
	nothing     = `[{apiGroups: [""], resources: ["configmaps"], verbs: ["get"]}]`
)

// describe is a membership as "ENV BASIS NS,NS" or "none".
func describe(m *Map, mem Membership) string {
	if mem.Env == None {
		if mem.Basis != "" || len(mem.Namespaces) > 0 {
			return fmt.Sprintf("none with %s %v", mem.Basis, mem.Namespaces)
		}
		return "none"
	}
	return fmt.Sprintf("%s %s %s", m.Name(mem.Env), mem.Basis, strings.Join(mem.Namespaces, ","))
}

// TestSubject: each identity kind, and each way a User or Group fails to
// be clearly of one environment.
func TestSubject(t *testing.T) {
	inv := load(t,
		namespace("dev-a", "dev"), namespace("dev-b", "dev"), namespace("stage", "stage"), namespace("prod", "production"),
		namespace("tools", ""),
		clusterRole("reader", readSecrets), clusterRole("nothing", nothing),
		roleBinding("dev-a", "a", "ClusterRole", "nothing", user("only-dev"), group("dev-team"), user("dev-and-cluster"), user("dev-and-prod"), user("dev-and-tools")),
		roleBinding("dev-b", "b", "ClusterRole", "nothing", user("only-dev"), group("dev-team")),
		roleBinding("prod", "p", "ClusterRole", "reader", user("dev-and-prod")),
		roleBinding("tools", "t", "ClusterRole", "reader", user("dev-and-tools")),
		clusterRoleBinding("c", "nothing", user("dev-and-cluster")),
		roleBinding("stage", "s", "ClusterRole", "nothing", group("qa")),
		// A binding to a role that does not exist still says where its
		// subject is administered.
		roleBinding("dev-a", "dangling", "Role", "deleted", user("dangling-dev")),
		clusterRoleBinding("dangling-cluster", "deleted", user("dev-and-dangling-cluster")),
		roleBinding("dev-a", "d", "ClusterRole", "nothing", user("dev-and-dangling-cluster")),
		// system:authenticated bound in dev only is still everyone.
		roleBinding("dev-a", "everyone", "ClusterRole", "nothing", group("system:authenticated"), group("system:serviceaccounts")),
	)
	p := rbac.NewPolicy(inv, rbac.AggregationComputed)
	m := New(threeEnvs(t), inv.Namespaces, p)
	for _, tc := range []struct {
		subject rbac.Subject
		want    string
	}{
		{rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "dev-a", Name: "app"}, "dev namespace dev-a"},
		{rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "stage", Name: "app"}, "staging namespace stage"},
		{rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "tools", Name: "app"}, "none"},
		{rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "unknown", Name: "app"}, "none"},
		{rbac.Subject{Kind: rbac.KindGroup, Name: "system:serviceaccounts:prod"}, "prod namespace prod"},
		{rbac.Subject{Kind: rbac.KindGroup, Name: "system:serviceaccounts:tools"}, "none"},
		{rbac.Subject{Kind: rbac.KindGroup, Name: "system:serviceaccounts"}, "none"},
		{rbac.Subject{Kind: rbac.KindGroup, Name: "system:authenticated"}, "none"},
		{rbac.Subject{Kind: rbac.KindUser, Name: "system:anonymous"}, "none"},
		{rbac.Subject{Kind: rbac.KindUser, Name: "only-dev"}, "dev bindings dev-a,dev-b"},
		{rbac.Subject{Kind: rbac.KindGroup, Name: "dev-team"}, "dev bindings dev-a,dev-b"},
		{rbac.Subject{Kind: rbac.KindGroup, Name: "qa"}, "staging bindings stage"},
		{rbac.Subject{Kind: rbac.KindUser, Name: "dangling-dev"}, "dev bindings dev-a"},
		{rbac.Subject{Kind: rbac.KindUser, Name: "dev-and-cluster"}, "none"},
		{rbac.Subject{Kind: rbac.KindUser, Name: "dev-and-prod"}, "none"},
		{rbac.Subject{Kind: rbac.KindUser, Name: "dev-and-tools"}, "none"},
		{rbac.Subject{Kind: rbac.KindUser, Name: "dev-and-dangling-cluster"}, "none"},
		{rbac.Subject{Kind: rbac.KindUser, Name: "never-bound"}, "none"},
	} {
		t.Run(tc.subject.String(), func(t *testing.T) {
			if got := describe(m, m.Subject(tc.subject)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			// The cached answer is the same.
			if got := describe(m, m.Subject(tc.subject)); got != tc.want {
				t.Errorf("second call: got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestConflict: a namespace two environments select is in neither, and
// the conflict names it and both environments; its ServiceAccounts belong
// nowhere either.
func TestConflict(t *testing.T) {
	inv := load(t,
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: mixed, labels: {environment: prod, tier: dev}}",
		namespace("dev", "dev"), namespace("prod", "prod"))
	envs := []Environment{
		mustParse(t, "dev", "tier=dev"),
		mustParse(t, "prod", "environment=prod"),
	}
	m := New(envs, inv.Namespaces, rbac.NewPolicy(inv, rbac.AggregationComputed))
	cs := m.Conflicts()
	if len(cs) != 1 || cs[0].Namespace != "mixed" || !slices.Equal(cs[0].Environments, []string{"dev", "prod"}) {
		t.Fatalf("conflicts %+v, want namespace mixed in dev and prod", cs)
	}
	msg := cs[0].String()
	for _, want := range []string{"namespace mixed", "dev (tier=dev)", "prod (environment=prod)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %q", msg, want)
		}
	}
	if got := m.Namespace("mixed"); got != None {
		t.Errorf("mixed is in %s, want none", m.Name(got))
	}
	if got := m.Subject(rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "mixed", Name: "x"}); got.Env != None {
		t.Errorf("a ServiceAccount of mixed is in %s, want none", m.Name(got.Env))
	}
	// prod selects only prod: dev has none but "mixed", which it lost.
	if m.Selected(0) != 0 || m.Selected(1) != 1 {
		t.Errorf("selected dev %d, prod %d; want 0 and 1", m.Selected(0), m.Selected(1))
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		selector string
		err      string
	}{
		{"environment in (prod, production)", ""},
		{"environment=staging,team!=sandbox", ""},
		{"environment", ""},
		{"", "empty selector"},
		{"   ", "empty selector"},
		{"environment in (prod", "is not a label selector"},
		{"Environment=Prod!", "is not a label selector"},
	} {
		t.Run(tc.selector, func(t *testing.T) {
			_, err := Parse("x", tc.selector)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// readsOf runs the path analysis over the world and returns the
// cross-environment reads of Secret ns/name, as "SUBJECT PATH FROM BASIS
// NS" lines, and the map.
func readsOf(t *testing.T, inv *inventory.Inventory, envs []Environment, ns, name string, skip func(*paths.Reader) bool) []string {
	t.Helper()
	p := rbac.NewPolicy(inv, rbac.AggregationComputed)
	res := paths.Analyze(p, rbac.NewReadIndex(p), paths.Options{Offline: true})
	m := New(envs, inv.Namespaces, p)
	s := inv.Secret(ns, name)
	if s == nil {
		t.Fatalf("no Secret %s/%s", ns, name)
	}
	var out []string
	for _, r := range m.Reads(m.Namespace(ns), res.Readers(s), skip) {
		out = append(out, fmt.Sprintf("%s %s %s %s %s", r.Reader.Subject, r.Reader.Kind, m.Name(r.From), r.Basis, strings.Join(r.Namespaces, ",")))
	}
	return out
}

// TestReads: which readers of a prod Secret come from a lower environment,
// directly and indirectly, by each basis, and which do not.
func TestReads(t *testing.T) {
	world := []string{
		namespace("dev", "dev"), namespace("stage", "staging"), namespace("prod", "prod"), namespace("tools", ""),
		// dev has no Pod Security label: privileged, so pod creation
		// there reaches any node.
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: sandbox, labels: {environment: dev}}",
		secret("prod", "db"), secret("dev", "dev-db"),
		role("prod", "read", readSecrets),
		role("dev", "pods", createPods), role("sandbox", "pods", createPods), role("prod", "pods", createPods),
		clusterRole("nothing", nothing),
		// Direct: a staging ServiceAccount, the dev ServiceAccounts'
		// group, a prod ServiceAccount (same environment), a tools one
		// (no environment), and a controller the caller expects.
		roleBinding("prod", "direct", "Role", "read", sa("stage", "app"), group("system:serviceaccounts:dev"), sa("prod", "app"), sa("tools", "backup"), sa("kube-system", "expected")),
		// Indirect from a dev identity: the dev team creates pods in dev,
		// where the dev ServiceAccounts' group reads prod Secrets.
		roleBinding("dev", "team", "Role", "pods", group("dev-team")),
		// Indirect from no environment: ops-bot is bound cluster-wide
		// and creates pods in dev; release-bot creates pods in prod.
		clusterRoleBinding("ops-view", "nothing", user("ops-bot"), user("release-bot")),
		roleBinding("dev", "ops-pods", "Role", "pods", user("ops-bot")),
		roleBinding("prod", "release-pods", "Role", "pods", user("release-bot")),
		// A prod identity whose path starts in dev is not from dev.
		roleBinding("dev", "prod-sa-pods", "Role", "pods", sa("prod", "deployer")),
		// Everyone can create pods in dev: still not a dev identity.
		roleBinding("sandbox", "everyone-pods", "Role", "pods", group("system:authenticated")),
	}
	inv := load(t, world...)
	expected := rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "kube-system", Name: "expected"}
	skip := func(r *paths.Reader) bool { return r.Subject == expected || r.Subject == rbac.Superuser.Subject }
	got := readsOf(t, inv, threeEnvs(t), "prod", "db", skip)
	want := []string{
		"Group/dev-team run-as-sa dev bindings dev",
		"Group/system:serviceaccounts:dev direct dev namespace dev",
		"ServiceAccount/stage/app direct staging namespace stage",
		"User/ops-bot run-as-sa dev path dev",
	}
	if !slices.Equal(got, want) {
		t.Errorf("reads of prod/db:\n got %q\nwant %q", got, want)
	}
	// Without the skip, the expected controller is still no lower
	// environment's: it belongs to none.
	if all := readsOf(t, inv, threeEnvs(t), "prod", "db", nil); len(all) != len(want) {
		t.Errorf("without skip: %q", all)
	}
	// A Secret of the lowest environment has nothing below it.
	if got := readsOf(t, inv, threeEnvs(t), "dev", "dev-db", skip); len(got) != 0 {
		t.Errorf("reads of the dev Secret: %q, want none", got)
	}
	// The order is the config's: with prod lowest, prod/db has nothing
	// below it, and dev/dev-db is read from prod by prod/deployer (which
	// creates pods in dev) and by release-bot, whose path starts in prod
	// (a pod there runs as prod/deployer).
	reversed := []Environment{mustParse(t, "prod", "environment=prod"), mustParse(t, "dev", "environment=dev")}
	if got := readsOf(t, inv, reversed, "prod", "db", skip); len(got) != 0 {
		t.Errorf("prod lowest: reads of prod/db %q, want none", got)
	}
	got = readsOf(t, inv, reversed, "dev", "dev-db", skip)
	want = []string{
		"ServiceAccount/prod/deployer pod-create prod namespace prod",
		"User/release-bot run-as-sa prod path prod",
	}
	if !slices.Equal(got, want) {
		t.Errorf("prod lowest: reads of dev/dev-db:\n got %q\nwant %q", got, want)
	}
}
