package rbac_test

import (
	"fmt"
	"slices"
	"sort"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keyhole-sec/keyhole/internal/bootstrap"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
)

// The reference answers "who can read this Secret" the slow, obvious way,
// the way the apiserver's authorizer would if asked every question: for
// every Secret, every binding, every rule, ask RuleAllows about get, list
// and watch. It shares nothing with ReadIndex but RuleAllows (which
// match_test.go checks against the apiserver's rules): not the policy
// resolution, not subject normalisation, not aggregation. Identities are
// compared as the authenticator sees them, a user name or a group name,
// so a User "system:serviceaccount:ns:sa" and a ServiceAccount ns/sa are
// the same reader, as they are to the apiserver.

type identity struct{ kind, name string } // kind is "user" or "group"

type refReader struct {
	verbs rbac.Verbs
	via   map[string]bool
}

type reference struct {
	inv          *inventory.Inventory
	clusterRules map[string][]rbacv1.PolicyRule
}

func newReference(inv *inventory.Inventory, mode rbac.AggregationMode) *reference {
	ref := &reference{inv: inv, clusterRules: map[string][]rbacv1.PolicyRule{}}
	for _, cr := range inv.ClusterRoles {
		ref.clusterRules[cr.Name] = cr.Rules
	}
	if mode == rbac.AggregationComputed {
		for name, rules := range naiveAggregate(inv.ClusterRoles) {
			ref.clusterRules[name] = rules
		}
	}
	return ref
}

// naiveAggregate recomputes every aggregated role from scratch until
// nothing changes: the rules of every other role any selector matches,
// deduplicated with the controller's equality. Selectors that do not parse
// select nothing.
func naiveAggregate(roles []*rbacv1.ClusterRole) map[string][]rbacv1.PolicyRule {
	out := map[string][]rbacv1.PolicyRule{}
	for _, r := range roles {
		if r.AggregationRule != nil {
			out[r.Name] = nil
		}
	}
	current := func(r *rbacv1.ClusterRole) []rbacv1.PolicyRule {
		if r.AggregationRule != nil {
			return out[r.Name]
		}
		return r.Rules
	}
	for changed := true; changed; {
		changed = false
		for _, a := range roles {
			if a.AggregationRule == nil {
				continue
			}
			var union []rbacv1.PolicyRule
			for i := range a.AggregationRule.ClusterRoleSelectors {
				sel, err := metav1.LabelSelectorAsSelector(&a.AggregationRule.ClusterRoleSelectors[i])
				if err != nil {
					continue
				}
				for _, m := range roles {
					if m.Name == a.Name || !sel.Matches(labels.Set(m.Labels)) {
						continue
					}
					for _, rule := range current(m) {
						if !slices.ContainsFunc(union, func(x rbacv1.PolicyRule) bool { return apiequality.Semantic.DeepEqual(x, rule) }) {
							union = append(union, rule)
						}
					}
				}
			}
			if len(union) != len(out[a.Name]) {
				out[a.Name], changed = union, true
			}
		}
	}
	return out
}

// identityOf is the apiserver's appliesToUser turned around: whom a
// binding subject stands for. ok is false for subjects that match no one.
func identityOf(s rbacv1.Subject, bindingNamespace string) (identity, bool) {
	switch s.Kind {
	case rbacv1.UserKind:
		return identity{"user", s.Name}, true
	case rbacv1.GroupKind:
		return identity{"group", s.Name}, true
	case rbacv1.ServiceAccountKind:
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		if ns == "" {
			return identity{}, false
		}
		return identity{"user", "system:serviceaccount:" + ns + ":" + s.Name}, true
	}
	return identity{}, false
}

// verbs returns the read verbs rules allow on Secret name. A list or
// watch is also a read of every Secret it returns, so a list allowed
// without a name counts too: the apiserver sets the name only for a
// metadata.name field selector.
func verbs(rules []rbacv1.PolicyRule, name string) rbac.Verbs {
	var v rbac.Verbs
	for i := range rules {
		for _, verb := range []string{"get", "list", "watch"} {
			allowed := rbac.RuleAllows(&rules[i], rbac.Attributes{Verb: verb, Resource: "secrets", Name: name})
			if verb != "get" {
				allowed = allowed || rbac.RuleAllows(&rules[i], rbac.Attributes{Verb: verb, Resource: "secrets"})
			}
			if allowed {
				v |= rbac.ParseVerb(verb)
			}
		}
	}
	return v
}

func (ref *reference) readers(ns, name string) map[identity]*refReader {
	out := map[identity]*refReader{
		{"group", rbac.GroupMasters}: {verbs: rbac.AllReadVerbs, via: map[string]bool{"superuser": true}},
	}
	grant := func(binding, role inventory.Ref, rules []rbacv1.PolicyRule, subjects []rbacv1.Subject, bindingNamespace string) {
		v := verbs(rules, name)
		if v == 0 {
			return
		}
		for _, s := range subjects {
			id, ok := identityOf(s, bindingNamespace)
			if !ok {
				continue
			}
			r := out[id]
			if r == nil {
				r = &refReader{via: map[string]bool{}}
				out[id] = r
			}
			r.verbs |= v
			r.via[binding.String()+" "+role.String()] = true
		}
	}
	for _, b := range ref.inv.ClusterRoleBindings {
		if b.RoleRef.Kind != "ClusterRole" {
			continue
		}
		rules, ok := ref.clusterRules[b.RoleRef.Name]
		if !ok {
			continue
		}
		grant(inventory.Ref{Kind: "ClusterRoleBinding", Name: b.Name}, inventory.Ref{Kind: "ClusterRole", Name: b.RoleRef.Name},
			rules, b.Subjects, "")
	}
	for _, b := range ref.inv.RoleBindings {
		if b.Namespace != ns {
			continue
		}
		var rules []rbacv1.PolicyRule
		var role inventory.Ref
		switch b.RoleRef.Kind {
		case "ClusterRole":
			r, ok := ref.clusterRules[b.RoleRef.Name]
			if !ok {
				continue
			}
			rules, role = r, inventory.Ref{Kind: "ClusterRole", Name: b.RoleRef.Name}
		case "Role":
			r := ref.inv.Role(ns, b.RoleRef.Name)
			if r == nil {
				continue
			}
			rules, role = r.Rules, inventory.Ref{Kind: "Role", Namespace: ns, Name: b.RoleRef.Name}
		default:
			continue
		}
		grant(inventory.Ref{Kind: "RoleBinding", Namespace: ns, Name: b.Name}, role, rules, b.Subjects, ns)
	}
	return out
}

