// Package diff compares the exposure of Secrets between two audits (two
// directories, or two git revisions of the manifests) and owns the
// keyhole.io/v1alpha1 ExposureDiff document: per Secret, the readers added
// and removed, grants gained and lost by readers present on both sides,
// and the severity change; Secrets added and removed. It also reads a git
// revision's manifests into a directory (git.go), so that both sides are
// audited the same way. It compares reports and does no analysis of its
// own.
package diff

import (
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"sort"
	"strings"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// APIVersion and Kind identify the diff document.
const (
	APIVersion = "keyhole.io/v1alpha1"
	Kind       = "ExposureDiff"
)

// Change kinds of a Secret.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// Diff is the ExposureDiff document.
type Diff struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Tool       report.Tool `json:"tool"`
	Base       Side        `json:"base"`
	Head       Side        `json:"head"`
	Summary    Summary     `json:"summary"`
	// Secrets lists the Secrets whose exposure changed, sorted by
	// namespace then name.
	Secrets []Secret `json:"secrets"`
	// Errors are both audits' input errors; any makes the diff
	// incomplete.
	Errors []Error `json:"errors"`
}

// Side describes one side of the diff.
type Side struct {
	// Ref is the directory or git revision as given; "" for the working
	// tree.
	Ref string `json:"ref"`
	// Commit is the commit a git revision resolved to.
	Commit string `json:"commit,omitempty"`
	// Secrets is the number of Secrets audited on this side.
	Secrets int `json:"secrets"`
	// NotAnalysed repeats the audit's coverage notes, so that nothing
	// left out is left out silently.
	NotAnalysed []string `json:"notAnalysed"`
	// IndirectStopped is set when this side's search for indirect paths
	// passed its budget: its readers are direct ones only, so readers
	// the other side reaches indirectly show as added or removed.
	IndirectStopped bool `json:"indirectStopped,omitempty"`
}

// Summary counts the changes.
type Summary struct {
	SecretsAdded    int `json:"secretsAdded"`
	SecretsRemoved  int `json:"secretsRemoved"`
	SecretsChanged  int `json:"secretsChanged"`
	ReadersAdded    int `json:"readersAdded"`
	ReadersRemoved  int `json:"readersRemoved"`
	ExposureGrew    int `json:"exposureIncreased"`
	ExposureShrank  int `json:"exposureDecreased"`
	SeverityRaised  int `json:"severityIncreased"`
	SeverityLowered int `json:"severityDecreased"`
}

// Secret is one Secret whose exposure changed.
type Secret struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Change is added, removed or changed.
	Change   string       `json:"change"`
	Severity SeverityPair `json:"severity"`
	Score    ScorePair    `json:"score"`
	// ExposureIncreased is set when a reader that is not expected was
	// added, or gained a grant or a verb, or the severity rose.
	ExposureIncreased bool `json:"exposureIncreased"`
	// ReadersAdded are readers (subject and path) only in head, as head
	// has them; ReadersRemoved only in base, as base had them.
	ReadersAdded   []report.Reader `json:"readersAdded"`
	ReadersRemoved []report.Reader `json:"readersRemoved"`
	// ReadersChanged are readers on both sides whose grants or verbs
	// changed.
	ReadersChanged []ReaderChange `json:"readersChanged"`
}

// SeverityPair is a severity on each side; "" on the side where the
// Secret does not exist.
type SeverityPair struct {
	Base string `json:"base,omitempty"`
	Head string `json:"head,omitempty"`
}

// ScorePair is a score on each side.
type ScorePair struct {
	Base int `json:"base"`
	Head int `json:"head"`
}

// ReaderChange is a reader present on both sides whose grants changed.
type ReaderChange struct {
	Subject    report.Subject `json:"subject"`
	Path       string         `json:"path"`
	Expected   bool           `json:"expected,omitempty"`
	VerbsBase  []string       `json:"verbsBase"`
	VerbsHead  []string       `json:"verbsHead"`
	ViaAdded   []report.Via   `json:"viaAdded"`
	ViaRemoved []report.Via   `json:"viaRemoved"`
}

// Error is an input error of one side.
type Error struct {
	// Side is base or head.
	Side string `json:"side"`
	report.Error
}

