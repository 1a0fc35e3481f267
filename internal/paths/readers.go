package paths

import (
	"sort"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// Result answers, per Secret, who can obtain it and how.
type Result struct {
	g *graph
	s *searcher
	// secretTerms lists, per Secret, the terminals that yield it beyond
	// its namespace's: pods that show it, nodes that read it, patches by
	// name.
	secretTerms map[nsName][]int32
	// grantReaders are the rbac-bind and rbac-escalate grants that read
	// Secrets.
	grantReaders []int32

	nsCache    map[string]*nsReaders
	finals     map[finalKey]*Step
	steps      map[stepsKey][]Step
	directConv map[readerListKey][]Reader
}

type finalKey struct {
	subject   Node
	ns, name  string
	verbs     rbac.Verbs
	escalated bool
}

type stepsKey struct {
	chain *chain
	final *Step
}

type readerListKey struct {
	first *rbac.Reader
	n     int
}

// candidate is one source's way to a Secret: a chain, and the final
// read when the chain ends at an identity that reads it.
type candidate struct {
	source int32
	n      int
	chain  *chain
	final  *Step
	verbs  rbac.Verbs
}

type nsReaders struct {
	direct     []rbac.Reader
	candidates []candidate // best per source, sorted by source
	readers    []Reader
}

// Analyze builds the identity graph of the policy's inventory and finds
// every source's shortest chains. ix must be the policy's read index.
func Analyze(p *rbac.Policy, ix *rbac.ReadIndex, opts Options) *Result {
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	g := newGraph(p, ix, opts)
	readers := ix.Grantees()
	readers[rbac.Superuser.Subject] = true
	s := &searcher{g: g, maxDepth: opts.MaxDepth, reached: map[int32][]hit{}, termHits: map[int32][]hit{}, readers: readers}
	subjects := map[rbac.Subject]bool{}
	for _, b := range p.Bindings() {
		if !b.RoleFound {
			continue
		}
		for _, subj := range b.Subjects {
			subjects[subj] = true
		}
	}
	for _, subj := range sortedSubjects(subjects) {
		s.sources = append(s.sources, sourceInfo{subject: subj, id: g.subjectID(subj), members: append([]rbac.Subject{subj}, Memberships(subj)...)})
	}
	for _, n := range g.nodes {
		user := rbac.Subject{Kind: rbac.KindUser, Name: nodeUserPrefix + n}
		s.sources = append(s.sources, sourceInfo{subject: user, id: g.nodeID(n), members: g.ids[g.nodeID(n)].effective})
	}
	s.run()
	r := &Result{g: g, s: s, secretTerms: map[nsName][]int32{}, nsCache: map[string]*nsReaders{},
		finals: map[finalKey]*Step{}, steps: map[stepsKey][]Step{}, directConv: map[readerListKey][]Reader{}}
	for id := range s.reached {
		if g.ids[id].kind == idGrant {
			r.grantReaders = append(r.grantReaders, id)
		}
	}
	sort.Slice(r.grantReaders, func(i, j int) bool { return r.grantReaders[i] < r.grantReaders[j] })
	r.indexPodTerminals()
	return r
}

// indexPodTerminals links each Secret to the reached terminals of the pods
// and nodes that hold it, and of patches by name.
func (r *Result) indexPodTerminals() {
	g := r.g
	add := func(ns, name string, t terminal) {
		id, ok := g.byTerm[t]
		if !ok || len(r.s.termHits[id]) == 0 || g.inv.Secret(ns, name) == nil {
			return
		}
		k := nsName{ns, name}
		for _, x := range r.secretTerms[k] {
			if x == id {
				return
			}
		}
		r.secretTerms[k] = append(r.secretTerms[k], id)
	}
	for _, p := range g.pods {
		if p.running {
			for _, s := range p.visible {
				if p.name != "" {
					add(p.namespace, s, terminal{kind: tExec, ns: p.namespace, name: p.name})
				}
				add(p.namespace, s, terminal{kind: tExecAll, ns: p.namespace})
				add(p.namespace, s, terminal{kind: tExecAll})
				if p.node != "" {
					add(p.namespace, s, terminal{kind: tKubelet, name: p.node})
					add(p.namespace, s, terminal{kind: tKubelet, name: anyNode})
				}
			}
		}
		if p.node == "" && !g.opts.Offline {
			continue
		}
		for _, ref := range p.nodeReads {
			if p.node != "" {
				add(ref.Namespace, ref.Name, terminal{kind: tNodeReads, name: p.node})
			}
			add(ref.Namespace, ref.Name, terminal{kind: tNodeReads, name: anyNode})
		}
	}
	for t, id := range g.byTerm {
		if t.kind == tPatch {
			add(t.ns, t.name, g.terms[id])
		}
	}
}

// Readers returns every reader of s, direct and indirect, sorted by
// subject: one per subject, by its shortest path. The slice may be shared
// between Secrets: callers must not modify it.
func (r *Result) Readers(sec *inventory.Secret) []Reader {
	ns := r.namespace(sec.Namespace)
	direct := r.g.ix.Readers(sec.Namespace, sec.Name)
	terms := r.secretTerms[nsName{sec.Namespace, sec.Name}]
	grants := r.namedGrantCandidates(sec)
	sameDirect := keyOf(direct) == keyOf(ns.direct)
	if sameDirect && len(terms) == 0 && len(grants) == 0 {
		return ns.readers
	}
	cands := append([]candidate(nil), ns.candidates...)
	if !sameDirect {
		cands = append(cands, r.directCandidates(direct, sec.Namespace, sec.Name)...)
	}
	cands = append(cands, grants...)
	for _, t := range terms {
		cands = append(cands, r.termCandidates(t)...)
	}
	best := bestPerSource(cands)
	if sameDirect && sameCandidates(best, ns.candidates) {
		return ns.readers
	}
	return r.build(direct, best)
}

func keyOf(readers []rbac.Reader) readerListKey {
	k := readerListKey{n: len(readers)}
	if len(readers) > 0 {
		k.first = &readers[0]
	}
	return k
}

func sameCandidates(a, b []candidate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].source != b[i].source || a[i].chain != b[i].chain || a[i].final != b[i].final {
			return false
		}
	}
	return true
}

