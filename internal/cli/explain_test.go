package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// decodeExplanation decodes explain's JSON document, requiring its
// apiVersion and kind.
func decodeExplanation(t *testing.T, out string) *report.Secret {
	t.Helper()
	var e report.Explanation
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("not a JSON explanation: %v\n%s", err, out)
	}
	if e.APIVersion != report.APIVersion || e.Kind != report.ExplanationKind || e.Secret == nil {
		t.Fatalf("apiVersion %q kind %q secret %v, want %s %s and a Secret", e.APIVersion, e.Kind, e.Secret, report.APIVersion, report.ExplanationKind)
	}
	return e.Secret
}

// auditedSecret is the Secret as `keyhole audit` reports it.
func auditedSecret(t *testing.T, namespace, name string, args ...string) report.Secret {
	t.Helper()
	_, out, _ := run(t, "", append([]string{"audit", "-o", "json"}, args...)...)
	for _, s := range decodeReport(t, out).Secrets {
		if s.Namespace == namespace && s.Name == name {
			return s
		}
	}
	t.Fatalf("audit reports no Secret %s/%s", namespace, name)
	return report.Secret{}
}

func TestExplainSecret(t *testing.T) {
	t.Chdir(repoRoot)
	explain := func(t *testing.T, format string, extra ...string) string {
		t.Helper()
		args := append([]string{"explain", "secret", "payments/db-credentials", "--manifests", "testdata/demo", "--format", format}, extra...)
		code, out, stderr := run(t, "", args...)
		if code != ExitOK {
			t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
		}
		for _, leak := range canaryForms() {
			if strings.Contains(out, leak) || strings.Contains(stderr, leak) {
				t.Errorf("format %s: output contains %q", format, leak)
			}
		}
		return out
	}

	t.Run("tree", func(t *testing.T) {
		out := explain(t, "tree")
		for _, want := range []string{
			"Secret/payments/db-credentials (Opaque; keys: password, username)\nseverity high, score ",
			"\ndirect (",
			"\n  ServiceAccount/ci/deployer ",
			"ClusterRoleBinding/ci-deployer-cluster-admin → ClusterRole/cluster-admin",
			"Group/system:masters [cluster superusers (RBAC is bypassed)] (expected)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("tree lacks %q:\n%s", want, out)
			}
		}
		// table is the tree, so that one KEYHOLE_FORMAT serves every command.
		if table := explain(t, "table"); table != out {
			t.Error("--format table differs from tree")
		}
	})

	t.Run("json is the audit's Secret", func(t *testing.T) {
		got := decodeExplanation(t, explain(t, "json"))
		want := auditedSecret(t, "payments", "db-credentials", "--manifests", "testdata/demo")
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("explain's Secret differs from audit's:\n got %+v\nwant %+v", *got, want)
		}
	})

	t.Run("dot", func(t *testing.T) {
		out := explain(t, "dot")
		for _, want := range []string{
			`digraph "keyhole explain Secret/payments/db-credentials" {`,
			`"ServiceAccount/ci/deployer" -> "Secret/payments/db-credentials" [label="get,list,watch secrets"];`,
			`"ServiceAccount/ci/deployer" -> "ClusterRoleBinding/ci-deployer-cluster-admin" [style=dashed`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("dot lacks %q:\n%s", want, out)
			}
		}
		if !strings.HasSuffix(out, "}\n") {
			t.Error("dot does not end the graph")
		}
	})

	t.Run("Secret/NS/NAME names it too", func(t *testing.T) {
		code, out, stderr := run(t, "", "explain", "secret", "Secret/payments/db-credentials", "--manifests", "testdata/demo")
		if code != ExitOK || out != explain(t, "tree") {
			t.Errorf("exit %d; stderr:\n%s", code, stderr)
		}
	})

	t.Run("config marks expected readers", func(t *testing.T) {
		cfg := writeTemp(t, "keyhole.yaml", configHeader+"expectedReaders:\n  - {kind: ServiceAccount, namespace: ci, name: deployer}\n")
		out := explain(t, "tree", "--config", cfg)
		if !strings.Contains(out, "ServiceAccount/ci/deployer (expected)") {
			t.Errorf("--config's expected reader is not marked:\n%s", out)
		}
		s := decodeExplanation(t, explain(t, "json", "--config", cfg))
		if want := auditedSecret(t, "payments", "db-credentials", "--manifests", "testdata/demo", "--config", cfg); !reflect.DeepEqual(*s, want) {
			t.Errorf("with --config, explain's Secret differs from audit's")
		}
	})

	t.Run("output file and environment", func(t *testing.T) {
		t.Setenv("KEYHOLE_FORMAT", "json")
		t.Setenv("KEYHOLE_MANIFESTS", "testdata/demo")
		dest := filepath.Join(t.TempDir(), "explain.json")
		if err := os.WriteFile(dest, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, stderr := run(t, "", "explain", "secret", "payments/db-credentials", "--output", dest)
		if code != ExitOK || out != "" {
			t.Fatalf("exit %d, stdout %q; stderr:\n%s", code, out, stderr)
		}
		b, err := os.ReadFile(dest)
		if err != nil {
			t.Fatal(err)
		}
		if s := decodeExplanation(t, string(b)); s.Name != "db-credentials" {
			t.Errorf("explained %s/%s", s.Namespace, s.Name)
		}
		if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("--output file mode %v (%v), want 0600", fi.Mode().Perm(), err)
		}
	})
}

