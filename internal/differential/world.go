// Package differential generates random RBAC worlds for the differential
// test, which holds keyhole's answers (live and offline) to the real
// authorizer's (SubjectAccessReview) on every (subject, Secret, verb). The
// worlds deliberately mix the cases that break RBAC analyzers: wildcards,
// subresources, other API groups, resourceNames, mixed-case verbs,
// aggregation chains and cycles (including into the bootstrap admin, edit
// and view roles), missing roles, ServiceAccounts named as Users, and the
// system: groups.
package differential

import (
	"fmt"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// World is one generated world. Every object name carries the world's
// prefix, so that worlds can be applied one after another to one apiserver.
type World struct {
	Seed                uint64
	Prefix              string
	Namespaces          []*corev1.Namespace
	Secrets             []*corev1.Secret
	Roles               []*rbacv1.Role
	ClusterRoles        []*rbacv1.ClusterRole
	RoleBindings        []*rbacv1.RoleBinding
	ClusterRoleBindings []*rbacv1.ClusterRoleBinding
}

// Objects returns every object of the world, namespaces first.
func (w *World) Objects() []runtime.Object {
	var out []runtime.Object
	for _, o := range w.Namespaces {
		out = append(out, o)
	}
	for _, o := range w.Secrets {
		out = append(out, o)
	}
	for _, o := range w.ClusterRoles {
		out = append(out, o)
	}
	for _, o := range w.Roles {
		out = append(out, o)
	}
	for _, o := range w.ClusterRoleBindings {
		out = append(out, o)
	}
	for _, o := range w.RoleBindings {
		out = append(out, o)
	}
	return out
}

type gen struct {
	r *rand.Rand
	w *World
}

func (g *gen) pick(options ...string) string { return options[g.r.IntN(len(options))] }

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// some returns 1..max distinct picks.
func (g *gen) some(max int, options ...string) []string {
	n := 1 + g.r.IntN(max)
	seen := map[string]bool{}
	var out []string
	for i := 0; i < n; i++ {
		o := g.pick(options...)
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out
}

var (
	verbs     = []string{"get", "list", "watch", "*", "Get", "LIST", "create", "update", "patch", "delete", "deletecollection", "impersonate", "bind", "escalate"}
	groups    = []string{"", "", "", "*", "apps", "example.com", "rbac.authorization.k8s.io"}
	resources = []string{"secrets", "secrets", "secrets", "*", "secrets/*", "*/status", "Secrets", "secret", "pods", "configmaps", "secrets/status", "*/secrets",
		"pods/exec", "*/exec", "serviceaccounts/token", "serviceaccounts", "users", "groups", "deployments", "rolebindings", "clusterroles", "nodes/proxy"}
	users    = []string{"alice", "bob", "carol", "system:anonymous", "system:kube-scheduler"}
	plainGrp = []string{"devs", "ops", "system:authenticated", "system:unauthenticated", "system:serviceaccounts", "system:nodes"}
	// Bootstrap aggregation labels: roles carrying them flow into admin,
	// edit and view through the real controller.
	bootstrapAggLabels = []string{"rbac.authorization.k8s.io/aggregate-to-admin", "rbac.authorization.k8s.io/aggregate-to-edit", "rbac.authorization.k8s.io/aggregate-to-view"}
)

// Generate returns the world for one seed, every cluster-scoped name and
// every namespace prefixed with prefix.
func Generate(seed uint64, prefix string) *World {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x6b6579686f6c65)), w: &World{Seed: seed, Prefix: prefix}}
	g.generate()
	return g.w
}

func (g *gen) name(s string) string { return g.w.Prefix + s }

