package rbac

import (
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// Verbs is a set of the three verbs that return a Secret's value.
type Verbs uint8

// The read verbs. get, list and watch each return the Secret's data.
const (
	VerbGet Verbs = 1 << iota
	VerbList
	VerbWatch

	AllReadVerbs = VerbGet | VerbList | VerbWatch
)

var readVerbNames = [...]struct {
	v    Verbs
	name string
}{{VerbGet, "get"}, {VerbList, "list"}, {VerbWatch, "watch"}}

// Names returns the verbs in the order get, list, watch.
func (v Verbs) Names() []string {
	out := make([]string, 0, 3)
	for _, n := range readVerbNames {
		if v&n.v != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// ParseVerb returns the read verb named s, or 0.
func ParseVerb(s string) Verbs {
	for _, n := range readVerbNames {
		if n.name == s {
			return n.v
		}
	}
	return 0
}

// Via is one reason a subject holds a permission: a binding and its role,
// or membership of system:masters, which bypasses RBAC.
type Via struct {
	Binding   *inventory.Ref `json:"binding,omitempty"`
	Role      *inventory.Ref `json:"role,omitempty"`
	Superuser bool           `json:"superuser,omitempty"`
}

func (v Via) less(o Via) bool {
	if v.Superuser != o.Superuser {
		return v.Superuser
	}
	if v.Binding == nil || o.Binding == nil {
		return v.Binding == nil && o.Binding != nil
	}
	if *v.Binding != *o.Binding {
		return v.Binding.Less(*o.Binding)
	}
	return v.Role.Less(*o.Role)
}

func (v Via) equal(o Via) bool {
	if v.Superuser != o.Superuser || (v.Binding == nil) != (o.Binding == nil) {
		return false
	}
	return v.Binding == nil || (*v.Binding == *o.Binding && *v.Role == *o.Role)
}

// Reader is a subject that RBAC lets read a Secret directly, with the union
// of its read verbs and every grant that gives them.
type Reader struct {
	Subject Subject
	Verbs   Verbs
	Via     []Via
}

type readGrant struct {
	all   Verbs
	names map[string]Verbs
}

func (g readGrant) empty() bool { return g.all == 0 && len(g.names) == 0 }

// secretReads extracts from rules what they grant on core/v1 Secrets.
func secretReads(rules []rbacv1.PolicyRule) readGrant {
	var g readGrant
	for i := range rules {
		r := &rules[i]
		if !APIGroupMatches(r, "") || !ResourceMatches(r, "secrets", "") {
			continue
		}
		var v Verbs
		for _, n := range readVerbNames {
			if VerbMatches(r, n.name) {
				v |= n.v
			}
		}
		if v == 0 {
			continue
		}
		if len(r.ResourceNames) == 0 {
			g.all |= v
			continue
		}
		if g.names == nil {
			g.names = map[string]Verbs{}
		}
		for _, name := range r.ResourceNames {
			if name == "" {
				// A list or watch without a field selector is authorized
				// with an empty name, so resourceNames [""] allows listing
				// every Secret in scope: a grant on all names.
				g.all |= v & (VerbList | VerbWatch)
				continue
			}
			g.names[name] |= v
		}
	}
	return g
}

type grant struct {
	subject Subject
	verbs   Verbs
	via     Via
}

type scope struct {
	all   []grant
	named map[string][]grant
}

func (s *scope) add(subject Subject, g readGrant, via Via) {
	if g.all != 0 {
		s.all = append(s.all, grant{subject, g.all, via})
	}
	for name, v := range g.names {
		if s.named == nil {
			s.named = map[string][]grant{}
		}
		s.named[name] = append(s.named[name], grant{subject, v, via})
	}
}

// ReadIndex answers who can read each Secret directly. It holds each
// namespace's grants once; a Secret's readers are its namespace's shared
// reader list, plus the grants restricted to its name.
type ReadIndex struct {
	cluster    scope
	namespaces map[string]*scope
	base       map[string][]Reader
	clusterOut []Reader
}

// Superuser is the reader every Secret has: the system:masters group.
var Superuser = Reader{
	Subject: Subject{Kind: KindGroup, Name: GroupMasters},
	Verbs:   AllReadVerbs,
	Via:     []Via{{Superuser: true}},
}

// NewReadIndex builds the index for every binding of the policy.
func NewReadIndex(p *Policy) *ReadIndex {
	ix := &ReadIndex{namespaces: map[string]*scope{}, base: map[string][]Reader{}}
	grants := map[inventory.Ref]readGrant{}
	for _, b := range p.Bindings() {
		if !b.RoleFound || len(b.Subjects) == 0 {
			continue
		}
		g, ok := grants[b.Role]
		if !ok {
			g = secretReads(b.Rules)
			grants[b.Role] = g
		}
		if g.empty() {
			continue
		}
		target := &ix.cluster
		if b.Namespace != "" {
			target = ix.namespaces[b.Namespace]
			if target == nil {
				target = &scope{}
				ix.namespaces[b.Namespace] = target
			}
		}
		binding, role := b.Ref, b.Role
		via := Via{Binding: &binding, Role: &role}
		for _, s := range b.Subjects {
			target.add(s, g, via)
		}
	}
	ix.clusterOut = mergeReaders(nil, ix.cluster.all)
	for _, ns := range p.inv.SecretNamespaces() {
		ix.base[ns] = ix.namespaceReaders(ns)
	}
	return ix
}

func (ix *ReadIndex) namespaceReaders(ns string) []Reader {
	s := ix.namespaces[ns]
	if s == nil || len(s.all) == 0 {
		return ix.clusterOut
	}
	return mergeReaders(ix.clusterOut, s.all)
}

// Readers returns the subjects that can read Secret ns/name directly,
// sorted by subject. The slice may be shared between Secrets: callers must
// not modify it.
func (ix *ReadIndex) Readers(ns, name string) []Reader {
	base, ok := ix.base[ns]
	if !ok {
		base = ix.namespaceReaders(ns)
	}
	extra := ix.cluster.named[name]
	if s := ix.namespaces[ns]; s != nil {
		if more := s.named[name]; len(more) > 0 {
			extra = append(append([]grant(nil), extra...), more...)
		}
	}
	if len(extra) == 0 {
		return base
	}
	return mergeReaders(base, extra)
}

// mergeReaders returns base plus grants, one Reader per subject, sorted.
// base is never modified; it must be sorted by subject, as every result of
// mergeReaders is. An empty base stands for the Superuser alone.
//
// It sorts the grants and merges them into base in one pass, so that a
// Secret with a name-restricted grant costs a copy of its namespace's
// list, not a rebuilt index and a full sort of it.
func mergeReaders(base []Reader, grants []grant) []Reader {
	if len(base) == 0 {
		base = []Reader{Superuser}
	}
	sorted := make([]grant, len(grants))
	copy(sorted, grants)
	// Stable, so that each subject's Vias keep the grants' order before
	// sortVia; the result does not depend on it, but stays reproducible.
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].subject.Less(sorted[j].subject) })

	out := make([]Reader, 0, len(base)+len(sorted))
	i := 0
	for j := 0; j < len(sorted); {
		subject := sorted[j].subject
		for i < len(base) && base[i].Subject.Less(subject) {
			out = append(out, base[i])
			i++
		}
		r := Reader{Subject: subject}
		if i < len(base) && base[i].Subject == subject {
			// Copy-on-write: the Via slice is shared with base.
			r = base[i]
			r.Via = append([]Via(nil), r.Via...)
			i++
		}
		for ; j < len(sorted) && sorted[j].subject == subject; j++ {
			r.Verbs |= sorted[j].verbs
			r.Via = append(r.Via, sorted[j].via)
		}
		r.Via = sortVia(r.Via)
		out = append(out, r)
	}
	return append(out, base[i:]...)
}

