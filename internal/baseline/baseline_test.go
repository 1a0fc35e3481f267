package baseline

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// docs is a small world with one finding of most RBAC rules, one document
// each. The Secret values are canaries: no fingerprint may depend on them.
var docs = []string{
	`apiVersion: v1
kind: Secret
metadata: {name: db, namespace: payments}
stringData: {password: KEYHOLE-CANARY-baseline-1}`,
	`apiVersion: v1
kind: Secret
metadata: {name: tls, namespace: platform}
data: {tls.key: S0VZSE9MRS1DQU5BUlktYmFzZWxpbmUtMg==}`,
	`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: secret-reader}
rules: [{apiGroups: [""], resources: [secrets], verbs: [get, list]}]`,
	// KH110 and KH102 on every Secret: a cluster-wide grant.
	`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ci-reads-all}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: secret-reader}
subjects: [{kind: ServiceAccount, namespace: ci, name: deployer}]`,
	// KH101 on platform/tls: everyone.
	`apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: everyone, namespace: platform}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: secret-reader}
subjects: [{kind: Group, name: "system:authenticated"}]`,
	// KH120: a dangling role.
	`apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: old, namespace: payments}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deleted}
subjects: [{kind: User, name: alice}]`,
}

// writeFiles writes path → documents under a new directory and returns it.
func writeFiles(t *testing.T, files map[string][]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, ds := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(strings.Join(ds, "\n---\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func analyze(t *testing.T, dir string, suppress func(report.Finding) *report.Suppressed) *report.Report {
	t.Helper()
	in, err := audit.Offline([]string{dir}, audit.OfflineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := audit.Analyze(in, audit.Options{Suppress: suppress})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) > 0 {
		t.Fatalf("input errors: %+v", r.Errors)
	}
	return r
}

// fingerprints maps each finding's fingerprint to "rule object".
func fingerprints(r *report.Report) map[string]string {
	out := map[string]string{}
	for _, f := range r.Findings {
		out[f.Fingerprint] = f.Rule + " " + f.Object.String()
	}
	return out
}

func reversed(ds []string) []string {
	out := append([]string(nil), ds...)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func replaced(ds []string, old, new string) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = strings.ReplaceAll(d, old, new)
	}
	return out
}

// TestFingerprintsStable proves the fingerprints, and so a baseline, do not
// change when the same objects move between files, when documents are
// reordered, when values change, or when something unrelated is edited.
func TestFingerprintsStable(t *testing.T) {
	base := analyze(t, writeFiles(t, map[string][]string{"all.yaml": docs}), nil)
	want := fingerprints(base)
	rules := map[string]bool{}
	for _, f := range base.Findings {
		rules[f.Rule] = true
	}
	for _, r := range []string{"KH101", "KH102", "KH110", "KH120"} {
		if !rules[r] {
			t.Fatalf("the test world raises no %s finding; findings: %v", r, want)
		}
	}

	unrelated := append(append([]string(nil), docs...),
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: payments}\ndata: {a: b}",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: new, namespace: quiet}\nstringData: {k: KEYHOLE-CANARY-baseline-3}",
	)
	// A label on the dangling binding: an edit to an object with findings
	// that does not change what it does.
	unrelated = replaced(unrelated, "metadata: {name: old, namespace: payments}", "metadata: {name: old, namespace: payments, labels: {team: pay}}")

	for _, tc := range []struct {
		name  string
		files map[string][]string
		// extra are findings the variant adds, about objects that are
		// new in it ("rule object"); every original one must be kept.
		extra []string
	}{
		{"moved to other files", map[string][]string{
			"payments/secrets.yaml":  {docs[0]},
			"platform/tls.yaml":      {docs[1], docs[4]},
			"rbac/cluster.yaml":      {docs[3], docs[2]},
			"legacy/deep/old.yml":    {docs[5]},
			"unrelated/readme.yaml":  {"# nothing here"},
			"unrelated/other.json":   {`{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}`},
			"payments/more/none.yml": {"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app, namespace: payments}"},
		}, nil},
		{"documents reordered", map[string][]string{"all.yaml": reversed(docs)}, nil},
		{"values changed", map[string][]string{"all.yaml": replaced(replaced(docs, "KEYHOLE-CANARY-baseline-1", "another-password"), "S0VZSE9MRS1DQU5BUlktYmFzZWxpbmUtMg==", "b3RoZXI=")}, nil},
		{"unrelated edits", map[string][]string{"a.yaml": unrelated}, []string{"KH102 Secret/quiet/new"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fingerprints(analyze(t, writeFiles(t, tc.files), nil))
			for fp, what := range want {
				if got[fp] != what {
					t.Errorf("%s: fingerprint %s lost (now: %q)", what, fp, got[fp])
				}
			}
			var added []string
			for fp, what := range got {
				if _, ok := want[fp]; !ok {
					added = append(added, what)
				}
			}
			sort.Strings(added)
			if len(added)+len(tc.extra) > 0 && !reflect.DeepEqual(added, tc.extra) {
				t.Errorf("new fingerprints %v, want %v", added, tc.extra)
			}
		})
	}
}

