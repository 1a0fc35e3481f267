package analysis

import (
	"fmt"
	"strings"

	"github.com/keyhole-sec/keyhole/internal/environment"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// crossEnv is the cross-environment analysis of one run (KH610,
// docs/environments.md).
type crossEnv struct {
	m *environment.Map
	// ns and lists cache the cross-environment reads of the reader lists
	// of namespace ns: its Secrets usually share one list.
	ns    string
	lists map[readerListKey][]report.CrossEnvRead
}

// maxNamedReaders bounds the readers a KH610 message names.
const maxNamedReaders = 3

// environments places namespaces in the configured environments, and
// reports what makes the placement incomplete: a namespace two
// environments select (an error: it belongs to neither), an environment
// that selects no namespace, Secrets of namespaces the input has no
// Namespace object for.
func (a *analyzer) environments(p *rbac.Policy) {
	if len(a.opts.Environments) == 0 {
		return
	}
	m := environment.New(a.opts.Environments, a.inv.Namespaces, p)
	a.cross = &crossEnv{m: m}
	for _, c := range m.Conflicts() {
		a.report.Errors = append(a.report.Errors, report.Error{
			Source:  "config",
			Message: "environments: " + c.String(),
			Object:  &report.ObjectRef{Kind: "Namespace", Name: c.Namespace},
			Impact:  "cross-environment exposure of namespace " + c.Namespace + " not analysed",
		})
	}
	for i := range m.Len() {
		if m.Selected(i) == 0 {
			a.report.Coverage.NotAnalysed = append(a.report.Coverage.NotAnalysed, fmt.Sprintf(
				"warning: environment %s (%s) selects no namespace of the input: it has no Secrets and no identities", m.Name(i), m.Selector(i)))
		}
	}
	var missing []string
	for _, ns := range a.inv.SecretNamespaces() {
		if a.inv.Namespace(ns) == nil {
			missing = append(missing, ns)
		}
	}
	if len(missing) > 0 {
		a.report.Coverage.NotAnalysed = append(a.report.Coverage.NotAnalysed, fmt.Sprintf(
			"warning: environments: %d namespace(s) holding Secrets have no Namespace object in the input, so no labels and no environment: %s",
			len(missing), listSome(missing, 5)))
	}
}

// crossEnvironment fills the Secret's environment and its readers from
// lower environments, and raises KH610 once per lower environment, naming
// a few of its readers.
func (a *analyzer) crossEnvironment(se SecretExposure, rs *report.Secret) {
	c := a.cross
	if c == nil {
		return
	}
	s := se.Secret
	env := c.m.Namespace(s.Namespace)
	if env == environment.None {
		return
	}
	rs.Environment = c.m.Name(env)
	if c.ns != s.Namespace || c.lists == nil {
		c.ns, c.lists = s.Namespace, map[readerListKey][]report.CrossEnvRead{}
	}
	k := keyOf(se.Readers)
	reads, ok := c.lists[k]
	if !ok {
		skip := func(r *paths.Reader) bool { return a.opts.Exposure.ExpectedReader(r) }
		for _, rd := range c.m.Reads(env, se.Readers, skip) {
			reads = append(reads, report.CrossEnvRead{
				FromEnvironment: c.m.Name(rd.From),
				Subject:         subject(rd.Reader.Subject),
				Path:            string(rd.Reader.Kind),
				Basis:           string(rd.Basis),
				Namespaces:      rd.Namespaces,
			})
		}
		c.lists[k] = reads
	}
	rs.CrossEnv = reads
	for _, from := range fromEnvironments(reads) {
		var names []string
		for _, r := range reads {
			if r.FromEnvironment == from {
				names = append(names, fmt.Sprintf("%s (%s; %s)", r.Subject, r.Path, r.BasisText()))
			}
		}
		a.add(finding.CrossEnvironmentRead, s.Ref(), fmt.Sprintf("%s (environment %s) can be read from lower environment %s by %s: %s",
			s.Ref(), rs.Environment, from, plural(len(names), "reader"), listSome(names, maxNamedReaders)), from)
	}
}

// fromEnvironments lists the environments of reads, each once, in order
// of first appearance.
func fromEnvironments(reads []report.CrossEnvRead) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range reads {
		if !seen[r.FromEnvironment] {
			seen[r.FromEnvironment] = true
			out = append(out, r.FromEnvironment)
		}
	}
	return out
}

// listSome joins the first n items and counts the rest.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