func sortVia(v []Via) []Via {
	sort.Slice(v, func(i, j int) bool { return v[i].less(v[j]) })
	out := v[:0]
	for i, x := range v {
		if i > 0 && x.equal(out[len(out)-1]) {
			continue
		}
		out = append(out, x)
	}
	return out
}

// ClusterReaders returns the readers of every Secret of every namespace:
// the subjects of ClusterRoleBindings whose role reads Secrets by any
// name, and system:masters. Every namespace's list starts from it; callers
// must not modify it.
func (ix *ReadIndex) ClusterReaders() []Reader { return ix.clusterOut }

// Grantees returns every subject that holds some Secret read grant, in any
// namespace or cluster-wide, whether or not a Secret it reaches is in the
// inventory: what its credentials can do, not what they reach today.
// system:masters is not included.
func (ix *ReadIndex) Grantees() map[Subject]bool {
	out := map[Subject]bool{}
	addScope := func(s *scope) {
		for _, g := range s.all {
			out[g.subject] = true
		}
		for _, gs := range s.named {
			for _, g := range gs {
				out[g.subject] = true
			}
		}
	}
	addScope(&ix.cluster)
	for _, s := range ix.namespaces {
		addScope(s)
	}
	return out
}

// SecretReads returns what rules grant on core/v1 Secrets: the read verbs
// that reach every name, and the verbs granted per restricted name. A verb
// reaches Secret X when the authorizer allows it with name X, or, for list
// and watch, with the empty name of an unfiltered list.
func SecretReads(rules []rbacv1.PolicyRule) (all Verbs, names map[string]Verbs) {
	g := secretReads(rules)
	return g.all, g.names
}
