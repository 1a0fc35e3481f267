package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// document is one YAML document or one top-level JSON value of a file.
type document struct {
	// data is the document's text, starting at its first line of content
	// (leading blank and comment lines are not part of it).
	data []byte
	// line is the 1-based file line of data[0].
	line int
}

// splitYAML cuts a YAML stream into documents at "---" and "..." markers.
// A marker is only a marker at the start of a line and when followed by
// whitespace or the end of the line, as in the YAML spec; a block scalar's
// content is always indented, so this never cuts inside a value.
//
// Documents with no content (only blank lines, comments and directives)
// are dropped: they are nothing. buf may be modified: a marker followed by
// content on its own line ("--- {a: 1}") is blanked out so that the
// document can start on that line and keep its columns.
func splitYAML(buf []byte) []document {
	var docs []document
	start, startLine := -1, 0
	end := func(at int) {
		if start >= 0 {
			docs = append(docs, document{data: buf[start:at], line: startLine})
		}
		start = -1
	}
	line := 0
	for off := 0; off < len(buf); {
		line++
		l, next := nextLine(buf, off)
		switch {
		case isMarker(l, "---"):
			end(off)
			if hasContent(l[3:]) {
				copy(buf[off:off+3], "   ")
				start, startLine = off, line
			}
		case isMarker(l, "..."):
			end(off)
		case start < 0 && !isBlankOrComment(l) && l[0] != '%':
			start, startLine = off, line
		}
		off = next
	}
	end(len(buf))
	return docs
}

// nextLine returns the line starting at off, without its "\n", and the
// offset of the next line.
func nextLine(buf []byte, off int) (line []byte, next int) {
	i := bytes.IndexByte(buf[off:], '\n')
	if i < 0 {
		return buf[off:], len(buf)
	}
	return buf[off : off+i], off + i + 1
}

func isMarker(l []byte, m string) bool {
	return len(l) >= 3 && string(l[:3]) == m && (len(l) == 3 || isSpace(l[3]))
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

func hasContent(l []byte) bool {
	l = bytes.TrimLeft(l, " \t\r")
	return len(l) > 0 && l[0] != '#'
}

func isBlankOrComment(l []byte) bool { return !hasContent(l) }

// jsonSyntaxError is a value of a JSON stream that could not be parsed.
type jsonSyntaxError struct {
	index int // 1-based index of the value in the stream
	line  int // line where the value starts
	// errLine and errCol locate the error; reason says what it is,
	// without quoting the input.
	errLine, errCol int
	reason          string
	// resume is the line where reading went on, or 0 if the rest of the
	// file was not read.
	resume int
}

// splitJSON cuts a stream of concatenated JSON values (a single object is
// the common case) into documents. After a syntax error it resumes at the
// next line that starts with "{" in column 0, which is where the next
// object starts in both pretty-printed and one-object-per-line output; an
// error never makes it read backwards, so it always ends.
func splitJSON(buf []byte) (docs []document, errs []jsonSyntaxError) {
	lines := lineCounter{buf: buf}
	base := 0
	dec := json.NewDecoder(bytes.NewReader(buf))
	end := 0 // offset just after the last value read
	for index := 1; ; index++ {
		start, skipped := skipJSONSeparators(buf, end)
		if start >= len(buf) {
			return docs, errs
		}
		if skipped {
			// The decoder cannot skip a "---" itself: start a new one
			// after it.
			base = start
			dec = json.NewDecoder(bytes.NewReader(buf[base:]))
		}
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == nil {
			end = base + int(dec.InputOffset())
			docs = append(docs, document{data: buf[start:end], line: lines.at(start)})
			continue
		}
		e := jsonSyntaxError{index: index, line: lines.at(start)}
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			at := base + int(se.Offset) - 1
			at = max(min(at, len(buf)-1), start)
			e.errLine, e.errCol = lines.at(at), lines.col(at)
			e.reason = jsonSyntaxReason(se.Error())
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			e.errLine, e.errCol = lines.at(len(buf)-1), lines.col(len(buf)-1)
			e.reason = "unexpected end of input"
		default:
			e.errLine, e.errCol = e.line, 0
			e.reason = "invalid JSON"
		}
		next := bytes.Index(buf[start+1:], []byte("\n{"))
		if next < 0 {
			errs = append(errs, e)
			return docs, errs
		}
		base = start + 1 + next + 1
		e.resume = lines.at(base)
		errs = append(errs, e)
		dec = json.NewDecoder(bytes.NewReader(buf[base:]))
		end = base
	}
}