// Compare diffs two reports. base and head describe the sides; their
// Secrets are counted, the reports' coverage notes are added to their
// NotAnalysed, and IndirectStopped repeats whether their indirect search
// stopped.
func Compare(baseRep, headRep *report.Report, base, head Side, tool report.Tool) *Diff {
	base.Secrets, head.Secrets = len(baseRep.Secrets), len(headRep.Secrets)
	base.NotAnalysed = append(append([]string{}, base.NotAnalysed...), baseRep.Coverage.NotAnalysed...)
	head.NotAnalysed = append(append([]string{}, head.NotAnalysed...), headRep.Coverage.NotAnalysed...)
	base.IndirectStopped, head.IndirectStopped = baseRep.Coverage.IndirectStopped, headRep.Coverage.IndirectStopped
	d := &Diff{APIVersion: APIVersion, Kind: Kind, Tool: tool, Base: base, Head: head, Secrets: []Secret{}, Errors: []Error{}}
	for _, e := range baseRep.Errors {
		d.Errors = append(d.Errors, Error{Side: "base", Error: e})
	}
	for _, e := range headRep.Errors {
		d.Errors = append(d.Errors, Error{Side: "head", Error: e})
	}

	type key struct{ ns, name string }
	baseSecrets := map[key]*report.Secret{}
	for i := range baseRep.Secrets {
		s := &baseRep.Secrets[i]
		baseSecrets[key{s.Namespace, s.Name}] = s
	}
	seen := map[key]bool{}
	for i := range headRep.Secrets {
		h := &headRep.Secrets[i]
		k := key{h.Namespace, h.Name}
		seen[k] = true
		if sc, changed := compareSecret(baseSecrets[k], h); changed {
			d.Secrets = append(d.Secrets, sc)
		}
	}
	for i := range baseRep.Secrets {
		b := &baseRep.Secrets[i]
		if !seen[key{b.Namespace, b.Name}] {
			sc, _ := compareSecret(b, nil)
			d.Secrets = append(d.Secrets, sc)
		}
	}
	sort.Slice(d.Secrets, func(i, j int) bool {
		a, b := d.Secrets[i], d.Secrets[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	d.Summary = summarize(d.Secrets)
	return d
}

// compareSecret diffs one Secret; b or h is nil when the Secret is only on
// the other side.
func compareSecret(b, h *report.Secret) (Secret, bool) {
	var s Secret
	var baseReaders, headReaders []report.Reader
	switch {
	case b == nil:
		s = Secret{Namespace: h.Namespace, Name: h.Name, Change: Added}
		headReaders = h.Readers.Slice()
	case h == nil:
		s = Secret{Namespace: b.Namespace, Name: b.Name, Change: Removed}
		baseReaders = b.Readers.Slice()
	default:
		s = Secret{Namespace: h.Namespace, Name: h.Name, Change: Changed}
		baseReaders, headReaders = b.Readers.Slice(), h.Readers.Slice()
	}
	if b != nil {
		s.Severity.Base, s.Score.Base = b.Exposure.Severity, b.Exposure.Score
	}
	if h != nil {
		s.Severity.Head, s.Score.Head = h.Exposure.Severity, h.Exposure.Score
	}
	s.ReadersAdded, s.ReadersRemoved, s.ReadersChanged = compareReaders(baseReaders, headReaders)

	for _, r := range s.ReadersAdded {
		if !r.Expected {
			s.ExposureIncreased = true
		}
	}
	for _, rc := range s.ReadersChanged {
		if !rc.Expected && (len(rc.ViaAdded) > 0 || len(subtract(rc.VerbsHead, rc.VerbsBase)) > 0) {
			s.ExposureIncreased = true
		}
	}
	if h != nil && b != nil && rank(s.Severity.Head) > rank(s.Severity.Base) {
		s.ExposureIncreased = true
	}
	changed := s.Change != Changed || len(s.ReadersAdded)+len(s.ReadersRemoved)+len(s.ReadersChanged) > 0 ||
		s.Severity.Base != s.Severity.Head || s.Score.Base != s.Score.Head
	return s, changed
}

type readerKey struct {
	kind, namespace, name, path string
}

func keyOf(r report.Reader) readerKey {
	return readerKey{r.Subject.Kind, r.Subject.Namespace, r.Subject.Name, r.Path}
}

// compareReaders lists the readers only one side has, and the changes of
// those both have. A reader that one side lists while the other lists a
// group it belongs to is in neither list: a report leaves out the members
// of a reading group (everyone in system:authenticated reads what it
// reads), so such a reader can read on both sides.
func compareReaders(base, head []report.Reader) (added, removed []report.Reader, changed []ReaderChange) {
	added, removed, changed = []report.Reader{}, []report.Reader{}, []ReaderChange{}
	inBase := map[readerKey]report.Reader{}
	baseSubjects, headSubjects := map[rbac.Subject]bool{}, map[rbac.Subject]bool{}
	for _, r := range base {
		inBase[keyOf(r)] = r
		baseSubjects[subjectOf(r)] = true
	}
	for _, r := range head {
		headSubjects[subjectOf(r)] = true
	}
	inHead := map[readerKey]bool{}
	for _, h := range head {
		k := keyOf(h)
		inHead[k] = true
		b, ok := inBase[k]
		if !ok {
			if !coveredBy(h, baseSubjects) {
				added = append(added, h)
			}
			continue
		}
		viaAdded, viaRemoved := compareVia(b.Via, h.Via)
		if len(viaAdded)+len(viaRemoved) > 0 || strings.Join(b.Verbs, ",") != strings.Join(h.Verbs, ",") {
			changed = append(changed, ReaderChange{Subject: h.Subject, Path: h.Path, Expected: h.Expected,
				VerbsBase: nonNil(b.Verbs), VerbsHead: nonNil(h.Verbs), ViaAdded: viaAdded, ViaRemoved: viaRemoved})
		}
	}
	for _, b := range base {
		if !inHead[keyOf(b)] && !coveredBy(b, headSubjects) {
			removed = append(removed, b)
		}
	}
	return added, removed, changed
}

func subjectOf(r report.Reader) rbac.Subject {
	return rbac.Subject{Kind: r.Subject.Kind, Namespace: r.Subject.Namespace, Name: r.Subject.Name}
}

// coveredBy reports whether one of the groups r's subject belongs to is
// among subjects.
func coveredBy(r report.Reader, subjects map[rbac.Subject]bool) bool {
	for _, g := range paths.Memberships(subjectOf(r)) {
		if subjects[g] {
			return true
		}
	}
	return false
}

func viaKey(v report.Via) string {
	if v.Superuser {
		return "superuser"
	}
	var b strings.Builder
	if v.Binding != nil {
		b.WriteString(v.Binding.String())
	}
	b.WriteString("|")
	if v.Role != nil {
		b.WriteString(v.Role.String())
	}
	return b.String()
}

func compareVia(base, head []report.Via) (added, removed []report.Via) {
	added, removed = []report.Via{}, []report.Via{}
	inBase, inHead := map[string]bool{}, map[string]bool{}
	for _, v := range base {
		inBase[viaKey(v)] = true
	}
	for _, v := range head {
		inHead[viaKey(v)] = true
		if !inBase[viaKey(v)] {
			added = append(added, v)
		}
	}
	for _, v := range base {
		if !inHead[viaKey(v)] {
			removed = append(removed, v)
		}
	}
	return added, removed
}

func subtract(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

// rank orders severity names; unknown or empty is below info.
func rank(sev string) int {
	s, err := finding.ParseSeverity(sev)
	if err != nil {
		return -1
	}
	return int(s)
}

func summarize(secrets []Secret) Summary {
	var s Summary
	for _, sc := range secrets {
		switch sc.Change {
		case Added:
			s.SecretsAdded++
		case Removed:
			s.SecretsRemoved++
		default:
			s.SecretsChanged++
			switch {
			case rank(sc.Severity.Head) > rank(sc.Severity.Base):
				s.SeverityRaised++
			case rank(sc.Severity.Head) < rank(sc.Severity.Base):
				s.SeverityLowered++
			}
		}
		s.ReadersAdded += len(sc.ReadersAdded)
		s.ReadersRemoved += len(sc.ReadersRemoved)
		if sc.ExposureIncreased {
			s.ExposureGrew++
		} else if sc.Change == Changed && (len(sc.ReadersRemoved) > 0 || rank(sc.Severity.Head) < rank(sc.Severity.Base)) {
			s.ExposureShrank++
		}
	}
	return s
}

// Increases returns the Secrets whose exposure increased and whose head
// severity is at or above threshold: what --fail-on-increase fails on.
func (d *Diff) Increases(threshold finding.Severity) []Secret {
	var out []Secret
	for _, s := range d.Secrets {
		if s.ExposureIncreased && rank(s.Severity.Head) >= int(threshold) {
			out = append(out, s)
		}
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
