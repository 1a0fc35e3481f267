package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"
)

// ExplainFormats lists the formats of `keyhole explain secret`, the
// default first.
var ExplainFormats = []string{"tree", "json", "dot"}

// ExplanationKind is the kind of the JSON document explain writes: the
// report's Secret, wrapped so that the document carries its schema version.
const ExplanationKind = "Explanation"

// Explanation is explain's JSON document: one Secret of the report, exactly
// as the report holds it.
type Explanation struct {
	APIVersion string  `json:"apiVersion"`
	Kind       string  `json:"kind"`
	Secret     *Secret `json:"secret"`
}

// WriteExplanation writes the explanation of s in the named format.
func WriteExplanation(w io.Writer, format string, s *Secret) error {
	switch format {
	case "tree", "":
		return WriteExplainTree(w, s)
	case "json":
		return WriteExplainJSON(w, s)
	case "dot":
		return WriteExplainDOT(w, s)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(ExplainFormats, ", "))
}

// WriteExplainJSON writes the Explanation document of s, indented.
func WriteExplainJSON(w io.Writer, s *Secret) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(Explanation{APIVersion: APIVersion, Kind: ExplanationKind, Secret: s.WithReaches()})
}

// pathKindOrder is the order explanations list path kinds in: direct
// first, then the indirect kinds as docs/paths.md lists them. Kinds a newer
// analysis adds come last, by name.
var pathKindOrder = []string{
	"direct", "pod-create", "pod-exec", "node-proxy", "secret-patch", "token-mint",
	"legacy-token", "impersonate", "rbac-bind", "rbac-escalate", "run-as-sa",
	"node-authorizer", "node-escape",
}

// readerGroup is the readers of one path kind, sorted by subject.
type readerGroup struct {
	kind    string
	readers []Reader
}

// groupReaders groups s's readers by path kind, in pathKindOrder, each
// group sorted by subject kind, namespace and name. s is not modified.
func groupReaders(s *Secret) []readerGroup {
	byKind := map[string][]Reader{}
	for r := range s.Readers.All() {
		byKind[r.Path] = append(byKind[r.Path], *r)
	}
	rank := func(kind string) int {
		for i, k := range pathKindOrder {
			if k == kind {
				return i
			}
		}
		return len(pathKindOrder)
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		ri, rj := rank(kinds[i]), rank(kinds[j])
		if ri != rj {
			return ri < rj
		}
		return kinds[i] < kinds[j]
	})
	groups := make([]readerGroup, 0, len(kinds))
	for _, k := range kinds {
		rs := byKind[k]
		sort.SliceStable(rs, func(i, j int) bool { return subjectLess(rs[i].Subject, rs[j].Subject) })
		groups = append(groups, readerGroup{kind: k, readers: rs})
	}
	return groups
}

func subjectLess(a, b Subject) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// nodeName names an identity or object a step reaches: Kind/name, or
// Kind/namespace/name for namespaced ones.
func nodeName(s Subject) string {
	return ObjectRef{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name}.String()
}

// secretRef is the Secret as a node of its own explanation.
func secretRef(s *Secret) Subject {
	return Subject{Kind: "Secret", Namespace: s.Namespace, Name: s.Name}
}

// printable escapes the control characters of a name from the input (a
// User or Group name is free text), so that it cannot break a line or
// drive the terminal.
func printable(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// permissionString is a step's request as people read it: verb, resource
// (with its subresource) and object: "get secrets walk/target",
// "create pods in walk", "impersonate users alice".
func permissionString(p Permission) string {
	s := p.Verb + " " + p.Resource
	switch {
	case p.Namespace != "" && p.Name != "":
		s += " " + p.Namespace + "/" + p.Name
	case p.Name != "":
		s += " " + p.Name
	case p.Namespace != "":
		s += " in " + p.Namespace
	}
	return s
}

// viaString is one grant as people read it.
func viaString(v Via) string {
	var parts []string
	if v.Superuser {
		parts = append(parts, "superuser")
	}
	if v.Authorizer != "" {
		parts = append(parts, v.Authorizer+" authorizer")
	}
	switch {
	case v.Binding != nil && v.Role != nil:
		parts = append(parts, v.Binding.String()+" → "+v.Role.String())
	case v.Binding != nil:
		parts = append(parts, v.Binding.String())
	case v.Role != nil:
		parts = append(parts, v.Role.String())
	}
	return strings.Join(parts, " ")
}

// viasString is every grant behind a step, in the report's order.
func viasString(vs []Via) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		if s := viaString(v); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; ")
}

