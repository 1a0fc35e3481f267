package paths

import (
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// chainID names a chain in the searcher's table; 0 is the empty chain.
// Chains, routes and hits hold no pointers: there are millions, and the
// garbage collector need not scan them.
type chainID int32

// chainNode is a chain: the chain prev followed by step, shared by every
// chain it prefixes.
type chainNode struct {
	prev chainID
	// step indexes graph.steps.
	step int32
	n    int8
	// rank is the order (Kind.order) of the first step's kind.
	rank int8
}

func (s *searcher) clen(c chainID) int { return int(s.chains[c].n) }

// halfStep reports whether the chain is only the first half of a step,
// into a shared pod capability: its kind comes with the second half.
func (s *searcher) halfStep(c chainID) bool {
	if c == 0 || s.chains[c].prev != 0 {
		return false
	}
	st := s.g.steps[s.chains[c].step]
	return st.Kind == "" && !st.completes
}

// then returns the chain c followed by the step of edge e.
func (s *searcher) then(c chainID, e edge) chainID {
	prev := s.chains[c]
	next := chainNode{prev: c, step: e.si, n: prev.n + 1, rank: prev.rank}
	switch {
	case e.step.completes:
		// The second half of a step: no step more, and the first step's
		// kind is known only now when the first half is the chain's (or
		// the chain starts at the capability, in a hub's search).
		next.n = prev.n
		if c == 0 || prev.prev == 0 {
			next.rank = s.g.stepRank[e.si]
		}
	case c == 0:
		next.rank = s.g.stepRank[e.si]
	}
	s.chains = append(s.chains, next)
	return chainID(index(len(s.chains) - 1))
}

// routeID names a route in the searcher's table; 0 is none.
type routeID int32

// route is a path: the steps of head, then those of tail, a hub's route
// to the same end. A source's search stops at a hub and records how it
// got there; the hub's own search, done once, continues from there for
// every source that reaches it.
type route struct {
	head chainID
	tail routeID
}

// keep stores a route for others to end with.
func (s *searcher) keep(r route) routeID {
	s.routes = append(s.routes, r)
	return routeID(index(len(s.routes) - 1))
}

// rank is the order of the first step's kind; a direct read's for an
// empty route.
func (s *searcher) rank(r route) int {
	switch {
	case r.head == 0 && r.tail == 0:
		return Direct.order()
	case r.head != 0 && (!s.halfStep(r.head) || r.tail == 0):
		return int(s.chains[r.head].rank)
	}
	// No step of its own, or the first half of a step whose second half
	// starts the hub's route.
	return s.rank(s.routes[r.tail])
}

// appendSteps appends the route's steps, in order, halves of split steps
// apart.
func (s *searcher) appendSteps(r route, out []*Step) []*Step {
	start := len(out)
	for c := r.head; c != 0; c = s.chains[c].prev {
		out = append(out, s.g.steps[s.chains[c].step])
	}
	slices.Reverse(out[start:])
	if r.tail != 0 {
		out = s.appendSteps(s.routes[r.tail], out)
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

// betterRoute reports whether a route of n steps and rank beats one of m
// steps and hrank: shorter, or as short with a first step of lower rank.
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
// and that reaches much: a shared capability on the pods of a namespace
// (or of every one: creating them, exec into them, adding ephemeral
// containers to them), and "any node". A source's search records that it
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
	// chains and routes are every chain and route the searches made,
	// named by index.
	chains  []chainNode
	routes  []route
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
	// joinFrom is what the join started from: the hits recorded before
	// it, joinBound's lower bound of those it adds, and ownBound's, a
	// lower one, made before the hubs' routes were settled.
	joinFrom struct {
		hits       int
		bound, own int64
	}

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
	chain chainID
}

// hubSearch is a hub's own search, then its shortest route to each
// identity and terminal, through the hubs it reaches too.
type hubSearch struct {
	ids, terms hubTable
	arrivals   []arrival
	// idList and termList are ids and terms, shortest first, once
	// resolved.
	idList, termList []hubTarget
}

// hubEntry is a hub's settled route to a target: route names it, for the
// routes that end with it.
type hubEntry struct {
	to    int32
	route routeID
}

// ownRoute is a route a hub's own search found.
type ownRoute struct {
	to    int32
	chain chainID
	n     int
}

type hubTarget struct {
	to int32
	// tail names the route, for the routes that end with it.
	tail    routeID
	n, rank int
}

type item struct {
	id    int32
	chain chainID
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
	// Once joined, the hubs' routes live in the hits: what named them
	// (millions of entries in a large cluster) would only weigh on a kept
	// Result.
	defer func() { s.hubs, s.hubList, s.arrivals = nil, nil, nil }()
	s.hubs = map[int32]*hubSearch{}
	s.arrivals = make([][]arrival, len(s.sources))
	s.chains = []chainNode{{}} // 0: the empty chain
	s.routes = []route{{}}     // 0: none
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
	// Before the hubs' routes are settled, their own searches' routes
	// already bound what the join would add from below: past the budget,
	// settling them would be work for nothing.
	s.joinFrom.own = s.ownBound()
	if s.budget > 0 && int64(s.hits)+s.joinFrom.own > int64(s.budget) {
		s.hits += int(s.joinFrom.own)
		s.over()
		return
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
	s.bfs(h, s.hubLimit(), -1, hs)
}

// bfs searches from start, for source src, or for hub search hs when src
// is negative: a hub records the identities it gets to at once, with no
// step, and a source does not walk its groups that are sources
// themselves.
func (s *searcher) bfs(start int32, limit int, src int32, hs *hubSearch) {
	s.gen++
	var queue []item
	hitID := func(id int32, c chainID) {
		if hs != nil {
			hs.ids.add(id, c, s.clen(c))
		} else {
			s.reached[id] = append(s.reached[id], newHit(src, route{head: c}, s.clen(c), s.rank(route{head: c})))
		}
		s.hits++
	}
	hitTerm := func(t int32, c chainID) {
		if s.termStamp[t] == s.gen {
			return
		}
		s.termStamp[t] = s.gen
		if hs != nil {
			hs.terms.add(t, c, s.clen(c))
		} else {
			s.termHits[t] = append(s.termHits[t], newHit(src, route{head: c}, s.clen(c), s.rank(route{head: c})))
		}
		s.hits++
	}
	var visit func(id int32, c chainID)
	visit = func(id int32, c chainID) {
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
						hitTerm(e.to, s.then(c, e))
					}
				} else if s.clen(c) < limit && s.idStamp[e.to] != s.gen {
					// A completing step adds none: the chain stays c's length.
					visit(e.to, s.then(c, e))
				}
			}
			return
		}
		if (c != 0 || hs != nil) && s.isReader(ident) {
			hitID(id, c)
		}
		queue = append(queue, item{id, c})
		for _, m := range ident.members {
			visit(m, c)
		}
	}
	if hs != nil {
		visit(start, 0)
	} else {
		// A source does not act through its groups that are sources
		// themselves: they reach in as many steps all the source would
		// reach through them, and their entries cover the source's. The
		// shortcut keeps every answer (TestShortcutsLoseNothing) and saves
		// walking the groups' reach again for each member.
		s.grow()
		s.idStamp[start] = s.gen
		queue = append(queue, item{start, 0})
		for _, m := range s.g.ids[start].members {
			if s.noShortcuts || !s.isSource[m] {
				visit(m, 0)
			}
		}
	}
	for head := 0; head < len(queue); head++ {
		it := queue[head]
		depth := s.clen(it.chain)
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
					hitTerm(e.to, s.then(it.chain, e))
				}
				continue
			}
			if s.idStamp[e.to] != s.gen {
				visit(e.to, s.then(it.chain, e))
			}
		}
	}
}

