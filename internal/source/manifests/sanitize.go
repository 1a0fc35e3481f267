package manifests

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Decoder error messages quote input: yaml.v2 quotes the scalar a tag does
// not fit ("cannot decode !!str `hunter2` as a !!int"), sigs.k8s.io/yaml a
// whole map key and value, encoding/json a character or a number, time and
// quantity parsers the string they failed on. Nothing of a decoder's
// message is passed on unless it is one of the fixed phrases below; the
// rest is rebuilt from positions and types.

// yamlScannerProblems are yaml.v2's scanner and reader problems. Their line
// is 1-based.
var yamlScannerProblems = setOf(
	"block sequence entries are not allowed in this context",
	"control characters are not allowed",
	"could not find expected ':'",
	"could not find expected directive name",
	"did not find URI escaped octet",
	"did not find expected '!'",
	"did not find expected alphabetic or numeric character",
	"did not find expected comment or line break",
	"did not find expected digit or '.' character",
	"did not find expected hexdecimal number",
	"did not find expected tag URI",
	"did not find expected version number",
	"did not find expected whitespace or line break",
	"did not find expected whitespace",
	"did not find the expected '>'",
	"expected low surrogate area",
	"found a tab character that violates indentation",
	"found a tab character where an indentation space is expected",
	"found an incorrect leading UTF-8 octet",
	"found an incorrect trailing UTF-8 octet",
	"found an indentation indicator equal to 0",
	"found character that cannot start any token",
	"found extremely long version number",
	"found invalid Unicode character escape code",
	"found unexpected document indicator",
	"found unexpected end of stream",
	"found unexpected non-alphabetical character",
	"found unknown directive name",
	"found unknown escape character",
	"incomplete UTF-16 character",
	"incomplete UTF-16 surrogate pair",
	"incomplete UTF-8 octet sequence",
	"invalid Unicode character",
	"invalid leading UTF-8 octet",
	"invalid length of a UTF-8 sequence",
	"invalid trailing UTF-8 octet",
	"mapping keys are not allowed in this context",
	"mapping values are not allowed in this context",
	"unexpected low surrogate area",
)

// yamlParserProblems are yaml.v2's parser problems. yaml.v2 prints their
// line 0-based (it adds 1 only for scanner errors).
var yamlParserProblems = setOf(
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
	"invalid parser state",
)

// yamlDecodeProblems map the start of yaml.v2's and sigs.k8s.io/yaml's
// other messages, which quote input, to fixed text. They carry no line.
var yamlDecodeProblems = []struct{ prefix, text string }{
	{"unknown anchor", "an alias refers to an unknown anchor"},
	{"anchor '", "an anchor refers to itself"},
	{"document contains excessive aliasing", "too many aliases"},
	{"!!binary value contains invalid base64 data", "a !!binary value is not valid base64"},
	{"cannot decode ", "a value does not match its tag"},
	{"invalid map key", "a map key is a list or a map"},
	{"unsupported map key", "a map key is a list or a map"},
	{"exceeded max depth", "nested too deeply"},
	{"cannot unmarshal", "a value has the wrong type"},
	{"key ", "a key is repeated"},
	{"attempted to go past the end of stream", "unexpected end of input"},
	{"input error", "read error"},
}

func setOf(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, v := range s {
		m[v] = true
	}
	return m
}

// yamlErrorReason turns an error from sigs.k8s.io/yaml into a line relative
// to the document (0 when unknown) and a message that quotes nothing of the
// input.
func yamlErrorReason(err error, doc []byte) (line int, reason string) {
	s := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "yaml: ", "unmarshal errors:", "\n", " "} {
		for strings.HasPrefix(s, p) {
			s = s[len(p):]
		}
	}
	if strings.HasPrefix(s, "line ") {
		rest := s[len("line "):]
		if i := strings.Index(rest, ": "); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil && n > 0 {
				line, s = n, rest[i+2:]
			}
		}
	}
	switch {
	case yamlParserProblems[s]:
		return line + 1, s
	case yamlScannerProblems[s]:
		if s == "control characters are not allowed" {
			// A reader error: yaml.v2 gives no line for it.
			return controlCharLine(doc), s
		}
		return max(line, 1), s
	}
	for _, p := range yamlDecodeProblems {
		if strings.HasPrefix(s, p.prefix) {
			return line, p.text
		}
	}
	return line, "invalid YAML syntax"
}

// controlCharLine returns the 1-based line of the first control character
// YAML does not allow, or 0.
func controlCharLine(doc []byte) int {
	for i, c := range doc {
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f {
			return 1 + bytes.Count(doc[:i], []byte{'\n'})
		}
	}
	return 0
}

// decodeError describes an error from decoding JSON into a typed object.
type decodeError struct {
	field  string // JSON path of the field, e.g. "spec.containers.ports", or ""
	reason string
	base64 bool // a []byte field (Secret data) was not base64
}

