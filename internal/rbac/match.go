// Package rbac decides what Kubernetes RBAC grants, exactly as the
// kube-apiserver's RBAC authorizer does: rule matching, subject matching,
// ClusterRole aggregation, and an index of Secret read grants per namespace
// that answers "who can get, list or watch this Secret" without building a
// Secrets × subjects matrix.
package rbac

import (
	rbacv1 "k8s.io/api/rbac/v1"
)

// Attributes is one resource request as the authorizer sees it.
type Attributes struct {
	Verb        string
	APIGroup    string
	Resource    string
	Subresource string
	// Name is the object name; empty for list and watch without a
	// metadata.name field selector, and for create.
	Name string
}

// RuleAllows reports whether one policy rule allows the request. It mirrors
// the apiserver's rbac.RuleAllows for resource requests: every match is an
// exact, case-sensitive string comparison, with "*" as the only wildcard.
func RuleAllows(rule *rbacv1.PolicyRule, a Attributes) bool {
	combined := a.Resource
	if a.Subresource != "" {
		combined = a.Resource + "/" + a.Subresource
	}
	return VerbMatches(rule, a.Verb) &&
		APIGroupMatches(rule, a.APIGroup) &&
		ResourceMatches(rule, combined, a.Subresource) &&
		ResourceNameMatches(rule, a.Name)
}

// VerbMatches: a rule verb matches when it equals the verb or is "*".
func VerbMatches(rule *rbacv1.PolicyRule, verb string) bool {
	for _, v := range rule.Verbs {
		if v == rbacv1.VerbAll || v == verb {
			return true
		}
	}
	return false
}

// APIGroupMatches: a rule group matches when it equals the group or is "*".
func APIGroupMatches(rule *rbacv1.PolicyRule, group string) bool {
	for _, g := range rule.APIGroups {
		if g == rbacv1.APIGroupAll || g == group {
			return true
		}
	}
	return false
}

// ResourceMatches matches a combined "resource" or "resource/subresource"
// string. "*" matches everything, including subresources; "*/sub" matches
// subresource sub of any resource; "secrets/*" is not a wildcard.
func ResourceMatches(rule *rbacv1.PolicyRule, combined, subresource string) bool {
	for _, r := range rule.Resources {
		if r == rbacv1.ResourceAll || r == combined {
			return true
		}
		if subresource == "" {
			continue
		}
		if len(r) == len(subresource)+2 && r[:2] == "*/" && r[2:] == subresource {
			return true
		}
	}
	return false
}

// ResourceNameMatches: an empty resourceNames list matches every name;
// otherwise the name must equal one entry ("*" is a literal name there).
func ResourceNameMatches(rule *rbacv1.PolicyRule, name string) bool {
	if len(rule.ResourceNames) == 0 {
		return true
	}
	for _, n := range rule.ResourceNames {
		if n == name {
			return true
		}
	}
	return false
}

// NonResourceURLMatches mirrors the authorizer for non-resource requests: a
// rule URL matches exactly, "*" matches all, and a trailing "*" is a prefix.
func NonResourceURLMatches(rule *rbacv1.PolicyRule, verb, path string) bool {
	if !VerbMatches(rule, verb) {
		return false
	}
	for _, u := range rule.NonResourceURLs {
		if u == rbacv1.NonResourceAll || u == path {
			return true
		}
		if n := len(u); n > 0 && u[n-1] == '*' && len(path) >= n-1 && path[:n-1] == u[:n-1] {
			return true
		}
	}
	return false
}
