package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// writeExplainReads writes, when an audit log was read, who could read the
// Secret next to who did: one row per subject that read it and per reader
// that reads through the API (direct, node-authorizer), with the change
// that removes an unused one. Indirect readers are judged by their chain,
// in the sections that follow.
func writeExplainReads(w io.Writer, s *Secret) error {
	if s.AuditWindow == "" {
		return nil
	}
	ew := &errWriter{w: w}
	ew.printf("\ncould read vs did read (audit log, window %s)\n", printable(s.AuditWindow))
	unused := map[Subject]*UnusedReader{}
	for i := range s.UnusedReaders {
		u := &s.UnusedReaders[i]
		unused[bare(u.Subject)] = u
	}
	did := map[Subject]bool{}
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  SUBJECT\tCOULD READ\tDID READ\n")
	for _, ar := range s.ActualReaders {
		did[bare(ar.Subject)] = true
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", printable(nodeName(ar.Subject)), couldRead(s, ar), printable(didRead(ar)))
	}
	for r := range s.Readers.All() {
		if (r.Path != "direct" && r.Path != "node-authorizer") || did[bare(r.Subject)] {
			continue
		}
		could := r.Path + " " + strings.Join(r.Verbs, ",")
		var text string
		switch u := unused[bare(r.Subject)]; {
		case r.Expected:
			text = "no read (expected reader)"
		case u != nil && len(u.Changes) > 0:
			parts := make([]string, len(u.Changes))
			for i, c := range u.Changes {
				parts[i] = c.Text
			}
			text = "no read: " + strings.Join(parts, "; ") + " (KH620)"
		case u != nil:
			text = "no read; no safe change: " + u.Reason + " (KH620)"
		case r.Subject.Kind == "Group":
			text = "through members' reads, if any above"
		default:
			text = "no read"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", printable(subjectLabel(*r)), printable(could), printable(text))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return ew.err
}

// bare is a subject without its description, for lookups.
func bare(s Subject) Subject { return Subject{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name} }

// couldRead says how a subject that did read could: its own grant, a
// group's (or system:masters), or none (KH621).
func couldRead(s *Secret, ar ActualReader) string {
	if ar.Unexplained {
		return "cannot read (KH621)"
	}
	for r := range s.Readers.All() {
		if bare(r.Subject) == bare(ar.Subject) && (r.Path == "direct" || r.Path == "node-authorizer") {
			return r.Path + " " + strings.Join(r.Verbs, ",")
		}
	}
	return "through a group"
}

func didRead(ar ActualReader) string {
	text := fmt.Sprintf("%s, last %s (%s)", plural(ar.Count, "read"), ar.LastSeen, strings.Join(ar.Verbs, ","))
	if ar.Listed {
		text += ", by listing its namespace"
	}
	return text
}
