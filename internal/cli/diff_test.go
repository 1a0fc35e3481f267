package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/diff"
	"github.com/keyhole-sec/keyhole/internal/diff/gittest"
)

// widen is a change that exposes two demo Secrets more: 37 CI runners
// read payments/db-credentials through one ClusterRoleBinding, and every
// authenticated user reads the search namespace's Secrets.
func widen() string {
	var b strings.Builder
	b.WriteString(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: read-db}
rules: [{apiGroups: [""], resources: [secrets], resourceNames: [db-credentials], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ci-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: read-db}
subjects:
`)
	for i := 1; i <= 37; i++ {
		fmt.Fprintf(&b, "  - {kind: ServiceAccount, namespace: ci, name: runner-%02d}\n", i)
	}
	b.WriteString(`---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: everyone, namespace: search}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects: [{kind: Group, name: "system:authenticated"}]
`)
	return b.String()
}

const (
	wantDBLine     = "payments/db-credentials: readable by 37 more ServiceAccounts through ClusterRoleBinding ci-admin (high)\n"
	wantSearchLine = "search/elastic-credentials: readable by Group system:authenticated through RoleBinding search/everyone (high → critical)\n"
)

func TestDiffDirectories(t *testing.T) {
	base := copyDemo(t)
	head := copyDemo(t)
	if err := os.WriteFile(filepath.Join(head, "ci", "admin.yaml"), []byte(widen()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Removing Prometheus's ConfigMap changes no Secret's exposure.
	if err := os.WriteFile(filepath.Join(head, "monitoring", "prometheus.yaml"), []byte(withoutConfigMaps(t, filepath.Join(head, "monitoring", "prometheus.yaml"))), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := run(t, "", "audit", "diff", "--base", base, "--head", head)
	if code != ExitOK {
		t.Fatalf("exit %d without --fail-on-increase; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"keyhole dev: exposure from " + base + " to " + head + "\n", wantDBLine, wantSearchLine} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	_, jsonOut, jsonErr := run(t, "", "audit", "diff", "--base", base, "--head", head, "-o", "json", "--verbose")
	for _, leak := range canaryForms() {
		if strings.Contains(out+stderr+jsonOut+jsonErr, leak) {
			t.Errorf("the diff leaks a Secret value (%q)", leak)
		}
	}

	for _, tc := range []struct {
		threshold string
		code      int
	}{{"critical", ExitFindings}, {"high", ExitFindings}, {"info", ExitFindings}} {
		code, _, stderr := run(t, "", "audit", "diff", "--base", base, "--head", head, "--fail-on-increase", tc.threshold)
		if code != tc.code {
			t.Errorf("--fail-on-increase %s: exit %d, want %d; stderr:\n%s", tc.threshold, code, tc.code, stderr)
		}
	}
	// The other way round, exposure only shrinks: nothing fails.
	code, out, stderr = run(t, "", "audit", "diff", "--base", head, "--head", base, "--fail-on-increase", "info")
	if code != ExitOK {
		t.Errorf("reverse diff: exit %d, want 0; stderr:\n%s\n%s", code, stderr, out)
	}
	if !strings.Contains(out, "payments/db-credentials: no longer readable by 37 ServiceAccounts through ClusterRoleBinding ci-admin (high)") {
		t.Errorf("reverse diff output:\n%s", out)
	}

	// JSON, to a file.
	outFile := filepath.Join(t.TempDir(), "diff.json")
	code, _, stderr = run(t, "", "audit", "diff", "--base", base, "--head", head, "-o", "json", "--output", outFile)
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	data, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	var d diff.Diff
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.APIVersion != "keyhole.io/v1alpha1" || d.Kind != "ExposureDiff" || d.Base.Ref != base || d.Head.Ref != head {
		t.Errorf("envelope: %s %s base %q head %q", d.APIVersion, d.Kind, d.Base.Ref, d.Head.Ref)
	}
	changes := map[string]diff.Secret{}
	for _, s := range d.Secrets {
		changes[s.Namespace+"/"+s.Name] = s
	}
	db := changes["payments/db-credentials"]
	if len(db.ReadersAdded) != 37 || !db.ExposureIncreased || db.Severity != (diff.SeverityPair{Base: "high", Head: "high"}) {
		t.Errorf("payments/db-credentials: %d readers added, increased %v, severity %+v", len(db.ReadersAdded), db.ExposureIncreased, db.Severity)
	}
	if got := changes["search/elastic-credentials"].Severity; got != (diff.SeverityPair{Base: "high", Head: "critical"}) {
		t.Errorf("search/elastic-credentials severity %+v", got)
	}
	if _, ok := changes["payments/stripe-api-key"]; ok {
		t.Error("payments/stripe-api-key listed, but resourceNames restrict the new grant to db-credentials")
	}

	// --manifests names paths inside both directories.
	code, out, _ = run(t, "", "audit", "diff", "--base", base, "--head", head, "--manifests", "payments", "--manifests", "ci", "--manifests", "namespaces.yaml")
	if code != ExitOK || !strings.Contains(out, wantDBLine) || strings.Contains(out, "search/") {
		t.Errorf("with --manifests: exit %d\n%s", code, out)
	}
}

func TestDiffGit(t *testing.T) {
	r := gittest.New(t)
	demo := copyDemo(t)
	if err := os.Rename(demo, filepath.Join(r.Dir, "deploy")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "README.md"), []byte("not manifests\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	first := r.Commit("the demo")
	if err := os.WriteFile(filepath.Join(r.Dir, "deploy", "ci", "admin.yaml"), []byte(widen()), 0o600); err != nil {
		t.Fatal(err)
	}
	second := r.Commit("widen")
	t.Chdir(r.Dir)

	code, out, stderr := run(t, "", "audit", "diff", "--base", "HEAD~1", "--head", "HEAD", "--manifests", "deploy", "--fail-on-increase", "critical")
	if code != ExitFindings {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	header := fmt.Sprintf("keyhole dev: exposure from HEAD~1 (%s) to HEAD (%s)\n", first[:12], second[:12])
	for _, want := range []string{header, wantDBLine, wantSearchLine} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr, "keyhole: exposure increased on 1 Secret(s) at or above critical at head") {
		t.Errorf("stderr:\n%s", stderr)
	}

	// Head defaults to the working tree: undo the widening there, so the
	// working tree equals the base.
	if err := os.Remove(filepath.Join(r.Dir, "deploy", "ci", "admin.yaml")); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = run(t, "", "audit", "diff", "--base", first, "--manifests", "deploy/", "--fail-on-increase", "info")
	if code != ExitOK || !strings.Contains(out, "to the working tree\nno change in who can read any of ") {
		t.Errorf("working tree: exit %d\n%s\n%s", code, out, stderr)
	}

	// A path added at head: its Secrets are new, and the base says why.
	if err := os.MkdirAll(filepath.Join(r.Dir, "extra"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "extra", "s.yaml"), []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: extra}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, "", "audit", "diff", "--base", "HEAD", "--manifests", "deploy", "--manifests", "extra", "-o", "json")
	var d diff.Diff
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("exit %d: %v\n%s", code, err, out)
	}
	if !containsString(d.Base.NotAnalysed, "extra: does not exist here; its Secrets at head count as added") {
		t.Errorf("base notes %q", d.Base.NotAnalysed)
	}
	if len(d.Secrets) < 1 || d.Secrets[0].Namespace != "extra" || d.Secrets[0].Change != diff.Added {
		t.Errorf("secrets %+v", d.Secrets)
	}

	// A broken file at base: the error names the revision, not a
	// temporary directory, and the run exits 2.
	if err := os.WriteFile(filepath.Join(r.Dir, "deploy", "bad.yaml"), []byte("kind: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Commit("broken")
	if err := os.Remove(filepath.Join(r.Dir, "deploy", "bad.yaml")); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = run(t, "", "audit", "diff", "--base", "HEAD", "--manifests", "deploy")
	if code != ExitError {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(out, "base: HEAD:deploy/bad.yaml: ") || strings.Contains(out+stderr, os.TempDir()+"/keyhole-diff-") {
		t.Errorf("the error does not name HEAD:deploy/bad.yaml:\n%s\n%s", out, stderr)
	}
}

func TestDiffErrors(t *testing.T) {
	r := gittest.New(t)
	if err := os.MkdirAll(filepath.Join(r.Dir, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "deploy", "ns.yaml"), []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Commit("one")
	t.Chdir(r.Dir)
	badConfig := writeTemp(t, "keyhole.yaml", configHeader+"nope: 1\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no base", []string{"audit", "diff", "--manifests", "deploy"}, "keyhole: --base is required"},
		{"unknown base revision", []string{"audit", "diff", "--base", "v9.9.9", "--manifests", "deploy"}, `keyhole: --base: git revision "v9.9.9" not found in repository `},
		{"unknown head revision", []string{"audit", "diff", "--base", "HEAD", "--head", "feature/nope", "--manifests", "deploy"}, `keyhole: --head: git revision "feature/nope" not found in repository `},
		{"path on neither side", []string{"audit", "diff", "--base", "HEAD", "--manifests", "typo"}, "keyhole: --manifests typo: exists neither at base HEAD nor at head (the working tree)"},
		{"stdin", []string{"audit", "diff", "--base", "HEAD", "--manifests", "-"}, "keyhole: --manifests \"-\": diff reads files from each side"},
		{"bad threshold", []string{"audit", "diff", "--base", "HEAD", "--fail-on-increase", "severe"}, "keyhole: --fail-on-increase: unknown severity \"severe\""},
		{"bad format", []string{"audit", "diff", "--base", "HEAD", "-o", "sarif"}, "keyhole: --format: unknown format \"sarif\" (want one of table, json)"},
		{"bad config", []string{"audit", "diff", "--base", "HEAD", "--config", badConfig}, "keyhole: " + badConfig + ":3:1: nope: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, "", tc.args...)
			if code != ExitError {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
		})
	}
}

// withoutConfigMaps returns the documents of a manifest file except its
// ConfigMaps.
func withoutConfigMaps(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, doc := range strings.Split(string(data), "\n---\n") {
		if !strings.Contains(doc, "\nkind: ConfigMap\n") {
			keep = append(keep, doc)
		}
	}
	if len(keep) == len(strings.Split(string(data), "\n---\n")) {
		t.Fatalf("%s has no ConfigMap to remove", path)
	}
	return strings.Join(keep, "\n---\n")
}