// skipJSONSeparators skips whitespace and YAML document markers ("---",
// "...") between JSON values: JSON documents separated as YAML ones are
// common in generated output. It reports whether it skipped a marker.
func skipJSONSeparators(buf []byte, off int) (int, bool) {
	skipped := false
	for {
		off = skipJSONSpace(buf, off)
		if off >= len(buf) || (off > 0 && buf[off-1] != '\n') {
			return off, skipped
		}
		l, next := nextLine(buf, off)
		if !isMarker(l, "---") && !isMarker(l, "...") || hasContent(l[3:]) {
			return off, skipped
		}
		off, skipped = next, true
	}
}

func skipJSONSpace(buf []byte, off int) int {
	for off < len(buf) {
		switch buf[off] {
		case ' ', '\t', '\r', '\n':
			off++
		default:
			return off
		}
	}
	return off
}

// looksLikeJSON reports whether data starts, after whitespace, like a JSON
// object or array.
func looksLikeJSON(data []byte) bool {
	i := skipJSONSpace(data, 0)
	return i < len(data) && (data[i] == '{' || data[i] == '[')
}

// jsonSyntaxReason rebuilds encoding/json's syntax error message without
// the character it quotes (which may be part of a Secret value).
func jsonSyntaxReason(msg string) string {
	const invalid = "invalid character "
	if !strings.HasPrefix(msg, invalid) {
		if msg == "unexpected end of JSON input" {
			return "unexpected end of input"
		}
		return "invalid JSON"
	}
	rest := msg[len(invalid):]
	i := strings.Index(rest, "' ")
	if i < 0 {
		return "invalid character"
	}
	rest = rest[i+2:]
	if j := strings.Index(rest, " ("); j >= 0 {
		rest = rest[:j] // "(expecting 'r')"
	}
	switch rest {
	case "looking for beginning of value",
		"looking for beginning of object key string",
		"after object key",
		"after object key:value pair",
		"after array element",
		"after top-level value",
		"in string literal",
		"in string escape code",
		`in \u hexadecimal character escape`,
		"in numeric literal",
		"after decimal point in numeric literal",
		"in exponent of numeric literal",
		"in literal true",
		"in literal false",
		"in literal null":
		return invalid + rest
	}
	return "invalid character"
}

// lineCounter converts byte offsets to 1-based lines and columns. Offsets
// are usually asked for in increasing order, so it counts on from the last
// one instead of from the start.
type lineCounter struct {
	buf  []byte
	off  int // offsets before off have been counted
	line int // line of offset off, minus 1
}

func (c *lineCounter) at(off int) int {
	off = max(0, min(off, len(c.buf)))
	if off < c.off {
		c.off, c.line = 0, 0
	}
	c.line += bytes.Count(c.buf[c.off:off], []byte{'\n'})
	c.off = off
	return c.line + 1
}

// col returns the 1-based column (in bytes) of off.
func (c *lineCounter) col(off int) int {
	off = max(0, min(off, len(c.buf)))
	return off - (bytes.LastIndexByte(c.buf[:off], '\n') + 1) + 1
}

// flowRootEnd returns the offset just after a YAML document's root node
// when that node is a flow collection or a quoted scalar, or -1 for
// anything else (a block collection or a plain or block scalar). yaml.v2
// reads one document and silently ignores what follows its root node, so
// content after a flow root (such as a second JSON object without a "---"
// between them) would be dropped without a word.
func flowRootEnd(doc []byte) int {
	i := skipJSONSpace(doc, 0)
	if i >= len(doc) {
		return -1
	}
	var end int
	switch doc[i] {
	case '{', '[':
		end = flowCollectionEnd(doc, i)
	case '"', '\'':
		end = quotedEnd(doc, i)
	default:
		return -1
	}
	if end < 0 {
		return -1
	}
	// A quoted or flow key of a block mapping ("\"kind\": Secret") is not
	// a root node.
	rest := bytes.TrimLeft(doc[end:], " \t")
	if len(rest) > 0 && rest[0] == ':' {
		return -1
	}
	return end
}

// flowCollectionEnd returns the offset after the flow collection that
// starts at doc[i], or -1 if it does not end.
func flowCollectionEnd(doc []byte, i int) int {
	depth := 0
	for i < len(doc) {
		switch c := doc[i]; c {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		case '"', '\'':
			e := quotedEnd(doc, i)
			if e < 0 {
				return -1
			}
			i = e
			continue
		case '#':
			if i == 0 || isSpace(doc[i-1]) || doc[i-1] == '\n' {
				_, next := nextLine(doc, i)
				i = next
				continue
			}
		}
		i++
	}
	return -1
}

// quotedEnd returns the offset after the quoted scalar that starts at
// doc[i], or -1.
func quotedEnd(doc []byte, i int) int {
	q := doc[i]
	for j := i + 1; j < len(doc); j++ {
		switch {
		case q == '"' && doc[j] == '\\':
			j++
		case doc[j] == q:
			if q == '\'' && j+1 < len(doc) && doc[j+1] == '\'' {
				j++ // '' is an escaped quote
				continue
			}
			return j + 1
		}
	}
	return -1
}
