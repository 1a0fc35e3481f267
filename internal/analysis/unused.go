package analysis

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// AutoupdateAnnotation marks the bootstrap roles and bindings that the
// apiserver reconciles at every start: an edit of one does not last.
const AutoupdateAnnotation = "rbac.authorization.kubernetes.io/autoupdate"

// nonReadSecretVerbs replace "*" when the read verbs are taken out of a
// rule: the verbs of the secrets resource other than get, list and watch.
var nonReadSecretVerbs = []string{"create", "update", "patch", "delete", "deletecollection"}

// change is one way to remove a subject's grant: one or more edits (a
// role edit of an aggregated ClusterRole edits each of its sources).
type change struct {
	edits []report.RBACChange
	// kept are the Secret names a narrowed role still reads; nil for a
	// change that removes every read of the grant.
	kept []string
}

// removes reports whether the change takes Secret name out of the grant.
func (c *change) removes(name string) bool {
	_, found := slices.BinarySearch(c.kept, name)
	return !found
}

// grantPlan is what can be done about one subject's grant through one
// binding: the safe changes, tightest first, or why there is none.
type grantPlan struct {
	binding *rbac.Binding
	changes []*change
	reasons []string
}

// pick returns the first change that takes Secret name out of the grant.
func (g *grantPlan) pick(name string) *change {
	for _, c := range g.changes {
		if c.removes(name) {
			return c
		}
	}
	return nil
}

func (g *grantPlan) reason() string {
	if len(g.reasons) == 0 {
		return "no change of this grant removes the read without taking one away from a subject who made it"
	}
	return strings.Join(g.reasons, "; ")
}

type planKey struct {
	subject rbac.Subject
	binding inventory.Ref
}

// grantTally is what a KH620 finding says about one subject and binding.
type grantTally struct {
	reachable, unused int
	plan              *grantPlan
	chosen            map[*change]bool
}

// unusedReaders fills every Secret's unusedReaders: its direct readers
// (expected ones aside) that no actual reader of it is or belongs to,
// each with the change that removes every grant behind it. It raises
// KH620 once per subject and binding. Indirect readers are not judged:
// their path starts with another permission (creating pods, minting
// tokens), whose use the audit log of Secrets does not show.
func (ra *readsAnalysis) unusedReaders() {
	a := ra.a
	plans := map[planKey]*grantPlan{}
	tallies := map[planKey]*grantTally{}
	var order []planKey
	for i := range a.report.Secrets {
		s := &a.report.Secrets[i]
		actual := ra.readers[i]
		for rd := range s.Readers.All() {
			if rd.Path != "direct" || rd.Expected {
				continue
			}
			subj := rbac.Subject{Kind: rd.Subject.Kind, Name: rd.Subject.Name, Namespace: rd.Subject.Namespace}
			used := false
			for j := range actual {
				if auditlog.SubjectMatches(rd.Subject, actual[j].user, actual[j].groups) {
					used = true
					break
				}
			}
			for _, v := range rd.Via {
				if v.Binding == nil {
					continue
				}
				k := planKey{subj, inventory.Ref(*v.Binding)}
				t := tallies[k]
				if t == nil {
					t = &grantTally{chosen: map[*change]bool{}}
					tallies[k] = t
					order = append(order, k)
				}
				t.reachable++
				if !used {
					t.unused++
				}
			}
			if used {
				continue
			}
			ur := report.UnusedReader{Subject: rd.Subject, Changes: []report.RBACChange{}}
			var chosen []*change
			for _, v := range rd.Via {
				if v.Binding == nil {
					ur.Reason = "it reads as a member of system:masters or through another authorizer than RBAC, which no RBAC change removes"
					break
				}
				k := planKey{subj, inventory.Ref(*v.Binding)}
				p := plans[k]
				if p == nil {
					p = ra.plan(subj, k.binding)
					plans[k] = p
					tallies[k].plan = p
				}
				c := p.pick(s.Name)
				if c == nil {
					ur.Reason = fmt.Sprintf("%s: %s", k.binding, p.reason())
					break
				}
				chosen = append(chosen, c)
			}
			if ur.Reason == "" {
				for _, c := range chosen {
					ur.Changes = append(ur.Changes, c.edits...)
				}
				for j, v := range rd.Via {
					tallies[planKey{subj, inventory.Ref(*v.Binding)}].chosen[chosen[j]] = true
				}
			}
			s.UnusedReaders = append(s.UnusedReaders, ur)
		}
	}
	for _, k := range order {
		t := tallies[k]
		if t.unused == 0 {
			continue
		}
		if t.plan == nil {
			t.plan = ra.plan(k.subject, k.binding)
		}
		role := "its role"
		if t.plan.binding != nil {
			role = t.plan.binding.Role.String()
		}
		msg := fmt.Sprintf("%s can read %s through %s (%s) and read %s in the last %s", k.subject, countOf(t.reachable, "Secret"),
			k.binding, role, noneOf(t.unused, t.reachable), windowText(ra.snap.Window))
		var texts []string
		for _, c := range t.plan.changes {
			if t.chosen[c] {
				for _, e := range c.edits {
					texts = append(texts, e.Text)
				}
			}
		}
		if len(texts) > 0 {
			msg += "; suggested: " + strings.Join(texts, "; ")
		} else {
			msg += "; no safe change: " + t.plan.reason()
		}
		a.add(finding.UnusedSecretGrant, k.binding, msg, k.subject.Kind, k.subject.Namespace, k.subject.Name)
	}
}

