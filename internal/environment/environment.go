// Package environment owns keyhole's environments: the ordered list, lowest
// first (dev < staging < prod), that the config maps namespaces to with
// label selectors; which namespace and which identity belongs to which
// environment; and which readers of a Secret come from an environment
// lower than the Secret's (rule KH610). It does no I/O. docs/environments.md
// is the contract: every definition here is stated there.
package environment

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// Environment is one environment: a name, and the namespaces whose labels
// its selector matches.
type Environment struct {
	Name     string
	Selector labels.Selector
}

// None is the index of no environment.
const None = -1

// Basis says why an identity, or a reader, belongs to an environment.
type Basis string

// The bases, as the report's crossEnvironment[].basis names them.
const (
	// ByNamespace: a ServiceAccount of a namespace of the environment, or
	// the group system:serviceaccounts:NS of such a namespace.
	ByNamespace Basis = "namespace"
	// ByBindings: a User or Group that every RoleBinding and
	// ClusterRoleBinding naming it binds by a RoleBinding in a namespace
	// of the environment (and at least one does).
	ByBindings Basis = "bindings"
	// ByPath: a reader that belongs to no environment, whose indirect
	// path's first step is a request in a namespace of the environment.
	ByPath Basis = "path"
)

// Membership is where an identity belongs.
type Membership struct {
	// Env is the environment's index in the list, lowest first, or None.
	Env   int
	Basis Basis
	// Namespaces are the namespaces that place the identity in Env,
	// sorted: its own for a ServiceAccount or its group, those of its
	// RoleBindings for a User or Group.
	Namespaces []string
}

// Conflict is a namespace that two or more environments select. It
// belongs to none: choosing one would hide exposure either way (as the
// higher, its identities' reads of that environment's Secrets go unseen;
// as the lower, its Secrets' readers do).
type Conflict struct {
	Namespace string
	// Environments are the names of the environments that select it, in
	// the configured order.
	Environments []string
	// Selectors are their selectors, as parsed.
	Selectors []string
}

func (c Conflict) String() string {
	parts := make([]string, len(c.Environments))
	for i := range c.Environments {
		parts[i] = fmt.Sprintf("%s (%s)", c.Environments[i], c.Selectors[i])
	}
	return fmt.Sprintf("namespace %s is selected by environments %s: a namespace belongs to at most one environment, so %s is in none and its Secrets and identities are left out of the cross-environment analysis; narrow the selectors",
		c.Namespace, strings.Join(parts, " and "), c.Namespace)
}

// Map places namespaces and identities in environments. It is built once
// per analysis and caches memberships: it is not safe for concurrent use.
type Map struct {
	envs      []Environment
	byNS      map[string]int
	selected  []int
	conflicts []Conflict
	policy    *rbac.Policy
	members   map[rbac.Subject]Membership
}

// New places every namespace of the inventory in the environments envs
// (lowest first) whose selectors match its labels; p answers which
// bindings name a User or Group. A namespace without a Namespace object
// (offline, manifests often have none) has no labels and so belongs to no
// environment.
func New(envs []Environment, namespaces []*corev1.Namespace, p *rbac.Policy) *Map {
	m := &Map{envs: envs, byNS: map[string]int{}, selected: make([]int, len(envs)), policy: p, members: map[rbac.Subject]Membership{}}
	for _, ns := range namespaces {
		set := labels.Set(ns.Labels)
		var matched []int
		for i, e := range envs {
			if e.Selector.Matches(set) {
				matched = append(matched, i)
			}
		}
		switch len(matched) {
		case 0:
		case 1:
			m.byNS[ns.Name] = matched[0]
			m.selected[matched[0]]++
		default:
			c := Conflict{Namespace: ns.Name}
			for _, i := range matched {
				c.Environments = append(c.Environments, envs[i].Name)
				c.Selectors = append(c.Selectors, envs[i].Selector.String())
			}
			m.conflicts = append(m.conflicts, c)
		}
	}
	return m
}

// Conflicts returns the namespaces several environments select, in the
// order of the namespaces given to New.
func (m *Map) Conflicts() []Conflict { return m.conflicts }

// Len is the number of environments.
func (m *Map) Len() int { return len(m.envs) }

// Name is the name of environment i.
func (m *Map) Name(i int) string { return m.envs[i].Name }

// Selector is the selector of environment i, as parsed.
func (m *Map) Selector(i int) string { return m.envs[i].Selector.String() }

// Selected is the number of namespaces environment i holds.
func (m *Map) Selected(i int) int { return m.selected[i] }

// Namespace returns the environment of namespace ns, or None.
func (m *Map) Namespace(ns string) int {
	if i, ok := m.byNS[ns]; ok {
		return i
	}
	return None
}

