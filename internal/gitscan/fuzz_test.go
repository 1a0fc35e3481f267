package gitscan

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fuzzShape plants a value somewhere the scanner reads values: path,
// content, and for generator inputs the input it is read as.
type fuzzShape struct {
	path  string
	build func(v string) string
	input *GeneratorInput
}

func jsonString(v string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var fuzzShapes = []fuzzShape{
	{"s.yaml", func(v string) string {
		return "kind: Secret\nmetadata: {name: f}\nstringData:\n  password: " + v + "\n"
	}, nil},
	{"s.yaml", func(v string) string {
		return "kind: Secret\ndata:\n  password: " + base64.StdEncoding.EncodeToString([]byte(v)) + "\n"
	}, nil},
	{"s.json", func(v string) string { return `{"kind":"Secret","stringData":{"password":` + jsonString(v) + `}}` }, nil},
	{"s.yaml", func(v string) string {
		return "kind: Secret\nmetadata:\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: " +
			jsonString(`{"kind":"Secret","stringData":{"password":`+jsonString(v)+`}}`) + "\n"
	}, nil},
	{"kustomization.yaml", func(v string) string { return "secretGenerator:\n- name: a\n  literals:\n  - password=" + v + "\n" }, nil},
	{"chart/values.yaml", func(v string) string { return "secret:\n  data:\n    password: " + v + "\n" }, nil},
	{"chart/templates/s.yaml", func(v string) string { return "kind: Secret\nstringData:\n  password: " + v + "\n" }, nil},
	{"chart/templates/s.yaml", func(v string) string {
		return "kind: Secret\ndata:\n  pw: {{ .Values.pw | default " + strconv.Quote(v) + " | b64enc }}\n"
	}, nil},
	{"cm.yaml", func(v string) string { return "kind: ConfigMap\ndata:\n  DB_PASSWORD: " + v + "\n" }, nil},
	{"x.sops.yaml", func(v string) string { return "a:\n  b: " + v + "\n" }, nil},
	{"kind: SealedSecret", func(v string) string {
		return "kind: SealedSecret\nspec:\n  template:\n    data:\n      password: " + jsonString(v) + "\n"
	}, nil},
	{"app.env", func(v string) string { return "K=" + v + "\n" }, &GeneratorInput{Kind: "env", Path: "app.env"}},
	{"tls.key", func(v string) string { return v }, &GeneratorInput{Kind: "file", Key: "tls.key", Path: "tls.key"}},
}

// FuzzScan checks that the scanner never panics on any file under any
// path, that lines point into the file, and that a planted value never
// comes out, as written or in base64, in any field of any result.
func FuzzScan(f *testing.F) {
	seeds := 0
	_ = filepath.WalkDir(fixtureRoot, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".expect") {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(uint8(seeds), "KEYHOLE-CANARY-"+strconv.Itoa(seeds), b)
				seeds++
			}
		}
		return nil
	})
	f.Add(uint8(3), "a\nb: c", []byte("{{"))
	f.Add(uint8(0), "\"'|>-", []byte("---\n...\n--- |\n"))
	s := NewScanner(fixtureKey)
	paths := []string{"a.yaml", "chart/values.yaml", "chart/templates/a.yaml", "kustomization.yaml", "a.sops.yaml", "a.env"}
	f.Fuzz(func(t *testing.T, shape uint8, v string, content []byte) {
		// Any content, under every kind of path.
		lines := bytes.Count(content, []byte("\n")) + 1
		p := paths[int(shape)%len(paths)]
		leaks, _ := s.Scan(p, content)
		for _, l := range leaks {
			if l.Line < 1 || l.Line > lines {
				t.Fatalf("%s: leak at line %d of a %d-line file", p, l.Line, lines)
			}
			if len(l.Digest) != 32 {
				t.Fatalf("%s: digest of %d bytes", p, len(l.Digest))
			}
		}
		for _, in := range GeneratorInputs(p, content) {
			s.ScanGeneratorInput(in, content)
		}

		// A planted value, whatever it breaks, never comes out.
		needle := "QZX" + v + "XZQ"
		sh := fuzzShapes[int(shape)%len(fuzzShapes)]
		planted := []byte(sh.build(needle))
		var dump string
		if sh.input != nil {
			dump = fmt.Sprintf("%+v", s.ScanGeneratorInput(*sh.input, planted))
		} else {
			leaks, problems := s.Scan(sh.path, planted)
			dump = fmt.Sprintf("%+v %+v", leaks, problems)
		}
		for _, form := range []string{needle, base64.StdEncoding.EncodeToString([]byte(needle))} {
			if strings.Contains(dump, form) {
				t.Fatalf("shape %d: the planted value comes out: %s", int(shape)%len(fuzzShapes), dump)
			}
		}
	})
}
