package rbac

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Request is a request shape with the object name left open: what
// Allowed answers for every name at once.
type Request struct {
	Verb, APIGroup, Resource, Subresource string
}

// Attributes returns the request on one object name.
func (r Request) Attributes(name string) Attributes {
	return Attributes{Verb: r.Verb, APIGroup: r.APIGroup, Resource: r.Resource, Subresource: r.Subresource, Name: name}
}

// Names is the set of object names a rule set allows a request on: every
// name, or the names some rule lists in resourceNames. The empty name is
// what the authorizer sees for create, and for list and watch without a
// metadata.name field selector.
type Names struct {
	All bool
	// Some are the allowed names, sorted and unique; empty when All.
	Some []string
}

// Has reports whether name is allowed.
func (n Names) Has(name string) bool {
	if n.All {
		return true
	}
	_, found := slices.BinarySearch(n.Some, name)
	return found
}

// Empty reports whether no name is allowed.
func (n Names) Empty() bool { return !n.All && len(n.Some) == 0 }

// Allowed returns the names rules allow req on, rule by rule as the
// authorizer matches them (RuleAllows): a rule without resourceNames
// allows every name.
func Allowed(rules []rbacv1.PolicyRule, req Request) Names {
	var out Names
	for i := range rules {
		r := &rules[i]
		if !RuleAllows(r, req.Attributes("")) && !ruleAllowsSomeName(r, req) {
			continue
		}
		if len(r.ResourceNames) == 0 {
			return Names{All: true}
		}
		out.Some = append(out.Some, r.ResourceNames...)
	}
	slices.Sort(out.Some)
	out.Some = slices.Compact(out.Some)
	return out
}

// ruleAllowsSomeName reports whether r allows req on at least one name.
func ruleAllowsSomeName(r *rbacv1.PolicyRule, req Request) bool {
	if len(r.ResourceNames) == 0 {
		return false // RuleAllows with "" already answered
	}
	return RuleAllows(r, req.Attributes(r.ResourceNames[0]))
}