func identityOfReader(s rbac.Subject) identity {
	if s.Kind == rbac.KindGroup {
		return identity{"group", s.Name}
	}
	return identity{"user", s.Username()}
}

func viaKeys(vs []rbac.Via) []string {
	var out []string
	for _, v := range vs {
		switch {
		case v.Superuser:
			out = append(out, "superuser")
		case v.Binding != nil && v.Role != nil:
			out = append(out, v.Binding.String()+" "+v.Role.String())
		default:
			out = append(out, fmt.Sprintf("malformed %+v", v))
		}
	}
	return out
}

func setKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// compare checks ReadIndex against the reference for every Secret of inv
// and returns how many (Secret, reader) pairs it compared.
func compare(t *testing.T, inv *inventory.Inventory, mode rbac.AggregationMode) int {
	t.Helper()
	ix := rbac.NewReadIndex(rbac.NewPolicy(inv, mode))
	ref := newReference(inv, mode)
	pairs, failures := 0, 0
	for _, s := range inv.Secrets {
		want := ref.readers(s.Namespace, s.Name)
		got := ix.Readers(s.Namespace, s.Name)
		if !sort.SliceIsSorted(got, func(i, j int) bool { return got[i].Subject.Less(got[j].Subject) }) {
			t.Errorf("%s: readers not sorted by subject", s.Ref())
		}
		seen := map[identity]bool{}
		for _, r := range got {
			id := identityOfReader(r.Subject)
			if seen[id] {
				t.Errorf("%s: %s listed twice", s.Ref(), r.Subject)
			}
			seen[id] = true
			w, ok := want[id]
			switch {
			case !ok:
				t.Errorf("%s: ReadIndex says %s reads it (%v via %v); the reference says no", s.Ref(), r.Subject, r.Verbs.Names(), viaKeys(r.Via))
			case w.verbs != r.Verbs:
				t.Errorf("%s: %s verbs = %v, reference %v", s.Ref(), r.Subject, r.Verbs.Names(), w.verbs.Names())
			case !slices.Equal(setKeys(w.via), sortedCopy(viaKeys(r.Via))):
				t.Errorf("%s: %s via\n  %v\nreference\n  %v", s.Ref(), r.Subject, viaKeys(r.Via), setKeys(w.via))
			}
		}
		for id, w := range want {
			if !seen[id] {
				t.Errorf("%s: the reference says %s %s reads it (%v via %v); ReadIndex does not list it", s.Ref(), id.kind, id.name, w.verbs.Names(), setKeys(w.via))
			}
		}
		pairs += len(want)
		if t.Failed() {
			if failures++; failures > 3 {
				t.Fatal("stopping after failures on 3 Secrets")
			}
		}
	}
	return pairs
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// TestReadIndexMatchesReference cross-checks ReadIndex.Readers against the
// reference on small synthetic worlds, dense in RBAC so that most routes
// to a Secret (wildcards, resourceNames, aggregation, foreign and
// namespace-less ServiceAccounts, missing roles) occur, with and without
// the bootstrap policy under them.
func TestReadIndexMatchesReference(t *testing.T) {
	size := synthetic.Scale(300)
	size.Roles, size.ClusterRoles, size.RoleBindings, size.ClusterRoleBindings = 200, 80, 600, 60
	dense := synthetic.Size{Namespaces: 3, Secrets: 300, Roles: 60, ClusterRoles: 40, RoleBindings: 200, ClusterRoleBindings: 30, ServiceAccounts: 20}
	modes := map[rbac.AggregationMode]string{rbac.AggregationComputed: "computed", rbac.AggregationStored: "stored"}
	for seed := int64(1); seed <= 6; seed++ {
		for sizeName, sz := range map[string]synthetic.Size{"scaled": size, "dense": dense} {
			for _, withBootstrap := range []bool{false, true} {
				b := inventory.NewBuilder()
				if withBootstrap {
					if _, err := bootstrap.AddTo(b); err != nil {
						t.Fatal(err)
					}
				}
				for _, o := range synthetic.Generate(seed, sz) {
					if _, _, err := b.Add(o, inventory.Location{}); err != nil {
						t.Fatal(err)
					}
				}
				inv := b.Build()
				for mode, modeName := range modes {
					t.Run(fmt.Sprintf("seed=%d/%s/bootstrap=%t/%s", seed, sizeName, withBootstrap, modeName), func(t *testing.T) {
						if pairs := compare(t, inv, mode); pairs <= len(inv.Secrets) {
							t.Errorf("only %d (Secret, reader) pairs: the world grants almost nothing, so the check proves little", pairs)
						}
					})
				}
			}
		}
	}
}
