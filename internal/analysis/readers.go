package analysis

import (
	"slices"

	"github.com/keyhole-sec/keyhole/internal/exposure"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// readerConverter turns reader lists into the report's, converting each
// list, reader, chain of steps and list of grants once and sharing it
// wherever it recurs. A reader's entry does not depend on the Secret: the
// last step of a chain, which reaches the Secret, is left implicit
// (report.Step.Reaches), so a chain is shared by every Secret it reaches.
// Without that sharing a large cluster's report held a copy of every
// chain per Secret, most of its memory.
type readerConverter struct {
	opts      exposure.Options
	lists     map[readerListKey][]report.Reader
	steps     map[*paths.Step][]report.Step
	converted map[*paths.Reader]report.Reader
	vias      map[viaKey][]report.Via
}

// viaKey names a list of grants by its first element and length: the
// paths result shares grant lists between readers.
type viaKey struct {
	first *rbac.Via
	n     int
}

func newReaderConverter(opts exposure.Options) *readerConverter {
	return &readerConverter{opts: opts, lists: map[readerListKey][]report.Reader{}, steps: map[*paths.Step][]report.Step{},
		converted: map[*paths.Reader]report.Reader{}, vias: map[viaKey][]report.Via{}}
}

// via converts a list of grants once per list. The result's capacity is
// its length, so that a caller's append copies rather than writes into
// the shared array.
func (c *readerConverter) via(vs []rbac.Via) []report.Via {
	if len(vs) == 0 {
		return via(vs)
	}
	k := viaKey{&vs[0], len(vs)}
	if out, ok := c.vias[k]; ok {
		return out
	}
	out := slices.Clip(via(vs))
	c.vias[k] = out
	return out
}

func (c *readerConverter) readers(rs paths.Readers) []report.Reader {
	k := keyOf(rs)
	if out, ok := c.lists[k]; ok {
		return out
	}
	out := make([]report.Reader, 0, len(rs.Shared)+len(rs.Own))
	for r := range rs.Refs() {
		out = append(out, c.reader(r))
	}
	c.lists[k] = out
	return out
}

// reader converts one reader once: the same pointer is the same reader
// in every list that holds it.
func (c *readerConverter) reader(r *paths.Reader) report.Reader {
	if out, ok := c.converted[r]; ok {
		return out
	}
	out := report.Reader{
		Subject:  subject(r.Subject),
		Verbs:    nonNil(r.Verbs),
		Path:     string(r.Kind),
		Via:      c.via(r.Via),
		Steps:    []report.Step{},
		Expected: c.opts.ExpectedReader(r),
	}
	if len(r.Steps) > 0 {
		if r.Steps[0].NodeAuthorizer {
			out.Via = append(out.Via, report.Via{Authorizer: "Node"})
		}
		out.Steps = c.convertSteps(r.Steps)
	}
	c.converted[r] = out
	return out
}

func (c *readerConverter) convertSteps(steps []paths.Step) []report.Step {
	if out, ok := c.steps[&steps[0]]; ok && len(out) == len(steps) {
		return out
	}
	// The last step's Reaches stays empty: it is the Secret of whichever
	// list the chain is in.
	out := make([]report.Step, len(steps))
	for i, st := range steps {
		vias := c.via(st.Via)
		if st.NodeAuthorizer {
			vias = append(vias, report.Via{Authorizer: "Node"})
		}
		out[i] = report.Step{
			Kind:    string(st.Kind),
			Subject: node(st.Subject),
			Permission: report.Permission{Verb: st.Permission.Verb, APIGroup: st.Permission.APIGroup, Resource: st.Permission.Resource,
				Namespace: st.Permission.Namespace, Name: st.Permission.Name},
			Via:     vias,
			Reaches: node(st.Reaches),
			Detail:  st.Detail,
		}
	}
	c.steps[&steps[0]] = out
	return out
}

func node(n paths.Node) report.Subject {
	return report.Subject{Kind: n.Kind, Namespace: n.Namespace, Name: n.Name}
}