// countOf is "1 Secret", "3 Secrets".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func noneOf(unused, reachable int) string {
	if unused == reachable {
		return "none of them"
	}
	return fmt.Sprintf("%d of them not at all", unused)
}

// plan works out the safe changes of subject's grant through binding.
func (ra *readsAnalysis) plan(subj rbac.Subject, binding inventory.Ref) *grantPlan {
	g := &grantPlan{}
	b := ra.bindingOf(binding)
	if b == nil {
		g.reasons = append(g.reasons, "the binding is not in the inventory")
		return g
	}
	g.binding = b
	var removal *change
	switch {
	case ra.autoupdate(binding):
		g.reasons = append(g.reasons, binding.String()+" is reconciled by the apiserver ("+AutoupdateAnnotation+")")
	case ra.usedBy[binding][subj]:
		g.reasons = append(g.reasons, fmt.Sprintf("%s read other Secrets through %s", subj, binding))
	default:
		removal = removeSubject(b, subj)
	}
	roleEdit, why := ra.roleEdit(b, subj)
	if roleEdit == nil {
		g.reasons = append(g.reasons, why)
	}
	// A role that grants nothing but Secret reads: removing the subject
	// from the binding takes nothing else from it, and nothing from anyone
	// else. Otherwise the role edit is tighter: it takes only unused
	// Secret reads, where a removal would take the role's other
	// permissions too.
	first, second := roleEdit, removal
	if onlySecretReads(b.Rules) {
		first, second = removal, roleEdit
	}
	for _, c := range []*change{first, second} {
		if c != nil {
			g.changes = append(g.changes, c)
		}
	}
	return g
}

func (ra *readsAnalysis) bindingOf(ref inventory.Ref) *rbac.Binding {
	bs := ra.p.Bindings()
	for i := range bs {
		if bs[i].Ref == ref {
			return &bs[i]
		}
	}
	return nil
}

// autoupdate reports whether the role or binding ref carries the
// bootstrap policy's autoupdate annotation.
func (ra *readsAnalysis) autoupdate(ref inventory.Ref) bool {
	inv := ra.a.inv
	var meta *metav1.ObjectMeta
	switch ref.Kind {
	case "ClusterRole":
		if r := inv.ClusterRole(ref.Name); r != nil {
			meta = &r.ObjectMeta
		}
	case "Role":
		if r := inv.Role(ref.Namespace, ref.Name); r != nil {
			meta = &r.ObjectMeta
		}
	case "ClusterRoleBinding":
		for _, b := range inv.ClusterRoleBindings {
			if b.Name == ref.Name {
				meta = &b.ObjectMeta
				break
			}
		}
	case "RoleBinding":
		for _, b := range inv.RoleBindings {
			if b.Namespace == ref.Namespace && b.Name == ref.Name {
				meta = &b.ObjectMeta
				break
			}
		}
	}
	return meta != nil && meta.Annotations[AutoupdateAnnotation] == "true"
}

func removeSubject(b *rbac.Binding, subj rbac.Subject) *change {
	obj := objectRef(b.Ref)
	grant := report.Via{Binding: &obj, Role: refPtr(b.Role)}
	s := subject(subj)
	if len(b.Subjects) == 1 && len(b.Invalid) == 0 {
		return &change{edits: []report.RBACChange{{Action: report.ChangeDeleteBinding, Object: obj, Grant: grant, Subject: &s,
			Text: fmt.Sprintf("delete %s: %s is its only subject", b.Ref, subj)}}}
	}
	return &change{edits: []report.RBACChange{{Action: report.ChangeRemoveSubject, Object: obj, Grant: grant, Subject: &s,
		Text: fmt.Sprintf("remove %s from the subjects of %s", subj, b.Ref)}}}
}

