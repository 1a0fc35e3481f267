package analysis

import (
	"github.com/keyhole-sec/keyhole/internal/exposure"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// readerConverter turns reader lists into the report's. Lists without an
// indirect reader are converted once and shared; so are the steps of a
// path, all but the last, which names its Secret.
type readerConverter struct {
	opts  exposure.Options
	lists map[readerListKey][]report.Reader
	steps map[*paths.Step][]report.Step
}

func newReaderConverter(opts exposure.Options) *readerConverter {
	return &readerConverter{opts: opts, lists: map[readerListKey][]report.Reader{}, steps: map[*paths.Step][]report.Step{}}
}

func (c *readerConverter) readers(s *inventory.Secret, rs paths.Readers) []report.Reader {
	k := keyOf(rs)
	if out, ok := c.lists[k]; ok {
		return out
	}
	list := rs.Slice()
	out := make([]report.Reader, len(list))
	shared := true
	for i, r := range list {
		out[i] = report.Reader{
			Subject:  subject(r.Subject),
			Verbs:    nonNil(r.Verbs),
			Path:     string(r.Kind),
			Via:      via(r.Via),
			Steps:    []report.Step{},
			Expected: c.opts.ExpectedReader(r),
		}
		if len(r.Steps) == 0 {
			continue
		}
		shared = false
		if r.Steps[0].NodeAuthorizer {
			out[i].Via = append(out[i].Via, report.Via{Authorizer: "Node"})
		}
		steps := append([]report.Step(nil), c.convertSteps(r.Steps)...)
		steps[len(steps)-1].Reaches = report.Subject{Kind: "Secret", Namespace: s.Namespace, Name: s.Name}
		out[i].Steps = steps
	}
	if shared {
		c.lists[k] = out
	}
	return out
}

func (c *readerConverter) convertSteps(steps []paths.Step) []report.Step {
	if out, ok := c.steps[&steps[0]]; ok && len(out) == len(steps) {
		return out
	}
	out := make([]report.Step, len(steps))
	for i, st := range steps {
		vias := via(st.Via)
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
