package analysis

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// readUse is one read that a grant allowed: its target and the verbs of
// it the grant's rules allow.
type readUse struct {
	target auditlog.Target
	verbs  rbac.Verbs
}

// actualReader is one subject's reads of one Secret, before conversion.
type actualReader struct {
	user     string
	groups   []string
	subject  rbac.Subject
	last     time.Time
	count    int
	verbs    rbac.Verbs
	named    bool
	agents   []string
	ips      []string
	explains bool
}

// readsAnalysis joins the audit log summary with the RBAC analysis: who
// did read each Secret, which grants those reads used, and which readers
// read nothing.
type readsAnalysis struct {
	a    *analyzer
	p    *rbac.Policy
	snap *auditlog.Snapshot
	// readers are each Secret's actual readers, by report index.
	readers [][]actualReader
	// usedBy are, per binding, the binding subjects some read went
	// through (a group: one of its members read).
	usedBy map[inventory.Ref]map[rbac.Subject]bool
	// roleUses are, per role, the reads any binding of it allowed.
	roleUses map[inventory.Ref][]readUse
}

// actualReads fills the Secrets' actualReaders and unusedReaders from the
// audit log summary, and raises KH621 for reads no reader explains and
// KH620 for grants nobody used (once a whole window has been observed).
func (a *analyzer) actualReads(snap *auditlog.Snapshot, p *rbac.Policy) {
	if snap == nil {
		return
	}
	ra := &readsAnalysis{a: a, p: p, snap: snap,
		usedBy: map[inventory.Ref]map[rbac.Subject]bool{}, roleUses: map[inventory.Ref][]readUse{}}
	a.report.Coverage.Sources = append(a.report.Coverage.Sources, report.SourceCoverage{
		Kind:    "audit-log",
		Objects: map[string]int{"reads": len(snap.Reads)},
		AuditLog: &report.AuditLogCoverage{
			Since: snap.Since.Format(time.RFC3339), Window: snap.Window.String(), Complete: snap.Covered(),
			Entries: snap.Stats.Entries, Evicted: snap.Stats.Evicted,
		},
	})
	if !snap.Covered() {
		a.report.Coverage.NotAnalysed = append(a.report.Coverage.NotAnalysed, fmt.Sprintf(
			"audit log: observed since %s, less than the window of %s: unused grants (KH620) are reported from %s",
			snap.Since.Format(time.RFC3339), windowText(snap.Window), snap.Since.Add(snap.Window).Format(time.RFC3339)))
	}
	if snap.Stats.Evicted > 0 {
		a.report.Coverage.NotAnalysed = append(a.report.Coverage.NotAnalysed, fmt.Sprintf(
			"warning: audit log: %d (subject, Secret) entries were evicted to keep the summary within its bound, so some reads are missing and some readers may look unused; raise --audit-max-entries",
			snap.Stats.Evicted))
	}
	ra.grantUses()
	ra.secretReaders()
	if snap.Covered() {
		ra.unusedReaders()
	}
}

// windowText is a window for people: in days when it is whole days.
func windowText(w time.Duration) string {
	if w >= 24*time.Hour && w%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", w/(24*time.Hour))
	}
	return w.String()
}

// grantUses records, for every read of the summary, the bindings that
// allowed it. A read counts as a use of every grant that allows it, not
// only the one the authorizer happened to stop at: no change is then
// suggested that could take away a read someone made.
func (ra *readsAnalysis) grantUses() {
	for i := range ra.snap.Reads {
		rs := &ra.snap.Reads[i]
		ids := []rbac.Subject{auditlog.Subject(rs.User)}
		for _, g := range rs.Groups {
			ids = append(ids, rbac.Subject{Kind: rbac.KindGroup, Name: g})
		}
		seen := map[*rbac.Binding]bool{}
		for _, id := range ids {
			for _, b := range ra.p.BindingsOf(id) {
				if seen[b] {
					continue
				}
				seen[b] = true
				if !b.RoleFound || (b.Namespace != "" && b.Namespace != rs.Namespace) {
					continue
				}
				verbs := allowedVerbs(b.Rules, rs.Verbs, rs.Name)
				if verbs == 0 {
					continue
				}
				for _, s := range b.Subjects {
					if auditlog.SubjectMatches(report.Subject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace}, rs.User, rs.Groups) {
						if ra.usedBy[b.Ref] == nil {
							ra.usedBy[b.Ref] = map[rbac.Subject]bool{}
						}
						ra.usedBy[b.Ref][s] = true
					}
				}
				ra.roleUses[b.Role] = append(ra.roleUses[b.Role], readUse{rs.Target, verbs})
			}
		}
	}
}

