package report

import (
	"encoding/json"
	"fmt"
	"io"
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
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
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
