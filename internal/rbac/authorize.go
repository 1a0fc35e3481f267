package rbac

import "sort"

// Grantee is a subject the policy allows a request, with every grant that
// allows it.
type Grantee struct {
	Subject Subject
	Via     []Via
}

// WhoCan returns every subject the RBAC policy allows the request a in
// namespace ns ("" for a cluster-scoped request), sorted by subject. It
// asks every binding in scope, rule by rule, as the authorizer does, so it
// answers any permission, not only Secret reads; the Secret read index is
// the fast path for those. system:masters, which bypasses RBAC, is not
// listed.
func (p *Policy) WhoCan(a Attributes, ns string) []Grantee {
	bySubject := map[Subject][]Via{}
	for _, b := range p.Bindings() {
		if !b.RoleFound || len(b.Subjects) == 0 || (b.Namespace != "" && b.Namespace != ns) {
			continue
		}
		allowed := false
		for i := range b.Rules {
			if RuleAllows(&b.Rules[i], a) {
				allowed = true
				break
			}
		}
		if !allowed {
			continue
		}
		binding, role := b.Ref, b.Role
		for _, s := range b.Subjects {
			bySubject[s] = append(bySubject[s], Via{Binding: &binding, Role: &role})
		}
	}
	out := make([]Grantee, 0, len(bySubject))
	for s, via := range bySubject {
		out = append(out, Grantee{Subject: s, Via: sortVia(via)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subject.Less(out[j].Subject) })
	return out
}
