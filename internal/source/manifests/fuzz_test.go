package manifests

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source"
)

// loadContent runs the decoding half of Load on one file's content, without
// touching the disk.
func loadContent(name string, data []byte, jsonExt bool) (*inventory.Builder, source.Coverage, []source.Problem) {
	b := inventory.NewBuilder()
	l := &loader{b: b, opts: Options{MaxFileSize: DefaultMaxFileSize, DefaultNamespace: "default"}}
	cov := source.Coverage{Kind: SourceName, Target: name}
	// loadBytes may write into its input.
	l.loadBytes(name, append([]byte(nil), data...), true, jsonExt, &cov)
	return b, cov, l.problems
}

func FuzzLoad(f *testing.F) {
	err := filepath.WalkDir(fixtures, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || manifestExt(p) == "" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f.Add(data, manifestExt(p) == ".json")
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"--- {a: 1}\n...\n---\n",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: [{}]\n",
		`{"apiVersion":"v1","kind":"SecretList","items":[{"metadata":{"name":"x"},"data":{"k":"!"}}]}{`,
		"[1, {\"kind\": \"Pod\"}]",
		"kind: Role\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: r}\nrules: x\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}

	const name = "fuzz/input.yaml"
	f.Fuzz(func(t *testing.T, data []byte, jsonExt bool) {
		b1, cov1, problems1 := loadContent(name, data, jsonExt)
		for _, p := range problems1 {
			if p.Location.Path != name || !strings.HasPrefix(p.Message, name+": ") {
				t.Fatalf("problem does not name the file: %+v", p)
			}
			if p.Source != SourceName {
				t.Fatalf("problem source %q", p.Source)
			}
			if p.Location.Document > 0 && (p.Location.Line < 1 || !strings.HasPrefix(p.Message, name+": document ")) {
				t.Fatalf("problem does not name its document and line: %+v", p)
			}
		}
		for _, n := range cov1.Notes {
			if strings.Contains(n, "document ") && !strings.HasPrefix(n, name+": ") {
				t.Fatalf("note does not name the file: %q", n)
			}
		}
		// The same input gives the same result: nothing depends on map
		// order or on state left from a previous run.
		b2, cov2, problems2 := loadContent(name, data, jsonExt)
		if !reflect.DeepEqual(problems1, problems2) || !reflect.DeepEqual(cov1, cov2) || b1.Len() != b2.Len() {
			t.Fatalf("two runs differ:\n%+v\n%+v", problems1, problems2)
		}
		_ = b1.Build()
	})
}
