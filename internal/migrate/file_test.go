package migrate

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// canary is a value no message may repeat.
const canary = "kh-canary-Zq8vW2pX"

var canary64 = base64.StdEncoding.EncodeToString([]byte(canary))

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type gotSecret struct {
	ref       string
	doc, item int
	data      map[string]string
}

func summarize(b *Batch) []gotSecret {
	var out []gotSecret
	for _, s := range b.Secrets {
		data := map[string]string{}
		for k, v := range s.Secret.Data {
			data[k] = string(v)
		}
		out = append(out, gotSecret{ref: s.Ref(), doc: s.Origin.Doc, item: s.Origin.Item, data: data})
	}
	return out
}

func TestFromFile(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		content  string
		want     []gotSecret
		skipped  []string // Skipped.String() suffixes
		leakFree bool
	}{
		{
			name: "multi-document YAML with other kinds",
			file: "s.yaml",
			content: `# leading comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
---
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
data:
  password: ` + canary64 + `
...
--- {apiVersion: v1, kind: Secret, metadata: {name: inline, namespace: prod}, stringData: {k: v}}
`,
			want: []gotSecret{
				{ref: "prod/db", doc: 2, data: map[string]string{"password": canary}},
				{ref: "prod/inline", doc: 3, data: map[string]string{"k": "v"}},
			},
			skipped: []string{"s.yaml document 1 (ConfigMap cm): skipped: not a Secret"},
		},
		{
			name: "stringData merged over data",
			file: "m.yml",
			content: `apiVersion: v1
kind: Secret
metadata: {name: m, namespace: a}
data:
  both: ` + base64.StdEncoding.EncodeToString([]byte("from-data")) + `
  onlydata: ` + base64.StdEncoding.EncodeToString([]byte("d")) + `
stringData:
  both: from-stringData
  onlystring: s
  empty: null
`,
			want: []gotSecret{{ref: "a/m", doc: 1, data: map[string]string{"both": "from-stringData", "onlydata": "d", "onlystring": "s", "empty": ""}}},
		},
		{
			name: "List with a Secret and a Deployment",
			file: "list.yaml",
			content: `apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web}
- apiVersion: v1
  kind: Secret
  metadata: {name: s1, namespace: ns1}
  stringData: {a: b}
`,
			want:    []gotSecret{{ref: "ns1/s1", doc: 1, item: 2, data: map[string]string{"a": "b"}}},
			skipped: []string{"list.yaml document 1 item 1 (Deployment web): skipped: not a Secret"},
		},
		{
			name: "JSON stream and a SecretList",
			file: "s.json",
			content: `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"j1","namespace":"ns1"},"data":{"k":"` + canary64 + `"}}
{"apiVersion":"v1","kind":"SecretList","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"j2","namespace":"ns1"},"stringData":{"x":"y"}}]}`,
			want: []gotSecret{
				{ref: "ns1/j1", doc: 1, data: map[string]string{"k": canary}},
				{ref: "ns1/j2", doc: 2, item: 1, data: map[string]string{"x": "y"}},
			},
		},
		{
			name: "Secret of another apiVersion and kindless document",
			file: "odd.yaml",
			content: `apiVersion: v2
kind: Secret
metadata: {name: x}
---
foo: bar
`,
			skipped: []string{
				`odd.yaml document 1 (Secret x): skipped: apiVersion "v2", not v1`,
				`odd.yaml document 2: skipped: no kind`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeTemp(t, tt.file, tt.content)
			b, err := FromFile(p)
			if err != nil {
				t.Fatalf("FromFile: %v", err)
			}
			got := summarize(b)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("secrets:\n got %+v\nwant %+v", got, tt.want)
			}
			var skipped []string
			for _, s := range b.Skipped {
				skipped = append(skipped, strings.TrimPrefix(s.String(), filepath.Dir(p)+string(filepath.Separator)))
			}
			if !reflect.DeepEqual(skipped, tt.skipped) {
				t.Errorf("skipped:\n got %q\nwant %q", skipped, tt.skipped)
			}
			for _, s := range b.Secrets {
				if s.Secret.StringData != nil {
					t.Errorf("%s: StringData not merged", s.Ref())
				}
				if s.Secret.Kind != "Secret" || s.Secret.APIVersion != "v1" {
					t.Errorf("%s: TypeMeta %v", s.Ref(), s.Secret.TypeMeta)
				}
			}
		})
	}
}