// namespace computes, once, what every Secret of ns shares: its
// namespace-wide direct readers, and the chains to them and to the
// terminals that yield every Secret of ns.
func (r *Result) namespace(ns string) *nsReaders {
	if c, ok := r.nsCache[ns]; ok {
		return c
	}
	g := r.g
	direct := g.ix.Readers(ns, "")
	cands := r.directCandidates(direct, ns, "")
	for _, id := range r.grantReaders {
		rg := g.ids[id].grant
		if rg.caps.readAll != 0 && covers(rg.scope, ns) {
			cands = append(cands, r.grantCandidates(id, ns, "", rg.caps.readAll)...)
		}
	}
	for _, t := range []terminal{{kind: tPodCreate, ns: ns}, {kind: tPodCreate}, {kind: tPatchAll, ns: ns}, {kind: tPatchAll}} {
		if id, ok := g.byTerm[t]; ok {
			cands = append(cands, r.termCandidates(id)...)
		}
	}
	c := &nsReaders{direct: direct, candidates: bestPerSource(cands)}
	c.readers = r.build(direct, c.candidates)
	r.nsCache[ns] = c
	return c
}

// directCandidates are the chains to each direct reader. name is empty
// for the namespace-wide list.
func (r *Result) directCandidates(direct []rbac.Reader, ns, name string) []candidate {
	var out []candidate
	for i := range direct {
		d := &direct[i]
		id, ok := r.g.bySubject[d.Subject]
		if !ok {
			continue
		}
		hits := r.s.reached[id]
		if len(hits) == 0 {
			continue
		}
		final := r.final(finalKey{subject: subjectNode(d.Subject), ns: ns, name: name, verbs: d.Verbs}, d.Via)
		for _, h := range hits {
			out = append(out, candidate{source: h.source, n: h.chain.len() + 1, chain: h.chain, final: final, verbs: d.Verbs})
		}
	}
	return out
}

