package paths

import (
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// chain is a path from a source, shared by every path it prefixes.
type chain struct {
	prev *chain
	step *Step
	n    int
	// rank is the order (Kind.order) of the first step's kind.
	rank int
}

func (c *chain) len() int {
	if c == nil {
		return 0
	}
	return c.n
}

func (c *chain) then(s *Step) *chain {
	next := &chain{prev: c, step: s, n: c.len() + 1}
	switch {
	case s.completes:
		// The second half of a step: no step more, and the first step's
		// kind is known only now when the first half is the chain's.
		next.n = c.len()
		next.rank = c.rank
		if c.prev == nil {
			next.rank = s.Kind.order()
		}
	case c == nil:
		next.rank = s.Kind.order()
	default:
		next.rank = c.rank
	}
	return next
}

// hit records that a source reaches an identity or a terminal by a
// chain, the shortest the search found.
type hit struct {
	source int32
	chain  *chain
}

// sourceInfo is one subject the search starts from.
type sourceInfo struct {
	subject rbac.Subject
	id      int32
	// members are the subjects it holds grants as without a step.
	members []rbac.Subject
	// maxDepth, when set, bounds its chains below the searcher's.
	maxDepth int
}

// searcher runs a breadth-first search from each source over the graph,
// bounded by the depth, and records who reaches what.
type searcher struct {
	g        *graph
	maxDepth int
	sources  []sourceInfo
	// reached lists, per identity that reads Secrets itself, the sources
	// that reach it in at least one step.
	reached map[int32][]hit
	// termHits lists, per terminal, the sources that reach it.
	termHits map[int32][]hit
	readers  map[rbac.Subject]bool

	idStamp, termStamp []uint32
	gen                uint32
	// noShortcuts follows every edge, for the tests that hold the
	// shortcuts to the full search.
	noShortcuts bool
	// isSource marks the identities searches start from.
	isSource map[int32]bool
	// hits counts what the searches recorded; past budget (when
	// positive) they stop and exceeded is set.
	hits, budget int
	exceeded     bool
}

type item struct {
	id    int32
	chain *chain
}

func (s *searcher) isReader(id *identity) bool {
	if id.readerKnown {
		return id.reader
	}
	id.readerKnown = true
	switch id.kind {
	case idSubject:
		id.reader = s.readers[id.subject]
	case idGrant:
		id.reader = id.grant.caps.reads()
	}
	return id.reader
}

// run searches from every source.
// run searches from every source, and stops when the hits exceed the
// budget (Options.MaxHits).
func (s *searcher) run() {
	for i := range s.sources {
		s.search(int32(i))
		if s.budget > 0 && s.hits > s.budget {
			s.exceeded = true
			return
		}
	}
}

func (s *searcher) search(src int32) {
	s.gen++
	limit := s.maxDepth
	if m := s.sources[src].maxDepth; m > 0 && m < limit {
		limit = m
	}
	var queue []item
	var visit func(id int32, c *chain)
	visit = func(id int32, c *chain) {
		s.grow()
		if s.idStamp[id] == s.gen {
			return
		}
		s.idStamp[id] = s.gen
		ident := s.g.ids[id]
		if ident.kind == idPods {
			// A shared capability: complete the step that reached it
			// here, at the same depth.
			for _, e := range s.g.expand(id) {
				next := c.then(e.step)
				if e.term {
					s.grow()
					if s.termStamp[e.to] != s.gen {
						s.termStamp[e.to] = s.gen
						s.termHits[e.to] = append(s.termHits[e.to], hit{src, next})
						s.hits++
					}
				} else if next.len() < limit {
					visit(e.to, next)
				}
			}
			return
		}
		if c != nil && s.isReader(ident) {
			s.reached[id] = append(s.reached[id], hit{src, c})
			s.hits++
		}
		queue = append(queue, item{id, c})
		for _, m := range ident.members {
			visit(m, c)
		}
	}
	// A source does not act through its groups that are sources
	// themselves: they reach in as many steps all the source would reach
	// through them, and their entries cover the source's. The shortcut
	// keeps every answer (TestShortcutsLoseNothing) and saves walking the
	// groups' reach again for each member.
	start := s.sources[src].id
	s.grow()
	s.idStamp[start] = s.gen
	queue = append(queue, item{start, nil})
	for _, m := range s.g.ids[start].members {
		if s.noShortcuts || !s.isSource[m] {
			visit(m, nil)
		}
	}
	for head := 0; head < len(queue); head++ {
		it := queue[head]
		depth := it.chain.len()
		if depth >= limit {
			continue
		}
		for _, e := range s.g.expand(it.id) {
			if e.term {
				s.grow()
				if s.termStamp[e.to] == s.gen {
					continue
				}
				s.termStamp[e.to] = s.gen
				s.termHits[e.to] = append(s.termHits[e.to], hit{src, it.chain.then(e.step)})
				s.hits++
				continue
			}
			if depth+1 >= limit && s.g.ids[e.to].kind != idPods {
				continue // no step left to read with
			}
			s.grow()
			if s.idStamp[e.to] != s.gen {
				visit(e.to, it.chain.then(e.step))
			}
		}
	}
}

// grow keeps the stamps as long as the graph, which expansion extends.
func (s *searcher) grow() {
	for len(s.idStamp) < len(s.g.ids) {
		s.idStamp = append(s.idStamp, 0)
	}
	for len(s.termStamp) < len(s.g.terms) {
		s.termStamp = append(s.termStamp, 0)
	}
}
