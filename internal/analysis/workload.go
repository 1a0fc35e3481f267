package analysis

import (
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/workload"
)

// workloads applies the workload and hygiene rules (internal/workload),
// answering what they ask of RBAC and of coverage from this analysis, and
// fills every report Secret's envInjections from the same walk.
func (a *analyzer) workloads(in Input, ix *rbac.ReadIndex, res *paths.Result) {
	opts := a.opts.Workload
	if opts.SecretReaders == nil {
		opts.SecretReaders = secretReaders(ix)
	}
	if opts.IndirectSecretReaders == nil {
		opts.IndirectSecretReaders = func(s rbac.Subject) (string, bool) {
			step, ok := res.Obtains(s)
			if !ok {
				return "", false
			}
			return "by " + string(step.Kind) + " (" + step.Permission.String() + ")", true
		}
	}
	opts.Complete = opts.Complete || complete(in)
	w := workload.AnalyzeAll(a.inv, opts)
	for _, res := range w.Results {
		a.addResult(res)
	}
	for i := range a.report.Secrets {
		s := &a.report.Secrets[i]
		s.EnvInjections = w.EnvInjections[inventory.Ref{Kind: "Secret", Namespace: s.Namespace, Name: s.Name}]
	}
}

// secretReaders returns whether a subject holds a grant to read Secrets,
// system:masters aside, whether or not the Secrets it reaches are in the
// inventory (an offline repository often holds none). A ServiceAccount
// also reads what the groups every ServiceAccount of its namespace belongs
// to read: system:serviceaccounts, system:serviceaccounts:NS and
// system:authenticated.
func secretReaders(ix *rbac.ReadIndex) func(rbac.Subject) bool {
	readers := ix.Grantees()
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
