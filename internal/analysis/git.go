package analysis

import (
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/git"
)

// GitInput is what a scan of one git repository found (internal/source/
// git with internal/gitscan), for the git rules (KH3xx) and, with the
// live Secrets' values, KH412.
type GitInput struct {
	// Target names the repository as the user gave it.
	Target string
	// Branches and Since are the history scan's options, for coverage.
	Branches git.Branches
	Since    string
	Result   *git.Result
	// ValueHashes says that the leaks' digests are keyed by the
	// operator's key, and so may be printed as valueHash. Otherwise they
	// are keyed by bytes drawn at random for this run, and never leave
	// the process.
	ValueHashes bool
	// LiveValues, when the live Secrets were correlated with the
	// repository, are the digests of their current values under the same
	// key as the leaks', by Secret (Kind Secret) and key. Nil otherwise.
	LiveValues map[inventory.Ref]map[string][]byte
}

// git turns what a repository holds into findings: one per leaked value
// (its rule and severity are the detector's), the git summary of the
// Secrets of the report that leaked, and, when live values were read,
// KH412 for each live Secret key whose current value is in the
// repository. It also records the repository in the coverage, its
// warnings (a shallow clone) as notes, and its problems as errors.
//
// A git finding's fingerprint is its rule, its object, its repository-
// relative path and its key: neither the value (nor its digest), the line,
// the form, the commit nor whether the scan read history, the index or the
// working tree. So a baseline written from a history scan holds in a
// pre-commit hook (--staged), survives unrelated edits and rewritten or
// squashed commits, and two places that hold a Secret of the same name
// (a base and an overlay) stay apart. The price: a file moved to another
// path is a new finding, and a new value committed under a baselined key
// of the same file is covered by the baseline entry; a value the index or
// the working tree holds but HEAD does not is never suppressed by a
// baseline, so a pre-commit hook still stops it (see applyOverrides).
func (a *analyzer) git(in *GitInput) {
	if in == nil || in.Result == nil {
		return
	}
	res := in.Result
	a.gitCoverage(in)
	for _, p := range res.Problems {
		// A file of a past commit that cannot be read (broken YAML, a
		// blob too large) stays in history for good: as an error it would
		// fail every audit of the repository from then on, whatever is
		// fixed. It is said, as a warning of what was not analysed. What
		// the working tree or the index holds now is an input error, as
		// a manifest's is.
		if p.Commit != "" {
			a.report.Coverage.NotAnalysed = append(a.report.Coverage.NotAnalysed, "warning: git: "+p.String())
			continue
		}
		a.report.Errors = append(a.report.Errors, report.Error{
			Source:   "git",
			Message:  p.String(),
			Location: &report.Location{Path: p.Path, Line: p.Line},
		})
	}

	secrets := map[inventory.Ref]*report.Secret{}
	for i := range a.report.Secrets {
		s := &a.report.Secrets[i]
		secrets[inventory.Ref{Kind: "Secret", Namespace: s.Namespace, Name: s.Name}] = s
	}
	for i := range res.Findings {
		f := &res.Findings[i]
		rf := a.gitFinding(in, f)
		a.report.Findings = append(a.report.Findings, rf)
		if f.Leak.Placeholder {
			continue
		}
		if s := secrets[clusterSecret(f.Leak.Object)]; s != nil {
			markGit(s, f.PresentAtHead)
		} else if rf.Suppressed == nil {
			// An exempted object (a test fixture) gets no recommendation.
			a.gitOnly.add(f)
		}
	}
	if in.LiveValues != nil {
		a.correlate(in, secrets)
	}
}

func (a *analyzer) gitCoverage(in *GitInput) {
	res := in.Result
	cov := &report.GitCoverage{
		Read:       string(res.Origin),
		Head:       res.Head,
		Commits:    res.Commits,
		Blobs:      res.Blobs,
		Shallow:    res.Shallow,
		Correlated: in.LiveValues != nil,
	}
	if res.Origin == git.OriginHistory {
		cov.Branches, cov.Since = string(in.Branches), in.Since
		if cov.Branches == "" {
			cov.Branches = string(git.BranchesAll)
		}
	}
	a.report.Coverage.Sources = append(a.report.Coverage.Sources, report.SourceCoverage{
		Kind: "git", Target: in.Target, Objects: map[string]int{}, Git: cov,
	})
	for _, w := range res.Warnings {
		a.report.Coverage.NotAnalysed = append(a.report.Coverage.NotAnalysed, "warning: git "+in.Target+": "+w)
	}
}

