// Package analysis runs keyhole's analyzers over one inventory and
// assembles the Report: the RBAC read analysis, exposure scoring, and the
// findings they raise, plus the coverage and problems the sources reported.
// It does no I/O and is deterministic: the same inventory gives the same
// report, byte for byte, whatever order the sources read objects in.
package analysis

import (
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/encryption"
	"github.com/keyhole-sec/keyhole/internal/environment"
	"github.com/keyhole-sec/keyhole/internal/exposure"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source"
	"github.com/keyhole-sec/keyhole/internal/workload"
)

// Input is what the sources produced.
type Input struct {
	Inventory *inventory.Inventory
	Coverage  []source.Coverage
	Problems  []source.Problem
	// Aggregation is AggregationStored for a live cluster (the authorizer
	// uses stored rules) and AggregationComputed offline.
	Aggregation rbac.AggregationMode
	// Git is what a scan of a git repository found; nil when none was
	// read.
	Git *GitInput
	// Encryption is what the API server's metrics say about Secrets at
	// rest (live audits); nil when they were not read.
	Encryption *encryption.Status
	// Reads is the audit log summary: who did read which Secret (live
	// audits and keyhole serve with an audit source); nil when none.
	Reads *auditlog.Snapshot
}

// Options configure the analyzers.
type Options struct {
	Exposure    exposure.Options
	ToolVersion string
	// Rules overrides catalog rules by id, from the config file: another
	// severity for their findings, or no findings at all.
	Rules map[string]finding.Override
	// Suppress, when set, is asked about every finding no annotation
	// suppresses; a non-nil answer suppresses it (the baseline).
	Suppress func(report.Finding) *report.Suppressed
	// Workload configures the workload and hygiene rules. SecretReaders
	// and Complete are answered by the analysis when left unset.
	Workload workload.Options
	// Paths configures the indirect-exposure analysis. Offline is set
	// from the input's aggregation mode.
	Paths paths.Options
	// Environments, lowest first, place namespaces and identities for
	// cross-environment exposure (KH610); none when empty.
	Environments []environment.Environment
}

// Run analyses the input and returns the report.
func Run(in Input, opts Options) *report.Report {
	return RunWith(in, opts, NewAccess(in, opts))
}

// RunWith is Run on an access stage already run: acc, from NewAccess on
// in and opts, or on an earlier input for which acc.Stale(in, opts) is "".
// With any other acc the report is wrong.
func RunWith(in Input, opts Options, acc *Access) *report.Report {
	inv := in.Inventory
	r := &report.Report{
		APIVersion: report.APIVersion,
		Kind:       report.Kind,
		Tool:       report.Tool{Name: "keyhole", Version: opts.ToolVersion},
		Secrets:    []report.Secret{},
		Findings:   []report.Finding{},
		Errors:     []report.Error{},
	}
	r.Coverage = coverage(in.Coverage)
	r.Errors = append(r.Errors, problems(in.Problems)...)

	policy := acc.policy
	for _, err := range policy.Errors {
		r.Errors = append(r.Errors, report.Error{Source: "analysis", Message: err.Error()})
	}
	a := &analyzer{inv: inv, opts: opts, report: r}
	if in.Aggregation == rbac.AggregationComputed {
		for _, name := range rbac.OrderDependentAggregation(inv.ClusterRoles) {
			r.Coverage.NotAnalysed = append(r.Coverage.NotAnalysed, fmt.Sprintf(
				"warning: ClusterRole/%s is on an aggregation cycle and has rules of its own: on a cluster the result depends on the order the aggregation controller processes roles; this offline audit follows name order", name))
		}
	}
	a.bindings(policy)
	a.environments(policy)
	if in.Aggregation == rbac.AggregationStored {
		a.aggregationDrift(policy)
	}
	ix, res := acc.index, acc.result
	if res.Exceeded() {
		r.Coverage.IndirectStopped = true
		budget := acc.paths.MaxHits
		if budget <= 0 {
			budget = paths.DefaultMaxHits
		}
		r.Coverage.NotAnalysed = append(r.Coverage.NotAnalysed, fmt.Sprintf(
			"warning: indirect exposure not analysed: the search for indirect paths passed %d recorded paths, its budget, and was stopped; readers, exposure and findings are those of direct reads only. A larger --max-paths (paths.maxPaths) lets it finish, at about 20 bytes of memory per path, and a lower --max-depth shortens it", budget))
	}
	a.secrets(res)
	a.workloads(in, ix, res)
	a.git(in.Git)
	a.actualReads(in.Reads, policy)
	a.encryptionAtRest(in.Encryption)
	a.recommend()
	a.checkIgnoreAnnotations()
	// After every analyzer: the config's rule overrides, then the baseline.
	a.applyOverrides()

	sortFindings(r.Findings)
	r.Summary = summarize(r)
	return r
}

