package migrate

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// MaxFileSize is the largest manifest file read. A Secret is at most 1 MiB
// in etcd; a file of many is allowed more.
const MaxFileSize = 64 << 20

// FromFile reads the v1 Secrets of a YAML or JSON manifest file: one or
// more documents ("---"), a stream of JSON values, and List objects
// (kind: List, or any kind ending in List with items). Other documents are
// returned as Skipped. A document that cannot be decoded fails the whole
// file, with an error naming the file, the document and, where known, the
// line; the error never quotes the file.
func FromFile(path string) (*Batch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, fileReason(err))
	}
	defer f.Close()
	return FromReader(path, f)
}

// FromReader is FromFile for content read from r (stdin), named name in
// errors and Origins.
func FromReader(name string, r io.Reader) (*Batch, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, fileReason(err))
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d MiB", name, MaxFileSize>>20)
	}
	b := &Batch{}
	if err := decodeFile(name, data, b); err != nil {
		return nil, err
	}
	return b, nil
}

func fileReason(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// docError is a problem with one document of a file.
type docError struct {
	origin Origin
	line   int // file line, 0 when unknown
	msg    string
}

func (e *docError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s (line %d): %s", e.origin, e.line, e.msg)
	}
	return fmt.Sprintf("%s: %s", e.origin, e.msg)
}

// decodeFile appends the file's Secrets and skipped documents to b, or
// returns the first document's error.
func decodeFile(path string, data []byte, b *Batch) error {
	docs, err := splitDocuments(path, data)
	if err != nil {
		return err
	}
	for i, d := range docs {
		o := Origin{Path: path, Doc: i + 1}
		if err := decodeDocument(o, d, b); err != nil {
			return err
		}
	}
	return nil
}

// document is one YAML document or JSON value of a file: its text and the
// 1-based file line it starts on.
type document struct {
	text []byte
	line int
	json bool
}

// splitDocuments cuts a file into documents. A file whose first content is
// "{" or "[" is a stream of JSON values; anything else is YAML, cut at
// "---" and "..." lines. Documents without content are dropped.
func splitDocuments(path string, data []byte) ([]document, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return splitJSON(path, data)
	}
	return splitYAML(data), nil
}

func splitJSON(path string, data []byte) ([]document, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs []document
	for {
		start := dec.InputOffset()
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			// The decoder's message can quote the input; say where only.
			off := dec.InputOffset()
			var se *json.SyntaxError
			if errors.As(err, &se) {
				off = se.Offset
			}
			return nil, &docError{origin: Origin{Path: path, Doc: len(docs) + 1}, line: lineAt(data, off), msg: "not valid JSON"}
		}
		// InputOffset before Decode is where the previous value ended; the
		// value itself starts after any whitespace.
		for start < int64(len(data)) && isJSONSpace(data[start]) {
			start++
		}
		docs = append(docs, document{text: raw, line: lineAt(data, start), json: true})
	}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// lineAt returns the 1-based line of byte offset off.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// splitYAML cuts YAML at document markers: "---" or "..." at the start of
// a line, followed by whitespace or the end of the line. Block scalar
// content is always indented, so this never cuts inside a value.
func splitYAML(data []byte) []document {
	var docs []document
	var cur []byte
	start, line := 0, 0
	flush := func() {
		// The document starts at its first line of content: a leading
		// comment is not part of it, and its line numbers count from there.
		for len(cur) > 0 {
			l := cur
			if i := bytes.IndexByte(cur, '\n'); i >= 0 {
				l = cur[:i+1]
			}
			if hasYAMLContent(l) {
				break
			}
			cur = cur[len(l):]
			start++
		}
		if len(cur) > 0 {
			docs = append(docs, document{text: cur, line: start})
		}
		cur = nil
	}
	for rest := data; len(rest) > 0; {
		line++
		l := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		body := bytes.TrimRight(l, "\r\n")
		switch {
		case isMarker(body, "---"):
			flush()
			// "--- {a: 1}" starts a document on the marker's line.
			cur = append([]byte("   "), l[3:]...)
			start = line
		case isMarker(body, "..."):
			flush()
		default:
			if cur == nil {
				start = line
			}
			cur = append(cur, l...)
		}
	}
	flush()
	return docs
}

