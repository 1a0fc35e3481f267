package paths

import (
	"fmt"
	"iter"
	"maps"
	"slices"
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

	nsCache   map[nsCombo]*nsReaders
	cluster   []candidate
	clusterAt map[rbac.Subject]rbac.Reader
	termCands map[int32][]candidate
	// table is scratch space for assembling namespace lists.
	table bestTable
	// narrowCands are termCands less what broader terminals beat.
	narrowCands map[int32][]candidate
	// grantsByName indexes the bound roles that read Secrets by name.
	grantsByName map[string][]int32
	// finals are the last steps of reads by an identity, named by index
	// (finalID; 0 is none) so that candidates hold no pointer.
	finals     map[finalKey]finalID
	finalSteps []Step
	steps      map[stepsKey][]Step
	directConv map[readerListKey][]Reader

	// subjects indexes the subjects of sources, their groups and direct
	// readers for the scratch tables; srcSubject and srcMembers are each
	// source's subject and other member subjects by index.
	subjects   map[rbac.Subject]int32
	srcSubject []int32
	srcMembers [][]int32
	srcRank    []int32
	// chosen is build's scratch space.
	chosen    []candidate
	directIdx map[readerListKey][]int32
	scratch   subjectTable
	verbs     map[rbac.Verbs][]string
	// broader caches broaderBest.
	broader map[[2]terminal][]candidate
}

type finalKey struct {
	subject   Node
	ns, name  string
	verbs     rbac.Verbs
	escalated bool
}

type stepsKey struct {
	route route
	final finalID
}

// finalID names a final read step in Result.finalSteps; 0 is none.
type finalID int32

type readerListKey struct {
	first *rbac.Reader
	n     int
}

// candidate is one source's way to a Secret: a chain, and the final
// read when the chain ends at an identity that reads it. It holds no
// pointer: there are millions, and the garbage collector need not scan
// them.
type candidate struct {
	source int32
	// rank orders the first step's kind (Kind.order): the tie-break of
	// paths of one length.
	rank  int32
	n     int32
	route route
	final finalID
	verbs rbac.Verbs
}

type nsReaders struct {
	direct     []rbac.Reader
	candidates []candidate // best per source, sorted by source
	// readers is the list, built when a Secret first needs it (sharedOf):
	// a namespace's list without the terminals its Secrets share is not
	// built when every Secret of it has some.
	readers []Reader
	built   bool
	// lookups are made when a Secret of the namespace first needs them.
	lookups *nsLookups
}

// nsLookups index a shared list: steps is each reader subject's (by
// subject index) steps; directAt each direct reader's index; members
// lists, per group, the indexes of the readers that belong to it.
type nsLookups struct {
	members  map[rbac.Subject][]int
	steps    map[int32]int
	directAt map[rbac.Subject]int
}

// lookups returns the list's lookups, making them once.
func (r *Result) lookups(ns *nsReaders) *nsLookups {
	if ns.lookups != nil {
		return ns.lookups
	}
	l := &nsLookups{directAt: make(map[rbac.Subject]int, len(ns.direct)), steps: map[int32]int{}}
	for i, d := range ns.direct {
		l.directAt[d.Subject] = i
	}
	t := r.shortest(ns.direct, ns.candidates)
	for _, idx := range t.touched {
		l.steps[idx] = int(t.steps[idx])
	}
	ns.lookups = l
	return l
}

// members returns, per group, the indexes of the shared list's readers
// that belong to it, made once.
func (r *Result) members(ns *nsReaders) map[rbac.Subject][]int {
	l := r.lookups(ns)
	if l.members != nil {
		return l.members
	}
	l.members = map[rbac.Subject][]int{}
	for i, rd := range r.sharedOf(ns) {
		for _, g := range Memberships(rd.Subject) {
			l.members[g] = append(l.members[g], i)
			for _, gg := range Memberships(g) {
				l.members[gg] = append(l.members[gg], i)
			}
		}
	}
	return l.members
}

// Analyze builds the identity graph of the policy's inventory and finds
// every source's shortest chains. ix must be the policy's read index.
func Analyze(p *rbac.Policy, ix *rbac.ReadIndex, opts Options) *Result {
	return analyze(p, ix, opts, false)
}