type analyzer struct {
	inv    *inventory.Inventory
	opts   Options
	report *report.Report
	// gitOnly are the committed objects that leaked a value and are no
	// Secret of the report.
	gitOnly gitObjects
	// cross is the cross-environment analysis; nil without environments.
	cross *crossEnv
}

func (a *analyzer) add(rule string, obj inventory.Ref, message string, discriminator ...string) {
	a.addResult(finding.Result{Rule: rule, Object: obj, Message: message, Discriminator: discriminator})
}

// addResult records an analyzer's result as a finding on an object of the
// inventory: located where the object was read, and exempted by the
// object's annotations.
func (a *analyzer) addResult(res finding.Result) {
	f := newFinding(res)
	f.Location = a.location(res.Object)
	f.Suppressed = a.suppression(f.Rule, res.Object)
	a.report.Findings = append(a.report.Findings, f)
}

// newFinding is the report finding of a result, without location or
// suppression, which depend on where the object was read.
func newFinding(res finding.Result) report.Finding {
	rl, ok := finding.Lookup(res.Rule)
	if !ok {
		panic("analysis: rule " + res.Rule + " is not in the catalog")
	}
	sev := rl.Severity
	if res.Severity != nil {
		sev = *res.Severity
	}
	return report.Finding{
		Rule:        rl.ID,
		Severity:    sev.String(),
		Title:       rl.Title,
		Message:     res.Message,
		Object:      objectRef(res.Object),
		Fingerprint: finding.Fingerprint(rl.ID, res.Object, res.Discriminator...),
		Key:         res.Key,
	}
}

// Annotations that exempt an object from rules.
const (
	IgnoreAnnotation       = inventory.AnnotationPrefix + "ignore"
	IgnoreReasonAnnotation = inventory.AnnotationPrefix + "ignore-reason"
)

// suppression returns why a finding on obj is exempted, or nil.
func (a *analyzer) suppression(rule string, obj inventory.Ref) *report.Suppressed {
	return annotationSuppression(rule, a.inv.KeyholeAnnotations(obj))
}

// annotationSuppression returns why an object with the keyhole.io/
// annotations ann is exempted from rule, or nil.
func annotationSuppression(rule string, ann map[string]string) *report.Suppressed {
	for _, id := range ignoredRules(ann) {
		if id == rule {
			reason := ann[IgnoreReasonAnnotation]
			if reason == "" {
				reason = "no reason given (" + IgnoreReasonAnnotation + " is not set)"
			}
			return &report.Suppressed{By: "annotation", Reason: reason}
		}
	}
	return nil
}