func (r *Result) namedGrantCandidates(sec *inventory.Secret) []candidate {
	var out []candidate
	for _, id := range r.grantReaders {
		rg := r.g.ids[id].grant
		if v := rg.caps.readNames[sec.Name]; v != 0 && covers(rg.scope, sec.Namespace) {
			out = append(out, r.grantCandidates(id, sec.Namespace, sec.Name, v)...)
		}
	}
	return out
}

func (r *Result) grantCandidates(id int32, ns, name string, verbs rbac.Verbs) []candidate {
	rg := r.g.ids[id].grant
	role := rg.role
	final := r.final(finalKey{subject: r.g.ids[id].display(), ns: ns, name: name, verbs: verbs, escalated: rg.escalated}, []rbac.Via{{Role: &role}})
	var out []candidate
	for _, h := range r.s.reached[id] {
		out = append(out, candidate{source: h.source, n: h.chain.len() + 1, chain: h.chain, final: final, verbs: verbs})
	}
	return out
}

func (r *Result) termCandidates(id int32) []candidate {
	hits := r.s.termHits[id]
	out := make([]candidate, len(hits))
	for i, h := range hits {
		out[i] = candidate{source: h.source, n: h.chain.len(), chain: h.chain}
	}
	return out
}

// final returns the shared last step of a read by an identity.
func (r *Result) final(k finalKey, via []rbac.Via) *Step {
	if s, ok := r.finals[k]; ok {
		return s
	}
	verb := "get"
	if names := k.verbs.Names(); len(names) > 0 {
		verb = names[0]
	}
	s := &Step{Kind: Direct, Subject: k.subject, Permission: Permission{Verb: verb, Resource: "secrets", Namespace: k.ns, Name: k.name}, Via: via}
	if k.escalated {
		s.Detail = escalatedDetail
	}
	r.finals[k] = s
	return s
}

func subjectNode(s rbac.Subject) Node {
	return Node{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name}
}

// bestPerSource keeps each source's shortest candidate, sorted by source.
// Ties go to the kind listed first in Kinds, then to the first found.
func bestPerSource(cands []candidate) []candidate {
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.source != b.source {
			return a.source < b.source
		}
		if a.n != b.n {
			return a.n < b.n
		}
		return firstKind(a).order() < firstKind(b).order()
	})
	out := cands[:0]
	for i, c := range cands {
		if i > 0 && c.source == out[len(out)-1].source {
			continue
		}
		out = append(out, c)
	}
	return out
}

func firstKind(c candidate) Kind {
	ch := c.chain
	for ch != nil && ch.prev != nil {
		ch = ch.prev
	}
	if ch == nil {
		return Direct
	}
	return ch.step.Kind
}

// build assembles a reader list: the direct readers, then every source
// that reaches the Secret by a chain, sorted by subject. A source is left
// out when a group it belongs to reads the Secret by a path as short as
// its own: the group's entry already covers it (everyone in
// system:authenticated can do what the group can).
func (r *Result) build(direct []rbac.Reader, cands []candidate) []Reader {
	steps := make(map[rbac.Subject]int, len(direct)+len(cands))
	for _, d := range direct {
		steps[d.Subject] = 0
	}
	for _, c := range cands {
		subj := r.s.sources[c.source].subject
		if n, ok := steps[subj]; !ok || c.n < n {
			steps[subj] = c.n
		}
	}
	out := append([]Reader(nil), r.convertDirect(direct)...)
	seen := map[rbac.Subject]bool{}
	for _, c := range cands {
		src := &r.s.sources[c.source]
		if seen[src.subject] || steps[src.subject] < c.n {
			continue
		}
		covered := false
		for _, m := range src.members {
			if n, ok := steps[m]; ok && m != src.subject && n <= c.n {
				covered = true
				break
			}
		}
		if n, ok := steps[src.subject]; covered || ok && n == 0 {
			continue
		}
		seen[src.subject] = true
		out = append(out, r.indirect(src.subject, c))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Subject.Less(out[j].Subject) })
	return out
}

func (r *Result) convertDirect(direct []rbac.Reader) []Reader {
	k := keyOf(direct)
	if out, ok := r.directConv[k]; ok {
		return out
	}
	out := make([]Reader, len(direct))
	for i, d := range direct {
		out[i] = Reader{Subject: d.Subject, Kind: Direct, Verbs: d.Verbs.Names(), Via: d.Via}
	}
	r.directConv[k] = out
	return out
}