// describeDecodeError rebuilds a typed-decode error. The JSON decoder's
// errors are of an internal type of sigs.k8s.io/json, so their shape is
// read from the message; only the field path (made of field names) and the
// Go type are kept, never the value.
func describeDecodeError(err error, into any) decodeError {
	var ce base64.CorruptInputError
	var te *time.ParseError
	switch {
	case errors.As(err, &ce):
		return decodeError{reason: "not valid base64", base64: true}
	case errors.As(err, &te):
		return decodeError{reason: "not a valid time (want RFC 3339, e.g. 2006-01-02T15:04:05Z)"}
	case errors.Is(err, resource.ErrFormatWrong), errors.Is(err, resource.ErrNumeric), errors.Is(err, resource.ErrSuffix):
		return decodeError{reason: "not a valid quantity"}
	}
	s := err.Error()
	const prefix = "json: cannot unmarshal "
	if !strings.HasPrefix(s, prefix) {
		return decodeError{reason: "a value cannot be decoded"}
	}
	s = s[len(prefix):]
	i := strings.Index(s, " into Go ")
	if i < 0 {
		return decodeError{reason: "a value has the wrong type"}
	}
	got, s := jsonValueKind(s[:i]), s[i+len(" into Go "):]
	var path, typ string
	switch {
	case strings.HasPrefix(s, "struct field "):
		s = s[len("struct field "):]
		j := strings.LastIndex(s, " of type ")
		if j < 0 {
			return decodeError{reason: "a value has the wrong type"}
		}
		path, typ = fieldPath(s[:j]), s[j+len(" of type "):]
	case strings.HasPrefix(s, "value of type "):
		typ = s[len("value of type "):]
	default:
		return decodeError{reason: "a value has the wrong type"}
	}
	want := goTypeKind(typ)
	if into != nil {
		if k := namedTypeKind(reflect.TypeOf(into), path, typ); k != "" {
			want = k
		}
	}
	return decodeError{field: path, reason: "got " + got + ", want " + want}
}

// jsonValueKind keeps the first word of encoding/json's value description
// ("number 1.5" quotes the number).
func jsonValueKind(v string) string {
	if i := strings.IndexByte(v, ' '); i >= 0 {
		v = v[:i]
	}
	switch v {
	case "string":
		return "a string"
	case "number":
		return "a number"
	case "object":
		return "an object"
	case "array":
		return "a list"
	case "bool":
		return "a boolean"
	}
	return "a value"
}

// fieldPath turns encoding/json's "Struct.json.path.Embedded.name" into
// "json.path.name": the first element is the Go struct's name, and
// capitalised elements are embedded Go structs, not JSON fields. Anything
// but a plain identifier is dropped, so no input can come through.
func fieldPath(s string) string {
	parts := strings.Split(s, ".")
	if len(parts) > 0 {
		parts = parts[1:]
	}
	out := parts[:0]
	for _, p := range parts {
		if p == "" || (p[0] >= 'A' && p[0] <= 'Z') || !isIdent(p) {
			continue
		}
		out = append(out, p)
	}
	return strings.Join(out, ".")
}

func isIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// goTypeKind names a Go type the way a manifest author thinks of it.
func goTypeKind(t string) string {
	switch {
	case t == "[]uint8":
		return "a base64 string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "an object"
	case t == "string":
		return "a string"
	case t == "bool":
		return "a boolean"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "*"):
		return goTypeKind(t[1:])
	}
	return "an object"
}

// namedTypeKind resolves a named type ("v1.SecretType", "v1.Protocol") met
// at path in root by reflection, since its name alone does not say whether
// it is a string or a struct, and recognises IntOrString fields (whose
// errors name int32). It returns "" when it cannot tell or need not.
func namedTypeKind(root reflect.Type, path, typ string) string {
	t := root
	for _, name := range strings.Split(path, ".") {
		if name == "" {
			continue
		}
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		f, ok := jsonField(t, name)
		if !ok {
			return ""
		}
		t = f.Type
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// IntOrString reports the error of its int32 half.
	if t == reflect.TypeFor[intstr.IntOrString]() {
		return "an integer or a string"
	}
	if !strings.Contains(typ, ".") {
		return "" // a built-in type says what it is
	}
	// The error names the innermost type, which may be the element of
	// the field's list or map.
	for t.String() != typ && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map) {
		t = t.Elem()
	}
	if t.String() != typ {
		return ""
	}
	switch t.String() {
	case "resource.Quantity":
		return "a quantity"
	case "v1.Time", "v1.MicroTime":
		return "a time"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return ""
}

// jsonField finds the struct field that JSON name maps to, looking into
// embedded (inline) structs as encoding/json does.
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if inner, ok := jsonField(ft, name); ok {
				return inner, true
			}
			continue
		}
		if tag == name || (tag == "" && f.Name == name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