// analyze is Analyze; noShortcuts makes the search follow every edge.
func analyze(p *rbac.Policy, ix *rbac.ReadIndex, opts Options, noShortcuts bool) *Result {
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	g := newGraph(p, ix, opts)
	g.noShortcuts = noShortcuts
	readers := ix.Grantees()
	readers[rbac.Superuser.Subject] = true
	s := &searcher{g: g, maxDepth: opts.MaxDepth, readers: readers, noShortcuts: noShortcuts}
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
	// A kubelet's own reads are listed; what its pods' tokens reach
	// further is not listed for the kubelet, a trusted identity, but is
	// followed for whoever reaches a node.
	for _, n := range g.nodes {
		user := rbac.Subject{Kind: rbac.KindUser, Name: nodeUserPrefix + n}
		s.sources = append(s.sources, sourceInfo{subject: user, id: g.nodeID(n), members: g.ids[g.nodeID(n)].effective, maxDepth: 1})
	}
	s.budget = opts.MaxHits
	if s.budget <= 0 {
		s.budget = DefaultMaxHits
	}
	s.isSource = make(map[int32]bool, len(s.sources))
	for _, src := range s.sources {
		s.isSource[src.id] = true
	}
	s.run()
	if s.exceeded {
		// Partial chains would understate some Secrets and not others:
		// keep none, nor the chains and routes they were made of.
		s.reached, s.termHits = nil, nil
		s.chains, s.routes = nil, nil
	}
	r := &Result{g: g, s: s, secretTerms: map[nsName][]int32{}, grantsByName: map[string][]int32{},
		finals: map[finalKey]finalID{}, finalSteps: []Step{{}}, subjects: map[rbac.Subject]int32{}, verbs: map[rbac.Verbs][]string{}}
	r.resetLists()
	r.indexSources()
	for id, hits := range s.reached {
		if len(hits) > 0 && g.ids[id].kind == idGrant {
			r.grantReaders = append(r.grantReaders, index(id))
		}
	}
	for _, id := range r.grantReaders {
		for name := range g.ids[id].grant.caps.readNames {
			r.grantsByName[name] = append(r.grantsByName[name], id)
		}
	}
	r.indexPodTerminals()
	return r
}

// resetLists starts the reader lists and what they are built from
// afresh, keeping the graph and the search.
func (r *Result) resetLists() {
	r.nsCache = map[nsCombo]*nsReaders{}
	r.termCands = map[int32][]candidate{}
	r.narrowCands = map[int32][]candidate{}
	r.steps = map[stepsKey][]Step{}
	r.directConv = map[readerListKey][]Reader{}
	r.directIdx = map[readerListKey][]int32{}
	r.broader = map[[2]terminal][]candidate{}
	r.cluster = nil
	r.chosen = nil
	r.table = bestTable{}
	r.scratch = subjectTable{}
}

// Fork returns a Result that answers as r does, with caches and scratch
// space of its own: forks of one Result may assemble reader lists on
// different goroutines at once, since what they share (the graph and the
// search) they only read. r must not be used while its forks are.
func (r *Result) Fork() *Result {
	f := &Result{g: r.g, s: r.s, secretTerms: r.secretTerms, grantReaders: r.grantReaders, grantsByName: r.grantsByName,
		finals: map[finalKey]finalID{}, finalSteps: []Step{{}}, subjects: maps.Clone(r.subjects), verbs: map[rbac.Verbs][]string{},
		srcSubject: r.srcSubject, srcMembers: r.srcMembers, srcRank: r.srcRank}
	f.resetLists()
	return f
}

