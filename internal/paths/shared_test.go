package paths

import (
	"testing"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
)

// TestSharedListsLoseNothing: a Secret's readers, as its namespace's
// shared list with its own entries laid over it, are exactly the list
// built from all its candidates at once, path for path.
func TestSharedListsLoseNothing(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		for _, offline := range []bool{false, true} {
			compareShared(t, seed, offline)
		}
	}
}

// directCandidates are the best chains to the direct readers, per source
// and sorted: what Readers offers its table, as a list of its own.
func directCandidates(r *Result, direct []rbac.Reader, ns, name string) []candidate {
	t := &bestTable{}
	t.reset(len(r.s.sources))
	r.offerDirect(t, direct, ns, name)
	return t.sorted()
}

func compareShared(t *testing.T, seed int64, offline bool) {
	size := synthetic.Scale(400)
	size.Pods, size.Nodes, size.Indirect = 600, 8, true
	inv := synthetic.Build(seed, size)
	mode := rbac.AggregationStored
	if offline {
		mode = rbac.AggregationComputed
	}
	p := rbac.NewPolicy(inv, mode)
	ix := rbac.NewReadIndex(p)
	res := Analyze(p, ix, Options{Offline: offline})
	diffs, owned := 0, 0
	for _, sec := range inv.Secrets {
		ns := res.namespace(sec.Namespace)
		direct := ix.Readers(sec.Namespace, sec.Name)
		var own []candidate
		own = directCandidates(res, direct, sec.Namespace, sec.Name)
		own = mergeBest(own, res.namedGrantCandidates(sec))
		for _, tm := range res.secretTerms[nsName{sec.Namespace, sec.Name}] {
			own = mergeBest(own, res.termCandidates(tm))
		}
		old := res.build(direct, mergeBest(ns.candidates, own))
		oldM := map[rbac.Subject]Reader{}
		for _, r := range old {
			oldM[r.Subject] = r
		}
		newM := map[rbac.Subject]Reader{}
		rs := res.Readers(sec)
		if len(rs.Own) > 0 {
			owned++
		}
		for r := range rs.All() {
			newM[r.Subject] = r
		}
		for s, r := range oldM {
			n, ok := newM[s]
			if !ok || n.Kind != r.Kind || len(n.Steps) != len(r.Steps) {
				diffs++
				if diffs < 10 {
					t.Errorf("%s/%s %s: old %s/%d new %v %s/%d", sec.Namespace, sec.Name, s, r.Kind, len(r.Steps), ok, n.Kind, len(n.Steps))
				}
			}
		}
		for s, n := range newM {
			if _, ok := oldM[s]; !ok {
				diffs++
				if diffs < 10 {
					t.Errorf("%s/%s %s: only new %s/%d", sec.Namespace, sec.Name, s, n.Kind, len(n.Steps))
				}
			}
		}
	}
	if diffs > 0 {
		t.Errorf("seed %d, offline %v: %d readers differ", seed, offline, diffs)
	}
	if owned == 0 {
		t.Fatalf("seed %d: no Secret has entries of its own: the test compares nothing", seed)
	}
}

