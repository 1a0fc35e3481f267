package rbac

import (
	"fmt"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// AggregationMode says which rules an aggregated ClusterRole has.
type AggregationMode int

const (
	// AggregationComputed replaces an aggregated ClusterRole's rules by the
	// union its selectors match, as the controller would. Offline audits
	// use it: manifests rarely carry the controller's output.
	AggregationComputed AggregationMode = iota
	// AggregationStored uses the rules as stored, which is what the
	// authorizer of a live cluster uses.
	AggregationStored
)

// Policy is the RBAC policy of an inventory with every role's effective
// rules resolved.
type Policy struct {
	inv          *inventory.Inventory
	clusterRules map[string][]rbacv1.PolicyRule
	// Computed holds the offline aggregation of every aggregated
	// ClusterRole, whatever the mode, so that drift can be reported.
	Computed map[string][]rbacv1.PolicyRule
	// Errors are problems in the policy itself, such as invalid selectors.
	Errors []error

	bindingsOnce sync.Once
	bindings     []Binding

	bySubjectOnce sync.Once
	bySubject     map[Subject][]*Binding
}

// NewPolicy resolves the RBAC policy of inv.
func NewPolicy(inv *inventory.Inventory, mode AggregationMode) *Policy {
	computed, errs := AggregateClusterRoles(inv.ClusterRoles)
	p := &Policy{inv: inv, Computed: computed, Errors: errs, clusterRules: make(map[string][]rbacv1.PolicyRule, len(inv.ClusterRoles))}
	for _, cr := range inv.ClusterRoles {
		rules := cr.Rules
		if cr.AggregationRule != nil && mode == AggregationComputed {
			rules = computed[cr.Name]
		}
		p.clusterRules[cr.Name] = rules
	}
	return p
}

// Inventory returns the inventory the policy was built from.
func (p *Policy) Inventory() *inventory.Inventory { return p.inv }

// ClusterRoleRules returns the effective rules of a ClusterRole and whether
// it exists.
func (p *Policy) ClusterRoleRules(name string) ([]rbacv1.PolicyRule, bool) {
	rules, ok := p.clusterRules[name]
	return rules, ok
}

// RoleRef resolves a binding's roleRef in the binding's namespace ("" for a
// ClusterRoleBinding). It returns the role's reference, its effective rules
// and whether it exists.
func (p *Policy) RoleRef(ref rbacv1.RoleRef, bindingNamespace string) (inventory.Ref, []rbacv1.PolicyRule, bool) {
	switch ref.Kind {
	case "ClusterRole":
		rules, ok := p.clusterRules[ref.Name]
		return inventory.Ref{Kind: "ClusterRole", Name: ref.Name}, rules, ok
	case "Role":
		r := inventory.Ref{Kind: "Role", Namespace: bindingNamespace, Name: ref.Name}
		if bindingNamespace == "" {
			return r, nil, false
		}
		role := p.inv.Role(bindingNamespace, ref.Name)
		if role == nil {
			return r, nil, false
		}
		return r, role.Rules, true
	}
	return inventory.Ref{Kind: ref.Kind, Namespace: bindingNamespace, Name: ref.Name}, nil, false
}

// Binding is one RoleBinding or ClusterRoleBinding, resolved.
type Binding struct {
	Ref inventory.Ref
	// Namespace is where the binding grants: its own namespace for a
	// RoleBinding, "" (everywhere) for a ClusterRoleBinding.
	Namespace string
	Role      inventory.Ref
	Rules     []rbacv1.PolicyRule
	// RoleFound is false for a dangling binding, which grants nothing.
	RoleFound bool
	Subjects  []Subject
	// Invalid lists the subjects that match no one, with the reason.
	Invalid []InvalidSubject
}

// InvalidSubject is a binding subject that grants nothing.
type InvalidSubject struct {
	Subject rbacv1.Subject
	Reason  string
}

// Bindings resolves every binding of the inventory, ClusterRoleBindings
// first, each group sorted by namespace and name.
// The result is computed once and shared: callers must not modify it.
func (p *Policy) Bindings() []Binding {
	p.bindingsOnce.Do(func() { p.bindings = p.resolveBindings() })
	return p.bindings
}

func (p *Policy) resolveBindings() []Binding {
	out := make([]Binding, 0, len(p.inv.ClusterRoleBindings)+len(p.inv.RoleBindings))
	for _, b := range p.inv.ClusterRoleBindings {
		out = append(out, p.resolve(inventory.Ref{Kind: "ClusterRoleBinding", Name: b.Name}, "", b.RoleRef, b.Subjects))
	}
	for _, b := range p.inv.RoleBindings {
		out = append(out, p.resolve(inventory.Ref{Kind: "RoleBinding", Namespace: b.Namespace, Name: b.Name}, b.Namespace, b.RoleRef, b.Subjects))
	}
	return out
}

func (p *Policy) resolve(ref inventory.Ref, ns string, roleRef rbacv1.RoleRef, subjects []rbacv1.Subject) Binding {
	b := Binding{Ref: ref, Namespace: ns}
	if ns == "" && roleRef.Kind != "ClusterRole" {
		// The API rejects this; a manifest may still hold it.
		b.Role = inventory.Ref{Kind: roleRef.Kind, Name: roleRef.Name}
	} else {
		b.Role, b.Rules, b.RoleFound = p.RoleRef(roleRef, ns)
	}
	seen := make(map[Subject]bool, len(subjects))
	for _, s := range subjects {
		n, err := NormalizeSubject(s, ns)
		if err != nil {
			b.Invalid = append(b.Invalid, InvalidSubject{Subject: s, Reason: err.Error()})
			continue
		}
		if !seen[n] {
			seen[n] = true
			b.Subjects = append(b.Subjects, n)
		}
	}
	return b
}

// String names the binding and its role for messages.
func (b Binding) String() string {
	return fmt.Sprintf("%s (role %s)", b.Ref, b.Role)
}

// BindingsOf returns the bindings that name subject s, in Bindings order.
// The index is built once; callers must not modify the result.
func (p *Policy) BindingsOf(s Subject) []*Binding {
	p.bySubjectOnce.Do(func() {
		p.bySubject = map[Subject][]*Binding{}
		bs := p.Bindings()
		for i := range bs {
			for _, subj := range bs[i].Subjects {
				p.bySubject[subj] = append(p.bySubject[subj], &bs[i])
			}
		}
	})
	return p.bySubject[s]
}
