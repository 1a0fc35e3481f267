package gitscan

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// helmValues reads a Helm values file. Values have no schema, so two
// heuristics decide what is a Secret's value: a literal under data or
// stringData of a section whose name says it is a secret (secret.data,
// secrets.stringData) or under a key such as secretData or secretEnv; and
// anywhere else, what the workload rules' credential detector recognises
// (postgresPassword: …, a private key, a cloud token, an env entry
// {name: DB_PASSWORD, value: …}).
func (f *file) helmValues(d doc, root *yaml.Node) {
	obj := inventory.Ref{Kind: "HelmValues", Name: baseName(f.path)}
	f.valuesNode(d, obj, root, "", "", false, 0)
}

// valuesNode walks one node of a values file. key is the dotted path of
// n, parent the last key on it, secretish whether an enclosing key names
// a secret. Aliases to collections are not followed (see leaves).
func (f *file) valuesNode(d doc, obj inventory.Ref, n *yaml.Node, key, parent string, secretish bool, depth int) {
	if n == nil || depth > maxDepth {
		return
	}
	at := site{rule: finding.PlaintextSecretInChart, object: obj, form: d.form(FormHelmValues)}
	switch n.Kind {
	case yaml.MappingNode:
		secretData := (secretish && (parent == "data" || parent == "stringData")) || isSecretSection(parent)
		// An env entry names its value: {name: DB_PASSWORD, value: …}.
		envName := ""
		if nm := lookup(n, "name"); nm != nil && nm.Kind == yaml.ScalarNode && lookup(n, "value") != nil {
			envName = nm.Value
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			child := k
			if key != "" {
				child = key + "." + k
			}
			if v.Kind == yaml.AliasNode && v.Alias != nil && v.Alias.Kind == yaml.ScalarNode {
				v = v.Alias
			}
			if v.Kind != yaml.ScalarNode {
				f.valuesNode(d, obj, v, child, k, secretish || strings.Contains(strings.ToLower(k), "secret"), depth+1)
				continue
			}
			if v.ShortTag() != "!!str" {
				continue // numbers and booleans are settings
			}
			at.key, at.line = child, d.line(v)
			if secretData {
				f.leaks = f.s.leak(f.leaks, at, v.Value, plain)
				continue
			}
			name := k
			if k == "value" && envName != "" {
				name = envName
			}
			f.leaks = f.s.detected(f.leaks, at, name, value{bytes: []byte(v.Value)})
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			child := key + "[" + strconv.Itoa(i) + "]"
			if c.Kind == yaml.ScalarNode {
				if c.ShortTag() == "!!str" {
					at.key, at.line = child, d.line(c)
					f.leaks = f.s.detected(f.leaks, at, parent, value{bytes: []byte(c.Value)})
				}
				continue
			}
			f.valuesNode(d, obj, c, child, parent, secretish, depth+1)
		}
	}
}

