package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// decoder checks a config's YAML against the Config type before decoding
// it. sigs.k8s.io/yaml's strict mode rejects unknown fields too, but names
// only the first, without its line or where it sits, and matches field
// names case-insensitively; walking the YAML node tree against the Go type
// finds every unknown field, duplicate key and wrong type, each with its
// path and line. The decoding itself is still sigs.k8s.io/yaml's, strict,
// as a backstop.
type decoder struct {
	file     string
	problems []Problem
	// nodes maps each field path met to the node naming it (a mapping
	// key, or a list item), for the line of later validation messages.
	nodes map[string]*yaml.Node
	// reported holds the fields the walk reported, so that validation
	// does not report them again as missing.
	reported map[string]bool
}

func (d *decoder) err() error {
	sortProblems(d.problems)
	return &Error{File: d.file, Problems: d.problems}
}

func (d *decoder) problem(field string, n *yaml.Node, format string, args ...any) {
	if d.reported == nil {
		d.reported = map[string]bool{}
	}
	d.reported[field] = true
	p := Problem{Field: field, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// at returns the node that names field, or nil.
func (d *decoder) at(field string) *yaml.Node { return d.nodes[field] }

// yamlLine finds the line in a yaml.v3 error message.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) decode(data []byte) *Config {
	d.nodes = map[string]*yaml.Node{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p := Problem{Message: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				p.Line, _ = strconv.Atoi(m[1])
				p.Message = "not valid YAML: " + m[2]
			}
			d.problems = append(d.problems, p)
			return nil
		}
		docs = append(docs, &n)
	}
	if len(docs) == 0 {
		d.problem("", nil, "empty: a config starts with apiVersion: %s and kind: %s", APIVersion, Kind)
		return nil
	}
	if len(docs) > 1 {
		second := docs[1]
		if len(second.Content) > 0 {
			second = second.Content[0]
		}
		d.problem("", second, "a config is a single YAML document; this is a second one")
		return nil
	}
	root := docs[0]
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		d.problem("", root, "want a mapping with apiVersion: %s and kind: %s, not %s", APIVersion, Kind, describe(root))
		return nil
	}
	d.walk(root, reflect.TypeFor[Config](), "", 0)
	// The walk dropped what it reported, so what is left decodes and is
	// validated too: one run shows every problem.
	clean, err := yaml.Marshal(root)
	if err != nil {
		d.problem("", nil, "cannot decode: %v", err)
		return nil
	}
	c := &Config{}
	if err := sigsyaml.UnmarshalStrict(clean, c); err != nil {
		// The walk accepts only what decodes; this is a backstop.
		d.problem("", nil, "cannot decode: %v", err)
		return nil
	}
	return c
}

// maxDepth stops alias cycles; a config is four levels deep.
const maxDepth = 16

// walk checks node n against Go type t; field is n's path. It reports
// whether n can be decoded into t, after removing from mappings the pairs
// it reported (so a list with a bad item cannot, and is dropped whole by
// its parent: removing the item would renumber the others).
func (d *decoder) walk(n *yaml.Node, t reflect.Type, field string, depth int) bool {
	if depth > maxDepth {
		d.problem(field, n, "nested too deep (an alias cycle?)")
		return false
	}
	if n.Kind == yaml.AliasNode {
		d.problem(field, n, "aliases (*name) are not supported: write the value out")
		return false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if !coreTags[n.Tag] {
		d.problem(field, n, "YAML tag %s is not supported", n.Tag)
		return false
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return true // unset
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.problem(field, n, "want a mapping, not %s", describe(n))
			return false
		}
		fields := jsonFields(t)
		d.pairs(n, field, func(key string, k, v *yaml.Node, sub string) bool {
			f, ok := fields[key]
			if !ok {
				d.problem(sub, k, "unknown field%s", hint(key, sortedNames(fields)))
				return false
			}
			d.nodes[sub] = k
			return d.walk(v, f.Type, sub, depth+1)
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.problem(field, n, "want a mapping, not %s", describe(n))
			return false
		}
		d.pairs(n, field, func(_ string, k, v *yaml.Node, sub string) bool {
			d.nodes[sub] = k
			return d.walk(v, t.Elem(), sub, depth+1)
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.problem(field, n, "want a list, not %s", describe(n))
			return false
		}
		ok := true
		for i, item := range n.Content {
			sub := fmt.Sprintf("%s[%d]", field, i)
			d.nodes[sub] = item
			if !d.walk(item, t.Elem(), sub, depth+1) {
				ok = false
			}
		}
		return ok
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.problem(field, n, "want a string, not %s", describe(n))
			return false
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.problem(field, n, "want a whole number, not %s", describe(n))
			return false
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.problem(field, n, "want true or false, not %s", describe(n))
			return false
		}
	default:
		panic("config: field type " + t.String() + " is not handled by the strict walk")
	}
	return true
}

// coreTags are the tags the walk accepts: YAML's core schema, which is
// what a config without explicit tags resolves to.
var coreTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!map": true, "!!seq": true, "!!timestamp": true,
}

// pairs calls fn for each key of mapping n, reporting keys that are not
// strings or that appear twice, and removes the pairs reported, by it or
// by fn (which returns false for them).
func (d *decoder) pairs(n *yaml.Node, field string, fn func(key string, k, v *yaml.Node, sub string) bool) {
	seen := map[string]int{}
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(field, k, "want a name as key, not %s", describe(k))
			continue
		}
		sub := join(field, k.Value)
		if k.Tag == "!!merge" {
			d.problem(sub, k, "merge keys (<<) are not supported: write the fields out")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.problem(sub, k, "set twice (first on line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		if fn(k.Value, k, v, sub) {
			kept = append(kept, k, v)
		}
	}
	n.Content = kept
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// jsonFields maps the JSON names of t's exported fields to the fields.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

func sortedNames(m map[string]reflect.StructField) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// hint suggests the known name a wrong one was meant to be: the same
// name in another case, or one a typo away; else it lists them all.
func hint(name string, known []string) string {
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return fmt.Sprintf(": did you mean %q? (names are case-sensitive)", k)
		}
	}
	for _, k := range known {
		if editDistance(strings.ToLower(k), strings.ToLower(name)) <= 2 {
			return fmt.Sprintf(": did you mean %q?", k)
		}
	}
	return " (known: " + strings.Join(known, ", ") + ")"
}

// editDistance is the Levenshtein distance between two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe names what a node holds, for "want X, not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		switch n.Tag {
		case "!!str":
			return "the string " + strconv.Quote(v)
		case "!!int", "!!float":
			return "the number " + v
		case "!!bool":
			return v
		case "!!null":
			return "null"
		}
		return strconv.Quote(v)
	}
	return "nothing"
}