func refPtr(r inventory.Ref) *report.ObjectRef {
	o := objectRef(r)
	return &o
}

// onlySecretReads reports whether rules grant nothing but reads of
// Secrets.
func onlySecretReads(rules []rbacv1.PolicyRule) bool {
	for i := range rules {
		r := &rules[i]
		if len(r.NonResourceURLs) > 0 {
			return false
		}
		for _, res := range r.Resources {
			if res != "secrets" {
				return false
			}
		}
		for _, v := range r.Verbs {
			if rbac.ParseVerb(v) == 0 {
				return false
			}
		}
	}
	return true
}

// roleEdit returns the edit of the binding's role (or, for an aggregated
// ClusterRole, of its sources) that removes Secret reads nobody made
// through it: every Secret read when none was made, else all but the
// names read. It returns why not when there is none.
func (ra *readsAnalysis) roleEdit(b *rbac.Binding, subj rbac.Subject) (*change, string) {
	targets, roles, why := ra.roleTargets(b.Role)
	if why != "" {
		return nil, why
	}
	var uses []readUse
	for _, r := range roles {
		uses = append(uses, ra.roleUses[r]...)
	}
	var names []string
	var verbs rbac.Verbs
	for _, u := range uses {
		if u.target.Name == "" {
			return nil, fmt.Sprintf("someone listed or watched every Secret of a namespace through %s, which resourceNames cannot allow", b.Role)
		}
		names = append(names, u.target.Name)
		verbs |= u.verbs
	}
	slices.Sort(names)
	names = slices.Compact(names)
	affects := ra.affected(roles, subj)
	c := &change{kept: names}
	if len(uses) == 0 {
		c.kept = nil
	}
	for _, t := range targets {
		rules := ra.rulesOf(t)
		out, why := withoutSecretReads(rules, t)
		if why != "" {
			return nil, why
		}
		obj := objectRef(t)
		edit := report.RBACChange{Object: obj, Grant: report.Via{Binding: refPtr(b.Ref), Role: refPtr(b.Role)}, Affects: affects}
		if len(uses) == 0 {
			edit.Action = report.ChangeDropVerbs
			edit.Text = fmt.Sprintf("drop get, list and watch on secrets from %s: nobody read a Secret through it in the window", t)
		} else {
			out = append(out, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: verbs.Names(), ResourceNames: names})
			edit.Action = report.ChangeNarrowResourceNames
			edit.Text = fmt.Sprintf("narrow the Secret reads of %s to %s on resourceNames %s, the only Secrets read through it in the window",
				t, strings.Join(verbs.Names(), ", "), strings.Join(names, ", "))
		}
		if b.Role != t {
			edit.Text += " (a source of the aggregated " + b.Role.String() + ")"
		}
		edit.Rules = policyRules(out)
		c.edits = append(c.edits, edit)
	}
	return c, ""
}

// rulesOf returns the rules a role object holds.
func (ra *readsAnalysis) rulesOf(ref inventory.Ref) []rbacv1.PolicyRule {
	if ref.Kind == "Role" {
		if r := ra.a.inv.Role(ref.Namespace, ref.Name); r != nil {
			return r.Rules
		}
		return nil
	}
	if r := ra.a.inv.ClusterRole(ref.Name); r != nil {
		return r.Rules
	}
	return nil
}

// roleTargets returns the roles to edit to change what role grants on
// Secrets (role itself, or the sources of an aggregated ClusterRole that
// grant Secret reads), and every role whose bindings the edit reaches
// (role, and each aggregated ClusterRole that takes in a source, however
// indirectly). Bootstrap roles that the apiserver reconciles are never
// targets, nor are aggregated ClusterRoles, which the controller rewrites.
func (ra *readsAnalysis) roleTargets(role inventory.Ref) (targets, roles []inventory.Ref, why string) {
	if ra.autoupdate(role) {
		return nil, nil, role.String() + " is a bootstrap role the apiserver reconciles (" + AutoupdateAnnotation + ")"
	}
	if role.Kind != "ClusterRole" {
		return []inventory.Ref{role}, []inventory.Ref{role}, ""
	}
	cr := ra.a.inv.ClusterRole(role.Name)
	if cr == nil || cr.AggregationRule == nil {
		return []inventory.Ref{role}, ra.aggregatorsOf([]string{role.Name}), ""
	}
	var sources []string
	for _, other := range ra.a.inv.ClusterRoles {
		if other.Name == cr.Name || !selects(cr, other) {
			continue
		}
		if all, names := rbac.SecretReads(other.Rules); all == 0 && len(names) == 0 {
			continue
		}
		ref := inventory.Ref{Kind: "ClusterRole", Name: other.Name}
		if other.AggregationRule != nil || ra.autoupdate(ref) {
			return nil, nil, fmt.Sprintf("%s is aggregated, and its Secret reads come from %s, which the controllers rewrite", role, ref)
		}
		sources = append(sources, other.Name)
		targets = append(targets, ref)
	}
	if len(targets) == 0 {
		return nil, nil, fmt.Sprintf("%s is aggregated and no source role it selects grants Secret reads", role)
	}
	return targets, ra.aggregatorsOf(sources), ""
}

