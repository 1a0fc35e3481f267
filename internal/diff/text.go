package diff

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// WriteJSON writes the diff document as indented JSON.
func WriteJSON(w io.Writer, d *Diff) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(d)
}

// WriteText writes the diff for people: one line per Secret whose
// exposure changed (or one line per change under the Secret, when there
// are several), sorted, then a summary and the errors.
func WriteText(w io.Writer, d *Diff) error {
	var b strings.Builder
	fmt.Fprintf(&b, "keyhole %s: exposure from %s to %s\n", d.Tool.Version, sideName(d.Base), sideName(d.Head))
	if len(d.Secrets) == 0 {
		fmt.Fprintf(&b, "no change in who can read any of %d Secrets\n", d.Head.Secrets)
	}
	for _, s := range d.Secrets {
		writeSecret(&b, s)
	}
	sum := d.Summary
	if len(d.Secrets) > 0 {
		fmt.Fprintf(&b, "\n%s changed (%d added, %d removed); %s added, %d removed; exposure increased on %s\n",
			plural(len(d.Secrets), "Secret"), sum.SecretsAdded, sum.SecretsRemoved,
			plural(sum.ReadersAdded, "reader"), sum.ReadersRemoved, plural(sum.ExposureGrew, "Secret"))
	}
	if len(d.Errors) > 0 {
		b.WriteString("\nERRORS (the diff is incomplete)\n")
		for _, e := range d.Errors {
			line := e.Side + ": " + e.Message
			if e.Impact != "" {
				line += " (" + e.Impact + ")"
			}
			b.WriteString(line + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func sideName(s Side) string {
	switch {
	case s.Ref == "":
		return "the working tree"
	case s.Commit != "":
		return fmt.Sprintf("%s (%s)", s.Ref, short(s.Commit))
	}
	return s.Ref
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func writeSecret(b *strings.Builder, s Secret) {
	name := s.Namespace + "/" + s.Name
	switch s.Change {
	case Added:
		n := principals(s.ReadersAdded)
		if n == 0 {
			fmt.Fprintf(b, "%s: new Secret, readable by expected readers only (%s)\n", name, s.Severity.Head)
		} else {
			fmt.Fprintf(b, "%s: new Secret, readable by %s (%s)\n", name, plural(n, "principal"), s.Severity.Head)
		}
		return
	case Removed:
		fmt.Fprintf(b, "%s: Secret removed (was %s)\n", name, s.Severity.Base)
		return
	}
	sev := s.Severity.Head
	if s.Severity.Base != s.Severity.Head {
		sev = s.Severity.Base + " → " + s.Severity.Head
	}
	var phrases []string
	phrases = append(phrases, groupPhrases("readable by", "more ", s.ReadersAdded)...)
	phrases = append(phrases, changedPhrases(s.ReadersChanged)...)
	phrases = append(phrases, groupPhrases("no longer readable by", "", s.ReadersRemoved)...)
	switch len(phrases) {
	case 0:
		if s.Severity.Base != s.Severity.Head {
			fmt.Fprintf(b, "%s: severity %s\n", name, sev)
		} else {
			fmt.Fprintf(b, "%s: score %d → %d (%s)\n", name, s.Score.Base, s.Score.Head, sev)
		}
	case 1:
		fmt.Fprintf(b, "%s: %s (%s)\n", name, phrases[0], sev)
	default:
		fmt.Fprintf(b, "%s (%s):\n", name, sev)
		for _, p := range phrases {
			b.WriteString("  " + p + "\n")
		}
	}
}

// principals counts the distinct subjects that are not expected.
func principals(readers []report.Reader) int {
	seen := map[report.Subject]bool{}
	for _, r := range readers {
		if !r.Expected {
			seen[report.Subject{Kind: r.Subject.Kind, Namespace: r.Subject.Namespace, Name: r.Subject.Name}] = true
		}
	}
	return len(seen)
}

// groupPhrases describes readers grouped by how they read (the grants and
// the path) and by subject kind: "readable by 37 more ServiceAccounts
// through ClusterRoleBinding ci-admin".
func groupPhrases(verb, more string, readers []report.Reader) []string {
	type group struct {
		expected bool
		kind     string
		how      string
	}
	members := map[group][]string{}
	for _, r := range readers {
		g := group{expected: r.Expected, kind: r.Subject.Kind, how: how(r.Path, r.Via)}
		members[g] = append(members[g], subjectName(r.Subject))
	}
	groups := make([]group, 0, len(members))
	for g := range members {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		a, b := groups[i], groups[j]
		if a.expected != b.expected {
			return !a.expected // what matters first
		}
		if len(members[a]) != len(members[b]) {
			return len(members[a]) > len(members[b])
		}
		if a.how != b.how {
			return a.how < b.how
		}
		return a.kind < b.kind
	})
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		names := members[g]
		sort.Strings(names)
		expected := ""
		if g.expected {
			expected = "expected "
		}
		var who string
		switch {
		case len(names) == 1:
			who = expected + g.kind + " " + names[0]
		case len(names) <= 3:
			who = fmt.Sprintf("%d %s%s%ss (%s)", len(names), more, expected, g.kind, strings.Join(names, ", "))
		default:
			who = fmt.Sprintf("%d %s%s%ss", len(names), more, expected, g.kind)
		}
		out = append(out, verb+" "+who+g.how)
	}
	return out
}

func changedPhrases(changes []ReaderChange) []string {
	var out []string
	for _, c := range changes {
		who := c.Subject.Kind + " " + subjectName(c.Subject)
		if c.Expected {
			who = "expected " + who
		}
		if len(c.ViaAdded) > 0 {
			out = append(out, who+" now also reads"+how(c.Path, c.ViaAdded))
		}
		if len(c.ViaRemoved) > 0 {
			out = append(out, who+" no longer reads"+how(c.Path, c.ViaRemoved))
		}
		if strings.Join(c.VerbsBase, ",") != strings.Join(c.VerbsHead, ",") {
			out = append(out, fmt.Sprintf("%s can now %s (was %s)", who, strings.Join(c.VerbsHead, ", "), strings.Join(c.VerbsBase, ", ")))
		}
	}
	return out
}

// how says how a reader reads: " through ClusterRoleBinding ci-admin",
// with the path when it is not direct.
func how(path string, via []report.Via) string {
	var grants []string
	for _, v := range via {
		switch {
		case v.Superuser:
			grants = append(grants, "system:masters (RBAC bypassed)")
		case v.Binding != nil:
			grants = append(grants, v.Binding.Kind+" "+nsName(v.Binding.Namespace, v.Binding.Name))
		}
	}
	sort.Strings(grants)
	var b strings.Builder
	if path != "" && path != "direct" {
		b.WriteString(" by " + path)
	}
	switch {
	case len(grants) == 0:
	case len(grants) <= 2:
		b.WriteString(" through " + strings.Join(grants, " and "))
	default:
		fmt.Fprintf(&b, " through %s, %s and %d more", grants[0], grants[1], len(grants)-2)
	}
	return b.String()
}

func subjectName(s report.Subject) string { return nsName(s.Namespace, s.Name) }

func nsName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