// indexPodTerminals links each Secret to the reached terminals of the pods
// and nodes that hold it, and of patches by name.
func (r *Result) indexPodTerminals() {
	g := r.g
	add := func(ns, name string, t terminal) {
		id, ok := g.byTerm[t]
		if !ok || len(r.s.termHitsAt(id)) == 0 || g.inv.Secret(ns, name) == nil {
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

// Exceeded reports whether the search gave up past its budget
// (Options.MaxHits): the readers are then the direct ones only, and the
// caller must say so.
func (r *Result) Exceeded() bool { return r.s.exceeded }

// Readers is one Secret's readers: entries shared with the other Secrets
// of its namespace, and the Secret's own (its name-restricted grants, the
// pods and nodes that use it), which replace shared entries of the same
// subject. Both are sorted by subject. Keeping the shared part shared is
// what keeps a cluster where thousands of subjects reach every Secret
// from costing Secrets × subjects entries.
type Readers struct {
	Shared []Reader
	Own    []Reader
}

// All yields every reader once, sorted by subject.
func (rs Readers) All() iter.Seq[Reader] {
	return func(yield func(Reader) bool) {
		for r := range rs.Refs() {
			if !yield(*r) {
				return
			}
		}
	}
}

// Refs yields every reader once, sorted by subject, as All does, but as
// pointers into the shared lists: the same reader of two Secrets is the
// same pointer, so that callers can convert it once. Callers must not
// modify what they point to.
func (rs Readers) Refs() iter.Seq[*Reader] {
	return func(yield func(*Reader) bool) {
		for _, r := range rs.Indexed() {
			if !yield(r) {
				return
			}
		}
	}
}

// Indexed yields what Refs does, each with its index in Shared, or -1 for
// an entry of the Secret's own: callers can keep what they derive from a
// shared entry for every Secret that shares it.
func (rs Readers) Indexed() iter.Seq2[int, *Reader] {
	return func(yield func(int, *Reader) bool) {
		i, j := 0, 0
		for i < len(rs.Shared) || j < len(rs.Own) {
			at, next := -1, (*Reader)(nil)
			switch {
			case j == len(rs.Own) || i < len(rs.Shared) && rs.Shared[i].Subject.Less(rs.Own[j].Subject):
				at, next = i, &rs.Shared[i]
				i++
			case i < len(rs.Shared) && rs.Shared[i].Subject == rs.Own[j].Subject:
				next = &rs.Own[j] // replaces the shared entry
				i++
				j++
			default:
				next = &rs.Own[j]
				j++
			}
			if !yield(at, next) {
				return
			}
		}
	}
}

// Slice returns every reader in a new slice, sorted by subject.
func (rs Readers) Slice() []Reader {
	out := make([]Reader, 0, len(rs.Shared)+len(rs.Own))
	for r := range rs.All() {
		out = append(out, r)
	}
	return out
}

// Readers returns every reader of s, direct and indirect: one per
// subject, by its shortest path. Its slices may be shared between
// Secrets: callers must not modify them.
func (r *Result) Readers(sec *inventory.Secret) Readers {
	ns := r.namespace(sec.Namespace)
	direct := r.g.ix.Readers(sec.Namespace, sec.Name)
	var terms, common []int32
	for _, t := range r.secretTerms[nsName{sec.Namespace, sec.Name}] {
		if r.g.terms[t].shared() {
			common = append(common, t)
		} else {
			terms = append(terms, t)
		}
	}
	ns = r.withTerms(ns, sec.Namespace, common)
	grants := r.namedGrantCandidates(sec)
	sameDirect := keyOf(direct) == keyOf(ns.direct)
	if sameDirect && len(terms) == 0 && len(grants) == 0 {
		return Readers{Shared: r.sharedOf(ns)}
	}
	// Each source's best, the first offered on a tie.
	t := &r.table
	t.reset(len(r.s.sources))
	if !sameDirect {
		r.offerDirect(t, direct, sec.Namespace, sec.Name)
	}
	t.offerAll(grants)
	for _, term := range terms {
		t.offerAll(r.narrowCandidates(term))
	}
	own := t.sorted()
	// Keep what beats the namespace's entry for the source (in place: own
	// is not used after this). Both are sorted by source: one walk.
	l := r.lookups(ns)
	kept := own[:0]
	j := 0
	for _, c := range own {
		for j < len(ns.candidates) && ns.candidates[j].source < c.source {
			j++
		}
		if j == len(ns.candidates) || ns.candidates[j].source != c.source || better(c, ns.candidates[j]) {
			kept = append(kept, c)
		}
	}
	var ownDirect []rbac.Reader
	if !sameDirect {
		for _, d := range direct {
			if i, ok := l.directAt[d.Subject]; !ok || d.Verbs != ns.direct[i].Verbs || len(d.Via) != len(ns.direct[i].Via) {
				ownDirect = append(ownDirect, d)
			}
		}
	}
	if len(kept) == 0 && len(ownDirect) == 0 {
		return Readers{Shared: r.sharedOf(ns)}
	}
	if r.hidesShared(ns, kept) {
		// A group of the Secret's own now covers shared entries, which an
		// overlay cannot remove: build the whole list.
		return Readers{Shared: r.build(direct, mergeBest(ns.candidates, kept))}
	}
	return Readers{Shared: r.sharedOf(ns), Own: r.buildOwn(ns, direct, ownDirect, kept)}
}

// hidesShared reports whether a group among a Secret's own candidates
// reaches it in as few steps as a shared entry of one of its members,
// which the group's entry then covers.
func (r *Result) hidesShared(ns *nsReaders, own []candidate) bool {
	for _, c := range own {
		g := r.s.sources[c.source].subject
		if g.Kind != rbac.KindGroup {
			continue
		}
		for _, i := range r.members(ns)[g] {
			if len(r.sharedOf(ns)[i].Steps) >= int(c.n) {
				return true
			}
		}
	}
	return false
}

// shortest returns each subject's fewest steps to the Secret, by
// subject index: 0 for a direct reader, else its best candidate's. The
// table is the Result's scratch, valid until the next call.
func (r *Result) shortest(direct []rbac.Reader, cands []candidate) *subjectTable {
	idxs := r.directIndexes(direct) // may index new subjects: first
	t := &r.scratch
	t.reset(len(r.subjects))
	for _, idx := range idxs {
		t.offer(idx, 0)
	}
	for _, c := range cands {
		t.offer(r.srcSubject[c.source], int(c.n))
	}
	return t
}

// buildOwn assembles a Secret's own entries: its own direct readers, and
// the sources whose chain to it beats their namespace entry, unless they
// read it directly or a group they belong to covers them.
func (r *Result) buildOwn(ns *nsReaders, direct, ownDirect []rbac.Reader, cands []candidate) []Reader {
	shared := r.lookups(ns).steps
	t := r.shortest(ownDirect, cands)
	stepsOf := func(idx int32) (int, bool) {
		if n, ok := t.get(idx); ok {
			return n, true
		}
		n, ok := shared[idx]
		return n, ok
	}
	isDirect := make(map[int32]bool, len(direct))
	for _, idx := range r.directIndexes(direct) {
		isDirect[idx] = true
	}
	out := r.convertDirect(ownDirect)
	out = append([]Reader(nil), out...)
	for _, c := range cands {
		src := &r.s.sources[c.source]
		si := r.srcSubject[c.source]
		if n, _ := t.get(si); t.seen(si) || isDirect[si] || n < int(c.n) {
			continue
		}
		covered := false
		for _, m := range r.srcMembers[c.source] {
			if n, ok := stepsOf(m); ok && n <= int(c.n) {
				covered = true
				break
			}
		}
		if covered {
			continue
		}
		t.markSeen(si)
		out = append(out, r.indirect(src.subject, c))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Subject.Less(out[j].Subject) })
	return out
}

// subjectTable is scratch space indexed by subject index: each subject's
// fewest steps and whether a list holds it yet, reset by generation.
type subjectTable struct {
	steps            []int32
	stamp, seenStamp []uint32
	gen              uint32
	touched          []int32
}

func (t *subjectTable) reset(n int) {
	for len(t.steps) < n {
		t.steps = append(t.steps, 0)
		t.stamp = append(t.stamp, 0)
		t.seenStamp = append(t.seenStamp, 0)
	}
	t.gen++
	t.touched = t.touched[:0]
}

// offer lowers the subject's steps to n.
func (t *subjectTable) offer(idx int32, n int) {
	if t.stamp[idx] != t.gen {
		t.stamp[idx] = t.gen
		t.steps[idx] = int32(n) //nolint:gosec // G115: n is at most the depth
		t.touched = append(t.touched, idx)
		return
	}
	if int32(n) < t.steps[idx] { //nolint:gosec // G115: as above
		t.steps[idx] = int32(n) //nolint:gosec // G115: as above
	}
}

func (t *subjectTable) get(idx int32) (int, bool) {
	if t.stamp[idx] != t.gen {
		return 0, false
	}
	return int(t.steps[idx]), true
}

func (t *subjectTable) seen(idx int32) bool { return t.seenStamp[idx] == t.gen }

func (t *subjectTable) markSeen(idx int32) { t.seenStamp[idx] = t.gen }

// subjectIndex returns the index of a subject in the Result's subject
// tables, giving it one.
func (r *Result) subjectIndex(s rbac.Subject) int32 {
	if idx, ok := r.subjects[s]; ok {
		return idx
	}
	idx := index(len(r.subjects))
	r.subjects[s] = idx
	return idx
}

// indexSources gives every source's subject and member subjects an index,
// and every source its rank in subject order.
func (r *Result) indexSources() {
	r.srcSubject = make([]int32, len(r.s.sources))
	r.srcMembers = make([][]int32, len(r.s.sources))
	order := make([]int, len(r.s.sources))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return r.s.sources[order[i]].subject.Less(r.s.sources[order[j]].subject) })
	r.srcRank = make([]int32, len(r.s.sources))
	for rank, i := range order {
		r.srcRank[i] = index(rank)
	}
	for i := range r.s.sources {
		src := &r.s.sources[i]
		r.srcSubject[i] = r.subjectIndex(src.subject)
		for _, m := range src.members {
			if m != src.subject {
				r.srcMembers[i] = append(r.srcMembers[i], r.subjectIndex(m))
			}
		}
	}
}

