package manifests

import (
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestIgnore checks that Options.Ignore sees paths relative to the
// directory argument, leaves matching files unread, says so in a note, and
// never applies to a file named as an argument.
func TestIgnore(t *testing.T) {
	writeTree(t, map[string]string{
		"deploy/app.yaml":          configMap("app"),
		"deploy/app_test.yaml":     configMap("app-test"),
		"deploy/vendor/lib.yaml":   configMap("lib"),
		"deploy/vendor/notes.txt":  "not a manifest",
		"deploy/sub/other.json":    `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other","namespace":"t"}}`,
		"loose/explicit_test.yaml": configMap("explicit"),
	})
	symlink(t, "../loose/explicit_test.yaml", "deploy/linked_test.yaml")
	var asked []string
	ignore := func(p string) bool {
		asked = append(asked, p)
		return strings.HasPrefix(p, "vendor/") || strings.HasSuffix(p, "_test.yaml")
	}
	for _, root := range []string{"deploy", "deploy/", "./deploy"} {
		t.Run(root, func(t *testing.T) {
			asked = nil
			r := load(t, []string{root, "loose/explicit_test.yaml"}, Options{Ignore: ignore})
			var got []string
			for _, ref := range allRefs(r.inv) {
				got = append(got, ref.Name)
			}
			sort.Strings(got)
			if want := []string{"app", "explicit", "other"}; !reflect.DeepEqual(got, want) {
				t.Errorf("objects read: %v, want %v", got, want)
			}
			sort.Strings(asked)
			wantAsked := []string{"app.yaml", "app_test.yaml", "linked_test.yaml", "sub/other.json", "vendor/lib.yaml"}
			if !reflect.DeepEqual(asked, wantAsked) {
				t.Errorf("Ignore asked about %v, want %v", asked, wantAsked)
			}
			j := func(s ...string) string {
				return strings.Join(append([]string{strings.TrimSuffix(root, "/")}, s...), string(filepath.Separator))
			}
			wantNote := root + ": 3 manifest file(s) ignored by config (ignore.paths): " +
				strings.Join([]string{j("app_test.yaml"), j("linked_test.yaml"), j("vendor", "lib.yaml")}, ", ")
			if !contains(r.covs[0].Notes, wantNote) {
				t.Errorf("notes %q lack %q", r.covs[0].Notes, wantNote)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
