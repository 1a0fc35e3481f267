package analysis

import (
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/workload"
)

// workloads applies the workload and hygiene rules (internal/workload),
// answering what they ask of RBAC and of coverage from this analysis.
func (a *analyzer) workloads(in Input, ix *rbac.ReadIndex) {
	opts := a.opts.Workload
	if opts.SecretReaders == nil {
		opts.SecretReaders = secretReaders(a.inv, ix)
	}
	opts.Complete = opts.Complete || complete(in)
	for _, res := range workload.Analyze(a.inv, opts) {
		a.addResult(res)
	}
}

// secretReaders returns whether a subject reads at least one Secret of the
// inventory directly, system:masters aside. A ServiceAccount also reads
// what the groups every ServiceAccount of its namespace belongs to read:
// system:serviceaccounts, system:serviceaccounts:NS and
// system:authenticated.
func secretReaders(inv *inventory.Inventory, ix *rbac.ReadIndex) func(rbac.Subject) bool {
	readers := map[rbac.Subject]bool{}
	// Secrets of a namespace share one reader list: walk each list once.
	walked := map[*rbac.Reader]int{}
	for _, s := range inv.Secrets {
		list := ix.Readers(s.Namespace, s.Name)
		if len(list) == 0 || walked[&list[0]] == len(list) {
			continue
		}
		walked[&list[0]] = len(list)
		for _, r := range list {
			if r.Subject != rbac.Superuser.Subject {
				readers[r.Subject] = true
			}
		}
	}
	group := func(name string) rbac.Subject { return rbac.Subject{Kind: rbac.KindGroup, Name: name} }
	everyServiceAccount := readers[group(rbac.GroupServiceAccounts)] || readers[group(rbac.GroupAuthenticated)]
	return func(s rbac.Subject) bool {
		if readers[s] {
			return true
		}
		return s.Kind == rbac.KindServiceAccount &&
			(everyServiceAccount || readers[group(rbac.GroupServiceAccountsPrefix+s.Namespace)])
	}
}

// complete reports whether the input is a live read that listed every
// resource: only then does an object missing from the inventory not
// exist.
func complete(in Input) bool {
	for _, p := range in.Problems {
		if p.Resource != "" {
			return false
		}
	}
	for _, c := range in.Coverage {
		if c.Kind == "cluster" {
			return true
		}
	}
	return false
}