// TestFromFileErrors checks that every decoding error names the file, the
// document and the line where known, and quotes nothing of the file.
func TestFromFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string // substring of the error after the file name
	}{
		{"YAML syntax", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  a: " + canary + "\n b: [" + canary + "\n", "document 1 (line "},
		{"YAML syntax in the second document", "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\n  bad: " + canary + ": x\n", "document 2 (line "},
		{"bad base64", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns1}\ndata:\n  pw: '" + canary + "!'\n", "document 1 (line 1): Secret s: data.pw is not valid base64"},
		{"stringData not a string", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns1}\nstringData:\n  port: 5432\n", "Secret s: stringData.port is not a string"},
		{"stringData nested", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns1}\nstringData:\n  pw: {x: " + canary + "}\n", "Secret s: stringData.pw is not a string"},
		{"no name", "apiVersion: v1\nkind: Secret\nmetadata: {namespace: ns1}\nstringData: {pw: " + canary + "}\n", "document 1 (line 1): Secret: no metadata.name"},
		{"bad key", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns1}\nstringData: {'a b': " + canary + "}\n", `stringData: key "a b" is not valid`},
		{"metadata wrong type", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, labels: {a: [" + canary + "]}}\n", "Secret s: metadata is not valid: metadata.labels"},
		{"not a mapping", "- " + canary + "\n", "document 1 (line 1): not an object"},
		{"JSON syntax", `{"apiVersion":"v1","kind":"Secret","stringData":{"pw":"` + canary + `"}}` + "\n" + `{"a": ` + canary + `}`, "document 2 (line 2): not valid JSON"},
		{"items not a list", "apiVersion: v1\nkind: List\nitems: {a: " + canary + "}\n", "List: items is not a list"},
		{"list item not an object", "apiVersion: v1\nkind: List\nitems: [" + canary + "]\n", "document 1 item 1 (line 1): not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeTemp(t, "bad.yaml", tt.content)
			_, err := FromFile(p)
			if err == nil {
				t.Fatal("FromFile: no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, p+" ") {
				t.Errorf("error does not start with the file name %s: %s", p, msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			if strings.Contains(msg, canary) || strings.Contains(msg, canary[:8]) {
				t.Errorf("error quotes the value: %s", msg)
			}
		})
	}
}

func TestFromFileYAMLLine(t *testing.T) {
	content := "apiVersion: v1\nkind: ConfigMap\n---\n# c\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  a: b\n c: d\n"
	p := writeTemp(t, "l.yaml", content)
	_, err := FromFile(p)
	if err == nil {
		t.Fatal("no error")
	}
	// The bad line is line 10 of the file.
	if !strings.Contains(err.Error(), "document 2 (line 10)") {
		t.Errorf("error %q does not name document 2, line 10", err)
	}
}

func TestFromFileMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := FromFile(p)
	if err == nil || err.Error() != p+": no such file" {
		t.Errorf("error = %v, want %q", err, p+": no such file")
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		ref, ns, name string
		err           bool
	}{
		{"ns/name", "ns", "name", false},
		{"ns/a.b-c", "ns", "a.b-c", false},
		{"name", "", "", true},
		{"/name", "", "", true},
		{"ns/", "", "", true},
		{"ns/a/b", "", "", true},
		{"NS/name", "", "", true},
		{"ns/Name_", "", "", true},
	}
	for _, tt := range tests {
		ns, name, err := ParseRef(tt.ref)
		if (err != nil) != tt.err || ns != tt.ns || name != tt.name {
			t.Errorf("ParseRef(%q) = %q, %q, %v", tt.ref, ns, name, err)
		}
	}
}
