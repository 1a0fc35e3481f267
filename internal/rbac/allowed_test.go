package rbac

import (
	"math/rand/v2"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// TestAllowedAgreesWithRuleAllows draws random rule sets and requests and
// requires Allowed's answer for every name to be what asking RuleAllows
// name by name gives, on the names the rules list and on others.
func TestAllowedAgreesWithRuleAllows(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	pick := func(options ...string) []string {
		var out []string
		for _, o := range options {
			if r.IntN(3) == 0 {
				out = append(out, o)
			}
		}
		return out
	}
	reqs := []Request{
		{Verb: "create", Resource: "pods"},
		{Verb: "get", Resource: "pods", Subresource: "exec"},
		{Verb: "impersonate", Resource: "users"},
		{Verb: "bind", APIGroup: "rbac.authorization.k8s.io", Resource: "roles"},
		{Verb: "patch", APIGroup: "apps", Resource: "deployments"},
	}
	names := []string{"", "a", "b", "*", "c"}
	for i := 0; i < 5000; i++ {
		var rules []rbacv1.PolicyRule
		for range 1 + r.IntN(3) {
			rules = append(rules, rbacv1.PolicyRule{
				Verbs:         pick("create", "get", "impersonate", "bind", "patch", "*"),
				APIGroups:     pick("", "apps", "rbac.authorization.k8s.io", "*"),
				Resources:     pick("pods", "pods/exec", "*/exec", "users", "roles", "deployments", "*"),
				ResourceNames: pick("", "a", "b", "*"),
			})
		}
		for _, req := range reqs {
			got := Allowed(rules, req)
			for _, name := range names {
				want := false
				for j := range rules {
					if RuleAllows(&rules[j], req.Attributes(name)) {
						want = true
					}
				}
				if got.Has(name) != want {
					t.Fatalf("rules %+v, request %+v, name %q: Allowed says %v, RuleAllows %v (Allowed = %+v)", rules, req, name, got.Has(name), want, got)
				}
			}
			if got.Empty() != (!got.All && len(got.Some) == 0) {
				t.Fatalf("Empty disagrees with the names %+v", got)
			}
		}
	}
}
