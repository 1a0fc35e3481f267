package manifests

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source"
)

// fixtures is the shared manifest fixture tree; tests run from it so that
// messages show short paths.
const fixtures = "../../../testdata/manifests"

// result is what one Load returned, flattened for comparison.
type result struct {
	inv      *inventory.Inventory
	covs     []source.Coverage
	problems []source.Problem
}

func load(t *testing.T, paths []string, opts Options) result {
	t.Helper()
	b := inventory.NewBuilder()
	covs, problems := Load(paths, b, opts)
	if len(covs) != len(paths) {
		t.Fatalf("Load returned %d coverages for %d paths", len(covs), len(paths))
	}
	checkProblems(t, problems)
	return result{inv: b.Build(), covs: covs, problems: problems}
}

// checkProblems asserts what every Problem must satisfy, whatever the
// input: it comes from this source and its message names the file and,
// when it is about a document, the document and its line.
func checkProblems(t *testing.T, problems []source.Problem) {
	t.Helper()
	for _, p := range problems {
		if p.Source != SourceName {
			t.Errorf("problem %q: Source = %q", p.Message, p.Source)
		}
		if !strings.HasPrefix(p.Message, p.Location.Path+": ") {
			t.Errorf("problem %q does not start with its path %q", p.Message, p.Location.Path)
		}
		if p.Location.Document > 0 {
			if p.Location.Line < 1 {
				t.Errorf("problem %q: document %d without a line", p.Message, p.Location.Document)
			}
			if !strings.Contains(p.Message, fmt.Sprintf(": document %d (line ", p.Location.Document)) {
				t.Errorf("problem %q does not name document %d", p.Message, p.Location.Document)
			}
		}
		if p.Object != nil && !strings.Contains(p.Message, p.Object.String()+": ") {
			t.Errorf("problem %q does not name its object %s", p.Message, p.Object)
		}
	}
}

// objects maps every object of the inventory to its location.
func (r result) objects() map[string]string {
	out := map[string]string{}
	for _, ref := range allRefs(r.inv) {
		out[ref.String()] = r.inv.Location(ref).String()
	}
	return out
}

func (r result) messages() []string {
	var out []string
	for _, p := range r.problems {
		out = append(out, p.Message)
	}
	return out
}

func (r result) notes() []string {
	var out []string
	for _, c := range r.covs {
		out = append(out, c.Notes...)
	}
	return out
}

func (r result) ignored() map[string]int {
	out := map[string]int{}
	for _, c := range r.covs {
		for k, n := range c.Ignored {
			out[k] += n
		}
	}
	return out
}

func diffStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("%s differ\ngot:\n\t%s\nwant:\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
}

func diffMap[V comparable](t *testing.T, what string, got, want map[string]V) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: missing %s", what, k)
		} else if g != want[k] {
			t.Errorf("%s: %s = %v, want %v", what, k, g, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %s = %v", what, k, got[k])
		}
	}
}

