package paths_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
)

// anyName stands for "every name" when a step's permission names none: no
// resourceNames list holds it.
const anyName = "\x00any"

// TestEveryStepIsAllowed holds each step of every indirect reader, in
// random synthetic worlds, to the naive authorizer (rbac.Policy.WhoCan,
// which the differential test holds to SubjectAccessReview): the subject
// acting in a step, or a group it belongs to, must be allowed the step's
// permission through the grants the step names; a bound role must allow
// it by its rules; a final read must be a direct read of that Secret; and
// each step must act as what the previous one reached. A reader that
// fails is a reader keyhole invented.
func TestEveryStepIsAllowed(t *testing.T) {
	seeds := 6
	if testing.Short() {
		seeds = 2
	}
	for seed := 1; seed <= seeds; seed++ {
		for _, offline := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed=%d/offline=%v", seed, offline), func(t *testing.T) {
				size := synthetic.Scale(400)
				size.Pods, size.Nodes, size.Indirect = 600, 8, true
				inv := synthetic.Build(int64(seed), size)
				mode := rbac.AggregationStored
				if offline {
					mode = rbac.AggregationComputed
				}
				p := rbac.NewPolicy(inv, mode)
				ix := rbac.NewReadIndex(p)
				res := paths.Analyze(p, ix, paths.Options{Offline: offline})
				c := checker{t: t, p: p, ix: ix, inv: inv, whoCan: map[string]map[rbac.Subject][]rbac.Via{}}
				steps, readers := 0, 0
				for _, s := range inv.Secrets {
					for r := range res.Readers(s).All() {
						if r.Kind == paths.Direct {
							continue
						}
						readers++
						steps += len(r.Steps)
						c.reader(s, r)
					}
				}
				if readers == 0 {
					t.Fatal("the world has no indirect reader: the test checks nothing")
				}
				t.Logf("%d indirect readers, %d steps checked", readers, steps)
			})
		}
	}
}

type checker struct {
	t      *testing.T
	p      *rbac.Policy
	ix     *rbac.ReadIndex
	inv    *inventory.Inventory
	whoCan map[string]map[rbac.Subject][]rbac.Via
}

func (c *checker) reader(s *inventory.Secret, r paths.Reader) {
	c.t.Helper()
	fail := func(i int, format string, args ...any) {
		c.t.Helper()
		c.t.Errorf("Secret %s/%s, reader %s (%s), step %d %+v: %s", s.Namespace, s.Name, r.Subject, r.Kind, i, r.Steps[i], fmt.Sprintf(format, args...))
	}
	if first := r.Steps[0].Subject; first != node(r.Subject) && (first.Kind != "Node" || r.Subject.Name != "system:node:"+first.Name) {
		fail(0, "acts as %+v, not the reader", first)
	}
	escalated := false
	for i, st := range r.Steps {
		// After rbac-escalate the chain acts as the rewritten role.
		escalated = i > 0 && (r.Steps[i-1].Kind == paths.RBACEscalate || escalated && r.Steps[i-1].Subject == st.Subject)
		if i > 0 && !actsAs(r.Steps[i-1].Reaches, st.Subject) {
			fail(i, "acts as %+v, but the previous step reached %+v", st.Subject, r.Steps[i-1].Reaches)
		}
		switch {
		case st.Kind == paths.Direct:
			if i != len(r.Steps)-1 {
				fail(i, "a direct read before the last step")
			}
			if !escalated && !c.reads(st.Subject, s) {
				fail(i, "%+v does not read the Secret directly", st.Subject)
			}
		case st.NodeAuthorizer:
			if st.Subject.Kind != "Node" {
				fail(i, "the Node authorizer allows nodes only")
			}
		default:
			if len(st.Via) == 0 {
				fail(i, "an RBAC step without a grant")
			}
			if !c.allowed(st, escalated) {
				fail(i, "RBAC does not allow %+v to %s", st.Subject, st.Permission)
			}
		}
	}
}

func node(s rbac.Subject) paths.Node {
	return paths.Node{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name}
}

func subjectOf(n paths.Node) rbac.Subject {
	return rbac.Subject{Kind: n.Kind, Namespace: n.Namespace, Name: n.Name}
}