// subjectLabel is a reader's subject with who a well-known group covers
// and the expected mark.
func subjectLabel(r Reader) string {
	s := nodeName(r.Subject)
	if r.Subject.Covers != "" {
		s += " [" + r.Subject.Covers + "]"
	}
	if r.Expected {
		s += " (expected)"
	}
	return s
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// WriteExplainTree writes, for people, who can read s and how: a header
// with the Secret's severity, score and reader counts, then the readers
// grouped by path kind (direct first). Direct readers are one aligned row
// each (subject, verbs, grants); an indirect reader is its subject followed
// by its chain of steps, each indented under the one before:
//
//	User/alice
//	└─ --impersonate serviceaccounts walk/reader (ClusterRoleBinding/imp → ClusterRole/impersonator)-->  ServiceAccount/walk/reader
//	   └─ --get secrets walk/target (RoleBinding/walk/read-target → Role/walk/secret-reader)-->  Secret/walk/target
//
// A step names its subject only when it is not what the step before
// reached. Every list is sorted, so the same report prints the same text.
func WriteExplainTree(w io.Writer, s *Secret) error {
	ew := &errWriter{w: w}
	line := func(format string, args ...any) {
		ew.printf(format, args...)
		ew.printf("\n")
	}
	var about []string
	if s.Type != "" {
		about = append(about, s.Type)
	}
	switch {
	case s.KeysUnknown:
		about = append(about, "keys unknown")
	case len(s.Keys) > 0:
		about = append(about, "keys: "+strings.Join(s.Keys, ", "))
	}
	head := nodeName(secretRef(s))
	if len(about) > 0 {
		head += " (" + strings.Join(about, "; ") + ")"
	}
	line("%s", printable(head))

	direct, expected := 0, 0
	for r := range s.Readers.All() {
		if r.Path == "direct" {
			direct++
		}
		if r.Expected {
			expected++
		}
	}
	sev := s.Exposure.Severity
	if sev == "" {
		sev = "-"
	}
	line("severity %s, score %d: %s, %d direct and %d indirect (%d expected); %s not expected",
		sev, s.Exposure.Score, plural(s.Readers.Len(), "reader"), direct, s.Readers.Len()-direct, expected,
		plural(s.Exposure.Principals, "principal"))
	for _, reason := range s.Exposure.Reasons {
		line("  - %s", printable(reason))
	}
	if rec := s.Recommendation; rec.Target != "" {
		line("recommendation: %s (%s, rule %s): %s", printable(rec.Target), printable(rec.Status), printable(rec.Rule), printable(rec.Reason))
		for _, a := range rec.Actions {
			line("  - %s: %s", printable(a.ID), printable(a.Text))
		}
	}
	writeExplainCrossEnv(line, s)
	if err := writeExplainReads(ew, s); err != nil {
		return err
	}
	if s.Readers.Len() == 0 {
		line("\nNo subject can read this Secret.")
		return ew.err
	}

	for _, g := range groupReaders(s) {
		line("\n%s (%s)", printable(g.kind), plural(len(g.readers), "reader"))
		var rows []Reader
		for _, r := range g.readers {
			if len(r.Steps) == 0 {
				rows = append(rows, r)
			}
		}
		if err := writeReaderRows(ew, rows); err != nil {
			return err
		}
		for _, r := range g.readers {
			if len(r.Steps) > 0 {
				writeChain(line, s, r)
			}
		}
	}
	return ew.err
}

// writeExplainCrossEnv writes the Secret's environment and its readers
// from lower environments (KH610), whose paths follow with the others.
func writeExplainCrossEnv(line func(string, ...any), s *Secret) {
	if s.Environment == "" {
		return
	}
	if len(s.CrossEnv) == 0 {
		line("environment %s: no reader from a lower environment", printable(s.Environment))
		return
	}
	line("environment %s: %s from lower environments", printable(s.Environment), plural(len(s.CrossEnv), "reader"))
	for _, c := range s.CrossEnv {
		line("  - from %s: %s (%s; %s)", printable(c.FromEnvironment), printable(nodeName(c.Subject)), printable(c.Path), printable(c.BasisText()))
	}
}

// writeReaderRows writes readers without steps (direct ones) as aligned
// rows: subject, verbs, grants.
func writeReaderRows(w io.Writer, rows []Reader) error {
	if len(rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		verbs := strings.Join(r.Verbs, ",")
		if verbs == "" {
			verbs = "-"
		}
		via := viasString(r.Via)
		if via == "" {
			via = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", printable(subjectLabel(r)), printable(verbs), printable(via))
	}
	return tw.Flush()
}

// writeChain writes an indirect reader and its steps.
func writeChain(line func(string, ...any), s *Secret, r Reader) {
	line("  %s", printable(subjectLabel(r)))
	prev := nodeName(r.Subject)
	for i, st := range r.Steps {
		indent := "  " + strings.Repeat("   ", i)
		text := ""
		if from := nodeName(st.Subject); from != prev {
			text = from + "  "
		}
		text += "--" + permissionString(st.Permission)
		if via := viasString(st.Via); via != "" {
			text += " (" + via + ")"
		}
		reach := nodeName(st.Reaches)
		if st.Reaches.Kind == "" {
			reach = nodeName(secretRef(s))
		}
		text += "-->  " + reach
		line("%s└─ %s", indent, printable(text))
		if st.Detail != "" {
			line("%s   · %s", indent, printable(st.Detail))
		}
		prev = reach
	}
}

// WriteExplainDOT writes who can read s as a Graphviz digraph, left to
// right. Nodes are the subjects, the identities and roles steps reach, the
// pods and nodes steps act on, the bindings and roles that grant each
// step, and the Secret; every node's id is its Kind/namespace/name, quoted.
// Solid edges are permissions, labelled with the verb and resource (and the
// path kind of an indirect step): subject → what the step reaches, through
// the pod or node it acts on when it names one. Dashed grey edges say why:
// subject → binding → role. The output is sorted, so the same report
// gives the same graph.
func WriteExplainDOT(w io.Writer, s *Secret) error {
	g := newDotGraph()
	secret := secretRef(s)
	g.node(secret, "")
	for r := range s.Readers.All() {
		g.node(r.Subject, "")
		if r.Expected {
			g.expected[nodeName(r.Subject)] = true
		}
		if len(r.Steps) == 0 {
			// A direct read is one step on the Secret itself.
			g.step(Step{Kind: r.Path, Subject: r.Subject, Via: r.Via, Reaches: secret,
				Permission: Permission{Verb: strings.Join(r.Verbs, ","), Resource: "secrets", Namespace: s.Namespace, Name: s.Name}})
			continue
		}
		for _, st := range r.Steps {
			if st.Reaches.Kind == "" {
				st.Reaches = secret
			}
			g.step(st)
		}
	}

	ew := &errWriter{w: w}
	ew.printf("digraph %s {\n", dotID("keyhole explain "+nodeName(secret)))
	title := fmt.Sprintf("%s: severity %s, score %d", printable(nodeName(secret)), printable(s.Exposure.Severity), s.Exposure.Score)
	ew.printf("  graph [rankdir=LR, labelloc=t, fontname=\"Helvetica\", label=%s];\n", dotLabel(title))
	ew.printf("  node [fontname=\"Helvetica\", fontsize=10];\n")
	ew.printf("  edge [fontname=\"Helvetica\", fontsize=9];\n")
	ids := make([]string, 0, len(g.nodes))
	for id := range g.nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ew.printf("  %s [%s];\n", dotID(id), g.nodeAttrs(id, g.nodes[id]))
	}
	edges := make([]dotEdge, 0, len(g.edges))
	for e := range g.edges {
		edges = append(edges, e)
	}
	sort.Slice(edges, func(i, j int) bool {
		a, b := edges[i], edges[j]
		if a.from != b.from {
			return a.from < b.from
		}
		if a.to != b.to {
			return a.to < b.to
		}
		if a.grant != b.grant {
			return !a.grant
		}
		if a.label != b.label {
			return a.label < b.label
		}
		return a.tooltip < b.tooltip
	})
	for _, e := range edges {
		attrs := []string{}
		if e.label != "" {
			attrs = append(attrs, "label="+dotLabel(e.label))
		}
		if e.grant {
			attrs = append(attrs, `style=dashed`, `color="gray50"`, `fontcolor="gray40"`)
		} else if e.via {
			attrs = append(attrs, `style=dashed`)
		}
		if e.tooltip != "" {
			attrs = append(attrs, "tooltip="+dotLabel(e.tooltip))
		}
		ew.printf("  %s -> %s", dotID(e.from), dotID(e.to))
		if len(attrs) > 0 {
			ew.printf(" [%s]", strings.Join(attrs, ", "))
		}
		ew.printf(";\n")
	}
	ew.printf("}\n")
	return ew.err
}

// dotGraph collects an explanation's nodes and edges, each once.
type dotGraph struct {
	nodes    map[string]Subject // by id
	expected map[string]bool
	edges    map[dotEdge]bool
}

// dotEdge is one edge. grant edges say why (subject → binding → role);
// via edges lead from the pod or node a step acts on to what it yields.
type dotEdge struct {
	from, to, label, tooltip string
	grant, via               bool
}

func newDotGraph() *dotGraph {
	return &dotGraph{nodes: map[string]Subject{}, expected: map[string]bool{}, edges: map[dotEdge]bool{}}
}

// node adds n under its name and returns its id; kind, when set, replaces
// n's Kind (a binding or role ObjectRef).
func (g *dotGraph) node(n Subject, kind string) string {
	if kind != "" {
		n.Kind = kind
	}
	id := nodeName(n)
	if _, ok := g.nodes[id]; !ok {
		n.Covers = ""
		g.nodes[id] = n
	}
	return id
}

func (g *dotGraph) objectNode(r *ObjectRef) string {
	return g.node(Subject{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}, "")
}

// actsOn is the pod or node a step's request names, if any: the exec'd
// pod, the node whose kubelet is proxied.
func actsOn(p Permission) (Subject, bool) {
	if p.Name == "" || p.APIGroup != "" {
		return Subject{}, false
	}
	resource, _, _ := strings.Cut(p.Resource, "/")
	switch resource {
	case "pods":
		if p.Namespace != "" {
			return Subject{Kind: "Pod", Namespace: p.Namespace, Name: p.Name}, true
		}
	case "nodes":
		return Subject{Kind: "Node", Name: p.Name}, true
	}
	return Subject{}, false
}

// step adds one step's nodes and edges.
func (g *dotGraph) step(st Step) {
	from := g.node(st.Subject, "")
	to := g.node(st.Reaches, "")
	label := printable(st.Permission.Verb + " " + st.Permission.Resource)
	detail := printable(st.Detail)
	var flags []string
	for _, v := range st.Via {
		if v.Superuser {
			flags = append(flags, "superuser")
		}
		if v.Authorizer != "" {
			flags = append(flags, printable(v.Authorizer)+" authorizer")
		}
		switch {
		case v.Binding != nil:
			b := g.objectNode(v.Binding)
			g.edges[dotEdge{from: from, to: b, grant: true}] = true
			if v.Role != nil {
				g.edges[dotEdge{from: b, to: g.objectNode(v.Role), grant: true}] = true
			}
		case v.Role != nil:
			g.edges[dotEdge{from: from, to: g.objectNode(v.Role), grant: true}] = true
		}
	}
	if len(flags) > 0 {
		label += " (" + strings.Join(flags, ", ") + ")"
	}
	if st.Kind != "" && st.Kind != "direct" {
		label += "\n[" + printable(st.Kind) + "]"
	}
	if obj, ok := actsOn(st.Permission); ok {
		mid := g.node(obj, "")
		g.edges[dotEdge{from: from, to: mid, label: label, tooltip: detail}] = true
		if mid != to {
			g.edges[dotEdge{from: mid, to: to, tooltip: detail, via: true}] = true
		}
		return
	}
	g.edges[dotEdge{from: from, to: to, label: label, tooltip: detail}] = true
}

// dotShapes are the node shapes by kind; other kinds are ellipses.
var dotShapes = map[string]string{ //nolint:gosec // G101: Graphviz attributes keyed by kind, not a credential
	"Secret":             `shape=note, style=filled, fillcolor="#f4cccc"`,
	"User":               `shape=ellipse`,
	"Group":              `shape=ellipse, peripheries=2`,
	"ServiceAccount":     `shape=ellipse, style=filled, fillcolor="#dde8f6"`,
	"Node":               `shape=box3d`,
	"Pod":                `shape=component`,
	"Role":               `shape=box`,
	"ClusterRole":        `shape=box`,
	"RoleBinding":        `shape=box, style=rounded`,
	"ClusterRoleBinding": `shape=box, style=rounded`,
}

func (g *dotGraph) nodeAttrs(id string, n Subject) string {
	// Names are escaped first: only the break after the kind is one.
	name := printable(n.Name)
	if n.Namespace != "" {
		name = printable(n.Namespace + "/" + n.Name)
	}
	label := n.Kind + "\n" + name
	shape, ok := dotShapes[n.Kind]
	if !ok {
		shape = `shape=ellipse`
	}
	attrs := "label=" + dotLabel(label) + ", " + shape
	if g.expected[id] {
		attrs = "label=" + dotLabel(label+"\n(expected)") + ", " + shape + `, color="gray50", fontcolor="gray40"`
	}
	return attrs
}

// dotID quotes a node id. Any name, ':' and '/' included, is safe inside
// double quotes once backslashes and quotes are escaped; a control
// character becomes its Go escape (a single backslash, which no escaped
// name can produce), so that ids stay one line and distinct.
func dotID(s string) string { return dotQuote(s, false) }

// dotLabel quotes a label: line breaks are Graphviz's \n, and other
// control characters are written out so that they show.
func dotLabel(s string) string { return dotQuote(s, true) }

func dotQuote(s string, label bool) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\n' && label:
			b.WriteString(`\n`)
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			esc := q[1 : len(q)-1]
			if label {
				esc = `\` + esc // shown as written, not a Graphviz escape
			}
			b.WriteString(esc)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