// aggregatorsOf returns the ClusterRoles names and every aggregated
// ClusterRole that takes in one of them, directly or through another.
func (ra *readsAnalysis) aggregatorsOf(names []string) []inventory.Ref {
	in := map[string]bool{}
	for _, n := range names {
		in[n] = true
	}
	for changed := true; changed; {
		changed = false
		for _, cr := range ra.a.inv.ClusterRoles {
			if in[cr.Name] || cr.AggregationRule == nil {
				continue
			}
			for _, other := range ra.a.inv.ClusterRoles {
				if in[other.Name] && other.Name != cr.Name && selects(cr, other) {
					in[cr.Name], changed = true, true
					break
				}
			}
		}
	}
	out := make([]inventory.Ref, 0, len(in))
	for n := range in {
		out = append(out, inventory.Ref{Kind: "ClusterRole", Name: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// selects reports whether aggregated ClusterRole agg's selectors select
// other. A selector that does not parse selects nothing (the analysis
// reports it).
func selects(agg, other *rbacv1.ClusterRole) bool {
	for i := range agg.AggregationRule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&agg.AggregationRule.ClusterRoleSelectors[i])
		if err == nil && sel.Matches(labels.Set(other.Labels)) {
			return true
		}
	}
	return false
}

// affected returns the subjects, other than subj, of every binding of
// roles: who else a role edit reaches.
func (ra *readsAnalysis) affected(roles []inventory.Ref, subj rbac.Subject) []report.Subject {
	seen := map[rbac.Subject]bool{subj: true}
	var out []rbac.Subject
	for _, b := range ra.p.Bindings() {
		if !slices.Contains(roles, b.Role) {
			continue
		}
		for _, s := range b.Subjects {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return subjects(out)
}

// withoutSecretReads returns rules with get, list and watch on core/v1
// Secrets taken out: a rule that also covers other resources is split,
// and "*" verbs become the other verbs of secrets. A rule on every
// resource ("*") cannot be split without listing every other resource:
// that is returned as why.
func withoutSecretReads(rules []rbacv1.PolicyRule, role inventory.Ref) ([]rbacv1.PolicyRule, string) {
	out := make([]rbacv1.PolicyRule, 0, len(rules)+1)
	for i := range rules {
		r := rules[i]
		reads := false
		for _, v := range []string{"get", "list", "watch"} {
			reads = reads || rbac.VerbMatches(&r, v)
		}
		if len(r.NonResourceURLs) > 0 || !reads || !rbac.APIGroupMatches(&r, "") || !rbac.ResourceMatches(&r, "secrets", "") {
			out = append(out, r)
			continue
		}
		if slices.Contains(r.Resources, rbacv1.ResourceAll) {
			return nil, fmt.Sprintf("rule %d of %s allows every resource, so its Secret reads cannot be taken out alone", i+1, role)
		}
		var others []string
		for _, res := range r.Resources {
			if res != "secrets" {
				others = append(others, res)
			}
		}
		if len(others) > 0 {
			o := *r.DeepCopy()
			o.Resources = others
			out = append(out, o)
		}
		var rest []string
		if slices.Contains(r.Verbs, rbacv1.VerbAll) {
			rest = nonReadSecretVerbs
		} else {
			for _, v := range r.Verbs {
				if rbac.ParseVerb(v) == 0 {
					rest = append(rest, v)
				}
			}
		}
		if len(rest) > 0 {
			s := *r.DeepCopy()
			s.Resources = []string{"secrets"}
			s.Verbs = slices.Clone(rest)
			out = append(out, s)
		}
	}
	return out, ""
}

func policyRules(rules []rbacv1.PolicyRule) []report.PolicyRule {
	out := make([]report.PolicyRule, len(rules))
	for i, r := range rules {
		out[i] = report.PolicyRule{Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources,
			ResourceNames: r.ResourceNames, NonResourceURLs: r.NonResourceURLs}
	}
	return out
}