// TestGate: a baseline written from one run suppresses exactly those
// findings in the next, whatever moved, and a new exposure stays
// unsuppressed.
func TestGate(t *testing.T) {
	first := analyze(t, writeFiles(t, map[string][]string{"all.yaml": docs}), nil)
	name := filepath.Join(t.TempDir(), "keyhole-baseline.json")
	if err := Write(name, FromReport(first)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("baseline mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(name)
	if strings.Contains(string(raw), "CANARY") || strings.Contains(string(raw), "all.yaml") {
		t.Errorf("the baseline holds a value or a path:\n%s", raw)
	}
	b, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != len(first.Findings) {
		t.Errorf("baseline holds %d findings, the report %d", b.Len(), len(first.Findings))
	}

	// Same world, other files, plus a new Secret in a namespace everyone
	// reads and a new binding of the everyone group elsewhere.
	next := writeFiles(t, map[string][]string{
		"x.yaml": reversed(docs),
		"y.yaml": {
			"apiVersion: v1\nkind: Secret\nmetadata: {name: new, namespace: platform}",
			"apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: everyone, namespace: shop}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: secret-reader}\nsubjects: [{kind: Group, name: \"system:authenticated\"}]",
			"apiVersion: v1\nkind: Secret\nmetadata: {name: cart, namespace: shop}",
		},
	})
	r := analyze(t, next, b.Suppress)
	var unsuppressed []string
	for _, f := range r.Findings {
		if f.Suppressed == nil {
			unsuppressed = append(unsuppressed, f.Rule+" "+f.Object.String())
			continue
		}
		if f.Suppressed.By != "baseline" || f.Suppressed.Reason != "in baseline "+name {
			t.Errorf("%s %s suppressed as %+v", f.Rule, f.Object, f.Suppressed)
		}
	}
	sort.Strings(unsuppressed)
	// Readable by everyone, each also gets its recommendation to keep the
	// value out of etcd (KH501).
	want := []string{"KH101 Secret/platform/new", "KH101 Secret/shop/cart", "KH102 Secret/platform/new", "KH102 Secret/shop/cart",
		"KH501 Secret/platform/new", "KH501 Secret/shop/cart"}
	if !reflect.DeepEqual(unsuppressed, want) {
		t.Errorf("unsuppressed findings %v, want %v", unsuppressed, want)
	}
	if r.Summary.Suppressed != len(first.Findings) {
		t.Errorf("summary counts %d suppressed, want %d", r.Summary.Suppressed, len(first.Findings))
	}
	if n := len(b.Unmatched(r)); n != 0 {
		t.Errorf("%d baseline entries unmatched, want 0", n)
	}

	// Rewriting the baseline from that run keeps what it suppressed and
	// adds the new findings.
	again := FromReport(r)
	if len(again.Findings) != len(first.Findings)+len(want) {
		t.Errorf("rewritten baseline has %d entries, want %d", len(again.Findings), len(first.Findings)+len(want))
	}
	// A fixed finding is reported unmatched.
	fixed := analyze(t, writeFiles(t, map[string][]string{"all.yaml": docs[:5]}), b.Suppress)
	var gone []string
	for _, e := range b.Unmatched(fixed) {
		gone = append(gone, e.Rule+" "+e.Object.String())
	}
	sort.Strings(gone)
	if want := []string{"KH120 RoleBinding/payments/old"}; !reflect.DeepEqual(gone, want) {
		t.Errorf("unmatched after the fix: %v, want %v", gone, want)
	}
}

func TestAnnotationWins(t *testing.T) {
	annotated := replaced(docs, "metadata: {name: old, namespace: payments}",
		`metadata: {name: old, namespace: payments, annotations: {keyhole.io/ignore: "KH120", keyhole.io/ignore-reason: "being removed"}}`)
	dir := writeFiles(t, map[string][]string{"all.yaml": annotated})
	first := analyze(t, dir, nil)
	f := FromReport(first)
	for _, e := range f.Findings {
		if e.Rule == "KH120" {
			t.Error("an annotation-suppressed finding was written to the baseline")
		}
	}
	b, err := Parse("b.json", mustJSON(t, f))
	if err != nil {
		t.Fatal(err)
	}
	// Put KH120 in the baseline too: the annotation still wins.
	for _, fd := range first.Findings {
		if fd.Rule == "KH120" {
			b.entries[fd.Fingerprint] = Entry{Fingerprint: fd.Fingerprint}
		}
	}
	for _, fd := range analyze(t, dir, b.Suppress).Findings {
		want := "baseline"
		if fd.Rule == "KH120" {
			want = "annotation"
		}
		if fd.Suppressed == nil || fd.Suppressed.By != want {
			t.Errorf("%s %s: suppressed %+v, want by %s", fd.Rule, fd.Object, fd.Suppressed, want)
		}
	}
}

func mustJSON(t *testing.T, f *File) []byte {
	t.Helper()
	name := filepath.Join(t.TempDir(), "b.json")
	if err := Write(name, f); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestFileFormat(t *testing.T) {
	r := &report.Report{Findings: []report.Finding{
		{Rule: "KH120", Severity: "low", Object: report.ObjectRef{Kind: "RoleBinding", Namespace: "b", Name: "x"}, Fingerprint: strings.Repeat("b", 32)},
		{Rule: "KH102", Severity: "high", Object: report.ObjectRef{Kind: "Secret", Namespace: "z", Name: "s"}, Fingerprint: strings.Repeat("c", 32)},
		{Rule: "KH102", Severity: "high", Object: report.ObjectRef{Kind: "Secret", Namespace: "a", Name: "s"}, Fingerprint: strings.Repeat("d", 32)},
		{Rule: "KH102", Severity: "high", Object: report.ObjectRef{Kind: "Secret", Namespace: "a", Name: "s"}, Fingerprint: strings.Repeat("d", 32)},
		{Rule: "KH101", Severity: "critical", Object: report.ObjectRef{Kind: "Secret", Namespace: "a", Name: "s"}, Fingerprint: strings.Repeat("e", 32),
			Suppressed: &report.Suppressed{By: "annotation", Reason: "r"}},
		{Rule: "KH110", Severity: "high", Object: report.ObjectRef{Kind: "ClusterRoleBinding", Name: "c"}, Fingerprint: strings.Repeat("f", 32),
			Suppressed: &report.Suppressed{By: "baseline", Reason: "in baseline old.json"}},
	}}
	got := string(mustJSON(t, FromReport(r)))
	want := `{
  "apiVersion": "keyhole.io/v1alpha1",
  "kind": "Baseline",
  "findings": [
    {
      "fingerprint": "dddddddddddddddddddddddddddddddd",
      "rule": "KH102",
      "severity": "high",
      "object": {
        "kind": "Secret",
        "namespace": "a",
        "name": "s"
      }
    },
    {
      "fingerprint": "cccccccccccccccccccccccccccccccc",
      "rule": "KH102",
      "severity": "high",
      "object": {
        "kind": "Secret",
        "namespace": "z",
        "name": "s"
      }
    },
    {
      "fingerprint": "ffffffffffffffffffffffffffffffff",
      "rule": "KH110",
      "severity": "high",
      "object": {
        "kind": "ClusterRoleBinding",
        "name": "c"
      }
    },
    {
      "fingerprint": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
      "rule": "KH120",
      "severity": "low",
      "object": {
        "kind": "RoleBinding",
        "namespace": "b",
        "name": "x"
      }
    }
  ]
}
`
	if got != want {
		t.Errorf("baseline file:\n%s\nwant:\n%s", got, want)
	}
	empty := string(mustJSON(t, FromReport(&report.Report{})))
	if !strings.Contains(empty, `"findings": []`) {
		t.Errorf("an empty baseline does not list findings as []:\n%s", empty)
	}
}

func TestBadBaselines(t *testing.T) {
	fp := strings.Repeat("a", 32)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "baseline b.json: not a keyhole baseline: truncated or empty JSON"},
		{"not JSON", "findings:\n- x\n", "baseline b.json: not a keyhole baseline: invalid JSON at line 1, column 2: invalid character 'i' in literal false (expecting 'a')"},
		{"truncated", `{"apiVersion": "keyhole.io/v1alpha1", "kind": "Baseline", "findings": [`, "baseline b.json: not a keyhole baseline: truncated or empty JSON"},
		{"syntax error on line 3", "{\n  \"apiVersion\": \"keyhole.io/v1alpha1\",\n  \"kind\": \"Baseline\" oops\n}", "baseline b.json: not a keyhole baseline: invalid JSON at line 3, column 22: invalid character 'o' after object key:value pair"},
		{"a list", `[]`, "baseline b.json: not a keyhole baseline: the document is a JSON array, want an object"},
		{"a report", `{"apiVersion": "keyhole.io/v1alpha1", "kind": "Report"}`, `baseline b.json: kind "Report" is not a baseline (want Baseline; write one with --write-baseline)`},
		{"no kind", `{"findings": []}`, "baseline b.json: not a keyhole baseline: no kind (want Baseline; write one with --write-baseline)"},
		{"another version", `{"apiVersion": "keyhole.io/v1beta1", "kind": "Baseline", "findings": []}`, `baseline b.json: apiVersion "keyhole.io/v1beta1" is not supported (want keyhole.io/v1alpha1): rewrite the baseline with this keyhole's --write-baseline`},
		{"bad fingerprint", `{"apiVersion": "keyhole.io/v1alpha1", "kind": "Baseline", "findings": [{"fingerprint": "` + fp + `"}, {"fingerprint": "xyz"}]}`, `baseline b.json: findings[1]: fingerprint "xyz" is not 32 lower-case hex digits`},
		{"missing fingerprint", `{"apiVersion": "keyhole.io/v1alpha1", "kind": "Baseline", "findings": [{"rule": "KH102"}]}`, `baseline b.json: findings[0]: fingerprint "" is not 32 lower-case hex digits`},
		{"wrong type", `{"apiVersion": "keyhole.io/v1alpha1", "kind": "Baseline", "findings": {"a": 1}}`, `baseline b.json: not a keyhole baseline: at line 1, column 71: findings is a JSON object, want []baseline.Entry`},
		{"trailing data", `{"apiVersion": "keyhole.io/v1alpha1", "kind": "Baseline", "findings": []} {}`, "baseline b.json: not a keyhole baseline: invalid JSON at line 1, column 75: invalid character '{' after top-level value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse("b.json", []byte(tc.in))
			if err == nil {
				t.Fatalf("accepted, %d entries", b.Len())
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.HasSuffix(err.Error(), "missing.json: no such file or directory") {
		t.Errorf("Load(missing): %v", err)
	}
	// Unknown fields are ignored within v1alpha1, as the report's are.
	b, err := Parse("b.json", []byte(`{"apiVersion": "keyhole.io/v1alpha1", "kind": "Baseline", "note": "x", "findings": [{"fingerprint": "`+fp+`", "message": "m"}]}`))
	if err != nil || b.Len() != 1 {
		t.Errorf("forward-compatible baseline: %v", err)
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	if err := Write(filepath.Join(dir, "missing", "b.json"), FromReport(&report.Report{})); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "missing", "b.json")) {
		t.Errorf("Write into a missing directory: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("Write left %d files behind", len(entries))
	}
}

// FuzzParse: no input makes Parse panic, and what it accepts holds only
// well-formed fingerprints.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"apiVersion": "keyhole.io/v1alpha1", "kind": "Baseline", "findings": [{"fingerprint": "` + strings.Repeat("a", 32) + `"}]}`))
	f.Add([]byte(`{"apiVersion": "keyhole.io/v1alpha1", "kind": "Baseline", "findings": null}`))
	f.Add([]byte("{\n\"kind\": \"Baseline\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse("f.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "baseline f.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for fp := range b.entries {
			if !validFingerprint(fp) {
				t.Fatalf("accepted fingerprint %q", fp)
			}
		}
	})
}