// directIndexes returns the subject indexes of a direct reader list, made
// once per list.
func (r *Result) directIndexes(direct []rbac.Reader) []int32 {
	k := keyOf(direct)
	if out, ok := r.directIdx[k]; ok && len(direct) > 0 {
		return out
	}
	out := make([]int32, len(direct))
	for i, d := range direct {
		out[i] = r.subjectIndex(d.Subject)
	}
	if len(direct) > 0 {
		r.directIdx[k] = out
	}
	return out
}

func keyOf(readers []rbac.Reader) readerListKey {
	k := readerListKey{n: len(readers)}
	if len(readers) > 0 {
		k.first = &readers[0]
	}
	return k
}

// namespace computes, once, what every Secret of ns shares: its
// namespace-wide direct readers, and the chains to them and to the
// terminals that yield every Secret of ns.
func (r *Result) namespace(ns string) *nsReaders {
	if c, ok := r.nsCache[nsCombo{ns: ns}]; ok {
		return c
	}
	g := r.g
	direct := g.ix.Readers(ns, "")
	// The cluster-wide readers' chains are the same in every namespace.
	cluster := r.clusterCandidates() // uses the table too: first
	// Each source's best, the first offered on a tie: the cluster-wide
	// chains, then the namespace's own, then the terminals.
	t := &r.table
	t.reset(len(r.s.sources))
	t.offerAll(cluster)
	r.offerDirect(t, r.namespaceOnly(direct), ns, "")
	for _, id := range r.grantReaders {
		rg := g.ids[id].grant
		if rg.caps.readAll != 0 && covers(rg.scope, ns) {
			r.offerGrant(t, id, ns, "", rg.caps.readAll)
		}
	}
	for _, term := range []terminal{{kind: tPodCreate, ns: ns}, {kind: tPodCreate}, {kind: tPatchAll, ns: ns}, {kind: tPatchAll}} {
		if id, ok := g.byTerm[term]; ok {
			t.offerAll(r.termCandidates(id))
		}
	}
	c := r.newNSReaders(direct, t.sorted())
	r.nsCache[nsCombo{ns: ns}] = c
	return c
}