func ignoredRules(ann map[string]string) []string {
	var out []string
	for _, id := range strings.Split(ann[IgnoreAnnotation], ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// checkIgnoreAnnotations warns about rule ids that are not in the catalog:
// such an exemption exempts nothing, which its author should know.
func (a *analyzer) checkIgnoreAnnotations() {
	for _, ref := range a.inv.AnnotatedRefs() {
		for _, id := range ignoredRules(a.inv.KeyholeAnnotations(ref)) {
			if _, ok := finding.Lookup(id); !ok {
				a.report.Coverage.NotAnalysed = append(a.report.Coverage.NotAnalysed,
					fmt.Sprintf("warning: %s: %s names unknown rule %q, which exempts nothing", ref, IgnoreAnnotation, id))
			}
		}
	}
}

func (a *analyzer) location(ref inventory.Ref) *report.Location {
	l := a.inv.Location(ref)
	if l.Path == "" {
		return nil
	}
	return &report.Location{Path: l.Path, Line: l.Line}
}

// bindings raises the per-binding findings: dangling roles, subjects that
// match no one, and cluster-wide Secret reads granted to non-system
// subjects.
func (a *analyzer) bindings(p *rbac.Policy) {
	for _, b := range p.Bindings() {
		if !b.RoleFound {
			a.add(finding.DanglingBinding, b.Ref, fmt.Sprintf("%s refers to %s, which does not exist: it grants nothing, and will grant whatever a role created later under that name holds", b.Ref, b.Role))
		}
		for _, s := range b.Invalid {
			a.add(finding.InvalidSubject, b.Ref, fmt.Sprintf("%s: %s", b.Ref, s.Reason), s.Subject.Kind, s.Subject.Namespace, s.Subject.Name)
		}
		if b.Namespace != "" || !b.RoleFound {
			continue
		}
		all, _ := rbac.SecretReads(b.Rules)
		if all == 0 {
			continue
		}
		var who []string
		for _, s := range b.Subjects {
			if !a.opts.Exposure.IsExpected(s) {
				who = append(who, s.String())
			}
		}
		if len(who) == 0 {
			continue
		}
		a.add(finding.ClusterWideSecretRead, b.Ref, fmt.Sprintf("%s lets %s %s every Secret in every namespace through %s",
			b.Ref, strings.Join(who, ", "), strings.Join(all.Names(), "/"), b.Role))
	}
}

// aggregationDrift compares the stored rules of aggregated ClusterRoles
// with what their selectors select.
func (a *analyzer) aggregationDrift(p *rbac.Policy) {
	for _, cr := range a.inv.ClusterRoles {
		if cr.AggregationRule == nil {
			continue
		}
		if rbac.SameRules(cr.Rules, p.Computed[cr.Name]) {
			continue
		}
		ref := inventory.Ref{Kind: "ClusterRole", Name: cr.Name}
		a.add(finding.AggregationDrift, ref, fmt.Sprintf("%s stores %d rules, but its selectors select %d distinct rules: the authorizer uses the stored ones", ref, len(cr.Rules), len(p.Computed[cr.Name])))
	}
}

// SecretExposure is one Secret's readers and their assessment. Readers
// and Assessment are shared between Secrets whose reader lists are the
// same: callers must not modify them.
type SecretExposure struct {
	Secret     *inventory.Secret
	Readers    paths.Readers
	Assessment *exposure.Assessment
}

// readerListKey identifies a reader list returned by Result.Readers:
// Secrets of a namespace that nothing singles out share one list.
type readerListKey struct {
	shared, own *paths.Reader
	n, m        int
}

func keyOf(readers paths.Readers) readerListKey {
	k := readerListKey{n: len(readers.Shared), m: len(readers.Own)}
	if len(readers.Shared) > 0 {
		k.shared = &readers.Shared[0]
	}
	if len(readers.Own) > 0 {
		k.own = &readers.Own[0]
	}
	return k
}

// AssessSecrets finds every Secret's readers and scores them, in
// inventory order. A namespace's Secrets usually share one reader list; it
// is assessed once per namespace, not once per Secret (the assessment
// depends on the namespace, so lists are not shared across namespaces).
//
// The namespaces' lists are assembled on goroutines of their own, one per
// core, each with its fork of res (paths.Result.Fork), while the caller
// assesses them in order as they come: a cluster's analysis should not
// wait on one core while the others idle. The lists are never modified
// once handed over. res itself is not used.
func AssessSecrets(inv *inventory.Inventory, res *paths.Result, opts exposure.Options) []SecretExposure {
	type namespaceReaders struct {
		secrets []*inventory.Secret
		readers []paths.Readers
		// ready is closed once readers is filled, or failure set.
		ready   chan struct{}
		failure any
	}
	namespaces := inv.SecretNamespaces()
	lists := make([]namespaceReaders, len(namespaces))
	for i, ns := range namespaces {
		lists[i] = namespaceReaders{secrets: inv.SecretsIn(ns), ready: make(chan struct{})}
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), len(namespaces)))
	stop := make(chan struct{})
	defer close(stop)
	for w := range workers {
		go func() {
			var fork *paths.Result
			for i := w; i < len(lists); i += workers {
				l := &lists[i]
				func() {
					defer close(l.ready)
					defer func() {
						// Raised again below, in the caller's goroutine,
						// where the daemon recovers from an analysis that
						// panics.
						l.failure = recover()
					}()
					if fork == nil {
						fork = res.Fork()
					}
					l.readers = make([]paths.Readers, len(l.secrets))
					for j, s := range l.secrets {
						l.readers[j] = fork.Readers(s)
					}
				}()
				if l.failure != nil {
					return
				}
				select {
				case <-stop: // the caller gave up
					return
				default:
				}
			}
		}()
	}
	out := make([]SecretExposure, 0, len(inv.Secrets))
	assessor := exposure.NewAssessor(opts)
	for i := range lists {
		l := &lists[i]
		<-l.ready
		if l.failure != nil {
			panic(l.failure)
		}
		cache := map[readerListKey]*exposure.Assessment{}
		for j, s := range l.secrets {
			readers := l.readers[j]
			k := keyOf(readers)
			a, ok := cache[k]
			if !ok {
				assessed := assessor.Assess(s, readers)
				a = &assessed
				cache[k] = a
			}
			out = append(out, SecretExposure{Secret: s, Readers: readers, Assessment: a})
		}
		l.readers = nil
	}
	return out
}