// TestReadersAreComplete recomputes every Secret's readers the slow way,
// from the search's raw hits (every identity each source reaches that
// reads the Secret, every terminal that yields it), and requires the
// assembled lists to hold exactly those subjects, each with its fewest
// steps, less the subjects a group of theirs covers.
func TestReadersAreComplete(t *testing.T) {
	for seed := int64(1); seed <= 2; seed++ {
		size := synthetic.Scale(2000)
		size.Pods, size.Nodes, size.Indirect = 5000, 50, true
		inv := synthetic.Build(seed, size)
		p := rbac.NewPolicy(inv, rbac.AggregationStored)
		ix := rbac.NewReadIndex(p)
		res := Analyze(p, ix, Options{})
		g := res.g
		for _, sec := range inv.Secrets {
			want := map[rbac.Subject]int{}
			offer := func(s rbac.Subject, n int) {
				if prev, ok := want[s]; !ok || n < prev {
					want[s] = n
				}
			}
			direct := ix.Readers(sec.Namespace, sec.Name)
			for _, d := range direct {
				offer(d.Subject, 0)
				if id, ok := g.bySubject[d.Subject]; ok {
					for _, h := range res.s.reachedAt(id) {
						offer(res.s.sources[h.source].subject, int(h.n)+1)
					}
				}
			}
			for id, hits := range res.s.reached {
				ident := g.ids[id]
				if ident.kind != idGrant || !covers(ident.grant.scope, sec.Namespace) ||
					ident.grant.caps.readAll == 0 && ident.grant.caps.readNames[sec.Name] == 0 {
					continue
				}
				for _, h := range hits {
					offer(res.s.sources[h.source].subject, int(h.n)+1)
				}
			}
			terms := append([]int32(nil), res.secretTerms[nsName{sec.Namespace, sec.Name}]...)
			for _, tm := range []terminal{{kind: tPodCreate, ns: sec.Namespace}, {kind: tPodCreate}, {kind: tPatchAll, ns: sec.Namespace}, {kind: tPatchAll}} {
				if id, ok := g.byTerm[tm]; ok {
					terms = append(terms, id)
				}
			}
			for _, id := range terms {
				for _, h := range res.s.termHitsAt(id) {
					offer(res.s.sources[h.source].subject, int(h.n))
				}
			}
			// Leave out subjects covered by a group of theirs.
			for s, n := range want {
				for _, m := range Memberships(s) {
					if gn, ok := want[m]; ok && gn <= n && n > 0 {
						delete(want, s)
						break
					}
				}
			}
			got := map[rbac.Subject]int{}
			for r := range res.Readers(sec).All() {
				got[r.Subject] = len(r.Steps)
			}
			for s, n := range want {
				if gn, ok := got[s]; !ok || gn != n {
					t.Errorf("seed %d, %s/%s: %s reads in %d steps; the list has %v (%d)", seed, sec.Namespace, sec.Name, s, n, ok, gn)
				}
			}
			for s, n := range got {
				if _, ok := want[s]; !ok {
					t.Errorf("seed %d, %s/%s: the list has %s (%d steps), which the hits do not give", seed, sec.Namespace, sec.Name, s, n)
				}
			}
		}
	}
}

// TestShortcutsLoseNothing: the search's shortcut (a source does not
// follow what a group of its own covers) leaves every Secret's readers
// exactly as the full search finds them, subject for subject and step
// count for step count.
func TestShortcutsLoseNothing(t *testing.T) {
	forGeneratedWorlds(func(seed int64, offline bool, inv *inventory.Inventory, mode rbac.AggregationMode) {
		readersOf := func(noShortcuts bool) map[string]int {
			p := rbac.NewPolicy(inv, mode)
			res := analyze(p, rbac.NewReadIndex(p), Options{Offline: offline}, noShortcuts)
			out := map[string]int{}
			for _, sec := range inv.Secrets {
				for r := range res.Readers(sec).All() {
					out[sec.Namespace+"/"+sec.Name+" "+r.Subject.String()] = len(r.Steps)
				}
			}
			return out
		}
		fast, full := readersOf(false), readersOf(true)
		diffs := 0
		for k, n := range full {
			if m, ok := fast[k]; !ok || m != n {
				if diffs++; diffs <= 10 {
					t.Errorf("seed %d offline %v: %s reads in %d steps, with shortcuts %v (%d)", seed, offline, k, n, ok, m)
				}
			}
		}
		for k := range fast {
			if _, ok := full[k]; !ok {
				if diffs++; diffs <= 10 {
					t.Errorf("seed %d offline %v: %s reads only with shortcuts", seed, offline, k)
				}
			}
		}
		if len(full) == 0 {
			t.Fatal("no readers: the test compares nothing")
		}
	})
}

