package paths

import (
	"slices"

	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// chain is a path from a source, or from a hub, shared by every path it
// prefixes.
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

// halfStep reports whether the chain is only the first half of a step,
// into a shared pod capability: its kind comes with the second half.
func (c *chain) halfStep() bool {
	return c != nil && c.prev == nil && c.step.Kind == "" && !c.step.completes
}

// extend makes next the chain c followed by s.
func (c *chain) extend(next *chain, s *Step) {
	*next = chain{prev: c, step: s, n: c.len() + 1}
	switch {
	case s.completes:
		// The second half of a step: no step more, and the first step's
		// kind is known only now when the first half is the chain's (or
		// the chain starts at the capability, in a hub's search).
		next.n = c.len()
		if c == nil || c.prev == nil {
			next.rank = s.Kind.order()
		} else {
			next.rank = c.rank
		}
	case c == nil:
		next.rank = s.Kind.order()
	default:
		next.rank = c.rank
	}
}

// then extends c by a step, allocating from the searcher's slab.
func (s *searcher) then(c *chain, st *Step) *chain {
	if len(s.slab) == cap(s.slab) {
		s.slab = make([]chain, 0, 4096)
	}
	s.slab = append(s.slab, chain{})
	next := &s.slab[len(s.slab)-1]
	c.extend(next, st)
	return next
}

// route is a path: the steps of head, then those of tail, a hub's route
// to the same end. A source's search stops at a hub and records how it
// got there; the hub's own search, done once, continues from there for
// every source that reaches it.
type route struct {
	head *chain
	tail *route
}

// rank is the order of the first step's kind; a direct read's for an
// empty route.
func (r route) rank() int {
	switch {
	case r.head == nil && r.tail == nil:
		return Direct.order()
	case r.head != nil && (!r.head.halfStep() || r.tail == nil):
		return r.head.rank
	}
	// No step of its own, or the first half of a step whose second half
	// starts the hub's route.
	return r.tail.rank()
}

// appendSteps appends the route's steps, in order, halves of split steps
// apart.
func (r route) appendSteps(out []*Step) []*Step {
	start := len(out)
	for c := r.head; c != nil; c = c.prev {
		out = append(out, c.step)
	}
	slices.Reverse(out[start:])
	if r.tail != nil {
		out = r.tail.appendSteps(out)
	}
	return out
}

// hit records that a source reaches an identity or a terminal by a
// route, the shortest the search found.
type hit struct {
	source int32
	// n and rank are the route's length and rank.
	n, rank int32
	route   route
}

func newHit(source int32, r route, n, rank int) hit {
	return hit{source: source, n: int32(n), rank: int32(rank), route: r} //nolint:gosec // G115: n is at most the depth, rank a kind's index
}

// better reports whether a route of n steps and rank is better than
// hit h of m steps: shorter, or as short with a first step of lower rank.
func betterRoute(n, rank, m, hrank int) bool {
	return n < m || n == m && rank < hrank
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
//
// Hubs make it share work. A hub is an identity that many sources reach
// and that reaches much: the capability to create pods in a namespace
// (or in every one), and "any node". A source's search records that it
// got to a hub and goes no further there; each hub is searched once, on
// its own, and its routes (through the hubs it reaches in turn) are then
// joined to every source that got to it. A source's shortest route to
// anything is either found by its own search or passes through a first
// hub, and then is its way to that hub followed by the hub's shortest
// route: the joins find exactly what searching through the hub would,
// at a fraction of the cost (TestShortcutsLoseNothing holds them to the
// full search).
type searcher struct {
	g        *graph
	maxDepth int
	sources  []sourceInfo
	// reached lists, per identity that reads Secrets itself (by id), the
	// sources that reach it in at least one step.
	reached [][]hit
	// termHits lists, per terminal, the sources that reach it.
	termHits [][]hit
	// slab is where chains are allocated, many at a time.
	slab    []chain
	readers map[rbac.Subject]bool

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

	// arrivals lists, per source, the hubs its search got to.
	arrivals [][]arrival
	// hubs are the searches of the hubs reached, in the order first
	// reached.
	hubs    map[int32]*hubSearch
	hubList []int32
}

// arrival is a search getting to a hub, by a chain.
type arrival struct {
	hub   int32
	chain *chain
}

// hubSearch is a hub's own search, then its shortest route to each
// identity and terminal, through the hubs it reaches too.
type hubSearch struct {
	ids, terms map[int32]hubEntry
	arrivals   []arrival
	// idList and termList are ids and terms, sorted by target, once
	// resolved.
	idList, termList []hubTarget
}

type hubEntry struct {
	route *route
	n     int
}

type hubTarget struct {
	to      int32
	route   *route
	n, rank int
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

// isHub reports whether the search shares the identity's reach between
// the sources that get to it.
func (s *searcher) isHub(id *identity) bool {
	return !s.noShortcuts && (id.kind == idPods || id.kind == idNode && id.node == anyNode)
}

// run searches from every source and every hub they reach, then joins the
// hubs' routes to the sources. It stops when the hits exceed the budget
// (Options.MaxHits).
func (s *searcher) run() {
	s.hubs = map[int32]*hubSearch{}
	s.arrivals = make([][]arrival, len(s.sources))
	for i := range s.sources {
		s.search(int32(i))
		if s.over() {
			return
		}
	}
	// A hub's search can get to hubs not reached yet: the list grows.
	for i := 0; i < len(s.hubList); i++ {
		s.searchHub(s.hubList[i])
		if s.over() {
			return
		}
	}
	s.resolveHubs()
	s.join()
	s.over()
}

func (s *searcher) over() bool {
	if s.budget > 0 && s.hits > s.budget {
		s.exceeded = true
	}
	return s.exceeded
}

func (s *searcher) limitOf(src int32) int {
	limit := s.maxDepth
	if m := s.sources[src].maxDepth; m > 0 && m < limit {
		limit = m
	}
	return limit
}

func (s *searcher) search(src int32) {
	start := s.sources[src].id
	s.bfs(start, s.limitOf(src), src, nil)
}

// hubLimit bounds a hub's search: every search gets to a hub in at least
// one step (a source is never a hub, nor is a group it starts with), so
// one step fewer than a source's.
func (s *searcher) hubLimit() int { return s.maxDepth - 1 }

func (s *searcher) searchHub(h int32) {
	hs := s.hubs[h]
	hs.ids, hs.terms = map[int32]hubEntry{}, map[int32]hubEntry{}
	s.bfs(h, s.hubLimit(), -1, hs)
}

// bfs searches from start, for source src, or for hub search hs when src
// is negative: a hub records the identities it gets to at once, with no
// step, and a source does not walk its groups that are sources
// themselves.
func (s *searcher) bfs(start int32, limit int, src int32, hs *hubSearch) {
	s.gen++
	var queue []item
	hitID := func(id int32, c *chain) {
		if hs != nil {
			hs.ids[id] = hubEntry{route: &route{head: c}, n: c.len()}
		} else {
			s.reached[id] = append(s.reached[id], newHit(src, route{head: c}, c.len(), route{head: c}.rank()))
		}
		s.hits++
	}
	hitTerm := func(t int32, c *chain) {
		if s.termStamp[t] == s.gen {
			return
		}
		s.termStamp[t] = s.gen
		if hs != nil {
			hs.terms[t] = hubEntry{route: &route{head: c}, n: c.len()}
		} else {
			s.termHits[t] = append(s.termHits[t], newHit(src, route{head: c}, c.len(), route{head: c}.rank()))
		}
		s.hits++
	}
	var visit func(id int32, c *chain)
	visit = func(id int32, c *chain) {
		s.grow()
		if s.idStamp[id] == s.gen {
			return
		}
		s.idStamp[id] = s.gen
		ident := s.g.ids[id]
		if id != start && s.isHub(ident) {
			s.arrive(src, hs, id, c)
			return
		}
		if ident.kind == idPods {
			// A shared capability: complete the step that reached it
			// here, at the same depth.
			for _, e := range s.g.expand(id) {
				s.grow()
				if e.term {
					if s.termStamp[e.to] != s.gen {
						hitTerm(e.to, s.then(c, e.step))
					}
				} else if c.len() < limit && s.idStamp[e.to] != s.gen {
					// A completing step adds none: the chain stays c's length.
					visit(e.to, s.then(c, e.step))
				}
			}
			return
		}
		if (c != nil || hs != nil) && s.isReader(ident) {
			hitID(id, c)
		}
		queue = append(queue, item{id, c})
		for _, m := range ident.members {
			visit(m, c)
		}
	}
	if hs != nil {
		visit(start, nil)
	} else {
		// A source does not act through its groups that are sources
		// themselves: they reach in as many steps all the source would
		// reach through them, and their entries cover the source's. The
		// shortcut keeps every answer (TestShortcutsLoseNothing) and saves
		// walking the groups' reach again for each member.
		s.grow()
		s.idStamp[start] = s.gen
		queue = append(queue, item{start, nil})
		for _, m := range s.g.ids[start].members {
			if s.noShortcuts || !s.isSource[m] {
				visit(m, nil)
			}
		}
	}
	for head := 0; head < len(queue); head++ {
		it := queue[head]
		depth := it.chain.len()
		if depth >= limit {
			continue
		}
		edges := s.g.expand(it.id)
		if depth+1 >= limit {
			// No step left to read with: only terminals and the shared
			// pod capabilities, whose steps complete this one.
			edges = s.g.ids[it.id].last
		}
		for _, e := range edges {
			s.grow()
			if e.term {
				if s.termStamp[e.to] != s.gen {
					hitTerm(e.to, s.then(it.chain, e.step))
				}
				continue
			}
			if s.idStamp[e.to] != s.gen {
				visit(e.to, s.then(it.chain, e.step))
			}
		}
	}
}

// arrive records that the search of source src, or of hub search hs, got
// to hub h by chain c.
func (s *searcher) arrive(src int32, hs *hubSearch, h int32, c *chain) {
	if _, ok := s.hubs[h]; !ok {
		s.hubs[h] = &hubSearch{}
		s.hubList = append(s.hubList, h)
	}
	a := arrival{hub: h, chain: c}
	if hs != nil {
		hs.arrivals = append(hs.arrivals, a)
	} else {
		s.arrivals[src] = append(s.arrivals[src], a)
	}
}

// within reports whether a route of n steps fits a search bounded by
// limit: to an identity, which still has to read, or to a terminal.
func within(n, limit int, term bool) bool {
	if term {
		return n <= limit
	}
	return n < limit
}

// resolveHubs gives each hub its shortest route to everything it gets
// to, through the hubs it reaches: a hub reaching another by a chain of k
// steps reaches what that one does in k more. Each round can only shorten
// routes, and no route is longer than the depth, so it settles.
func (s *searcher) resolveHubs() {
	limit := s.hubLimit()
	order, cyclic := s.hubOrder()
	for changed := true; changed; {
		changed = false
		for _, h := range order {
			hs := s.hubs[h]
			for _, a := range hs.arrivals {
				sub := s.hubs[a.hub]
				k := a.chain.len()
				for _, pair := range []struct {
					from, to map[int32]hubEntry
					term     bool
				}{{sub.ids, hs.ids, false}, {sub.terms, hs.terms, true}} {
					for target, e := range pair.from {
						n := k + e.n
						if !within(n, limit, pair.term) {
							continue
						}
						if cur, ok := pair.to[target]; ok && cur.n <= n {
							continue
						}
						pair.to[target] = hubEntry{route: &route{head: a.chain, tail: e.route}, n: n}
						changed = true
					}
				}
			}
		}
		// Without a cycle, each hub came after every hub it reaches: one
		// pass is final.
		changed = changed && cyclic
	}
	for _, h := range s.hubList {
		hs := s.hubs[h]
		hs.idList, hs.termList = sortedTargets(hs.ids), sortedTargets(hs.terms)
		hs.ids, hs.terms = nil, nil
	}
}

// hubOrder returns the hubs, each after the hubs it reaches unless they
// reach it back, and whether some do.
func (s *searcher) hubOrder() (order []int32, cyclic bool) {
	const (
		unseen = iota
		open
		done
	)
	state := make(map[int32]int, len(s.hubList))
	var walk func(h int32)
	walk = func(h int32) {
		state[h] = open
		for _, a := range s.hubs[h].arrivals {
			switch state[a.hub] {
			case unseen:
				walk(a.hub)
			case open:
				cyclic = true
			}
		}
		state[h] = done
		order = append(order, h)
	}
	for _, h := range s.hubList {
		if state[h] == unseen {
			walk(h)
		}
	}
	return order, cyclic
}

func sortedTargets(m map[int32]hubEntry) []hubTarget {
	out := make([]hubTarget, 0, len(m))
	for to, e := range m {
		out = append(out, hubTarget{to: to, route: e.route, n: e.n, rank: e.route.rank()})
	}
	slices.SortFunc(out, func(a, b hubTarget) int { return int(a.to) - int(b.to) })
	return out
}

// joined is a source's best route to one target through the hubs.
type joined struct {
	route   route
	n, rank int
	stamp   uint32
}

// join adds to each target's hits the sources that get to it through a
// hub, where that beats their own search, keeping each list sorted by
// source with one hit per source.
func (s *searcher) join() {
	var viaIDs, viaTerms [][]hit
	viaIDs = make([][]hit, len(s.reached))
	viaTerms = make([][]hit, len(s.termHits))
	bestID := make([]joined, len(s.reached))
	bestTerm := make([]joined, len(s.termHits))
	var touchedIDs, touchedTerms []int32
	for src := range s.sources {
		arrs := s.arrivals[src]
		if len(arrs) == 0 {
			continue
		}
		s.gen++
		limit := s.limitOf(index(src))
		touchedIDs, touchedTerms = touchedIDs[:0], touchedTerms[:0]
		for _, a := range arrs {
			hs := s.hubs[a.hub]
			k := a.chain.len()
			half := a.chain.halfStep()
			offer := func(list []hubTarget, best []joined, touched *[]int32, term bool) {
				for _, t := range list {
					n := k + t.n
					if !within(n, limit, term) {
						continue
					}
					rank := a.chain.rank
					if half || a.chain == nil {
						rank = t.rank
					}
					b := &best[t.to]
					if b.stamp == s.gen && !betterRoute(n, rank, b.n, b.rank) {
						continue
					}
					if b.stamp != s.gen {
						*touched = append(*touched, t.to)
					}
					*b = joined{route: route{head: a.chain, tail: t.route}, n: n, rank: rank, stamp: s.gen}
				}
			}
			offer(hs.idList, bestID, &touchedIDs, false)
			offer(hs.termList, bestTerm, &touchedTerms, true)
		}
		for _, id := range touchedIDs {
			viaIDs[id] = append(viaIDs[id], newHit(index(src), bestID[id].route, bestID[id].n, bestID[id].rank))
		}
		for _, t := range touchedTerms {
			viaTerms[t] = append(viaTerms[t], newHit(index(src), bestTerm[t].route, bestTerm[t].n, bestTerm[t].rank))
		}
		s.hits += len(touchedIDs) + len(touchedTerms)
		if s.over() {
			return
		}
	}
	for id := range s.reached {
		s.reached[id] = mergeHits(s.reached[id], viaIDs[id])
	}
	for t := range s.termHits {
		s.termHits[t] = mergeHits(s.termHits[t], viaTerms[t])
	}
}

// mergeHits merges a target's own hits and those through hubs, both
// sorted by source with one per source, keeping a source's better one
// (its own on a tie).
func mergeHits(own, via []hit) []hit {
	if len(via) == 0 {
		return own
	}
	out := make([]hit, 0, len(own)+len(via))
	i, j := 0, 0
	for i < len(own) || j < len(via) {
		switch {
		case j == len(via) || i < len(own) && own[i].source < via[j].source:
			out = append(out, own[i])
			i++
		case i == len(own) || via[j].source < own[i].source:
			out = append(out, via[j])
			j++
		default:
			if betterRoute(int(via[j].n), int(via[j].rank), int(own[i].n), int(own[i].rank)) {
				out = append(out, via[j])
			} else {
				out = append(out, own[i])
			}
			i++
			j++
		}
	}
	return out
}

// grow keeps the stamps and hit lists as long as the graph, which
// expansion extends.
func (s *searcher) grow() {
	for len(s.idStamp) < len(s.g.ids) {
		s.idStamp = append(s.idStamp, 0)
		s.reached = append(s.reached, nil)
	}
	for len(s.termStamp) < len(s.g.terms) {
		s.termStamp = append(s.termStamp, 0)
		s.termHits = append(s.termHits, nil)
	}
}

// reachedAt returns the hits of identity id.
func (s *searcher) reachedAt(id int32) []hit {
	if int(id) < len(s.reached) {
		return s.reached[id]
	}
	return nil
}

// termHitsAt returns the hits of terminal id.
func (s *searcher) termHitsAt(id int32) []hit {
	if int(id) < len(s.termHits) {
		return s.termHits[id]
	}
	return nil
}