// Subject returns where identity s belongs:
//   - a ServiceAccount, in its namespace's environment;
//   - the group system:serviceaccounts:NS, in NS's environment;
//   - any other User or Group, in environment E when at least one binding
//     names it and every RoleBinding and ClusterRoleBinding that names it
//     is a RoleBinding in a namespace of E (dangling bindings included:
//     they say where the subject is administered). A ClusterRoleBinding,
//     or RoleBindings in namespaces of two environments or of none, place
//     it nowhere: a subject bound in dev and cluster-wide is not "dev".
//
// The groups that stand for everyone (system:authenticated,
// system:unauthenticated, system:serviceaccounts) and system:anonymous
// belong to no environment.
func (m *Map) Subject(s rbac.Subject) Membership {
	if mem, ok := m.members[s]; ok {
		return mem
	}
	mem := m.subject(s)
	m.members[s] = mem
	return mem
}

func (m *Map) subject(s rbac.Subject) Membership {
	none := Membership{Env: None}
	if s.IsEveryone() {
		return none
	}
	switch s.Kind {
	case rbac.KindServiceAccount:
		return m.ofNamespace(s.Namespace)
	case rbac.KindGroup:
		if ns, ok := strings.CutPrefix(s.Name, rbac.GroupServiceAccountsPrefix); ok && ns != "" {
			return m.ofNamespace(ns)
		}
	}
	bindings := m.policy.BindingsOf(s)
	if len(bindings) == 0 {
		return none
	}
	env := None
	var namespaces []string
	for _, b := range bindings {
		if b.Namespace == "" {
			return none // a ClusterRoleBinding
		}
		e := m.Namespace(b.Namespace)
		if e == None || (env != None && e != env) {
			return none
		}
		env = e
		namespaces = append(namespaces, b.Namespace)
	}
	slices.Sort(namespaces)
	return Membership{Env: env, Basis: ByBindings, Namespaces: slices.Compact(namespaces)}
}

func (m *Map) ofNamespace(ns string) Membership {
	e := m.Namespace(ns)
	if e == None {
		return Membership{Env: None}
	}
	return Membership{Env: e, Basis: ByNamespace, Namespaces: []string{ns}}
}

// Read is a reader of a Secret that comes from an environment lower than
// the Secret's.
type Read struct {
	Reader *paths.Reader
	// From is the reader's environment.
	From  int
	Basis Basis
	// Namespaces are the namespaces that place the reader in From: its
	// identity's (Membership.Namespaces), or for ByPath the namespace of
	// its path's first request.
	Namespaces []string
}

// Reads returns, in the readers' order, the readers of a Secret of
// environment env that come from a lower environment:
//   - a reader whose identity belongs to a lower environment (Subject),
//     whatever its path;
//   - a reader whose identity belongs to no environment, and whose path
//     is indirect with a first step that is a request in a namespace of a
//     lower environment (creating a pod in a dev namespace, minting a
//     token for a dev ServiceAccount): whoever can do that in dev reaches
//     the Secret through dev.
//
// A reader whose identity belongs to env or a higher environment is never
// one, even if its path runs through a lower one: it is not a lower
// environment's identity. skip, when not nil, leaves readers out (the
// expected ones).
func (m *Map) Reads(env int, readers paths.Readers, skip func(*paths.Reader) bool) []Read {
	if env == None || env == 0 {
		return nil
	}
	var out []Read
	for r := range readers.Refs() {
		if skip != nil && skip(r) {
			continue
		}
		mem := m.Subject(r.Subject)
		if mem.Env != None {
			if mem.Env < env {
				out = append(out, Read{Reader: r, From: mem.Env, Basis: mem.Basis, Namespaces: mem.Namespaces})
			}
			continue
		}
		if r.Subject.IsEveryone() || len(r.Steps) == 0 {
			continue
		}
		ns := r.Steps[0].Permission.Namespace
		if e := m.Namespace(ns); e != None && e < env {
			out = append(out, Read{Reader: r, From: e, Basis: ByPath, Namespaces: []string{ns}})
		}
	}
	return out
}

// Parse makes the environment name from a namespace label selector in
// Kubernetes syntax ("environment in (prod, production)",
// "environment=staging,team!=sandbox"). An empty selector, which would
// select every namespace, is refused.
func Parse(name, selector string) (Environment, error) {
	if strings.TrimSpace(selector) == "" {
		return Environment{}, fmt.Errorf("an empty selector selects every namespace")
	}
	sel, err := labels.Parse(selector)
	if err != nil {
		return Environment{}, fmt.Errorf("%q is not a label selector: %v", selector, err)
	}
	if sel.Empty() {
		return Environment{}, fmt.Errorf("%q selects every namespace", selector)
	}
	return Environment{Name: name, Selector: sel}, nil
}
