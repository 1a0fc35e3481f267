package manifests

import "bytes"

// The decoders lose positions: sigs.k8s.io/yaml converts YAML to JSON
// before anything is decoded, and JSON type errors carry no line. The two
// functions below recover lines from the text by indentation, which is
// exact for block-style YAML and pretty-printed JSON (what people and
// kubectl write) and is only ever used to point at a line: when they
// cannot tell, the document's line is used instead.

// keyLine returns the 1-based line within text where the nested key path
// is, e.g. ["spec", "containers", "ports"], or 0. Each key must be a direct
// child of the previous one: the first key indented under a key sets the
// indentation of its children.
func keyLine(text []byte, path []string) int {
	if len(text) == 0 || len(path) == 0 {
		return 0
	}
	type level struct{ indent, children int }
	var matched []level
	rootIndent := -1
	line := 0
	for off := 0; off < len(text); {
		line++
		l, next := nextLine(text, off)
		off = next
		ind, key, _, ok := lineKey(l)
		if !ok {
			continue
		}
		if rootIndent < 0 {
			rootIndent = ind
		}
		for len(matched) > 0 && ind <= matched[len(matched)-1].indent {
			matched = matched[:len(matched)-1]
		}
		want := rootIndent
		if len(matched) > 0 {
			top := &matched[len(matched)-1]
			if top.children < 0 {
				top.children = ind
			}
			want = top.children
		}
		if ind == want && key == path[len(matched)] {
			matched = append(matched, level{indent: ind, children: -1})
			if len(matched) == len(path) {
				return line
			}
		}
	}
	return 0
}

// lineKey returns the mapping key a line starts with (after any "- "
// sequence indicators), its column and what follows its colon, for YAML
// ("key:", "'key':", "\"key\":") and JSON ("\"key\":").
func lineKey(l []byte) (indent int, key string, value []byte, ok bool) {
	i := 0
	for {
		for i < len(l) && (l[i] == ' ' || l[i] == '\t') {
			i++
		}
		if i+1 < len(l) && l[i] == '-' && (l[i+1] == ' ' || l[i+1] == '\t') {
			i++
			continue
		}
		break
	}
	if i < len(l) && l[i] == '{' { // "{ "key": ..." on one line
		i++
		for i < len(l) && l[i] == ' ' {
			i++
		}
	}
	if i >= len(l) || l[i] == '#' {
		return 0, "", nil, false
	}
	rest := l[i:]
	switch rest[0] {
	case '"', '\'':
		q := rest[0]
		end := bytes.IndexByte(rest[1:], q)
		if end < 0 {
			return 0, "", nil, false
		}
		key = string(rest[1 : 1+end])
		after := bytes.TrimLeft(rest[2+end:], " ")
		if len(after) == 0 || after[0] != ':' {
			return 0, "", nil, false
		}
		value = after[1:]
	default:
		end := bytes.IndexByte(rest, ':')
		if end <= 0 || (end+1 < len(rest) && !isSpace(rest[end+1])) {
			return 0, "", nil, false
		}
		key = string(bytes.TrimRight(rest[:end], " \t"))
		value = rest[end+1:]
	}
	return i, key, value, true
}

// yamlItems returns the offsets in text of the entries of the "items:"
// block sequence of the object text holds (a whole document, or one entry
// of a sequence), or nil.
func yamlItems(text []byte) []int {
	keyIndent := -1 // column of the object's own keys
	off, found := 0, false
	for !found && off < len(text) {
		l, next := nextLine(text, off)
		off = next
		ind, key, value, ok := lineKey(l)
		if !ok {
			continue
		}
		if keyIndent < 0 {
			keyIndent = ind
		}
		if ind < keyIndent {
			return nil
		}
		found = ind == keyIndent && key == "items" && isBlankOrComment(value)
	}
	if !found {
		return nil
	}
	var starts []int
	indent := -1
	for off < len(text) {
		l, next := nextLine(text, off)
		if isBlankOrComment(l) {
			off = next
			continue
		}
		ind := 0
		for ind < len(l) && l[ind] == ' ' {
			ind++
		}
		entry := ind < len(l) && l[ind] == '-' && (ind+1 == len(l) || isSpace(l[ind+1]))
		if indent < 0 {
			if !entry || ind < keyIndent {
				return nil
			}
			indent = ind
		}
		switch {
		case ind < indent, ind == indent && !entry:
			return starts
		case ind == indent:
			starts = append(starts, off)
		}
		off = next
	}
	return starts
}