func TestExplainErrors(t *testing.T) {
	t.Chdir(repoRoot)
	tests := []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"unknown Secret", []string{"explain", "secret", "payments/nope", "--manifests", "testdata/demo"},
			[]string{"Secret/payments/nope is not in the inventory", "manifests testdata/demo", "namespace payments has: db-credentials, stripe-api-key"}},
		{"Secret in another namespace", []string{"explain", "secret", "default/db-credentials", "--manifests", "testdata/demo"},
			[]string{"Secret/default/db-credentials is not in the inventory", "found in another namespace: payments/db-credentials"}},
		{"unknown namespace", []string{"explain", "secret", "nowhere/x", "--manifests", "testdata/demo/platform"},
			[]string{"Secret/nowhere/x", "manifests testdata/demo/platform", "no Secret in namespace nowhere"}},
		{"not NAMESPACE/NAME", []string{"explain", "secret", "foo", "--manifests", "testdata/demo"}, []string{`"foo": want NAMESPACE/NAME`}},
		{"too many slashes", []string{"explain", "secret", "a/b/c", "--manifests", "testdata/demo"}, []string{"want NAMESPACE/NAME"}},
		{"empty name", []string{"explain", "secret", "a/", "--manifests", "testdata/demo"}, []string{"want NAMESPACE/NAME"}},
		{"no Secret", []string{"explain", "secret"}, []string{"one NAMESPACE/NAME, not 0 arguments"}},
		{"two Secrets", []string{"explain", "secret", "a/b", "c/d"}, []string{"one NAMESPACE/NAME, not 2 arguments"}},
		{"nothing to explain", []string{"explain"}, []string{"keyhole explain secret NAMESPACE/NAME"}},
		{"unknown kind", []string{"explain", "configmap", "a/b"}, []string{`unknown command "configmap"`}},
		{"unknown format", []string{"explain", "secret", "payments/db-credentials", "--manifests", "testdata/demo", "-o", "sarif"}, []string{`unknown format "sarif"`, "tree, json, dot"}},
		{"manifests and kubeconfig", []string{"explain", "secret", "a/b", "--manifests", "testdata/demo", "--kubeconfig", "x"}, []string{"cannot be combined"}},
		{"missing kubeconfig", []string{"explain", "secret", "a/b", "--kubeconfig", "does/not/exist"}, []string{"does/not/exist"}},
		{"bad config", []string{"explain", "secret", "a/b", "--manifests", "testdata/demo", "--config", "does/not/exist.yaml"}, []string{"does/not/exist.yaml"}},
		{"baseline is audit's", []string{"explain", "secret", "a/b", "--manifests", "testdata/demo", "--baseline", "x"}, []string{"unknown flag: --baseline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := run(t, "", tt.args...)
			if code != ExitError {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, ExitError, stderr)
			}
			if out != "" {
				t.Errorf("stdout is not empty:\n%s", out)
			}
			for _, want := range tt.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

// TestExplainInputErrors: a Secret found next to an unreadable file is
// explained, and the exit code is 2, as audit's.
func TestExplainInputErrors(t *testing.T) {
	dir := t.TempDir()
	good := "apiVersion: v1\nkind: Secret\nmetadata: {name: ok, namespace: a}\nstringData: {k: KEYHOLE-CANARY-x}\n"
	if err := os.WriteFile(filepath.Join(dir, "good.yaml"), []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("kind: Secret\nmetadata: {name: bad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "", "explain", "secret", "a/ok", "--manifests", dir)
	if code != ExitError || !strings.HasPrefix(out, "Secret/a/ok") {
		t.Errorf("exit %d, want 2 with the explanation; stdout:\n%s", code, out)
	}
	if !strings.Contains(stderr, "bad.yaml") || !strings.Contains(stderr, "1 input error(s): the explanation covers everything else") {
		t.Errorf("stderr:\n%s", stderr)
	}
	code, _, stderr = run(t, "", "explain", "secret", "a/bad", "--manifests", dir)
	if code != ExitError || !strings.Contains(stderr, "it may be in what could not be read") {
		t.Errorf("exit %d; stderr:\n%s", code, stderr)
	}
}