var (
	patchVerbs = []string{"patch"}
	// The Node authorizer allows get, and list and watch by name.
	nodeVerbs = rbac.AllReadVerbs.Names()
)

func (r *Result) indirect(subject rbac.Subject, c candidate) Reader {
	steps := r.stepsOf(c)
	last := steps[len(steps)-1]
	var verbs []string
	switch {
	case c.final != nil:
		verbs = c.verbs.Names()
	case last.Kind == SecretPatch:
		verbs = patchVerbs
	case last.Kind == NodeAuthorizer:
		verbs = nodeVerbs
	default:
		verbs = []string{}
	}
	return Reader{Subject: subject, Kind: steps[0].Kind, Verbs: verbs, Via: steps[0].Via, Steps: steps}
}

// stepsOf materialises a candidate's steps, shared between Secrets. The
// last step reaches the Secret: its Reaches is left zero for the caller
// to fill in.
func (r *Result) stepsOf(c candidate) []Step {
	k := stepsKey{c.chain, c.final}
	if s, ok := r.steps[k]; ok {
		return s
	}
	n := c.chain.len()
	if c.final != nil {
		n++
	}
	out := make([]Step, n)
	i := c.chain.len() - 1
	for ch := c.chain; ch != nil; ch = ch.prev {
		out[i] = *ch.step
		i--
	}
	if c.final != nil {
		out[n-1] = *c.final
	}
	r.steps[k] = out
	return out
}

// Obtains reports whether subject s can obtain some Secret through an
// indirect path, whether or not the Secrets it reaches are in the
// inventory, and returns the first step of the shortest such path found.
// Its direct grants are not considered: rbac.ReadIndex answers for those.
// The search is the analysis's, from s alone, within the depth limit.
func (r *Result) Obtains(s rbac.Subject) (Step, bool) {
	g := r.g
	type item struct {
		id    int32
		first *Step
		depth int
	}
	seen := map[int32]bool{}
	var queue []item
	var visit func(id int32, first *Step, depth int)
	visit = func(id int32, first *Step, depth int) {
		if seen[id] {
			return
		}
		seen[id] = true
		queue = append(queue, item{id, first, depth})
		for _, m := range g.ids[id].members {
			visit(m, first, depth)
		}
	}
	visit(g.subjectID(s), nil, 0)
	for head := 0; head < len(queue); head++ {
		it := queue[head]
		if it.first != nil && r.s.isReader(g.ids[it.id]) {
			return *it.first, true
		}
		if it.depth >= r.s.maxDepth {
			continue
		}
		for _, e := range g.expand(it.id) {
			first := it.first
			if first == nil {
				first = e.step
			}
			if e.term {
				if g.yieldsSomething(g.terms[e.to]) {
					return *first, true
				}
				continue
			}
			if it.depth+1 < r.s.maxDepth {
				visit(e.to, first, it.depth+1)
			}
		}
	}
	return Step{}, false
}

// yieldsSomething reports whether a terminal yields some Secret: pod
// creation and patches do (any Secret of the namespace, present or not);
// exec, the kubelet API and a node's reads do when a pod they reach uses
// one.
func (g *graph) yieldsSomething(t terminal) bool {
	uses := func(pods []*pod, node bool) bool {
		for _, p := range pods {
			if len(p.visible) > 0 || node && len(p.nodeReads) > 0 {
				return true
			}
		}
		return false
	}
	switch t.kind {
	case tExec:
		p := g.podByName[nsName{t.ns, t.name}]
		return p != nil && len(p.visible) > 0
	case tExecAll:
		if t.ns != clusterScope {
			return uses(g.podsByNS[t.ns], false)
		}
		return uses(g.pods, false)
	case tKubelet:
		if t.name == anyNode {
			return uses(g.nodePods(anyNode), false)
		}
		return uses(g.podsByNode[t.name], false)
	case tNodeReads:
		return uses(g.nodePods(t.name), true)
	}
	return true
}