// secrets builds every Secret's report entry and exposure findings.
// Converted reader lists are shared like the lists they come from.
func (a *analyzer) secrets(res *paths.Result) {
	conv := newReaderConverter(a.opts.Exposure)
	out := make([]report.Secret, 0, len(a.inv.Secrets))
	for _, se := range AssessSecrets(a.inv, res, a.opts.Exposure) {
		s, as := se.Secret, se.Assessment
		rs := report.Secret{
			Namespace:   s.Namespace,
			Name:        s.Name,
			Type:        string(s.Type),
			Keys:        nonNil(s.Keys),
			KeysUnknown: !s.KeysKnown,
			Readers:     conv.readers(se.Readers),
			Exposure: report.Exposure{
				Score:      as.Score,
				Severity:   as.Severity.String(),
				Direct:     as.Direct,
				Indirect:   as.Indirect,
				Principals: as.Principals,
				Top:        subjects(as.Top),
			},
			ManagedBy: managedBy(s),
			Location:  a.location(s.Ref()),
		}
		for _, reason := range as.Reasons {
			rs.Exposure.Reasons = append(rs.Exposure.Reasons, reason.Text)
			sev := reason.Severity
			a.addResult(finding.Result{Rule: reason.Rule, Severity: &sev, Object: s.Ref(), Message: fmt.Sprintf("%s is %s", s.Ref(), reason.Text)})
		}
		a.crossEnvironment(se, &rs)
		out = append(out, rs)
	}
	a.report.Secrets = out
}

func subject(s rbac.Subject) report.Subject {
	return report.Subject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace, Covers: s.Covers()}
}

