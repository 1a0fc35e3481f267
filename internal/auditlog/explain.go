package auditlog

import (
	"slices"
	"sync"

	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// Path kinds of a reader that reads the Secret itself, through the API:
// an RBAC grant (or system:masters), or the Node authorizer for a kubelet.
// Every other kind obtains the value some other way (a pod, a token), so
// an API read by that subject is not what the path explains.
var readsThroughAPI = []string{"direct", "node-authorizer"}

// ReaderMatches reports whether reader rd, of a report, is the identity
// user with groups, or one of its groups, and reads through the API. The
// groups are those of the audit event, which are exactly those the
// authorizer saw (system:authenticated, system:serviceaccounts and
// system:serviceaccounts:NS included), so system:masters membership
// matches the superuser reader.
func ReaderMatches(rd *report.Reader, user string, groups []string) bool {
	if !slices.Contains(readsThroughAPI, rd.Path) {
		return false
	}
	return SubjectMatches(rd.Subject, user, groups)
}

// SubjectMatches reports whether RBAC subject s names user or one of
// groups.
func SubjectMatches(s report.Subject, user string, groups []string) bool {
	switch s.Kind {
	case rbac.KindUser:
		return s.Name == user
	case rbac.KindServiceAccount:
		return user == (rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: s.Namespace, Name: s.Name}).Username()
	case rbac.KindGroup:
		return slices.Contains(groups, s.Name)
	}
	return false
}

// CanRead reports whether the report says user, with groups, reads Secret
// sec through the API.
func CanRead(sec *report.Secret, user string, groups []string) bool {
	for r := range sec.Readers.All() {
		if ReaderMatches(r, user, groups) {
			return true
		}
	}
	return false
}

// maxExplainerCache bounds the answers an Explainer remembers; past it,
// it answers without remembering.
const maxExplainerCache = 100_000

// Explainer answers, for each read the audit log reports, whether the
// report's readers explain it. One is built per report; it is safe for
// concurrent use.
type Explainer struct {
	secrets     map[Target]*report.Secret
	byNamespace map[string][]*report.Secret
	all         []*report.Secret

	mu    sync.Mutex
	cache map[explainKey]bool
}

type explainKey struct {
	user   string
	target Target
}

// NewExplainer indexes rep's Secrets. rep must not change afterwards.
func NewExplainer(rep *report.Report) *Explainer {
	x := &Explainer{secrets: map[Target]*report.Secret{}, byNamespace: map[string][]*report.Secret{}, cache: map[explainKey]bool{}}
	if rep == nil {
		return x
	}
	for i := range rep.Secrets {
		s := &rep.Secrets[i]
		x.secrets[Target{s.Namespace, s.Name}] = s
		x.byNamespace[s.Namespace] = append(x.byNamespace[s.Namespace], s)
		x.all = append(x.all, s)
	}
	return x
}

// Explained reports whether the report lets r's identity read every
// Secret r reached. A read of a Secret the report does not hold (created
// or deleted since the analysis) is explained: nothing says otherwise.
func (x *Explainer) Explained(r *Read) bool {
	t := Target{r.Namespace, r.Name}
	if !t.Wildcard() {
		s := x.secrets[t]
		return s == nil || CanRead(s, r.User, r.Groups)
	}
	k := explainKey{r.User, t}
	x.mu.Lock()
	ok, found := x.cache[k]
	x.mu.Unlock()
	if found {
		return ok
	}
	candidates := x.all
	if t.Namespace != "" {
		candidates = x.byNamespace[t.Namespace]
	}
	ok = true
	for _, s := range candidates {
		if t.Covers(s.Namespace, s.Name) && !CanRead(s, r.User, r.Groups) {
			ok = false
			break
		}
	}
	x.mu.Lock()
	if len(x.cache) < maxExplainerCache {
		x.cache[k] = ok
	}
	x.mu.Unlock()
	return ok
}
