package paths

import (
	"testing"

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
		own = bestPerSource(res.directCandidates(direct, sec.Namespace, sec.Name))
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