// arrive records that the search of source src, or of hub search hs, got
// to hub h by chain c.
func (s *searcher) arrive(src int32, hs *hubSearch, h int32, c chainID) {
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
// steps reaches what that one does in k more. Routes are settled by
// length, shortest first, so that each is final when set: at length d a
// hub takes its own search's routes of d steps, then, for each hub it
// reaches in k steps, that hub's routes of d − k. A hub reached in no
// step (a pod capability's node escape reaches "any node") is settled
// first within a length.
//
// A hub's routes are settled only as long as some source can use them:
// one whose search gets to the hub in m steps, at the fewest, follows its
// routes of up to maxDepth − m steps. Another hub that gets to this one
// in k steps is itself reached in at least m − k, so it needs no longer
// routes of this one than this one keeps. In a cluster where every pod
// creator can escape to a node, "any node" reaches thousands of
// identities; keeping every hub's routes through it to the search's full
// depth made tens of millions of routes no source could follow.
func (s *searcher) resolveHubs() {
	limit := s.hubLimit()
	order, zeroCycle := s.hubOrder()
	depth := s.hubDepths()
	for _, h := range s.hubList {
		s.hubs[h].ids.prepare(len(s.g.ids))
		s.hubs[h].terms.prepare(len(s.g.terms))
	}
	for d := 0; d <= limit; d++ {
		for again := true; again; {
			again = false
			for _, h := range order {
				hs := s.hubs[h]
				lim := s.maxDepth - depth[h]
				settled := s.settleOwn(&hs.ids, d, lim, false) + s.settleOwn(&hs.terms, d, lim, true)
				for _, a := range hs.arrivals {
					k := s.clen(a.chain)
					if k > d {
						continue
					}
					sub := s.hubs[a.hub]
					settled += s.settleFrom(&hs.ids, &sub.ids, a.chain, d, k, lim, false)
					settled += s.settleFrom(&hs.terms, &sub.terms, a.chain, d, k, lim, true)
				}
				// Routes through a hub reached in no step that settled after
				// this one: only on a cycle of such hubs.
				again = again || zeroCycle && settled > 0
			}
		}
	}
	for _, h := range s.hubList {
		hs := s.hubs[h]
		hs.idList, hs.termList = s.sortedTargets(&hs.ids), s.sortedTargets(&hs.terms)
		hs.ids, hs.terms = hubTable{}, hubTable{}
	}
}

// hubDepths returns, per hub, the fewest steps in which a source's
// search gets to it: directly, or through the hubs it gets to first
// (a hub that another reaches in k steps is reached in k more).
func (s *searcher) hubDepths() map[int32]int {
	depth := make(map[int32]int, len(s.hubList))
	// Buckets by depth: every depth is at most the search's.
	buckets := make([][]int32, s.maxDepth+1)
	lower := func(h int32, d int) {
		if old, ok := depth[h]; (!ok || d < old) && d <= s.maxDepth {
			depth[h] = d
			buckets[d] = append(buckets[d], h)
		}
	}
	for _, arrs := range s.arrivals {
		for _, a := range arrs {
			lower(a.hub, s.clen(a.chain))
		}
	}
	for d := range buckets {
		for i := 0; i < len(buckets[d]); i++ { // grows with hubs reached in no step
			h := buckets[d][i]
			if depth[h] != d {
				continue // lowered since
			}
			for _, a := range s.hubs[h].arrivals {
				lower(a.hub, d+s.clen(a.chain))
			}
		}
	}
	for _, h := range s.hubList {
		if _, ok := depth[h]; !ok {
			// Out of every source's reach: nothing to keep for it.
			depth[h] = s.maxDepth
		}
	}
	return depth
}

// hubOrder returns the hubs, each after the hubs it reaches in no step
// unless they reach it back the same way, and whether some do.
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
			if s.clen(a.chain) > 0 {
				continue
			}
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

// hubTable is a hub's shortest route to each target: its own search's,
// then, once settled, the shortest of those and of the routes through
// the hubs it reaches.
type hubTable struct {
	own []ownRoute
	// level lists the settled routes by length, in the order they
	// settled; settled marks their targets (a bit per target).
	level   [][]hubEntry
	settled []uint64
}

func (t *hubTable) add(target int32, c chainID, n int) {
	t.own = append(t.own, ownRoute{to: target, chain: c, n: n})
}

// prepare makes room to settle routes to targets numbered below n.
func (t *hubTable) prepare(n int) { t.settled = make([]uint64, (n+63)/64) }

func (t *hubTable) has(target int32) bool { return t.settled[target/64]&(1<<(target%64)) != 0 }

// settle sets the target's route of n steps; it has none yet.
func (t *hubTable) settle(target int32, n int, r routeID) {
	t.settled[target/64] |= 1 << (target % 64)
	for len(t.level) <= n {
		t.level = append(t.level, nil)
	}
	t.level[n] = append(t.level[n], hubEntry{to: target, route: r})
}

// settleOwn settles in t its own search's routes of d steps.
func (s *searcher) settleOwn(t *hubTable, d, limit int, term bool) int {
	if !within(d, limit, term) {
		return 0
	}
	n := 0
	for _, o := range t.own {
		if o.n == d && !t.has(o.to) {
			t.settle(o.to, d, s.keep(route{head: o.chain}))
			n++
		}
	}
	return n
}

// settleFrom settles in t the routes of d steps through a hub reached by
// chain c of k steps, whose table is from.
func (s *searcher) settleFrom(t, from *hubTable, c chainID, d, k, limit int, term bool) int {
	if d-k >= len(from.level) || !within(d, limit, term) {
		return 0
	}
	n := 0
	for _, e := range from.level[d-k] {
		if !t.has(e.to) {
			t.settle(e.to, d, s.keep(route{head: c, tail: e.route}))
			n++
		}
	}
	return n
}

// sortedTargets returns a table's settled routes, shortest first (in the
// order they settled): a join stops at the first route too long for its
// source.
func (s *searcher) sortedTargets(t *hubTable) []hubTarget {
	size := 0
	for _, entries := range t.level {
		size += len(entries)
	}
	out := make([]hubTarget, 0, size)
	for n, entries := range t.level {
		for _, e := range entries {
			out = append(out, hubTarget{to: e.to, tail: e.route, n: n, rank: s.rank(s.routes[e.route])})
		}
	}
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
// source with one hit per source. The sources are split into contiguous
// runs joined in parallel, each into lists of its own: a target's lists,
// taken in run order, are then sorted by source as one.
func (s *searcher) join() {
	s.joinFrom.hits, s.joinFrom.bound = s.hits, s.joinBound()
	if s.budget > 0 && int64(s.hits)+s.joinFrom.bound > int64(s.budget) {
		// The join would pass the budget too, only later: give up now,
		// before it allocates its lists.
		s.hits += int(s.joinFrom.bound)
		return
	}
	runs := min(runtime.GOMAXPROCS(0), 4, max(1, len(s.sources)/64))
	parts := make([]*joinRun, runs)
	var hits atomic.Int64
	hits.Store(int64(s.hits))
	var wg sync.WaitGroup
	for i := range parts {
		parts[i] = &joinRun{s: s, from: i * len(s.sources) / runs, to: (i + 1) * len(s.sources) / runs, hits: &hits}
		wg.Go(parts[i].run)
	}
	wg.Wait()
	for _, p := range parts {
		if p.failure != nil {
			panic(p.failure)
		}
	}
	s.hits = int(hits.Load())
	if s.over() {
		return
	}
	via := make([][]hit, runs)
	for id := range s.reached {
		for i, p := range parts {
			via[i] = p.viaIDs[id]
		}
		s.reached[id] = mergeHits(s.reached[id], concatHits(via))
	}
	for t := range s.termHits {
		for i, p := range parts {
			via[i] = p.viaTerms[t]
		}
		s.termHits[t] = mergeHits(s.termHits[t], concatHits(via))
	}
}

// joinRun joins the hubs' routes to the sources from to to (exclusive),
// reading the searcher only.
type joinRun struct {
	s                *searcher
	from, to         int
	hits             *atomic.Int64
	viaIDs, viaTerms [][]hit
	bestID, bestTerm []joined
	gen              uint32
	failure          any
}

func (j *joinRun) run() {
	defer func() { j.failure = recover() }() // raised again by join
	s := j.s
	j.viaIDs = make([][]hit, len(s.reached))
	j.viaTerms = make([][]hit, len(s.termHits))
	j.bestID = make([]joined, len(s.reached))
	j.bestTerm = make([]joined, len(s.termHits))
	var touchedIDs, touchedTerms []int32
	for src := j.from; src < j.to; src++ {
		arrs := s.arrivals[src]
		if len(arrs) == 0 {
			continue
		}
		j.gen++
		limit := s.limitOf(index(src))
		touchedIDs, touchedTerms = touchedIDs[:0], touchedTerms[:0]
		for _, a := range arrs {
			hs := s.hubs[a.hub]
			k := s.clen(a.chain)
			half := s.halfStep(a.chain)
			arank := int(s.chains[a.chain].rank)
			offer := func(list []hubTarget, best []joined, touched *[]int32, term bool) {
				for _, t := range list {
					n := k + t.n
					if !within(n, limit, term) {
						break // the rest are longer still
					}
					rank := arank
					if half || a.chain == 0 {
						rank = t.rank
					}
					b := &best[t.to]
					if b.stamp == j.gen && !betterRoute(n, rank, b.n, b.rank) {
						continue
					}
					if b.stamp != j.gen {
						*touched = append(*touched, t.to)
					}
					*b = joined{route: route{head: a.chain, tail: t.tail}, n: n, rank: rank, stamp: j.gen}
				}
			}
			offer(hs.idList, j.bestID, &touchedIDs, false)
			offer(hs.termList, j.bestTerm, &touchedTerms, true)
		}
		for _, id := range touchedIDs {
			b := &j.bestID[id]
			j.viaIDs[id] = append(j.viaIDs[id], newHit(index(src), b.route, b.n, b.rank))
		}
		for _, t := range touchedTerms {
			b := &j.bestTerm[t]
			j.viaTerms[t] = append(j.viaTerms[t], newHit(index(src), b.route, b.n, b.rank))
		}
		if total := j.hits.Add(int64(len(touchedIDs) + len(touchedTerms))); s.budget > 0 && total > int64(s.budget) {
			return // join gives up on the whole search
		}
	}
}

// joinBound returns a lower bound of the hits join adds: a source is
// offered every target of a hub's lists it can follow, and targets are
// distinct within a list, so it gets at least as many identities, and as
// many terminals, as the longest such list of any hub it reaches.
func (s *searcher) joinBound() int64 {
	return s.boundBy(func(h int32, k, limit int, term bool) int {
		list := s.hubs[h].idList
		if term {
			list = s.hubs[h].termList
		}
		return followable(list, k, limit, term)
	})
}

// ownBound is joinBound before the hubs' routes are settled, from their
// own searches' routes alone: each of those is to a distinct target, and
// a settled route to the same target is as short or shorter, so a source
// can follow at least as many settled routes as own ones.
func (s *searcher) ownBound() int64 {
	// Per hub, how many own routes of each length, ids then terminals.
	lengths := make(map[int32][2][]int, len(s.hubs))
	count := func(own []ownRoute) []int {
		out := make([]int, s.maxDepth+1)
		for _, o := range own {
			if o.n < len(out) { // always: a hub's search is bounded by the depth
				out[o.n]++
			}
		}
		return out
	}
	for h, hs := range s.hubs {
		lengths[h] = [2][]int{count(hs.ids.own), count(hs.terms.own)}
	}
	return s.boundBy(func(h int32, k, limit int, term bool) int {
		byLength := lengths[h][0]
		if term {
			byLength = lengths[h][1]
		}
		n := 0
		for d, c := range byLength {
			if within(k+d, limit, term) {
				n += c
			}
		}
		return n
	})
}

// boundBy adds up, over the sources, the most identities and the most
// terminals of one hub each can follow, as routes(hub, k, limit, term)
// counts them for a source that got to the hub in k steps and searches
// within limit.
func (s *searcher) boundBy(routes func(hub int32, k, limit int, term bool) int) int64 {
	var total int64
	for src, arrs := range s.arrivals {
		limit := s.limitOf(int32(src))
		ids, terms := 0, 0
		for _, a := range arrs {
			k := s.clen(a.chain)
			ids = max(ids, routes(a.hub, k, limit, false))
			terms = max(terms, routes(a.hub, k, limit, true))
		}
		total += int64(ids + terms)
	}
	return total
}

// followable returns how many routes of list, shortest first, a source
// that got to the hub in k steps can follow within limit.
func followable(list []hubTarget, k, limit int, term bool) int {
	return sort.Search(len(list), func(i int) bool { return !within(k+list[i].n, limit, term) })
}

// concatHits returns the lists one after the other, copying only when
// more than one has hits.
func concatHits(lists [][]hit) []hit {
	var out []hit
	n, some := 0, 0
	for _, l := range lists {
		n += len(l)
		if len(l) > 0 {
			some++
			out = l
		}
	}
	if some <= 1 {
		return out
	}
	out = make([]hit, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// mergeHits merges a target's own hits and those through hubs, both
// sorted by source with one per source, keeping a source's better one
// (its own on a tie).
func mergeHits(own, via []hit) []hit {
	if len(via) == 0 {
		return own
	}
	return mergeBySource(own, via, func(h hit) int32 { return h.source }, func(v, o hit) bool {
		return betterRoute(int(v.n), int(v.rank), int(o.n), int(o.rank))
	})
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