// gitFinding is the report finding of one leaked value. It is exempted by
// the keyhole.io/ignore annotation of the committed object (as it was in
// the commit that introduced the value), never by the inventory's.
func (a *analyzer) gitFinding(in *GitInput, f *git.Finding) report.Finding {
	l := &f.Leak
	sev := l.Severity
	rf := newFinding(finding.Result{
		Rule:          l.Rule,
		Severity:      &sev,
		Object:        l.Object,
		Message:       gitMessage(f),
		Discriminator: []string{f.Path, l.Key},
		Key:           l.Key,
	})
	rf.Location = gitLocation(f)
	rf.Suppressed = annotationSuppression(rf.Rule, l.Annotations)
	if in.ValueHashes {
		rf.ValueHash = hex.EncodeToString(l.Digest)
	}
	return rf
}

func gitLocation(f *git.Finding) *report.Location {
	head := f.PresentAtHead
	return &report.Location{Path: f.Path, Line: f.Leak.Line, Commit: f.Commit, PresentAtHead: &head, RemovedIn: f.RemovedIn}
}

// gitMessage says what was found where, e.g. `Secret/payments/db key
// "password" committed in plaintext (stringData, under 16 characters) at
// deploy/db.yaml:12 in commit 0123456789ab; still present at HEAD`. It
// holds names, the detector's fixed phrases and a length class, never
// the value.
func gitMessage(f *git.Finding) string {
	l := &f.Leak
	var b strings.Builder
	b.WriteString(l.Object.String())
	if l.Key != "" {
		fmt.Fprintf(&b, " key %q", l.Key)
	}
	switch f.Origin {
	case git.OriginIndex:
		b.WriteString(" staged")
	case git.OriginWorkTree:
		b.WriteString(" written")
	default:
		b.WriteString(" committed")
	}
	details := []string{l.Form}
	switch {
	case l.Placeholder:
		b.WriteString(" with a placeholder value")
	case l.Reason != "":
		b.WriteString(" with a credential")
		reason := l.Reason
		if l.Field != "" {
			reason += fmt.Sprintf(" in field %q", l.Field)
		}
		details = append([]string{reason}, details...)
	default:
		b.WriteString(" in plaintext")
	}
	if l.LengthClass != "" {
		details = append(details, l.LengthClass)
	}
	if l.Binary {
		details = append(details, "binary")
	}
	if l.InvalidBase64 {
		details = append(details, "not valid base64")
	}
	fmt.Fprintf(&b, " (%s) at %s", strings.Join(details, ", "), f.Path)
	if l.Line > 0 {
		fmt.Fprintf(&b, ":%d", l.Line)
	}
	b.WriteString(gitStatus(f))
	return b.String()
}

// gitStatus says where the value stands: in which commit it came, and
// whether HEAD still holds it.
func gitStatus(f *git.Finding) string {
	switch f.Origin {
	case git.OriginIndex:
		if f.PresentAtHead {
			return "; already committed at HEAD"
		}
		return "; not committed yet"
	case git.OriginWorkTree:
		if f.PresentAtHead {
			return " in the working tree; committed at HEAD"
		}
		return " in the working tree; not committed at HEAD"
	}
	s := " in commit " + report.ShortCommit(f.Commit)
	switch {
	case f.PresentAtHead:
		return s + "; still present at HEAD"
	case f.RemovedIn != "":
		return s + "; removed in commit " + report.ShortCommit(f.RemovedIn) + ", still in history"
	default:
		return s + "; not at HEAD (held by another ref, or dropped before the scanned range)"
	}
}

// clusterSecret is the Secret a committed object becomes in the cluster:
// a Secret is itself, and a SealedSecret unseals into the Secret of its
// own name. A document without a namespace is read as the manifests
// source and kubectl read it, in "default". Anything else (a chart, a
// generator whose name gets a hash suffix, an ExternalSecret whose target
// may be named otherwise) is not matched by name; its values still are,
// with --correlate.
func clusterSecret(obj inventory.Ref) inventory.Ref {
	switch obj.Kind {
	case "Secret", "SealedSecret":
		ns := obj.Namespace
		if ns == "" {
			ns = "default"
		}
		return inventory.Ref{Kind: "Secret", Namespace: ns, Name: obj.Name}
	}
	return inventory.Ref{}
}