// withTerms returns ns's shared list with the chains to terms, terminals
// that many Secrets of ns share (exec anywhere in the namespace or the
// cluster, the kubelet API and the reads of any node), built once per
// namespace and set of such terminals.
func (r *Result) withTerms(ns *nsReaders, name string, terms []int32) *nsReaders {
	if len(terms) == 0 {
		return ns
	}
	key := nsCombo{ns: name, terms: fmt.Sprint(terms)}
	if c, ok := r.nsCache[key]; ok {
		return c
	}
	t := &r.table
	t.reset(len(r.s.sources))
	t.offerAll(ns.candidates)
	for _, term := range terms {
		t.offerAll(r.termCandidates(term))
	}
	c := r.newNSReaders(ns.direct, t.sorted())
	r.nsCache[key] = c
	return c
}

type nsCombo struct {
	ns, terms string
}

func (r *Result) newNSReaders(direct []rbac.Reader, cands []candidate) *nsReaders {
	return &nsReaders{direct: direct, candidates: cands}
}

// sharedOf returns a shared list's readers, built once.
func (r *Result) sharedOf(ns *nsReaders) []Reader {
	if !ns.built {
		ns.readers, ns.built = r.build(ns.direct, ns.candidates), true
	}
	return ns.readers
}

// clusterCandidates are the chains to the cluster-wide readers, whose
// final read is of every namespace.
func (r *Result) clusterCandidates() []candidate {
	if r.cluster == nil {
		t := &r.table
		t.reset(len(r.s.sources))
		r.offerDirect(t, r.g.ix.ClusterReaders(), "", "")
		r.cluster = t.sorted()
	}
	return r.cluster
}