func (g *gen) generate() {
	w := g.w
	var namespaces []string
	for i := 0; i < 3; i++ {
		ns := g.name(fmt.Sprintf("ns%d", i))
		namespaces = append(namespaces, ns)
		w.Namespaces = append(w.Namespaces, &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	secretNames := []string{"db", "api", "tls", "cache"}
	for _, ns := range namespaces {
		for _, n := range g.some(4, secretNames...) {
			w.Secrets = append(w.Secrets, &corev1.Secret{TypeMeta: typeMeta("v1", "Secret"),
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}, Type: corev1.SecretTypeOpaque,
				Data: map[string][]byte{"value": []byte("KEYHOLE-CANARY-differential")}})
		}
	}
	// Names for resourceNames: existing ones, a missing one, the literal
	// "*", and "" (which matches an unfiltered list or watch).
	ruleNames := append(append([]string{}, secretNames...), "missing", "*", "")

	aggLabel := g.name("agg")
	var labels []string // label values roles can be selected by
	for i := 0; i < 3; i++ {
		labels = append(labels, fmt.Sprintf("l%d", i))
	}
	var clusterRoles []string
	nRoles := 4 + g.r.IntN(4)
	for i := 0; i < nRoles; i++ {
		cr := &rbacv1.ClusterRole{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "ClusterRole"),
			ObjectMeta: metav1.ObjectMeta{Name: g.name(fmt.Sprintf("cr%d", i)), Labels: map[string]string{}}}
		if g.chance(0.5) {
			cr.Labels[aggLabel+"."+g.pick(labels...)] = "true"
		}
		if g.chance(0.15) {
			cr.Labels[g.pick(bootstrapAggLabels...)] = "true"
		}
		if g.chance(0.3) {
			// Aggregated: the controller replaces its own rules, so
			// they are sometimes given, to check that keyhole drops them
			// too (unless the role is on a cycle: see below).
			if g.chance(0.5) {
				cr.Rules = g.rules(ruleNames)
			}
			agg := &rbacv1.AggregationRule{}
			for _, l := range g.some(2, labels...) {
				agg.ClusterRoleSelectors = append(agg.ClusterRoleSelectors, metav1.LabelSelector{MatchLabels: map[string]string{aggLabel + "." + l: "true"}})
			}
			cr.AggregationRule = agg
		} else {
			cr.Rules = g.rules(ruleNames)
		}
		if len(cr.Labels) == 0 {
			cr.Labels = nil
		}
		w.ClusterRoles = append(w.ClusterRoles, cr)
		clusterRoles = append(clusterRoles, cr.Name)
	}
	// On an aggregation cycle, rules of the role's own may survive on a
	// real cluster depending on the controller's processing order; keyhole
	// warns about such roles rather than guess. Keep the worlds decidable.
	for _, name := range rbac.OrderDependentAggregation(w.ClusterRoles) {
		for _, cr := range w.ClusterRoles {
			if cr.Name == name {
				cr.Rules = nil
			}
		}
	}
	rolesByNS := map[string][]string{}
	for _, ns := range namespaces {
		for i := 0; i < 1+g.r.IntN(3); i++ {
			r := &rbacv1.Role{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "Role"),
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("role%d", i)}, Rules: g.rules(ruleNames)}
			w.Roles = append(w.Roles, r)
			rolesByNS[ns] = append(rolesByNS[ns], r.Name)
		}
	}
	// Bindings may reference the bootstrap roles too.
	bootstrapRoles := []string{"admin", "edit", "view", "cluster-admin"}
	for _, ns := range namespaces {
		for i := 0; i < 2+g.r.IntN(4); i++ {
			rb := &rbacv1.RoleBinding{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "RoleBinding"),
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("rb%d", i)}}
			switch k := g.r.IntN(10); {
			case k < 4:
				rb.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: g.pick(append(rolesByNS[ns], "missing-role")...)}
			case k < 8:
				rb.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: g.pick(append(clusterRoles, "missing-clusterrole")...)}
			default:
				rb.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: g.pick(bootstrapRoles...)}
			}
			rb.Subjects = g.subjects(namespaces, true)
			w.RoleBindings = append(w.RoleBindings, rb)
		}
	}
	for i := 0; i < 1+g.r.IntN(3); i++ {
		crb := &rbacv1.ClusterRoleBinding{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
			ObjectMeta: metav1.ObjectMeta{Name: g.name(fmt.Sprintf("crb%d", i))},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: g.pick(append(clusterRoles, g.name("missing"))...)}}
		crb.Subjects = g.subjects(namespaces, false)
		w.ClusterRoleBindings = append(w.ClusterRoleBindings, crb)
	}
}

func (g *gen) rules(names []string) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for i := 0; i < 1+g.r.IntN(3); i++ {
		r := rbacv1.PolicyRule{
			Verbs:     g.some(3, verbs...),
			APIGroups: g.some(2, groups...),
			Resources: g.some(2, resources...),
		}
		if g.chance(0.35) {
			r.ResourceNames = g.some(2, names...)
		}
		out = append(out, r)
	}
	return out
}

func (g *gen) subjects(namespaces []string, namespaced bool) []rbacv1.Subject {
	var out []rbacv1.Subject
	for i := 0; i < 1+g.r.IntN(3); i++ {
		ns := g.pick(namespaces...)
		switch k := g.r.IntN(12); {
		case k < 3:
			out = append(out, rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: g.pick(users...)})
		case k < 4:
			// A ServiceAccount named as a User.
			out = append(out, rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "system:serviceaccount:" + ns + ":sa" + g.pick("1", "2")})
		case k < 6:
			out = append(out, rbacv1.Subject{Kind: "Group", APIGroup: rbacv1.GroupName, Name: g.pick(plainGrp...)})
		case k < 7:
			out = append(out, rbacv1.Subject{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:" + ns})
		case k < 9 && namespaced:
			// No namespace: the RoleBinding's own (only valid there).
			out = append(out, rbacv1.Subject{Kind: "ServiceAccount", Name: "sa" + g.pick("1", "2")})
		default:
			out = append(out, rbacv1.Subject{Kind: "ServiceAccount", Namespace: ns, Name: "sa" + g.pick("1", "2")})
		}
	}
	return out
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}