func isMarker(l []byte, m string) bool {
	return bytes.HasPrefix(l, []byte(m)) && (len(l) == 3 || l[3] == ' ' || l[3] == '\t')
}

// hasYAMLContent reports whether text has a line that is not blank, a
// comment or a directive.
func hasYAMLContent(text []byte) bool {
	for _, l := range bytes.Split(text, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' && l[0] != '%' {
			return true
		}
	}
	return false
}

// yamlLine matches the position in sigs.k8s.io/yaml's syntax errors.
var yamlLine = regexp.MustCompile(`line (\d+): (.*)$`)

// safeProblem matches the parser's own fixed phrases ("mapping values are
// not allowed in this context"), which quote nothing. Any other message
// (one that quotes a scalar, a key or a character) is not repeated.
var safeProblem = regexp.MustCompile(`^[a-z][a-z -]*[a-z]$`)

// yamlError turns a YAML decoding error into text that names the file
// line and quotes nothing of the input.
func yamlError(o Origin, d document, err error) error {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return &docError{origin: o, line: d.line, msg: "not valid YAML"}
	}
	n, _ := strconv.Atoi(m[1])
	if yamlParserProblem(m[2]) {
		n++ // yaml.v2 counts the parser's lines from 0, the scanner's from 1
	}
	msg := "not valid YAML"
	if safeProblem.MatchString(m[2]) {
		msg += ": " + m[2]
	}
	return &docError{origin: o, line: d.line + n - 1, msg: msg}
}

// yamlParserProblem reports whether msg is one of yaml.v2's parser
// problems (as opposed to its scanner's).
func yamlParserProblem(msg string) bool {
	switch msg {
	case "did not find expected <document start>", "did not find expected <stream-start>",
		"did not find expected key", "did not find expected node content",
		"did not find expected '-' indicator", "did not find expected ',' or ']'",
		"did not find expected ',' or '}'", "found duplicate %TAG directive",
		"found duplicate %YAML directive", "found incompatible YAML document",
		"found undefined tag handle", "invalid parser state":
		return true
	}
	return false
}

// decodeDocument decodes one document: a Secret, a List of objects, or
// something else to skip.
func decodeDocument(o Origin, d document, b *Batch) error {
	j := d.text
	if !d.json {
		var err error
		if j, err = yaml.YAMLToJSON(d.text); err != nil {
			return yamlError(o, d, err)
		}
	}
	if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
		return nil // only comments after all
	}
	fields, err := object(j)
	if err != nil {
		return &docError{origin: o, line: d.line, msg: err.Error()}
	}
	h, err := readHeader(fields)
	if err != nil {
		return &docError{origin: o, line: d.line, msg: err.Error()}
	}
	if items, ok := fields["items"]; ok && strings.HasSuffix(h.kind, "List") {
		var list []json.RawMessage
		if err := json.Unmarshal(items, &list); err != nil {
			return &docError{origin: o, line: d.line, msg: h.kind + ": items is not a list"}
		}
		for i, raw := range list {
			itemOrigin := o
			itemOrigin.Item = i + 1
			item, err := object(raw)
			if err != nil {
				return &docError{origin: itemOrigin, line: d.line, msg: err.Error()}
			}
			if err := decodeObject(itemOrigin, d.line, item, b); err != nil {
				return err
			}
		}
		return nil
	}
	return decodeObject(o, d.line, fields, b)
}

// object decodes a JSON object into its fields.
func object(j []byte) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(j, &fields); err != nil || fields == nil {
		return nil, errors.New("not an object (a mapping with apiVersion and kind)")
	}
	return fields, nil
}

type header struct {
	apiVersion, kind, name string
}