// namespaceOnly returns the readers of a namespace list that the
// cluster-wide list does not hold as they are.
func (r *Result) namespaceOnly(direct []rbac.Reader) []rbac.Reader {
	if r.clusterAt == nil {
		r.clusterAt = map[rbac.Subject]rbac.Reader{}
		for _, d := range r.g.ix.ClusterReaders() {
			r.clusterAt[d.Subject] = d
		}
	}
	var out []rbac.Reader
	for _, d := range direct {
		if c, ok := r.clusterAt[d.Subject]; !ok || c.Verbs != d.Verbs || len(c.Via) != len(d.Via) {
			out = append(out, d)
		}
	}
	return out
}

// offerDirect offers the chains to each direct reader to t. name is empty
// for the namespace-wide list.
func (r *Result) offerDirect(t *bestTable, direct []rbac.Reader, ns, name string) {
	for i := range direct {
		d := &direct[i]
		id, ok := r.g.bySubject[d.Subject]
		if !ok {
			continue
		}
		hits := r.s.reachedAt(id)
		if len(hits) == 0 {
			continue
		}
		final := r.final(finalKey{subject: subjectNode(d.Subject), ns: ns, name: name, verbs: d.Verbs}, d.Via)
		for _, h := range hits {
			t.offer(newCandidate(h, final, d.Verbs))
		}
	}
}

// namedGrantCandidates are the chains to the bound roles that read sec by
// name, best per source and sorted.
func (r *Result) namedGrantCandidates(sec *inventory.Secret) []candidate {
	t := &r.table
	t.reset(len(r.s.sources))
	for _, id := range r.grantsByName[sec.Name] {
		rg := r.g.ids[id].grant
		if v := rg.caps.readNames[sec.Name]; v != 0 && covers(rg.scope, sec.Namespace) {
			r.offerGrant(t, id, sec.Namespace, sec.Name, v)
		}
	}
	return t.sorted()
}

// offerGrant offers to t the chains to a bound role that reads Secrets
// of ns (name, or every one when empty) with verbs.
func (r *Result) offerGrant(t *bestTable, id int32, ns, name string, verbs rbac.Verbs) {
	rg := r.g.ids[id].grant
	role := rg.role
	final := r.final(finalKey{subject: r.g.ids[id].display(), ns: ns, name: name, verbs: verbs, escalated: rg.escalated}, []rbac.Via{{Role: &role}})
	for _, h := range r.s.reachedAt(id) {
		t.offer(newCandidate(h, final, verbs))
	}
}

// narrowCandidates are the chains to a terminal of one pod or node that
// no broader terminal beats: a Secret that exec into pod P yields is also
// yielded by exec into any pod of P's namespace, and one a node reads by
// the reads of any node, so a source that reaches the broader terminal as
// well (a common one of the Secret's namespace list) has its entry there.
// Made once per terminal.
func (r *Result) narrowCandidates(id int32) []candidate {
	if out, ok := r.narrowCands[id]; ok {
		return out
	}
	t := r.g.terms[id]
	var broader []terminal
	switch {
	case t.kind == tExec:
		broader = []terminal{{kind: tExecAll, ns: t.ns}, {kind: tExecAll}}
	case t.kind == tKubelet && t.name != anyNode:
		broader = []terminal{{kind: tKubelet, name: anyNode}}
	case t.kind == tNodeReads && t.name != anyNode:
		broader = []terminal{{kind: tNodeReads, name: anyNode}}
	}
	out := r.termCandidates(id)
	if best := r.broaderBest(broader); len(best) > 0 {
		// Both sorted by source: one walk.
		kept := make([]candidate, 0, len(out))
		j := 0
		for _, c := range out {
			for j < len(best) && best[j].source < c.source {
				j++
			}
			if j == len(best) || best[j].source != c.source || better(c, best[j]) {
				kept = append(kept, c)
			}
		}
		out = kept
	}
	r.narrowCands[id] = out
	return out
}