// allowedVerbs returns which of verbs the rules allow on core/v1 Secrets
// with object name name (empty for an unfiltered list or watch), as the
// authorizer asks.
func allowedVerbs(rules []rbacv1.PolicyRule, verbs rbac.Verbs, name string) rbac.Verbs {
	var out rbac.Verbs
	for _, v := range verbs.Names() {
		a := rbac.Attributes{Verb: v, Resource: "secrets", Name: name}
		for i := range rules {
			if rbac.RuleAllows(&rules[i], a) {
				out |= rbac.ParseVerb(v)
				break
			}
		}
	}
	return out
}

// readIndex finds the summary's reads that reached a Secret.
type readIndex struct {
	exact    map[auditlog.Target][]int
	inNS     map[string][]int
	named    map[string][]int
	everyone []int
}

func newReadIndex(reads []auditlog.ReadSummary) *readIndex {
	ix := &readIndex{exact: map[auditlog.Target][]int{}, inNS: map[string][]int{}, named: map[string][]int{}}
	for i := range reads {
		t := reads[i].Target
		switch {
		case t.Namespace != "" && t.Name != "":
			ix.exact[t] = append(ix.exact[t], i)
		case t.Namespace != "":
			ix.inNS[t.Namespace] = append(ix.inNS[t.Namespace], i)
		case t.Name != "":
			ix.named[t.Name] = append(ix.named[t.Name], i)
		default:
			ix.everyone = append(ix.everyone, i)
		}
	}
	return ix
}

func (ix *readIndex) of(namespace, name string) [][]int {
	return [][]int{ix.exact[auditlog.Target{Namespace: namespace, Name: name}], ix.inNS[namespace], ix.named[name], ix.everyone}
}

// secretReaders fills every Secret's actualReaders and raises KH621.
func (ra *readsAnalysis) secretReaders() {
	ix := newReadIndex(ra.snap.Reads)
	a := ra.a
	ra.readers = make([][]actualReader, len(a.report.Secrets))
	window := ra.snap.Window.String()
	for i := range a.report.Secrets {
		s := &a.report.Secrets[i]
		s.AuditWindow = window
		var created time.Time
		if inv := a.inv.Secret(s.Namespace, s.Name); inv != nil {
			created = inv.CreatedAt
		}
		byUser := map[string]*actualReader{}
		var users []string
		for _, list := range ix.of(s.Namespace, s.Name) {
			for _, j := range list {
				rs := &ra.snap.Reads[j]
				if rs.Wildcard() && rs.LastSeen.Before(created) {
					// Every list it stands for predates the Secret.
					continue
				}
				ar := byUser[rs.User]
				if ar == nil {
					ar = &actualReader{user: rs.User, subject: auditlog.Subject(rs.User)}
					byUser[rs.User] = ar
					users = append(users, rs.User)
				}
				if rs.LastSeen.After(ar.last) {
					ar.last, ar.groups = rs.LastSeen, rs.Groups
				}
				ar.count += rs.Count
				ar.verbs |= rs.Verbs
				ar.named = ar.named || !rs.Wildcard()
				ar.agents = appendUnique(ar.agents, rs.UserAgents)
				ar.ips = appendUnique(ar.ips, rs.SourceIPs)
			}
		}
		if len(users) == 0 {
			continue
		}
		out := make([]actualReader, 0, len(users))
		for _, u := range users {
			ar := byUser[u]
			ar.explains = auditlog.CanRead(s, ar.user, ar.groups)
			out = append(out, *ar)
		}
		sort.Slice(out, func(x, y int) bool { return out[x].subject.Less(out[y].subject) })
		ra.readers[i] = out
		s.ActualReaders = make([]report.ActualReader, len(out))
		for j := range out {
			ar := &out[j]
			s.ActualReaders[j] = report.ActualReader{
				Subject:     subject(ar.subject),
				LastSeen:    ar.last.UTC().Format(time.RFC3339),
				Count:       ar.count,
				Verbs:       ar.verbs.Names(),
				Listed:      !ar.named,
				UserAgents:  ar.agents,
				SourceIPs:   ar.ips,
				Unexplained: !ar.explains,
			}
			if !ar.explains {
				ref := inventory.Ref{Kind: "Secret", Namespace: s.Namespace, Name: s.Name}
				a.add(finding.UnexplainedSecretRead, ref, fmt.Sprintf(
					"%s read %s (%s, %d times in the window, last %s) but no RBAC grant, system:masters membership or Node authorizer path lets it: a webhook or cloud authorizer allowed it, the grant was removed since, or keyhole's model is wrong",
					ar.subject, ref, strings.Join(ar.verbs.Names(), "/"), ar.count, ar.last.UTC().Format(time.RFC3339)),
					ar.subject.Kind, ar.subject.Namespace, ar.subject.Name)
			}
		}
	}
}

// maxListed bounds the user agents and addresses listed per reader.
const maxListed = 3

func appendUnique(dst, src []string) []string {
	for _, s := range src {
		if len(dst) >= maxListed {
			break
		}
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}