func readHeader(fields map[string]json.RawMessage) (header, error) {
	var h header
	for _, f := range []struct {
		key string
		to  *string
	}{{"apiVersion", &h.apiVersion}, {"kind", &h.kind}} {
		if raw, ok := fields[f.key]; ok {
			if err := json.Unmarshal(raw, f.to); err != nil {
				return h, fmt.Errorf("%s is not a string", f.key)
			}
		}
	}
	var meta struct {
		Name any `json:"name"`
	}
	if raw, ok := fields["metadata"]; ok {
		_ = json.Unmarshal(raw, &meta)
	}
	if s, ok := meta.Name.(string); ok {
		h.name = s
	}
	return h, nil
}

func decodeObject(o Origin, line int, fields map[string]json.RawMessage, b *Batch) error {
	h, err := readHeader(fields)
	if err != nil {
		return &docError{origin: o, line: line, msg: err.Error()}
	}
	skip := func(reason string) error {
		b.Skipped = append(b.Skipped, Skipped{Origin: o, APIVersion: h.apiVersion, Kind: h.kind, Name: h.name, Reason: reason})
		return nil
	}
	switch {
	case h.kind == "":
		return skip("no kind")
	case h.kind != "Secret":
		return skip("not a Secret")
	case h.apiVersion != "v1":
		return skip(fmt.Sprintf("apiVersion %q, not v1", h.apiVersion))
	}
	s, err := decodeSecret(fields)
	if err != nil {
		what := "Secret"
		if h.name != "" {
			what += " " + h.name
		}
		return &docError{origin: o, line: line, msg: what + ": " + err.Error()}
	}
	o.ControlledBy = controllerOf(s)
	Clean(s)
	b.Secrets = append(b.Secrets, Secret{Secret: s, Origin: o})
	return nil
}

// decodeSecret decodes a v1 Secret field by field, so that every error
// names the field or key at fault and none quotes a value (encoding/json
// and base64 errors can quote input).
func decodeSecret(fields map[string]json.RawMessage) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	s.APIVersion, s.Kind = "v1", "Secret"
	if raw, ok := fields["metadata"]; ok {
		if err := json.Unmarshal(raw, &s.ObjectMeta); err != nil {
			return nil, fmt.Errorf("metadata is not valid%s", typeErrorField(err, "metadata"))
		}
	}
	if s.Name == "" {
		return nil, errors.New("no metadata.name")
	}
	if raw, ok := fields["type"]; ok {
		if err := json.Unmarshal(raw, &s.Type); err != nil {
			return nil, errors.New("type is not a string")
		}
	}
	if raw, ok := fields["immutable"]; ok {
		if err := json.Unmarshal(raw, &s.Immutable); err != nil {
			return nil, errors.New("immutable is not a boolean")
		}
	}
	data, err := stringMap(fields, "data")
	if err != nil {
		return nil, err
	}
	if data != nil {
		s.Data = make(map[string][]byte, len(data))
		for _, k := range sortedKeys(data) {
			v, err := base64.StdEncoding.DecodeString(data[k])
			if err != nil {
				return nil, fmt.Errorf("data.%s is not valid base64 (use stringData for plain text)", k)
			}
			s.Data[k] = v
		}
	}
	if s.StringData, err = stringMap(fields, "stringData"); err != nil {
		return nil, err
	}
	for k := range s.StringData {
		if err := checkKey("stringData", k); err != nil {
			return nil, err
		}
	}
	for k := range s.Data {
		if err := checkKey("data", k); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// stringMap decodes fields[field] as a map of strings; a null value is an
// empty string, as for the API server.
func stringMap(fields map[string]json.RawMessage, field string) (map[string]string, error) {
	raw, ok := fields[field]
	if !ok || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s is not a mapping", field)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if bytes.Equal(v, []byte("null")) {
			out[k] = ""
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("%s.%s is not a string (quote it)", field, k)
		}
		out[k] = s
	}
	return out, nil
}

func checkKey(field, k string) error {
	if errs := validation.IsConfigMapKey(k); len(errs) > 0 {
		return fmt.Errorf("%s: key %q is not valid: %s", field, k, errs[0])
	}
	return nil
}

// typeErrorField names the field of a json type error, without the value.
func typeErrorField(err error, prefix string) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return ": " + prefix + "." + te.Field + " has the wrong type"
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
