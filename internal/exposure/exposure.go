// Package exposure scores how exposed each Secret is from its readers,
// direct and indirect: which readers are expected, which stand for
// everyone, which come from outside the Secret's namespace, which obtain
// it only through an indirect path, how many distinct principals there are
// and how short their paths are. docs/scoring.md is the contract; this
// package implements it and nothing else.
package exposure

import (
	"fmt"
	"strings"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// DefaultManyPrincipals is the number of distinct non-expected principals
// above which a Secret is readable "by many".
const DefaultManyPrincipals = 10

// Options tune the scoring.
type Options struct {
	// Expected are subjects whose reads never raise severity: the
	// control-plane identities and the operator's allowlist.
	// system:masters is always expected.
	Expected map[rbac.Subject]bool
	// ManyPrincipals overrides DefaultManyPrincipals when positive.
	ManyPrincipals int
}

// IsExpected reports whether a subject's reads are expected.
func (o Options) IsExpected(s rbac.Subject) bool {
	return s == rbac.Superuser.Subject || o.Expected[s]
}

// ExpectedReader reports whether a reader does not raise severity: an
// expected subject, or a kubelet reading, through the Node authorizer,
// what the pods bound to its node use (which it must, to run them).
func (o Options) ExpectedReader(r *paths.Reader) bool {
	if o.IsExpected(r.Subject) {
		return true
	}
	return r.Kind == paths.NodeAuthorizer && len(r.Steps) == 1 &&
		r.Subject.Kind == rbac.KindUser && strings.HasPrefix(r.Subject.Name, "system:node:")
}

// Reason is one fact that raises a Secret's severity.
type Reason struct {
	Rule     string
	Severity finding.Severity
	Text     string
}

// Assessment is a Secret's exposure.
type Assessment struct {
	Severity finding.Severity
	Score    int
	// Direct and Indirect count reader entries by path class, expected
	// readers included.
	Direct   int
	Indirect int
	// Principals counts the distinct non-expected readers.
	Principals int
	// Reasons, most severe first; one per rule that applies.
	Reasons []Reason
	// Top are the most exposing non-expected readers, worst first, at
	// most MaxTop.
	Top []rbac.Subject
}

// MaxTop bounds Assessment.Top.
const MaxTop = 5

// shortPath is the longest path, in steps, that weighs as much as a
// direct read in the score.
const shortPath = 2

// Assess scores one Secret from its readers (paths.Result.Readers).
func Assess(s *inventory.Secret, readers paths.Readers, opts Options) Assessment {
	return NewAssessor(opts).Assess(s, readers)
}

// Assessor scores Secrets as Assess does, and classifies each entry of a
// shared reader list once for every Secret of a namespace that shares it:
// a namespace's Secrets share hundreds of readers and differ in a few of
// their own.
type Assessor struct {
	opts    Options
	classes map[listKey][]class
}

// NewAssessor returns an Assessor with its own cache: use one per
// analysis.
func NewAssessor(opts Options) *Assessor {
	return &Assessor{opts: opts, classes: map[listKey][]class{}}
}

type listKey struct {
	first *paths.Reader
	n     int
	ns    string
}

// class is what a reader adds to a Secret's assessment.
type class struct {
	kind   classKind
	direct bool
	// weight is what the reader adds to the score.
	weight uint8
}

type classKind uint8

const (
	expected classKind = iota
	everyoneClass
	outsideClass
	indirectClass
	otherClass
)

func (x *Assessor) classify(ns string, r *paths.Reader) class {
	c := class{direct: r.Kind == paths.Direct}
	if x.opts.ExpectedReader(r) {
		return c
	}
	c.weight = 1
	if len(r.Steps) <= shortPath {
		c.weight++
	}
	switch {
	case r.Subject.IsEveryone():
		c.kind = everyoneClass
	case isOutside(ns, r):
		c.kind = outsideClass
	case r.Kind != paths.Direct:
		c.kind = indirectClass
	default:
		c.kind = otherClass
	}
	return c
}

// shared returns the classes of a shared list's entries for Secrets of ns.
func (x *Assessor) shared(ns string, list []paths.Reader) []class {
	if len(list) == 0 {
		return nil
	}
	k := listKey{first: &list[0], n: len(list), ns: ns}
	if cs, ok := x.classes[k]; ok {
		return cs
	}
	cs := make([]class, len(list))
	for i := range list {
		cs[i] = x.classify(ns, &list[i])
	}
	x.classes[k] = cs
	return cs
}

// Assess scores one Secret from its readers.
func (x *Assessor) Assess(s *inventory.Secret, readers paths.Readers) Assessment {
	opts := x.opts
	many := opts.ManyPrincipals
	if many <= 0 {
		many = DefaultManyPrincipals
	}
	var a Assessment
	// Readers come sorted by subject. Only the first few of each class
	// are described: a Secret may have thousands of readers.
	var everyone, outside, indirect shown
	var top [4][]rbac.Subject // everyone, outside, indirect, the rest
	weight := 0
	classes := x.shared(s.Namespace, readers.Shared)
	for at, r := range readers.Indexed() {
		var c class
		if at >= 0 {
			c = classes[at]
		} else {
			c = x.classify(s.Namespace, r)
		}
		if c.direct {
			a.Direct++
		} else {
			a.Indirect++
		}
		if c.kind == expected {
			continue
		}
		a.Principals++
		weight += int(c.weight)
		switch c.kind {
		case everyoneClass:
			everyone.add(r)
			top[0] = appendTop(top[0], r.Subject)
		case outsideClass:
			outside.add(r)
			top[1] = appendTop(top[1], r.Subject)
		case indirectClass:
			indirect.add(r)
			top[2] = appendTop(top[2], r.Subject)
		default:
			top[3] = appendTop(top[3], r.Subject)
		}
	}
	for _, group := range top {
		for _, subj := range group {
			if len(a.Top) < MaxTop {
				a.Top = append(a.Top, subj)
			}
		}
	}
	if everyone.n > 0 {
		a.Reasons = append(a.Reasons, Reason{finding.SecretReadableByEveryone, finding.Critical,
			"readable by everyone: " + everyone.String()})
	}
	if outside.n > 0 {
		a.Reasons = append(a.Reasons, Reason{finding.SecretReadableOutsideNS, finding.High,
			"readable from outside namespace " + s.Namespace + ": " + outside.String()})
	}
	if a.Principals > many {
		a.Reasons = append(a.Reasons, Reason{finding.SecretReadableByMany, finding.Medium,
			fmt.Sprintf("readable by %d distinct principals (limit %d)", a.Principals, many)})
	}
	if indirect.n > 0 {
		a.Reasons = append(a.Reasons, Reason{finding.SecretReadableIndirectly, finding.Medium,
			"obtainable without an RBAC read: " + indirect.String()})
	}
	switch {
	case len(a.Reasons) > 0:
		a.Severity = a.Reasons[0].Severity
	case a.Principals > 0:
		a.Severity = finding.Low
	default:
		a.Severity = finding.Info
	}
	a.Score = score(a.Severity, weight)
	return a
}

// bands are the score ranges per severity: [floor, ceiling].
var bands = map[finding.Severity][2]int{
	finding.Info:     {0, 0},
	finding.Low:      {10, 39},
	finding.Medium:   {40, 69},
	finding.High:     {70, 89},
	finding.Critical: {90, 100},
}

// score places a Secret within its severity's band by the weight of its
// principals (two for a path of at most shortPath steps, one for a longer
// one), so that within a severity more and closer readers rank higher and
// a Secret never outranks one of a higher severity.
func score(sev finding.Severity, weight int) int {
	b := bands[sev]
	return min(b[0]+weight, b[1])
}

// isOutside reports whether a reader belongs to another namespace, or
// holds the permission its path starts with through a ClusterRoleBinding
// or a RoleBinding of another namespace.
func isOutside(ns string, r *paths.Reader) bool {
	switch r.Subject.Kind {
	case rbac.KindServiceAccount:
		if r.Subject.Namespace != ns {
			return true
		}
	case rbac.KindGroup:
		if other, ok := strings.CutPrefix(r.Subject.Name, rbac.GroupServiceAccountsPrefix); ok && other != ns {
			return true
		}
	}
	for _, v := range r.Via {
		if v.Binding != nil && (v.Binding.Kind == "ClusterRoleBinding" || v.Binding.Namespace != ns) {
			return true
		}
	}
	return false
}

func describe(r *paths.Reader) string {
	var b strings.Builder
	b.WriteString(r.Subject.String())
	if c := r.Subject.Covers(); c != "" {
		b.WriteString(" (" + c + ")")
	}
	if r.Kind != paths.Direct && len(r.Steps) > 0 {
		fmt.Fprintf(&b, " by %s (%s", r.Kind, r.Steps[0].Permission)
		if n := len(r.Steps); n > 1 {
			fmt.Fprintf(&b, ", %d steps", n)
		}
		b.WriteString(")")
	}
	if len(r.Via) > 0 && r.Via[0].Binding != nil {
		b.WriteString(" via " + r.Via[0].Binding.String())
		if len(r.Via) > 1 {
			fmt.Fprintf(&b, " and %d more", len(r.Via)-1)
		}
	}
	return b.String()
}

// listShown is how many readers a reason names.
const listShown = 3

// shown keeps the first readers of a class, the ones a reason names,
// and counts the rest: a Secret may have thousands of readers, and Assess
// runs for every distinct reader list.
type shown struct {
	first [listShown]*paths.Reader
	n     int
}

func (c *shown) add(r *paths.Reader) {
	if c.n < listShown {
		c.first[c.n] = r
	}
	c.n++
}

// String describes the first readers and counts the rest.
func (c *shown) String() string {
	n := min(c.n, listShown)
	parts := make([]string, n)
	for i := range n {
		parts[i] = describe(c.first[i])
	}
	out := strings.Join(parts, "; ")
	if c.n > n {
		out += fmt.Sprintf("; and %d more", c.n-n)
	}
	return out
}

func appendTop(top []rbac.Subject, s rbac.Subject) []rbac.Subject {
	if len(top) < MaxTop {
		top = append(top, s)
	}
	return top
}
