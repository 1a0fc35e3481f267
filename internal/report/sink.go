package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Formats lists the output formats, the default first.
var Formats = []string{"table", "json", "sarif", "markdown"}

// Write formats r to w in the named format.
func Write(w io.Writer, format string, r *Report) error {
	switch format {
	case "table", "":
		return WriteTable(w, r)
	case "json":
		return WriteJSON(w, r)
	case "sarif":
		return WriteSARIF(w, r)
	case "markdown":
		return WriteMarkdown(w, r)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// WriteJSON writes the report as indented JSON.
//
// The output is exactly what json.Encoder with two-space indentation
// writes, but the top-level lists (secrets, findings, errors) are encoded
// one element at a time. A large cluster's report runs to gigabytes of
// JSON because every Secret lists all its readers; encoding it whole held
// that text twice in memory (once encoded, once indented).
func WriteJSON(w io.Writer, r *Report) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	var buf bytes.Buffer
	encode := func(v any, prefix string) error {
		buf.Reset()
		enc := json.NewEncoder(&buf)
		enc.SetIndent(prefix, "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return err
		}
		_, err := bw.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		return err
	}
	// A bufio.Writer keeps its first error and returns it from Flush, so
	// the writes below need no check of their own.
	write := func(s string) { _, _ = bw.WriteString(s) }
	v := reflect.ValueOf(r).Elem()
	t := v.Type()
	write("{")
	first := true
	for i := range t.NumField() {
		f := t.Field(i)
		name, omitEmpty := jsonField(f)
		fv := v.Field(i)
		if name == "" || (omitEmpty && isEmptyJSON(fv)) {
			continue
		}
		if !first {
			write(",")
		}
		first = false
		write("\n  ")
		if err := encode(name, ""); err != nil {
			return err
		}
		write(": ")
		if fv.Kind() != reflect.Slice || fv.Len() == 0 {
			if err := encode(fv.Interface(), "  "); err != nil {
				return err
			}
			continue
		}
		write("[")
		for j := range fv.Len() {
			if j > 0 {
				write(",")
			}
			write("\n    ")
			elem := fv.Index(j).Interface()
			if s, ok := elem.(Secret); ok {
				elem = s.WithReaches()
			}
			if err := encode(elem, "    "); err != nil {
				return err
			}
		}
		write("\n  ]")
	}
	write("\n}\n")
	return bw.Flush()
}

// jsonField returns a struct field's JSON name ("" when it is not encoded)
// and whether it is omitted when empty.
func jsonField(f reflect.StructField) (name string, omitEmpty bool) {
	if !f.IsExported() {
		return "", false
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	return name, strings.Contains(","+opts+",", ",omitempty,")
}

// isEmptyJSON is encoding/json's omitempty test.
func isEmptyJSON(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

// String names a subject for people.
func (s Subject) String() string {
	if s.Kind == "ServiceAccount" {
		return "ServiceAccount/" + s.Namespace + "/" + s.Name
	}
	return s.Kind + "/" + s.Name
}

// String names an object for people.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}