// isSecretSection reports a values key whose entries are a Secret's
// values whatever their names: secretData, secretEnv, extraSecretEnvVars.
func isSecretSection(k string) bool {
	n := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(k))
	for _, s := range []string{"secretdata", "secretstringdata", "secretenv", "secretenvs", "secretenvvars", "secretvalues", "secretvars"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// templateDoc is what the tokenizer knows of one document of a template.
type templateDoc struct {
	kind  string
	lines []templateLine
}

// templateLine is one line of a template that is not only a template
// action, a comment or blank.
type templateLine struct {
	n      int // 1-based file line
	indent int
	text   string // without indentation
}

// helmTemplate reads a chart template with a tolerant line tokenizer:
// templates are Go templates, which rarely parse as YAML. It follows the
// block-style layout charts use: the document's kind at column 0, then
// data:, stringData: or binaryData: at column 0 with one entry per line,
// single-line or block scalars. Lines that are only template actions
// ({{- if … }}, {{- end }}) are transparent. A value with any {{ … }}
// action is not a literal, but a literal inside it is: default "literal",
// and "literal" | b64enc. Elsewhere in the file, a default "literal"
// under a key whose name says it holds a credential is reported too.
func (f *file) helmTemplate(content []byte) {
	obj := inventory.Ref{Kind: "HelmTemplate", Name: chartRelative(f.path)}
	for _, td := range templateDocs(content) {
		f.templateDoc(obj, td)
	}
}

func templateDocs(content []byte) []templateDoc {
	var out []templateDoc
	cur := templateDoc{}
	for i, raw := range strings.Split(string(content), "\n") {
		line := strings.TrimRight(raw, "\r")
		if isMarker([]byte(line), "---") {
			out = append(out, cur)
			cur = templateDoc{}
			line = strings.TrimSpace(line[3:])
		}
		text := strings.TrimLeft(line, " ")
		trimmed := strings.TrimSpace(text)
		if trimmed == "" || trimmed[0] == '#' || isActionOnly(trimmed) {
			continue
		}
		indent := len(line) - len(text)
		if indent == 0 {
			if k, v, ok := splitKey(trimmed); ok && k == "kind" {
				cur.kind = unquote(v)
			}
		}
		cur.lines = append(cur.lines, templateLine{n: i + 1, indent: indent, text: trimmed})
	}
	return append(out, cur)
}

func (f *file) templateDoc(obj inventory.Ref, td templateDoc) {
	section, entryIndent := "", -1
	envName, envIndent := "", -1
	for i := 0; i < len(td.lines); i++ {
		l := td.lines[i]
		k, v, ok := splitKey(l.text)
		if l.indent == 0 {
			section, entryIndent = "", -1
			if ok && v == "" && (k == "data" || k == "stringData" || k == "binaryData") {
				section = k
			}
			continue
		}
		if section != "" && (td.kind == "Secret" || td.kind == "ConfigMap") {
			if entryIndent < 0 {
				entryIndent = l.indent
			}
			if l.indent != entryIndent || !ok || k == "<<" {
				continue
			}
			v = stripNodeProperties(v)
			if strings.HasPrefix(v, "*") {
				continue // an alias: its anchor's value is reported where it is written
			}
			if isBlockIndicator(v) {
				var block []string
				blockIndent := -1
				for i+1 < len(td.lines) && td.lines[i+1].indent > entryIndent {
					i++
					b := td.lines[i]
					if blockIndent < 0 {
						blockIndent = b.indent
					}
					block = append(block, strings.Repeat(" ", max(0, b.indent-blockIndent))+b.text)
				}
				indicator := v
				v = ""
				if len(block) > 0 {
					// Keep (|, |+) or strip (|-) the final line break as
					// YAML would, so that the digest is the value's.
					v = strings.Join(block, "\n")
					if !strings.HasSuffix(indicator, "-") {
						v += "\n"
					}
				}
			} else {
				v = unquote(v)
			}
			f.templateEntry(obj, td.kind, section, k, v, l.n)
			continue
		}
		// An env entry names its value on the line before:
		// - name: DB_PASSWORD
		//   value: {{ .Values.db.password | default "…" }}
		if strings.HasPrefix(l.text, "- ") {
			if nk, nv, nok := splitKey(l.text[2:]); nok && nk == "name" {
				envName, envIndent = unquote(nv), l.indent+2
			}
		}
		if ok && strings.Contains(v, "{{") {
			name := k
			if k == "value" && l.indent == envIndent {
				name = envName
			}
			at := site{rule: finding.PlaintextSecretInChart, object: obj, key: name, form: FormHelmDefault, line: l.n}
			for _, lit := range templateLiterals(v) {
				if lit.isDefault {
					f.leaks = f.s.detected(f.leaks, at, name, value{bytes: []byte(lit.text)})
				}
			}
		}
	}
}

// templateEntry reports one entry of a template's data, stringData or
// binaryData.
func (f *file) templateEntry(obj inventory.Ref, kind, section, key, v string, line int) {
	at := site{rule: finding.PlaintextSecretInChart, object: obj, key: key, form: FormHelmTemplate, line: line}
	enc := plain
	if section != "stringData" {
		enc = base64Data
	}
	if kind == "ConfigMap" {
		at.rule = finding.ConfigMapCredentialInGit
	}
	report := func(at site, text string, enc encoding) {
		if kind == "ConfigMap" {
			if section == "binaryData" {
				f.leaks = f.s.detected(f.leaks, at, key, decode(text, enc))
			} else {
				f.leaks = f.s.detected(f.leaks, at, key, value{bytes: []byte(text)})
			}
			return
		}
		f.leaks = f.s.leak(f.leaks, at, text, enc)
	}
	if !strings.Contains(v, "{{") {
		report(at, v, enc)
		return
	}
	for _, lit := range templateLiterals(v) {
		e := enc
		if lit.encoded || strings.Contains(v, "b64enc") {
			e = plain // the template encodes it
		}
		la := at
		if lit.isDefault {
			la.form = FormHelmDefault
		}
		report(la, lit.text, e)
	}
}

// templateLiteral is a string literal of a template action that is a
// value rather than an argument (a template name, a key, a message).
type templateLiteral struct {
	text      string
	isDefault bool // default "…"
	encoded   bool // "…" | b64enc, or b64enc "…"
}

// templateLiterals lexes the {{ … }} actions of s and returns the
// literals given to default or to b64enc.
func templateLiterals(s string) []templateLiteral {
	var out []templateLiteral
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			return out
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			j = len(s) - i
		}
		toks := lexAction(s[i+2 : i+j])
		for t, tok := range toks {
			if !tok.str {
				continue
			}
			switch {
			case t > 0 && toks[t-1].text == "default" && !toks[t-1].str:
				out = append(out, templateLiteral{text: tok.text, isDefault: true})
			case t > 0 && toks[t-1].text == "b64enc" && !toks[t-1].str,
				t+2 < len(toks) && toks[t+1].text == "|" && toks[t+2].text == "b64enc":
				out = append(out, templateLiteral{text: tok.text, encoded: true})
			}
		}
		if i+j+2 > len(s) {
			return out
		}
		s = s[i+j+2:]
	}
}