// actsAs reports whether an identity that reached `reached` can act as
// `next`: itself, a group it belongs to, or a node's user and group.
func actsAs(reached, next paths.Node) bool {
	if reached == next {
		return true
	}
	if reached.Kind == "Node" {
		if next == (paths.Node{Kind: rbac.KindGroup, Name: rbac.GroupNodes}) || next == (paths.Node{Kind: rbac.KindGroup, Name: rbac.GroupAuthenticated}) {
			return true
		}
		return next.Kind == rbac.KindUser && (reached.Name == "*" && strings.HasPrefix(next.Name, "system:node:") || next.Name == "system:node:"+reached.Name)
	}
	if reached.Kind != rbac.KindUser && reached.Kind != rbac.KindGroup && reached.Kind != rbac.KindServiceAccount {
		return false
	}
	for _, g := range paths.Memberships(subjectOf(reached)) {
		if node(g) == next || slices.Contains(paths.Memberships(g), subjectOf(next)) {
			return true
		}
	}
	return false
}

// effective are the subjects whose grants an identity holds.
func effective(n paths.Node) []rbac.Subject {
	if n.Kind == "Node" {
		return []rbac.Subject{{Kind: rbac.KindUser, Name: "system:node:" + n.Name}, {Kind: rbac.KindGroup, Name: rbac.GroupNodes}, {Kind: rbac.KindGroup, Name: rbac.GroupAuthenticated}}
	}
	s := subjectOf(n)
	out := []rbac.Subject{s}
	for _, g := range paths.Memberships(s) {
		out = append(out, g)
		out = append(out, paths.Memberships(g)...)
	}
	return out
}

// rulesOf returns the rules of a role a step acts as (bound by rbac-bind
// or escalated) and whether the node is a role.
func (c *checker) rulesOf(n paths.Node, escalated bool) ([]rbacv1.PolicyRule, bool) {
	if escalated {
		return []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}, true
	}
	switch n.Kind {
	case "ClusterRole":
		rules, _ := c.p.ClusterRoleRules(n.Name)
		return rules, true
	case "Role":
		if r := c.inv.Role(n.Namespace, n.Name); r != nil {
			return r.Rules, true
		}
		return nil, true
	}
	return nil, false
}

func (c *checker) reads(n paths.Node, s *inventory.Secret) bool {
	if rules, ok := c.rulesOf(n, false); ok {
		all, names := rbac.SecretReads(rules)
		return all != 0 || names[s.Name] != 0
	}
	subjects := effective(n)
	for _, r := range c.ix.Readers(s.Namespace, s.Name) {
		if slices.Contains(subjects, r.Subject) {
			return true
		}
	}
	return false
}

func (c *checker) allowed(st paths.Step, escalated bool) bool {
	p := st.Permission
	resource, sub, _ := strings.Cut(p.Resource, "/")
	name := p.Name
	if name == "" && p.Verb != "create" {
		name = anyName
	}
	attrs := rbac.Attributes{Verb: p.Verb, APIGroup: p.APIGroup, Resource: resource, Subresource: sub, Name: name}
	if rules, ok := c.rulesOf(st.Subject, escalated); ok {
		// A role bound in a namespace grants there only.
		if st.Subject.Namespace != "" && p.Namespace != st.Subject.Namespace {
			return false
		}
		for i := range rules {
			if rbac.RuleAllows(&rules[i], attrs) {
				return true
			}
		}
		return false
	}
	key := fmt.Sprintf("%+v/%s", attrs, p.Namespace)
	grantees, ok := c.whoCan[key]
	if !ok {
		grantees = map[rbac.Subject][]rbac.Via{}
		for _, g := range c.p.WhoCan(attrs, p.Namespace) {
			grantees[g.Subject] = g.Via
		}
		c.whoCan[key] = grantees
	}
	for _, s := range effective(st.Subject) {
		vias, ok := grantees[s]
		if !ok {
			continue
		}
		// The step's grants must be among those that allow it.
		for _, v := range st.Via {
			if !slices.ContainsFunc(vias, func(w rbac.Via) bool { return v.Binding != nil && w.Binding != nil && *v.Binding == *w.Binding }) {
				continue
			}
			return true
		}
	}
	return false
}