func TestLoadFixtures(t *testing.T) {
	t.Chdir(fixtures)
	tests := []struct {
		name     string
		paths    []string
		opts     Options
		objects  map[string]string // ref → location
		ignored  map[string]int
		problems []string
		notes    []string
	}{
		{
			name:  "every kind read, one document each",
			paths: []string{"kinds/all-kinds.yaml"},
			objects: map[string]string{
				"Namespace/shop":                    "kinds/all-kinds.yaml:2 (document 1)",
				"Secret/shop/db":                    "kinds/all-kinds.yaml:7 (document 2)",
				"ServiceAccount/shop/api":           "kinds/all-kinds.yaml:18 (document 3)",
				"Role/shop/read-secrets":            "kinds/all-kinds.yaml:24 (document 4)",
				"ClusterRole/secret-reader":         "kinds/all-kinds.yaml:34 (document 5)",
				"RoleBinding/shop/api-reads":        "kinds/all-kinds.yaml:43 (document 6)",
				"ClusterRoleBinding/ops-read":       "kinds/all-kinds.yaml:57 (document 7)",
				"Pod/shop/debug":                    "kinds/all-kinds.yaml:70 (document 8)",
				"Deployment/shop/api":               "kinds/all-kinds.yaml:80 (document 9)",
				"ReplicaSet/shop/rs":                "kinds/all-kinds.yaml:99 (document 10)",
				"StatefulSet/shop/db":               "kinds/all-kinds.yaml:108 (document 11)",
				"DaemonSet/shop/agent":              "kinds/all-kinds.yaml:118 (document 12)",
				"Job/shop/migrate":                  "kinds/all-kinds.yaml:127 (document 13)",
				"CronJob/shop/backup":               "kinds/all-kinds.yaml:136 (document 14)",
				"ReplicationController/shop/legacy": "kinds/all-kinds.yaml:148 (document 15)",
				"ConfigMap/shop/settings":           "kinds/all-kinds.yaml:156 (document 16)",
				"Node/node-1":                       "kinds/all-kinds.yaml:162 (document 17)",
				"Ingress/shop/web":                  "kinds/all-kinds.yaml:166 (document 18)",
				"PersistentVolumeClaim/shop/data":   "kinds/all-kinds.yaml:173 (document 19)",
				"PersistentVolume/pv-1":             "kinds/all-kinds.yaml:180 (document 20)",
			},
		},
		{
			name:  "other kinds are counted, a custom Role is not RBAC",
			paths: []string{"kinds/ignored.yaml"},
			ignored: map[string]int{
				"Service": 2, "Kustomization": 1, "ServiceMonitor": 1, "Role (iam.example.com/v1)": 1,
			},
		},
		{
			name:  "namespace defaults, names required, unknown fields ignored",
			paths: []string{"kinds/defaults.yaml"},
			objects: map[string]string{
				"Secret/default/no-namespace": "kinds/defaults.yaml:2 (document 1)",
				"ClusterRole/with-namespace":  "kinds/defaults.yaml:9 (document 2)",
				"Pod/shop/lenient":            "kinds/defaults.yaml:31 (document 5)",
			},
			problems: []string{
				"kinds/defaults.yaml: document 3 (line 16): ConfigMap has no metadata.name; not read",
				"kinds/defaults.yaml: document 4 (line 22): Job has metadata.generateName but no metadata.name: its name is only chosen when it is created; not read",
			},
		},
		{
			name:  "namespace default from the options",
			paths: []string{"kinds/defaults.yaml"},
			opts:  Options{DefaultNamespace: "team"},
			objects: map[string]string{
				"Secret/team/no-namespace":   "kinds/defaults.yaml:2 (document 1)",
				"ClusterRole/with-namespace": "kinds/defaults.yaml:9 (document 2)",
				"Pod/shop/lenient":           "kinds/defaults.yaml:31 (document 5)",
			},
			problems: []string{
				"kinds/defaults.yaml: document 3 (line 16): ConfigMap has no metadata.name; not read",
				"kinds/defaults.yaml: document 4 (line 22): Job has metadata.generateName but no metadata.name: its name is only chosen when it is created; not read",
			},
		},
		{
			name:  "retired API versions are reported, not guessed at",
			paths: []string{"kinds/legacy.yaml"},
			problems: []string{
				"kinds/legacy.yaml: document 1 (line 1): Role/shop/old-role: apiVersion rbac.authorization.k8s.io/v1beta1 is no longer served; convert to rbac.authorization.k8s.io/v1; not read",
				"kinds/legacy.yaml: document 2 (line 11): ClusterRoleBinding/old-binding: apiVersion rbac.authorization.k8s.io/v1alpha1 is no longer served; convert to rbac.authorization.k8s.io/v1; not read",
				"kinds/legacy.yaml: document 3 (line 17): Deployment/shop/old-deploy: apiVersion extensions/v1beta1 is no longer served; convert to apps/v1; not read",
				"kinds/legacy.yaml: document 4 (line 23): CronJob/default/old-cron: apiVersion batch/v1beta1 is no longer served; convert to batch/v1; not read",
				"kinds/legacy.yaml: document 5 (line 28): Ingress/default/old-ingress: apiVersion networking.k8s.io/v1beta1 is no longer served; convert to networking.k8s.io/v1; not read",
				"kinds/legacy.yaml: document 6 (line 33): Secret/default/future: apiVersion v2 is not a known version of Secret (read: v1); not read",
			},
		},
		{
			name:  "document markers, comments, CRLF and a byte order mark",
			paths: []string{"docs/markers.yaml", "docs/crlf.yaml", "docs/bom.yaml"},
			objects: map[string]string{
				"ConfigMap/docs/first":  "docs/markers.yaml:4 (document 1)",
				"ConfigMap/docs/second": "docs/markers.yaml:13 (document 2)",
				"ConfigMap/docs/third":  "docs/markers.yaml:17 (document 3)",
				"ConfigMap/docs/fourth": "docs/markers.yaml:20 (document 4)",
				"ConfigMap/docs/fifth":  "docs/markers.yaml:22 (document 5)",
				"ConfigMap/docs/sixth":  "docs/markers.yaml:34 (document 6)",
				"ConfigMap/docs/crlf":   "docs/crlf.yaml:1 (document 1)",
				"ConfigMap/docs/crlf-2": "docs/crlf.yaml:7 (document 2)",
				"ConfigMap/docs/bom":    "docs/bom.yaml:1 (document 1)",
			},
		},
		{
			name:  "empty files are nothing",
			paths: []string{"docs/empty.yaml", "docs/comments-only.yml"},
			notes: []string{"no Kubernetes objects found", "no Kubernetes objects found"},
		},
		{
			name:  "Lists, nested Lists and typed API lists",
			paths: []string{"lists"},
			objects: map[string]string{
				"Secret/lists/a":              "lists/list.yaml:4 (document 1)",
				"Role/lists/r":                "lists/list.yaml:10 (document 1)",
				"ServiceAccount/lists/nested": "lists/list.yaml:19 (document 1)",
				"ConfigMap/lists/indented":    "lists/list.yaml:32 (document 2)",
				"Role/lists/from-list":        "lists/rolelist.yaml:6 (document 1)",
				"Secret/lists/json-a":         "lists/secretlist.json:6 (document 1)",
				"Secret/lists/json-b":         "lists/secretlist.json:10 (document 1)",
			},
			ignored: map[string]int{"Service": 1},
			problems: []string{
				"lists/list.yaml: document 2 (line 29): items[1] (line 35): kind ConfigMap but no apiVersion; not read",
			},
		},
		{
			name:  "JSON: single, concatenated, separated, broken, and flow YAML that looks like it",
			paths: []string{"json"},
			objects: map[string]string{
				"ConfigMap/json/before":         "json/broken.json:1 (document 1)",
				"ConfigMap/json/after":          "json/broken.json:12 (document 3)",
				"ConfigMap/json/one":            "json/concat.json:1 (document 1)",
				"ConfigMap/json/two":            "json/concat.json:6 (document 2)",
				"ConfigMap/json/three":          "json/concat.json:11 (document 3)",
				"ConfigMap/json/flow-style":     "json/flow.yaml:1 (document 1)",
				"ConfigMap/json/json-then-yaml": "json/flow.yaml:3 (document 2)",
				"ServiceAccount/json/single":    "json/single.json:1 (document 1)",
				"ConfigMap/json/marked-1":       "json/markers.json:1 (document 1)",
				"ConfigMap/json/marked-2":       "json/markers.json:3 (document 2)",
				"ConfigMap/json/marked-3":       "json/markers.json:6 (document 3)",
				"ConfigMap/json/flow-1":         "json/no-separator.yaml:1 (document 1)",
				"ConfigMap/json/quoted-keys":    "json/no-separator.yaml:5 (document 2)",
			},
			problems: []string{
				"json/broken.json: document 2 (line 6): invalid JSON at line 9, column 55: invalid character looking for beginning of object key string; reading resumed at line 12",
				"json/no-separator.yaml: document 1 (line 1): line 3 starts another object without a --- before it; the rest of the document is not read (kubectl ignores it too)",
			},
		},
		{
			name:  "bad documents do not stop the others",
			paths: []string{"errors"},
			objects: map[string]string{
				"ConfigMap/errors/good-1":       "errors/yaml-syntax.yaml:1 (document 1)",
				"ConfigMap/errors/good-2":       "errors/yaml-syntax.yaml:11 (document 3)",
				"ConfigMap/errors/good-3":       "errors/yaml-syntax.yaml:21 (document 5)",
				"ConfigMap/errors/after-errors": "errors/type-error.yaml:27 (document 4)",
			},
			problems: []string{
				"errors/binary.yaml: binary content (NUL byte), not read",
				"errors/header.yaml: document 1 (line 1): kind Secret but no apiVersion; not read",
				"errors/header.yaml: document 2 (line 4): apiVersion v1 but no kind; not read",
				"errors/header.yaml: document 3 (line 7): Secret has no metadata.name; not read",
				"errors/header.yaml: document 4 (line 12): field metadata (line 14): got a string, want an object; not read",
				`errors/header.yaml: document 5 (line 16): Secret has an invalid apiVersion "a/b/c"; not read`,
				// "Kind:" is not "kind:" to the API server either.
				"errors/header.yaml: document 6 (line 20): apiVersion v1 but no kind; not read",
				"errors/latin1.yaml: binary content (not valid UTF-8 at line 4), not read",
				"errors/template.yaml: document 1 (line 1): invalid YAML: a map key is a list or a map (it looks like a template: render it first, e.g. with helm template); document not read",
				"errors/type-error.yaml: document 1 (line 1): Role/errors/rules-string: field rules (line 6): got a string, want a list; not read",
				"errors/type-error.yaml: document 2 (line 8): Pod/errors/port-string: field spec.containers.ports.containerPort (line 18): got a string, want an integer; not read",
				"errors/type-error.yaml: document 3 (line 20): Secret/errors/type-number: field type (line 25): got a number, want a string; not read",
				"errors/yaml-syntax.yaml: document 2 (line 5): invalid YAML at line 9: mapping values are not allowed in this context; document not read",
				"errors/yaml-syntax.yaml: document 4 (line 15): invalid YAML at line 19: found a tab character that violates indentation; document not read",
			},
		},
		{
			name:  "RBAC rules and bindings the API server would refuse",
			paths: []string{"rbac"},
			objects: map[string]string{
				"Role/rbac/empty-rules":                  "rbac/rules.yaml:7 (document 2)",
				"Role/rbac/no-rules":                     "rbac/rules.yaml:1 (document 1)",
				"Role/rbac/rules-misindented":            "rbac/rules.yaml:28 (document 5)",
				"ClusterRole/aggregated":                 "rbac/rules.yaml:19 (document 4)",
				"ClusterRole/no-rules-cluster":           "rbac/rules.yaml:14 (document 3)",
				"RoleBinding/rbac/mixed-subjects":        "rbac/bindings.yaml:1 (document 1)",
				"RoleBinding/rbac/to-clusterrole":        "rbac/bindings.yaml:79 (document 7)",
				"RoleBinding/rbac/subject-api-groups":    "rbac/bindings.yaml:93 (document 8)",
				"ClusterRoleBinding/crb-sa-no-namespace": "rbac/bindings.yaml:45 (document 4)",
			},
			problems: []string{
				`rbac/bindings.yaml: document 1 (line 1): RoleBinding/rbac/mixed-subjects: subjects[1] has kind "Serviceaccount", want User, Group or ServiceAccount; that subject is ignored`,
				"rbac/bindings.yaml: document 1 (line 1): RoleBinding/rbac/mixed-subjects: subjects[3] has no name; that subject is ignored",
				"rbac/bindings.yaml: document 2 (line 21): RoleBinding/rbac/no-roleref-name: roleRef has no name; binding not read",
				"rbac/bindings.yaml: document 3 (line 33): ClusterRoleBinding/crb-to-role: roleRef.kind is Role, but a ClusterRoleBinding can only refer to a ClusterRole; binding not read",
				`rbac/bindings.yaml: document 5 (line 59): RoleBinding/rbac/wrong-api-group: roleRef.apiGroup is "example.com", not rbac.authorization.k8s.io; binding not read`,
				`rbac/bindings.yaml: document 6 (line 69): RoleBinding/rbac/roleref-kind-typo: roleRef.kind is "role", want Role or ClusterRole; binding not read`,
				`rbac/bindings.yaml: document 8 (line 93): RoleBinding/rbac/subject-api-groups: subjects[0] is a Group with apiGroup "wrong.example.com", not rbac.authorization.k8s.io; that subject is ignored`,
				`rbac/bindings.yaml: document 8 (line 93): RoleBinding/rbac/subject-api-groups: subjects[1] is a ServiceAccount with apiGroup "rbac.authorization.k8s.io", which must be empty; that subject is ignored`,
				"rbac/rules.yaml: document 1 (line 1): Role/rbac/no-rules: no rules field (or rules is null); write rules: [] for a Role that grants nothing",
				"rbac/rules.yaml: document 3 (line 14): ClusterRole/no-rules-cluster: no rules field (or rules is null) and no aggregationRule; write rules: [] for a ClusterRole that grants nothing",
				"rbac/rules.yaml: document 5 (line 28): Role/rbac/rules-misindented: no rules field (or rules is null); write rules: [] for a Role that grants nothing",
			},
		},
		{
			name:  "not Kubernetes objects",
			paths: []string{"notk8s"},
			notes: []string{
				// Helm's Chart.yaml has an apiVersion, a kustomization a
				// kind; neither has metadata.
				"notk8s/Chart.yaml: document 1 (line 1): not a Kubernetes object, skipped",
				"notk8s/docker-compose.yml: document 1 (line 1): not a Kubernetes object, skipped",
				"notk8s/kustomization.yaml: document 1 (line 1): not a Kubernetes object, skipped",
				"notk8s/scalar.yaml: document 1 (line 1): not a Kubernetes object, skipped",
				"notk8s/scalar.yaml: document 2 (line 3): not a Kubernetes object, skipped",
				"notk8s/values.yaml: document 1 (line 2): not a Kubernetes object, skipped",
				"no Kubernetes objects found",
			},
		},
		{
			name:  "a later input replaces an object, with a note",
			paths: []string{"dup/a.yaml", "dup/b.yaml"},
			objects: map[string]string{
				"Secret/dup/shared":    "dup/b.yaml:3 (document 1)",
				"ConfigMap/dup/only-a": "dup/a.yaml:6 (document 2)",
			},
			notes: []string{"Secret/dup/shared in dup/b.yaml:3 replaces the one in dup/a.yaml:1"},
		},
		{
			name:  "the same file twice is read once",
			paths: []string{"dup/a.yaml", "dup/../dup/a.yaml", "dup"},
			objects: map[string]string{
				"Secret/dup/shared":    "dup/b.yaml:3 (document 1)",
				"ConfigMap/dup/only-a": "dup/a.yaml:6 (document 2)",
			},
			notes: []string{
				"dup/../dup/a.yaml: same file as dup/a.yaml, already read",
				"dup/a.yaml: already read",
				"Secret/dup/shared in dup/b.yaml:3 replaces the one in dup/a.yaml:1",
			},
		},
		{
			name:  "directory walk",
			paths: []string{"tree"},
			objects: map[string]string{
				"ConfigMap/tree/hidden-file": "tree/.hidden-file.yaml:1 (document 1)",
				"ConfigMap/tree/last":        "tree/z-last/cm.yaml:1 (document 1)",
				"Deployment/tree/web":        "tree/app/deploy.yaml:1 (document 1)",
				"Secret/tree/web":            "tree/app/secret.yml:1 (document 1)",
				"ServiceAccount/tree/web":    "tree/app/sa.JSON:1 (document 1)",
			},
			ignored: map[string]int{"Kustomization": 1},
			notes: []string{
				"hidden directories skipped: tree/.github",
				"tree: 2 files skipped, not .yaml, .yml or .json: tree/README.md, tree/app/notes.txt",
			},
		},
		{
			name:     "missing path",
			paths:    []string{"no/such/file.yaml"},
			problems: []string{"no/such/file.yaml: no such file or directory"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := load(t, tc.paths, tc.opts)
			diffMap(t, "objects", r.objects(), tc.objects)
			diffMap(t, "ignored", r.ignored(), tc.ignored)
			diffStrings(t, "problems", r.messages(), tc.problems)
			diffStrings(t, "notes", r.notes(), tc.notes)
		})
	}
}