// markGit records in s's summary that git holds a plaintext value of it.
func markGit(s *report.Secret, atHead bool) {
	if s.Git == nil {
		s.Git = &report.SecretGit{}
	}
	s.Git.Plaintext = true
	s.Git.PresentAtHead = s.Git.PresentAtHead || atHead
}

// correlate raises KH412 for every key of a Secret of the report whose
// live value's digest is that of a value found in the repository, under
// any object, key or path: a value rotated since it was committed has
// another digest and is not flagged.
func (a *analyzer) correlate(in *GitInput, secrets map[inventory.Ref]*report.Secret) {
	byDigest := map[string][]*git.Finding{}
	for i := range in.Result.Findings {
		f := &in.Result.Findings[i]
		byDigest[string(f.Leak.Digest)] = append(byDigest[string(f.Leak.Digest)], f)
	}
	refs := make([]inventory.Ref, 0, len(secrets))
	for ref := range secrets {
		refs = append(refs, ref)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Less(refs[j]) })
	for _, ref := range refs {
		values := in.LiveValues[ref]
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			matches := byDigest[string(values[k])]
			if len(matches) == 0 {
				continue
			}
			f := a.liveValueFinding(ref, k, matches)
			if in.ValueHashes {
				f.ValueHash = hex.EncodeToString(values[k])
			}
			a.report.Findings = append(a.report.Findings, f)
			s := secrets[ref]
			markGit(s, anyAtHead(matches))
			s.Git.LiveValueInGit = true
		}
	}
}

// liveValueFinding is KH412 for key of the live Secret ref, whose value
// the git findings matches hold. It is located at the best match: the
// same Secret and key if the repository has it, else the first in
// repository order. Its severity is critical, unless every match ranks
// below high (a ca.crt, a user name, a placeholder): then the highest of
// theirs.
func (a *analyzer) liveValueFinding(ref inventory.Ref, key string, matches []*git.Finding) report.Finding {
	best := matches[0]
	for _, m := range matches {
		if clusterSecret(m.Leak.Object) == ref && m.Leak.Key == key {
			best = m
			break
		}
	}
	sev := finding.Info
	for _, m := range matches {
		sev = max(sev, m.Leak.Severity)
	}
	if sev >= finding.High {
		sev = finding.Critical
	}
	where := best.Path
	if best.Leak.Line > 0 {
		where += fmt.Sprintf(":%d", best.Leak.Line)
	}
	msg := fmt.Sprintf("%s key %q: its current value is in git at %s%s", ref, key, where, gitStatus(best))
	if n := len(matches) - 1; n > 0 {
		msg += fmt.Sprintf(", and in %d other place(s)", n)
	}
	msg += ": rotate it now"
	f := newFinding(finding.Result{Rule: finding.LiveSecretValueInGit, Severity: &sev, Object: ref, Message: msg, Discriminator: []string{key}, Key: key})
	f.Location = gitLocation(best)
	f.Suppressed = a.suppression(f.Rule, ref)
	return f
}

func anyAtHead(fs []*git.Finding) bool {
	for _, f := range fs {
		if f.PresentAtHead {
			return true
		}
	}
	return false
}

// gitObjects are the committed objects that leaked a value and are no
// Secret of the report (an audit of a repository alone, a chart's values,
// a generator), in the order of their first leak, each with its key names
// and that first leak: they get a recommendation too (see recommend).
type gitObjects struct {
	order []inventory.Ref
	keys  map[inventory.Ref][]string
	first map[inventory.Ref]*git.Finding
}

func (g *gitObjects) add(f *git.Finding) {
	obj := f.Leak.Object
	if g.first == nil {
		g.keys, g.first = map[inventory.Ref][]string{}, map[inventory.Ref]*git.Finding{}
	}
	if _, ok := g.first[obj]; !ok {
		g.order = append(g.order, obj)
		g.first[obj] = f
	}
	if f.Leak.Key != "" && !slices.Contains(g.keys[obj], f.Leak.Key) {
		g.keys[obj] = append(g.keys[obj], f.Leak.Key)
	}
}