// forGeneratedWorlds calls f with each generated world the search's tests
// share: seeds 1 to 3, each read live and offline.
func forGeneratedWorlds(f func(seed int64, offline bool, inv *inventory.Inventory, mode rbac.AggregationMode)) {
	for seed := int64(1); seed <= 3; seed++ {
		for _, offline := range []bool{false, true} {
			size := synthetic.Scale(1000)
			size.Pods, size.Nodes, size.Indirect = 2000, 20, true
			mode := rbac.AggregationStored
			if offline {
				mode = rbac.AggregationComputed
			}
			f(seed, offline, synthetic.Build(seed, size), mode)
		}
	}
}

// TestJoinGivesUpOnlyPastTheBudget: the search gives up before settling
// the hubs' routes when ownBound shows the join would pass the budget, and
// before the join when joinBound does; both are lower bounds of what the
// join adds, ownBound the lower. So a search is stopped exactly when the
// hits of the whole search exceed the budget, whichever step finds out:
// in generated worlds, budgets just below and at each bound, and just
// below and at the full count, stop it or not as the full count says.
func TestJoinGivesUpOnlyPastTheBudget(t *testing.T) {
	forGeneratedWorlds(func(seed int64, offline bool, inv *inventory.Inventory, mode rbac.AggregationMode) {
		p := rbac.NewPolicy(inv, mode)
		ix := rbac.NewReadIndex(p)
		run := func(budget int) *searcher {
			return analyze(p, ix, Options{Offline: offline, MaxHits: budget}, false).s
		}
		all := run(1 << 40)
		total, from, bound, own := all.hits, all.joinFrom.hits, all.joinFrom.bound, all.joinFrom.own
		if all.exceeded || own == 0 || own == bound {
			t.Fatalf("seed %d offline %v: exceeded %v, bounds %d and %d: the test checks nothing", seed, offline, all.exceeded, own, bound)
		}
		if own > bound || int64(from)+bound > int64(total) {
			t.Fatalf("seed %d offline %v: %d hits before the join, bounds %d then %d: not lower bounds of the %d of the whole search", seed, offline, from, own, bound, total)
		}
		beforeResolve, beforeJoin := int(int64(from)+own-1), int(int64(from)+bound-1)
		for _, budget := range []int{beforeResolve, beforeResolve + 1, beforeJoin, beforeJoin + 1, total - 1, total} {
			s := run(budget)
			if want := total > budget; s.exceeded != want {
				t.Errorf("seed %d offline %v budget %d: exceeded %v, want %v (%d hits in all)", seed, offline, budget, s.exceeded, want, total)
			}
			gaveUp := map[int]int{beforeResolve: from + int(own), beforeJoin: from + int(bound)}
			if want, ok := gaveUp[budget]; ok && s.hits != want {
				t.Errorf("seed %d offline %v budget %d: %d hits, want the search to give up at once with %d", seed, offline, budget, s.hits, want)
			}
		}
	})
}

// TestOwnBoundCounts: ownBound counts, per source, the most own routes of
// one hub it can follow within its depth (identities need a step left to
// read with, terminals do not), and adds the sources up.
func TestOwnBoundCounts(t *testing.T) {
	routes := func(lengths ...int) []ownRoute {
		var out []ownRoute
		for i, n := range lengths {
			out = append(out, ownRoute{to: int32(i), n: n})
		}
		return out
	}
	s := &searcher{
		maxDepth: 4,
		chains:   []chainNode{{}, {n: 1}},
		// Source 0 searches 4 steps deep, source 1 only 2.
		sources: []sourceInfo{{}, {maxDepth: 2}},
		hubs: map[int32]*hubSearch{
			7: {ids: hubTable{own: routes(1, 2, 3)}, terms: hubTable{own: routes(1, 3)}},
			8: {ids: hubTable{own: routes(1, 1, 1)}},
		},
		arrivals: [][]arrival{
			{{hub: 7, chain: 1}, {hub: 8, chain: 1}}, // in 1 step
			{{hub: 7, chain: 0}},                     // in none
		},
	}
	// Source 0: identities max(2 of hub 7, 3 of hub 8), terminals 2 of
	// hub 7. Source 1: 1 identity, 1 terminal.
	if got := s.ownBound(); got != 3+2+1+1 {
		t.Errorf("ownBound %d, want 7", got)
	}
}