func subjects(ss []rbac.Subject) []report.Subject {
	if len(ss) == 0 {
		return nil
	}
	out := make([]report.Subject, len(ss))
	for i, s := range ss {
		out[i] = subject(s)
	}
	return out
}

func via(vs []rbac.Via) []report.Via {
	out := make([]report.Via, len(vs))
	for i, v := range vs {
		out[i] = report.Via{Superuser: v.Superuser}
		if v.Binding != nil {
			b := objectRef(*v.Binding)
			out[i].Binding = &b
		}
		if v.Role != nil {
			r := objectRef(*v.Role)
			out[i].Role = &r
		}
	}
	return out
}

func objectRef(r inventory.Ref) report.ObjectRef {
	return report.ObjectRef{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func coverage(cs []source.Coverage) report.Coverage {
	out := report.Coverage{Sources: []report.SourceCoverage{}, NotAnalysed: []string{}, Authorizers: report.AuthorizersNote}
	for _, c := range cs {
		objects := c.Objects
		if objects == nil {
			objects = map[string]int{}
		}
		out.Sources = append(out.Sources, report.SourceCoverage{Kind: c.Kind, Target: c.Target, Files: c.Files, Objects: objects, Ignored: c.Ignored})
		out.NotAnalysed = append(out.NotAnalysed, c.Notes...)
		for _, kind := range sortedKeys(c.Ignored) {
			out.NotAnalysed = append(out.NotAnalysed, fmt.Sprintf("%s: %d %s object(s) ignored: kind not used by the analysis", targetName(c), c.Ignored[kind], kind))
		}
	}
	return out
}

func targetName(c source.Coverage) string {
	if c.Target != "" {
		return c.Target
	}
	return c.Kind
}

func problems(ps []source.Problem) []report.Error {
	ps = append([]source.Problem(nil), ps...)
	source.SortProblems(ps)
	out := make([]report.Error, 0, len(ps))
	for _, p := range ps {
		e := report.Error{Source: p.Source, Message: p.Message, Resource: p.Resource, Impact: p.Impact}
		if p.Location.Path != "" {
			e.Location = &report.Location{Path: p.Location.Path, Line: p.Location.Line}
		}
		if p.Object != nil {
			o := objectRef(*p.Object)
			e.Object = &o
		}
		out = append(out, e)
	}
	return out
}

func sortFindings(fs []report.Finding) {
	rank := map[string]int{}
	for i, s := range finding.Severities() {
		rank[s] = i
	}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if rank[a.Severity] != rank[b.Severity] {
			return rank[a.Severity] > rank[b.Severity]
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Object != b.Object {
			return inventory.Ref(a.Object).Less(inventory.Ref(b.Object))
		}
		if a.Fingerprint != b.Fingerprint {
			return a.Fingerprint < b.Fingerprint
		}
		// Git findings of one key of one file share a fingerprint, one
		// per value: their places tell them apart.
		return locationLess(a.Location, b.Location)
	})
}

func locationLess(a, b *report.Location) bool {
	switch {
	case a == nil || b == nil:
		return a == nil && b != nil
	case a.Path != b.Path:
		return a.Path < b.Path
	case a.Line != b.Line:
		return a.Line < b.Line
	}
	return a.Commit < b.Commit
}

func summarize(r *report.Report) report.Summary {
	s := report.Summary{
		Secrets:            len(r.Secrets),
		FindingsBySeverity: map[string]int{},
		FindingsByRule:     map[string]int{},
		SecretsBySeverity:  map[string]int{},
	}
	for _, sev := range finding.Severities() {
		s.FindingsBySeverity[sev] = 0
		s.SecretsBySeverity[sev] = 0
	}
	for _, f := range r.Findings {
		if f.Suppressed != nil {
			s.Suppressed++
			continue
		}
		s.FindingsBySeverity[f.Severity]++
		s.FindingsByRule[f.Rule]++
	}
	for _, sec := range r.Secrets {
		s.SecretsBySeverity[sec.Exposure.Severity]++
	}
	return s
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