type actionToken struct {
	text string
	str  bool // a string literal, unquoted
}

// lexAction splits the inside of a template action into words, string
// literals ("…" and `…`) and the punctuation | ( ).
func lexAction(a string) []actionToken {
	var out []actionToken
	for i := 0; i < len(a); {
		c := a[i]
		switch {
		case c == ' ' || c == '\t' || c == '-' && (i == 0 || i == len(a)-1):
			i++
		case c == '|' || c == '(' || c == ')':
			out = append(out, actionToken{text: a[i : i+1]})
			i++
		case c == '"':
			j := i + 1
			for j < len(a) && a[j] != '"' {
				if a[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(a) {
				return out
			}
			text, err := strconv.Unquote(a[i : j+1])
			if err != nil {
				text = a[i+1 : j]
			}
			out = append(out, actionToken{text: text, str: true})
			i = j + 1
		case c == '`':
			j := strings.IndexByte(a[i+1:], '`')
			if j < 0 {
				return out
			}
			out = append(out, actionToken{text: a[i+1 : i+1+j], str: true})
			i += j + 2
		default:
			j := i
			for j < len(a) && !strings.ContainsRune(" \t|()\"`", rune(a[j])) {
				j++
			}
			out = append(out, actionToken{text: a[i:j]})
			i = j
		}
	}
	return out
}

// isActionOnly reports a line that is only template actions, such as
// {{- if .Values.x }} or {{- include "labels" . | nindent 4 }}: it
// renders no key of its own.
func isActionOnly(t string) bool {
	for t != "" {
		if !strings.HasPrefix(t, "{{") {
			return false
		}
		j := strings.Index(t, "}}")
		if j < 0 {
			return true // an action that goes on to the next line
		}
		t = strings.TrimSpace(t[j+2:])
	}
	return true
}

// splitKey splits "key: value" (the key maybe quoted) on a line.
func splitKey(t string) (key, val string, ok bool) {
	if t == "" || t[0] == '-' || t[0] == '{' {
		return "", "", false
	}
	var k string
	rest := t
	if t[0] == '"' || t[0] == '\'' {
		end := strings.IndexByte(t[1:], t[0])
		if end < 0 {
			return "", "", false
		}
		k, rest = t[1:end+1], t[end+2:]
		if !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		rest = rest[1:]
	} else {
		var found bool
		if k, rest, found = strings.Cut(t, ": "); !found {
			if !strings.HasSuffix(t, ":") {
				return "", "", false
			}
			k, rest = t[:len(t)-1], ""
		}
	}
	v := strings.TrimSpace(rest)
	if strings.HasPrefix(v, "#") {
		v = ""
	} else if i := strings.Index(v, " #"); i >= 0 && !strings.HasPrefix(v, "\"") && !strings.HasPrefix(v, "'") {
		v = strings.TrimSpace(v[:i])
	}
	return k, v, true
}

// stripNodeProperties removes an anchor (&name) and a tag (!!str) from
// the start of a scalar as written.
func stripNodeProperties(v string) string {
	for v != "" && (v[0] == '&' || v[0] == '!') {
		i := strings.IndexAny(v, " \t")
		if i < 0 {
			return ""
		}
		v = strings.TrimSpace(v[i:])
	}
	return v
}

func isBlockIndicator(v string) bool {
	return v != "" && (v[0] == '|' || v[0] == '>') && len(v) <= 3
}

// unquote reads a single-line YAML scalar as YAML would, so that a quoted
// literal is digested as the value it stands for.
func unquote(v string) string {
	if v == "" || (v[0] != '"' && v[0] != '\'') {
		return v
	}
	var s string
	if err := yaml.Unmarshal([]byte(v), &s); err != nil {
		return v
	}
	return s
}

// chartRelative names a template by its path from the chart's root: the
// part from the last templates/ directory on.
func chartRelative(p string) string {
	if i := strings.LastIndex(p, "/templates/"); i >= 0 {
		return p[i+1:]
	}
	return p
}
