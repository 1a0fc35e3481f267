package manifests

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

func TestSplitYAML(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // "line:content"
	}{
		{"one document", "a: 1\n", []string{"1:a: 1\n"}},
		{"leading marker", "---\na: 1\n", []string{"2:a: 1\n"}},
		{"leading comments are not the start", "# c\n\n---\n# c2\na: 1\n", []string{"5:a: 1\n"}},
		{"empty documents", "---\n---\n# only a comment\n---\n\n", nil},
		{"document end", "a: 1\n...\nb: 2\n", []string{"1:a: 1\n", "3:b: 2\n"}},
		{"document end then marker", "a: 1\n...\n---\nb: 2\n", []string{"1:a: 1\n", "4:b: 2\n"}},
		{"marker with comment", "a: 1\n--- # next\nb: 2", []string{"1:a: 1\n", "3:b: 2"}},
		{"content after the marker", "--- {a: 1}\n", []string{"1:    {a: 1}\n"}},
		{"not a marker", "a: ---\nb: |\n  ---\n----\n", []string{"1:a: ---\nb: |\n  ---\n----\n"}},
		{"directive", "%YAML 1.1\n---\na: 1\n", []string{"3:a: 1\n"}},
		{"CRLF", "a: 1\r\n---\r\nb: 2\r\n", []string{"1:a: 1\r\n", "3:b: 2\r\n"}},
		{"marker with tab", "a: 1\n---\t\nb: 2\n", []string{"1:a: 1\n", "3:b: 2\n"}},
		{"no final newline", "a: 1\n---", []string{"1:a: 1\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range splitYAML([]byte(tc.in)) {
				got = append(got, fmt.Sprintf("%d:%s", d.line, d.data))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("splitYAML(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSplitJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		docs []string // "line:content"
		errs []string // "index line errLine:errCol reason resume"
	}{
		{"single", `{"a": 1}`, []string{`1:{"a": 1}`}, nil},
		{"concatenated", "{\"a\": 1}\n\n  {\"b\": 2}{\"c\": 3}", []string{`1:{"a": 1}`, `3:{"b": 2}`, `3:{"c": 3}`}, nil},
		{"marker separated", "{\"a\": 1}\n---\n{\"b\": 2}\n...\n", []string{`1:{"a": 1}`, `3:{"b": 2}`}, nil},
		{"scalars", `1 "x" [2]`, []string{"1:1", `1:"x"`, "1:[2]"}, nil},
		{
			"error, resumed at the next object",
			"{\"a\": 1}\n{\"b\": x,\n \"c\": {\n}}\n{\"d\": 4}\n",
			[]string{`1:{"a": 1}`, `5:{"d": 4}`},
			[]string{"2 2 2:7 invalid character looking for beginning of value 5"},
		},
		{
			"error, nowhere to resume",
			"{\"a\": 1}\n{\"b\": 2",
			[]string{`1:{"a": 1}`},
			[]string{"2 2 2:7 unexpected end of input 0"},
		},
		{
			"two errors",
			"{x}\n{y}\n{\"ok\": 1}",
			[]string{`3:{"ok": 1}`},
			[]string{
				"1 1 1:2 invalid character looking for beginning of object key string 2",
				"2 2 2:2 invalid character looking for beginning of object key string 3",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			docs, errs := splitJSON([]byte(tc.in))
			var gotDocs, gotErrs []string
			for _, d := range docs {
				gotDocs = append(gotDocs, fmt.Sprintf("%d:%s", d.line, d.data))
			}
			for _, e := range errs {
				gotErrs = append(gotErrs, fmt.Sprintf("%d %d %d:%d %s %d", e.index, e.line, e.errLine, e.errCol, e.reason, e.resume))
			}
			if !slices.Equal(gotDocs, tc.docs) {
				t.Errorf("docs = %q, want %q", gotDocs, tc.docs)
			}
			if !slices.Equal(gotErrs, tc.errs) {
				t.Errorf("errors = %q, want %q", gotErrs, tc.errs)
			}
		})
	}
}

func TestJSONSyntaxReason(t *testing.T) {
	for in, want := range map[string]string{
		"invalid character 'K' looking for beginning of value":        "invalid character looking for beginning of value",
		`invalid character '\'' after object key`:                     "invalid character after object key",
		"invalid character ' ' in numeric literal":                    "invalid character", // the quote is ambiguous: say less
		"invalid character 'x' in literal true (expecting 'r')":       "invalid character in literal true",
		"invalid character 'p' something new that quotes 'p4ssw0rd'":  "invalid character",
		"unexpected end of JSON input":                                "unexpected end of input",
		"json: something else entirely with a value hunter2 in it":    "invalid JSON",
		"invalid character '\\x01' in string literal":                 "invalid character in string literal",
		"invalid character 'a' after top-level value":                 "invalid character after top-level value",
		`invalid character 'u' in \u hexadecimal character escape`:    `invalid character in \u hexadecimal character escape`,
		"invalid character '}' looking for beginning of object key s": "invalid character",
	} {
		if got := jsonSyntaxReason(in); got != want {
			t.Errorf("jsonSyntaxReason(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestYAMLErrorLines pins yaml.v2's line conventions (1-based for scanner
// errors, 0-based for parser errors) to the real error lines.
func TestYAMLErrorLines(t *testing.T) {
	tests := []struct {
		in     string
		line   int
		reason string
	}{
		{"a: 1\nb: 2\nc:\n  - b\n d: e\n", 5, "did not find expected key"},
		{"a: 1\nb: 2\nc: d: e\n", 3, "mapping values are not allowed in this context"},
		{"a: b: c\n", 1, "mapping values are not allowed in this context"},
		{"a: 1\n\tb: 2\n", 2, "found a tab character that violates indentation"},
		{"a: 1\nb: [1, 2\nc: 3\n", 3, "did not find expected ',' or ']'"},
		{"a: 1\nb: @x\n", 2, "found character that cannot start any token"},
		{"a: 1\nb: 2\n- c\n", 3, "did not find expected key"},
		{"a: 1\nb: x\x01\n", 2, "control characters are not allowed"},
		{"a: *nope\n", 0, "an alias refers to an unknown anchor"},
		{"a: !!int x\n", 0, "a value does not match its tag"},
		{"{[a]: b}\n", 0, "a map key is a list or a map"},
	}
	for _, tc := range tests {
		_, err := yaml.YAMLToJSON([]byte(tc.in))
		if err == nil {
			t.Errorf("%q: no error", tc.in)
			continue
		}
		line, reason := yamlErrorReason(err, []byte(tc.in))
		if line != tc.line || reason != tc.reason {
			t.Errorf("%q: line %d %q, want line %d %q (from %q)", tc.in, line, reason, tc.line, tc.reason, err)
		}
	}
	// Anything unknown says nothing of its text.
	if _, reason := yamlErrorReason(errors.New("yaml: line 3: brand new message quoting `hunter2`"), nil); reason != "invalid YAML syntax" {
		t.Errorf("unknown message kept: %q", reason)
	}
}

func TestDescribeDecodeError(t *testing.T) {
	tests := []struct {
		json  string
		into  any
		field string
		want  string
	}{
		{`{"rules": "x"}`, &rbacv1.Role{}, "rules", "got a string, want a list"},
		{`{"rules": [{"verbs": "get"}]}`, &rbacv1.Role{}, "rules.verbs", "got a string, want a list"},
		{`{"type": 5}`, &corev1.Secret{}, "type", "got a number, want a string"},
		{`{"data": {"k": 12345}}`, &corev1.Secret{}, "data", "got a number, want a base64 string"},
		{`{"data": {"k": "!!"}}`, &corev1.Secret{}, "", "not valid base64"},
		{`{"spec": {"containers": [{"ports": [{"containerPort": 1.5}]}]}}`, &corev1.Pod{}, "spec.containers.ports.containerPort", "got a number, want an integer"},
		{`{"spec": {"containers": [{"livenessProbe": {"httpGet": {"port": true}}}]}}`, &corev1.Pod{}, "spec.containers.livenessProbe.httpGet.port", "got a boolean, want an integer or a string"},
		{`{"spec": {"containers": [{"imagePullPolicy": 1}]}}`, &corev1.Pod{}, "spec.containers.imagePullPolicy", "got a number, want a string"},
		{`{"metadata": {"creationTimestamp": "yesterday"}}`, &corev1.Pod{}, "", "not a valid time (want RFC 3339, e.g. 2006-01-02T15:04:05Z)"},
		{`{"spec": {"containers": [{"resources": {"limits": {"cpu": "lots"}}}]}}`, &corev1.Pod{}, "", "not a valid quantity"},
		{`{"metadata": "x"}`, &corev1.Pod{}, "metadata", "got a string, want an object"},
		{`{"immutable": "yes"}`, &corev1.Secret{}, "immutable", "got a string, want a boolean"},
	}
	for _, tc := range tests {
		err := utiljson.Unmarshal([]byte(tc.json), tc.into)
		if err == nil {
			t.Errorf("%s: no error", tc.json)
			continue
		}
		d := describeDecodeError(err, tc.into)
		if d.field != tc.field || d.reason != tc.want {
			t.Errorf("%s: field %q reason %q, want %q %q (from %q)", tc.json, d.field, d.reason, tc.field, tc.want, err)
		}
		if strings.Contains(d.reason, "yesterday") || strings.Contains(d.reason, "lots") || strings.Contains(d.reason, "12345") {
			t.Errorf("%s: reason quotes the value: %q", tc.json, d.reason)
		}
	}
	if d := describeDecodeError(errors.New("json: cannot unmarshal number 42 into Go struct field X.a-b.c\"d of type string"), nil); d.field != "" || d.reason != "got a number, want a string" {
		t.Errorf("odd field path kept: %+v", d)
	}
}

func TestKeyLine(t *testing.T) {
	doc := strings.Join([]string{
		"apiVersion: v1", // 1
		"kind: Pod",      // 2
		"metadata:",      // 3
		"  name: x",      // 4
		"spec:",          // 5
		"  # ports: not this one",
		"  containers:",             // 7
		"  - name: a",               // 8
		"    image: i",              // 9
		"  - name: b",               // 10
		"    ports:",                // 11
		"    - containerPort: http", // 12
		"  volumes: []",             // 13
		"status: {}",                // 14
	}, "\n")
	for path, want := range map[string]int{
		"spec.containers.ports.containerPort": 12,
		"spec.containers":                     7,
		"spec.volumes":                        13,
		"metadata.name":                       4,
		"status":                              14,
		"spec.name":                           0, // name is under containers, not spec
		"metadata.containers":                 0,
	} {
		if got := keyLine([]byte(doc), strings.Split(path, ".")); got != want {
			t.Errorf("keyLine(%s) = %d, want %d", path, got, want)
		}
	}
	pretty := "{\n  \"kind\": \"Role\",\n  \"rules\": \"x\"\n}"
	if got := keyLine([]byte(pretty), []string{"rules"}); got != 3 {
		t.Errorf("JSON keyLine = %d, want 3", got)
	}
	if got := keyLine([]byte("'quoted key': 1\n\"other\": 2\n"), []string{"other"}); got != 2 {
		t.Errorf("quoted keyLine = %d, want 2", got)
	}
}

func TestYAMLItems(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []int // lines
	}{
		{"kubectl shape", "apiVersion: v1\nitems:\n- a: 1\n  b: 2\n- a: 3\nkind: List\n", []int{3, 5}},
		{"indented", "kind: List\nitems:\n  # c\n  - a: 1\n\n  - a: 2\n", []int{4, 6}},
		{"nested entry", "- kind: List\n  items:\n  - a: 1\n  - a: 2\n", []int{3, 4}},
		{"block scalar with a dash", "items:\n- a: |\n    - not an item\n- b: 2\n", []int{2, 4}},
		{"flow items", "items: [{a: 1}]\n", nil},
		{"no items", "kind: List\n", nil},
		{"items key deeper", "metadata:\n  items:\n  - a\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			for _, off := range yamlItems([]byte(tc.in)) {
				got = append(got, 1+strings.Count(tc.in[:off], "\n"))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("yamlItems = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFlowRootEnd(t *testing.T) {
	for in, want := range map[string]int{
		`{a: 1}`:                    6,
		"  {a: '}'}\n{b: 2}":        10,
		`{"a": "x\"}"} # {`:         13,
		"[1, [2]]\n":                8,
		`"scalar"`:                  8,
		`'it''s' `:                  7,
		`"kind": Secret`:            -1, // a quoted key of a block mapping
		`{a: 1}: x`:                 -1,
		"apiVersion: v1\n{b: 2}":    -1,
		"- a\n":                     -1,
		"{a: 1":                     -1,
		"{a: # }\n  1}":             12,
		"plain scalar {not flow}\n": -1,
	} {
		if got := flowRootEnd([]byte(in)); got != want {
			t.Errorf("flowRootEnd(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestBinaryReason(t *testing.T) {
	for in, want := range map[string]string{
		"a: 1\n":                           "",
		"a: caf\u00e9\n":                   "",
		"a: 1\n\x00":                       " (NUL byte)",
		"a: 1\nb: \xe9\n":                  " (not valid UTF-8 at line 2)",
		"\xff\xfea\x00":                    " (UTF-16; convert it to UTF-8)",
		strings.Repeat("a", 9000) + "\x00": "", // NUL past the sniffed prefix: text (YAML will reject it)
	} {
		if got := binaryReason([]byte(in)); got != want {
			t.Errorf("binaryReason(%.20q) = %q, want %q", in, got, want)
		}
	}
}
