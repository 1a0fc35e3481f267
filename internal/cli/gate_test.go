package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/config"
	"github.com/keyhole-sec/keyhole/internal/report"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const configHeader = "apiVersion: keyhole.io/v1alpha1\nkind: Config\n"

func decodeReport(t *testing.T, out string) *report.Report {
	t.Helper()
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not a JSON report: %v\n%s", err, out)
	}
	return &r
}

func TestConfigCommand(t *testing.T) {
	good := writeTemp(t, "keyhole.yaml", config.Example)
	bad := writeTemp(t, "bad.yaml", configHeader+"rules:\n  KH999: {}\n  KH102: {severty: low}\nfoo: 1\n")
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		dir       string
		code      int
		stdout    string
		stderrHas []string
	}{
		{name: "valid", args: []string{"config", "check", good}, code: ExitOK, stdout: good + ": ok\n"},
		{name: "valid through --config", args: []string{"config", "check", "--config", good}, code: ExitOK, stdout: good + ": ok\n"},
		{name: "valid through KEYHOLE_CONFIG", args: []string{"config", "check"}, env: map[string]string{"KEYHOLE_CONFIG": good}, code: ExitOK, stdout: good + ": ok\n"},
		{name: "keyhole.yaml by default", args: []string{"config", "check"}, dir: filepath.Dir(good), code: ExitOK, stdout: "keyhole.yaml: ok\n"},
		{name: "invalid", args: []string{"config", "check", bad}, code: ExitError, stderrHas: []string{
			"keyhole: " + bad + ":4:3: rules.KH999: unknown rule id",
			"keyhole: " + bad + ":5:11: rules.KH102.severty: unknown field: did you mean \"severity\"?",
			"keyhole: " + bad + ":6:1: foo: unknown field",
			"keyhole: 3 problems in " + bad,
		}},
		{name: "missing", args: []string{"config", "check", filepath.Join(t.TempDir(), "none.yaml")}, code: ExitError, stderrHas: []string{"none.yaml: no such file or directory"}},
		{name: "two files", args: []string{"config", "check", good, bad}, code: ExitError, stderrHas: []string{"accepts at most 1 arg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.dir != "" {
				t.Chdir(tc.dir)
			}
			code, out, stderr := run(t, "", tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if tc.stdout != "" && out != tc.stdout {
				t.Errorf("stdout %q, want %q", out, tc.stdout)
			}
			for _, want := range tc.stderrHas {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
	code, out, _ := run(t, "", "config", "example")
	if code != ExitOK || out != config.Example {
		t.Errorf("config example: exit %d, output differs from config.Example", code)
	}
}

func TestAuditConfig(t *testing.T) {
	t.Chdir(repoRoot)
	audit := func(t *testing.T, cfg string, extra ...string) (int, *report.Report, string) {
		t.Helper()
		p := writeTemp(t, "keyhole.yaml", configHeader+cfg)
		code, out, stderr := run(t, "", append([]string{"audit", "--manifests", "testdata/demo", "-o", "json", "--config", p}, extra...)...)
		if code == ExitError {
			t.Fatalf("exit 2:\n%s", stderr)
		}
		return code, decodeReport(t, out), stderr
	}
	count := func(r *report.Report, rule string) (n int, severities []string) {
		for _, f := range r.Findings {
			if f.Rule == rule {
				n++
				severities = append(severities, f.Severity)
			}
		}
		return n, severities
	}

	t.Run("staleAfter decides which Secrets are stale", func(t *testing.T) {
		// The demo's stripe-api-key was last written in 2023.
		if n, _ := count(mustAudit(t, audit, ""), "KH411"); n == 0 {
			t.Fatal("the demo has no stale Secret with the default 90 days")
		}
		if n, _ := count(mustAudit(t, audit, "staleAfter: 36500d\n"), "KH411"); n != 0 {
			t.Errorf("staleAfter: 36500d still reports %d stale Secrets", n)
		}
	})

	t.Run("severity override moves the gate", func(t *testing.T) {
		// Every rule with a finding at or above high, down to medium:
		// nothing fails any more.
		_, plain, _ := audit(t, "")
		cfg := "rules:\n"
		seen := map[string]bool{}
		for _, f := range plain.Findings {
			if (f.Severity == "high" || f.Severity == "critical") && !seen[f.Rule] {
				seen[f.Rule] = true
				cfg += "  " + f.Rule + ": {severity: medium}\n"
			}
		}
		if !seen["KH102"] {
			t.Fatal("the demo raises no KH102: the test proves nothing")
		}
		code, r, stderr := audit(t, cfg)
		if code != ExitOK {
			t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
		}
		if _, sev := count(r, "KH102"); len(sev) == 0 || strings.Count(strings.Join(sev, ","), "medium") != len(sev) {
			t.Errorf("KH102 severities %v, want all medium", sev)
		}
		if r.Summary.FindingsBySeverity["high"] != 0 || r.Summary.FindingsBySeverity["critical"] != 0 {
			t.Errorf("summary still counts high/critical: %v", r.Summary.FindingsBySeverity)
		}
	})
	t.Run("disabled rule", func(t *testing.T) {
		_, plain, _ := audit(t, "")
		before, _ := count(plain, "KH102")
		if before == 0 {
			t.Fatal("the demo raises no KH102: the test proves nothing")
		}
		_, r, _ := audit(t, "rules:\n  KH102: {enabled: false}\n")
		if n, _ := count(r, "KH102"); n != 0 {
			t.Errorf("%d KH102 findings with the rule disabled", n)
		}
		if !containsString(r.Coverage.NotAnalysed, fmt.Sprintf("rule KH102 disabled by config: %d finding(s) not reported", before)) {
			t.Errorf("coverage does not say KH102 was disabled: %q", r.Coverage.NotAnalysed)
		}
	})
	t.Run("expected readers", func(t *testing.T) {
		// ci/deployer (cluster-admin) makes every Secret readable from
		// outside its namespace; allowlisting it leaves the others.
		_, r, _ := audit(t, "expectedReaders:\n  - {kind: ServiceAccount, namespace: ci, name: deployer}\n")
		for _, s := range r.Secrets {
			for rd := range s.Readers.All() {
				if rd.Subject.String() == "ServiceAccount/ci/deployer" && !rd.Expected {
					t.Errorf("%s/%s: ci/deployer not marked expected", s.Namespace, s.Name)
				}
			}
			if s.Namespace == "ci" && s.Name == "registry-push" && s.Exposure.Severity == "high" {
				t.Errorf("ci/registry-push still high with its only outside reader allowlisted: %v", s.Exposure.Reasons)
			}
		}
	})
	t.Run("manyPrincipals", func(t *testing.T) {
		_, r, _ := audit(t, "manyPrincipals: 1\n")
		if n, _ := count(r, "KH103"); n == 0 {
			t.Error("manyPrincipals: 1 raises no KH103")
		}
	})
	t.Run("ignore paths", func(t *testing.T) {
		_, r, _ := audit(t, "ignore:\n  paths: [\"search/**\", \"**/people.yaml\"]\n")
		for _, s := range r.Secrets {
			if s.Namespace == "search" {
				t.Errorf("Secret %s/%s read from an ignored path", s.Namespace, s.Name)
			}
		}
		want := "testdata/demo: 2 manifest file(s) ignored by config (ignore.paths): testdata/demo/payments/people.yaml, testdata/demo/search/indexer.yaml"
		if !containsString(r.Coverage.NotAnalysed, want) {
			t.Errorf("coverage lacks %q: %q", want, r.Coverage.NotAnalysed)
		}
	})
	t.Run("bad config stops the run", func(t *testing.T) {
		p := writeTemp(t, "keyhole.yaml", configHeader+"rules:\n  KH999: {enabled: false}\n")
		code, out, stderr := run(t, "", "audit", "--manifests", "testdata/demo", "--config", p)
		if code != ExitError || out != "" {
			t.Errorf("exit %d, stdout %q; want 2 and no report", code, out)
		}
		if !strings.Contains(stderr, p+":4:3: rules.KH999: unknown rule id") {
			t.Errorf("stderr does not name the file, line and rule:\n%s", stderr)
		}
	})
}

func mustAudit(t *testing.T, audit func(*testing.T, string, ...string) (int, *report.Report, string), cfg string) *report.Report {
	t.Helper()
	_, r, _ := audit(t, cfg)
	return r
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// copyDemo copies testdata/demo to a new directory and returns it.
func copyDemo(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join(repoRoot, "testdata", "demo")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestBaselineGate(t *testing.T) {
	world := copyDemo(t)
	dir := t.TempDir()
	bl := filepath.Join(dir, "keyhole-baseline.json")

	// Writing a baseline does not change the gate: the demo fails.
	code, _, stderr := run(t, "", "audit", "--manifests", world, "--write-baseline", bl)
	if code != ExitFindings {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	fi, err := os.Stat(bl)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("baseline mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(bl)
	if !strings.HasPrefix(string(data), "{\n  \"apiVersion\": \"keyhole.io/v1alpha1\",\n  \"kind\": \"Baseline\",") {
		t.Errorf("baseline header:\n%s", data[:min(len(data), 200)])
	}
	for _, leak := range canaryForms() {
		if strings.Contains(string(data), leak) {
			t.Errorf("the baseline holds a value (%q)", leak)
		}
	}

	// With the baseline, the same world passes and every finding is
	// listed as suppressed by it.
	code, out, stderr := run(t, "", "audit", "--manifests", world, "--baseline", bl, "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	r := decodeReport(t, out)
	for _, f := range r.Findings {
		if f.Suppressed == nil || f.Suppressed.By != "baseline" || f.Suppressed.Reason != "in baseline "+bl {
			t.Errorf("%s %s: suppressed %+v", f.Rule, f.Object, f.Suppressed)
		}
	}
	if r.Summary.Suppressed != len(r.Findings) || len(r.Findings) == 0 {
		t.Errorf("summary: %d suppressed of %d", r.Summary.Suppressed, len(r.Findings))
	}

	// Move files around and add a new exposure: only the new finding
	// fails, through the environment this time.
	if err := os.Rename(filepath.Join(world, "payments"), filepath.Join(world, "moved-payments")); err != nil {
		t.Fatal(err)
	}
	newBinding := "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: everyone, namespace: search}\n" +
		"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}\nsubjects: [{kind: Group, name: \"system:authenticated\"}]\n"
	if err := os.WriteFile(filepath.Join(world, "new.yaml"), []byte(newBinding), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KEYHOLE_BASELINE", bl)
	code, out, stderr = run(t, "", "audit", "--manifests", world, "-o", "json")
	if code != ExitFindings {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	var failing []string
	for _, f := range decodeReport(t, out).Findings {
		if f.Suppressed == nil {
			failing = append(failing, f.Rule+" "+f.Object.String())
			if f.Object.Namespace != "search" {
				t.Errorf("%s %s is unsuppressed, but only search changed", f.Rule, f.Object)
			}
		}
	}
	if !containsString(failing, "KH101 Secret/search/elastic-credentials") {
		t.Errorf("unsuppressed findings %v lack the new KH101 on search/elastic-credentials", failing)
	}

	// Fixing something leaves an entry unmatched, which is said.
	if err := os.Remove(filepath.Join(world, "ci", "deployer.yaml")); err != nil {
		t.Fatal(err)
	}
	_, _, stderr = run(t, "", "audit", "--manifests", world)
	if !strings.Contains(stderr, "baseline entries match no finding any more") {
		t.Errorf("stderr does not mention unmatched baseline entries:\n%s", stderr)
	}
}

func TestBadBaseline(t *testing.T) {
	t.Chdir(repoRoot)
	for _, tc := range []struct {
		name, content, want string
	}{
		{"corrupt", "{\"apiVersion\": \"keyhole.io/v1alpha1\",\n \"kind\": \"Baseline\", \"findings\": [", "not a keyhole baseline: truncated or empty JSON"},
		{"foreign version", `{"apiVersion": "keyhole.io/v2", "kind": "Baseline", "findings": []}`, `apiVersion "keyhole.io/v2" is not supported (want keyhole.io/v1alpha1)`},
		{"a report", `{"apiVersion": "keyhole.io/v1alpha1", "kind": "Report"}`, `kind "Report" is not a baseline`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeTemp(t, "baseline.json", tc.content)
			code, out, stderr := run(t, "", "audit", "--manifests", "testdata/demo", "--baseline", p)
			if code != ExitError || out != "" {
				t.Errorf("exit %d, stdout %d bytes; want 2 and no report", code, len(out))
			}
			if want := "keyhole: baseline " + p + ": " + tc.want; !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		})
	}
	code, _, stderr := run(t, "", "audit", "--manifests", "testdata/demo", "--baseline", "no/such/baseline.json")
	if code != ExitError || !strings.Contains(stderr, "baseline no/such/baseline.json: no such file or directory") {
		t.Errorf("missing baseline: exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = run(t, "", "audit", "--manifests", "testdata/demo", "--write-baseline", "no/such/dir/b.json")
	if code != ExitError || !strings.Contains(stderr, "--write-baseline: no/such/dir/b.json") {
		t.Errorf("unwritable baseline: exit %d, stderr:\n%s", code, stderr)
	}
}