// broaderBest is each source's best chain to any of up to two broader
// terminals, sorted by source, made once per set.
func (r *Result) broaderBest(broader []terminal) []candidate {
	var key [2]terminal
	n := 0
	for _, b := range broader {
		if _, ok := r.g.byTerm[b]; ok && n < len(key) {
			key[n] = b
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if out, ok := r.broader[key]; ok {
		return out
	}
	// Not r.table: Readers calls this while it fills that one.
	t := &bestTable{}
	t.reset(len(r.s.sources))
	for _, b := range key[:n] {
		t.offerAll(r.termCandidates(r.g.byTerm[b]))
	}
	out := t.sorted()
	r.broader[key] = out
	return out
}

// termCandidates are the chains to a terminal, sorted by source, made
// once per terminal.
func (r *Result) termCandidates(id int32) []candidate {
	if out, ok := r.termCands[id]; ok {
		return out
	}
	hits := r.s.termHitsAt(id)
	out := make([]candidate, len(hits))
	for i, h := range hits {
		out[i] = newCandidate(h, 0, 0)
	}
	r.termCands[id] = out
	return out
}

// final returns the shared last step of a read by an identity.
func (r *Result) final(k finalKey, via []rbac.Via) finalID {
	if id, ok := r.finals[k]; ok {
		return id
	}
	verb := "get"
	if names := k.verbs.Names(); len(names) > 0 {
		verb = names[0]
	}
	s := Step{Kind: Direct, Subject: k.subject, Permission: Permission{Verb: verb, Resource: "secrets", Namespace: k.ns, Name: k.name}, Via: via}
	if k.escalated {
		s.Detail = escalatedDetail
	}
	r.finalSteps = append(r.finalSteps, s)
	id := finalID(index(len(r.finalSteps) - 1))
	r.finals[k] = id
	return id
}

func subjectNode(s rbac.Subject) Node {
	return Node{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name}
}

// bestTable keeps each source's best candidate among many offered, in
// time linear in the offers: a table indexed by source, reset by
// generation.
type bestTable struct {
	best    []candidate
	stamp   []uint32
	gen     uint32
	touched []int32
}

func (t *bestTable) reset(sources int) {
	if len(t.best) < sources {
		t.best = make([]candidate, sources)
		t.stamp = make([]uint32, sources)
	}
	t.gen++
	t.touched = t.touched[:0]
}

// offer keeps c when its source has no candidate yet or c is better; on
// a tie the first offered stays.
func (t *bestTable) offer(c candidate) {
	if t.stamp[c.source] != t.gen {
		t.stamp[c.source] = t.gen
		t.best[c.source] = c
		t.touched = append(t.touched, c.source)
		return
	}
	if better(c, t.best[c.source]) {
		t.best[c.source] = c
	}
}

// offerAll offers every candidate of cs, in order.
func (t *bestTable) offerAll(cs []candidate) {
	for _, c := range cs {
		t.offer(c)
	}
}

// sorted returns the kept candidates in a new slice, sorted by source.
func (t *bestTable) sorted() []candidate {
	slices.Sort(t.touched)
	out := make([]candidate, len(t.touched))
	for i, src := range t.touched {
		out[i] = t.best[src]
	}
	return out
}

// better orders candidates by source, then shortest first, then by the
// first step's kind.
func better(a, b candidate) bool {
	if a.source != b.source {
		return a.source < b.source
	}
	if a.n != b.n {
		return a.n < b.n
	}
	return a.rank < b.rank
}

// newCandidate is a source's way to a Secret: a hit's route, then final
// when the route ends at an identity that reads it.
func newCandidate(h hit, final finalID, verbs rbac.Verbs) candidate {
	out := candidate{source: h.source, n: h.n, route: h.route, final: final, verbs: verbs, rank: h.rank}
	if final != 0 {
		out.n++
	}
	return out
}

// mergeBest merges a Secret's own candidates into its namespace's, both
// best per source and sorted, keeping the better one of a source's two.
// base is not modified.
func mergeBest(base, own []candidate) []candidate {
	return mergeBySource(base, own, func(c candidate) int32 { return c.source }, better)
}

// mergeBySource merges two lists sorted by source with one entry per
// source each, into a new one; of a source's two entries it keeps own's
// when better says it beats base's.
func mergeBySource[T any](base, own []T, source func(T) int32, better func(own, base T) bool) []T {
	out := make([]T, 0, len(base)+len(own))
	i, j := 0, 0
	for i < len(base) || j < len(own) {
		switch {
		case j == len(own) || i < len(base) && source(base[i]) < source(own[j]):
			out = append(out, base[i])
			i++
		case i == len(base) || source(own[j]) < source(base[i]):
			out = append(out, own[j])
			j++
		default:
			if better(own[j], base[i]) {
				out = append(out, own[j])
			} else {
				out = append(out, base[i])
			}
			i++
			j++
		}
	}
	return out
}

// build assembles a reader list: the direct readers, then every source
// that reaches the Secret by a chain, sorted by subject. A source is left
// out when a group it belongs to reads the Secret by a path as short as
// its own: the group's entry already covers it (everyone in
// system:authenticated can do what the group can).
func (r *Result) build(direct []rbac.Reader, cands []candidate) []Reader {
	t := r.shortest(direct, cands)
	chosen := r.chosen[:0]
	for _, c := range cands {
		si := r.srcSubject[c.source]
		n, _ := t.get(si)
		if t.seen(si) || n < int(c.n) || n == 0 {
			continue
		}
		covered := false
		for _, m := range r.srcMembers[c.source] {
			if mn, ok := t.get(m); ok && mn <= int(c.n) {
				covered = true
				break
			}
		}
		if covered {
			continue
		}
		t.markSeen(si)
		chosen = append(chosen, c)
	}
	r.chosen = chosen
	// Subjects are distinct: a direct reader has no chain, and a subject
	// is kept once. Sort the chains by their subject's rank, then merge
	// with the direct readers, sorted by subject.
	slices.SortFunc(chosen, func(a, b candidate) int { return int(r.srcRank[a.source]) - int(r.srcRank[b.source]) })
	conv := r.convertDirect(direct)
	out := make([]Reader, 0, len(conv)+len(chosen))
	i := 0
	for _, c := range chosen {
		subj := r.s.sources[c.source].subject
		for i < len(conv) && conv[i].Subject.Less(subj) {
			out = append(out, conv[i])
			i++
		}
		out = append(out, r.indirect(subj, c))
	}
	out = append(out, conv[i:]...)
	return out
}

func (r *Result) convertDirect(direct []rbac.Reader) []Reader {
	k := keyOf(direct)
	if out, ok := r.directConv[k]; ok {
		return out
	}
	out := make([]Reader, len(direct))
	for i, d := range direct {
		out[i] = Reader{Subject: d.Subject, Kind: Direct, Verbs: r.verbNames(d.Verbs), Via: d.Via}
	}
	// build merges by subject.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Subject.Less(out[j].Subject) })
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
	last := &steps[len(steps)-1]
	var verbs []string
	switch {
	case c.final != 0:
		verbs = r.verbNames(c.verbs)
	case last.Kind == SecretPatch:
		verbs = patchVerbs
	case last.Kind == NodeAuthorizer:
		verbs = nodeVerbs
	default:
		verbs = []string{}
	}
	return Reader{Subject: subject, Kind: steps[0].Kind, Verbs: verbs, Via: steps[0].Via, Steps: steps}
}

// verbNames returns the names of a set of verbs, one shared slice per
// set.
func (r *Result) verbNames(v rbac.Verbs) []string {
	if names, ok := r.verbs[v]; ok {
		return names
	}
	names := v.Names()
	r.verbs[v] = names
	return names
}

// stepsOf materialises a candidate's steps, shared between Secrets. The
// last step reaches the Secret: its Reaches is left zero for the caller
// to fill in.
func (r *Result) stepsOf(c candidate) []Step {
	k := stepsKey{c.route, c.final}
	if s, ok := r.steps[k]; ok {
		return s
	}
	out := make([]Step, 0, c.n)
	for _, st := range r.s.appendSteps(c.route, nil) {
		if st.completes {
			completeStep(&out[len(out)-1], st)
			continue
		}
		out = append(out, *st)
	}
	if c.final != 0 {
		out = append(out, r.finalSteps[c.final])
	}
	r.steps[k] = out
	return out
}

// completeStep joins the two halves of a step split at a shared
// capability.
func completeStep(first *Step, second *Step) {
	first.Kind, first.Reaches = second.Kind, second.Reaches
	if second.Detail != "" {
		first.Detail = second.Detail
	}
}

// Obtains reports whether subject s can obtain some Secret through an
// indirect path, whether or not the Secrets it reaches are in the
// inventory, and returns the first step of the shortest such path found.
// Its direct grants are not considered: rbac.ReadIndex answers for those.
// The search is the analysis's, from s alone, within the depth limit.
func (r *Result) Obtains(s rbac.Subject) (Step, bool) {
	if r.s.exceeded {
		return Step{}, false
	}
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
			switch {
			case first == nil:
				first = e.step
			case first.Kind == "" && e.step.completes:
				joined := *first
				completeStep(&joined, e.step)
				first = &joined
			}
			if e.term {
				if g.yieldsSomething(g.terms[e.to]) {
					return *first, true
				}
				continue
			}
			depth := it.depth + 1
			if e.step.completes {
				depth = it.depth // the second half of a step
			}
			if depth < r.s.maxDepth || g.ids[e.to].kind == idPods {
				visit(e.to, first, depth)
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
