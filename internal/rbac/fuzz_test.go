package rbac

import (
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// oracleAllows is the authorizer's rule written out independently, with
// strings functions, so that the fuzzer compares two implementations.
func oracleAllows(r *rbacv1.PolicyRule, a Attributes) bool {
	has := func(list []string, want string) bool {
		for _, x := range list {
			if x == "*" || x == want {
				return true
			}
		}
		return false
	}
	if !has(r.Verbs, a.Verb) || !has(r.APIGroups, a.APIGroup) {
		return false
	}
	resourceOK := false
	for _, res := range r.Resources {
		switch {
		case res == "*":
			resourceOK = true
		case a.Subresource == "" && res == a.Resource:
			resourceOK = true
		case a.Subresource != "" && res == a.Resource+"/"+a.Subresource:
			resourceOK = true
		case a.Subresource != "" && strings.HasPrefix(res, "*/") && strings.TrimPrefix(res, "*/") == a.Subresource:
			resourceOK = true
		}
	}
	if !resourceOK {
		return false
	}
	if len(r.ResourceNames) == 0 {
		return true
	}
	for _, n := range r.ResourceNames {
		if n == a.Name {
			return true
		}
	}
	return false
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func FuzzRuleAllows(f *testing.F) {
	seeds := [][9]string{
		{"get", "", "secrets", "", "get", "", "secrets", "", "db"},
		{"*", "*", "*", "", "list", "apps", "deployments", "scale", ""},
		{"create", "", "*/exec", "", "create", "", "pods", "exec", "p"},
		{"get", "", "secrets/*", "", "get", "", "secrets", "*", "x"},
		{"Get", "", "Secrets", "db", "get", "", "secrets", "", "db"},
		{"get,list", ",apps", "secrets,pods/log", "*", "get", "", "secrets", "", "*"},
		{"get", "", "secrets", "a,b", "watch", "", "secrets", "", "b"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8])
	}
	f.Fuzz(func(t *testing.T, verbs, groups, resources, names, verb, group, resource, sub, name string) {
		r := rbacv1.PolicyRule{Verbs: split(verbs), APIGroups: split(groups), Resources: split(resources), ResourceNames: split(names)}
		a := Attributes{Verb: verb, APIGroup: group, Resource: resource, Subresource: sub, Name: name}
		if got, want := RuleAllows(&r, a), oracleAllows(&r, a); got != want {
			t.Fatalf("RuleAllows(%+v, %+v) = %v, oracle says %v", r, a, got, want)
		}
		// A Secret read grant must agree with RuleAllows for every name.
		if group == "" && resource == "secrets" && sub == "" {
			all, named := SecretReads([]rbacv1.PolicyRule{r})
			if v := ParseVerb(verb); v != 0 && name != "" {
				granted := all&v != 0 || named[name]&v != 0
				// The value of Secret name is obtained by a request for
				// it by name, or by an unfiltered list or watch.
				reaches := RuleAllows(&r, a)
				if v != VerbGet {
					unnamed := a
					unnamed.Name = ""
					reaches = reaches || RuleAllows(&r, unnamed)
				}
				if granted != reaches {
					t.Fatalf("SecretReads(%+v) = %v for %s %q, but the authorizer says %v", r, granted, verb, name, reaches)
				}
			}
		}
	})
}
