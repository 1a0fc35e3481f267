package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// repoRoot is where testdata lives, relative to this package.
const repoRoot = "../.."

// demoConfig is the demo world's config, which make demo passes: its
// environments (testdata/demo/README.md).
const demoConfig = "testdata/demo-keyhole.yaml"

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestGolden(t *testing.T) {
	for _, format := range []string{"json", "table", "sarif", "markdown"} {
		t.Run(format, func(t *testing.T) {
			t.Chdir(repoRoot) // paths in the report are as the user typed them
			code, out, stderr := run(t, "", "audit", "--manifests", "testdata/demo", "--config", demoConfig, "--format", format)
			if code != ExitFindings {
				t.Fatalf("exit %d, want %d (the demo has high findings); stderr:\n%s", code, ExitFindings, stderr)
			}
			golden := filepath.Join("testdata", "golden", "demo."+format)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("output differs from %s (run with -update after an intended change):\n%s", golden, diffLines(string(want), out))
			}
		})
	}
}

// TestDemoAnswers pins the answers the demo exists to show, independently
// of the golden files.
func TestDemoAnswers(t *testing.T) {
	t.Chdir(repoRoot)
	_, out, _ := run(t, "", "audit", "--manifests", "testdata/demo", "--config", demoConfig, "--format", "json")
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	readers := func(ns, name string) map[string][]string {
		for _, s := range r.Secrets {
			if s.Namespace == ns && s.Name == name {
				m := map[string][]string{}
				for rd := range s.Readers.All() {
					m[rd.Subject.String()] = rd.Verbs
				}
				return m
			}
		}
		t.Fatalf("no Secret %s/%s in the report", ns, name)
		return nil
	}
	severity := func(ns, name string) string {
		for _, s := range r.Secrets {
			if s.Namespace == ns && s.Name == name {
				return s.Exposure.Severity
			}
		}
		return ""
	}

	db := readers("payments", "db-credentials")
	stripe := readers("payments", "stripe-api-key")
	// The app reads only its own Secret, with exactly the verbs its Role names.
	if got := strings.Join(db["ServiceAccount/payments/payments-api"], ","); got != "get,watch" {
		t.Errorf("payments-api on db-credentials: verbs %q, want get,watch", got)
	}
	if _, ok := stripe["ServiceAccount/payments/payments-api"]; ok {
		t.Error("payments-api reads stripe-api-key, but its Role is restricted to db-credentials")
	}
	// edit reads Secrets (through aggregation); view does not.
	if got := strings.Join(db["Group/payments-developers"], ","); got != "get,list,watch" {
		t.Errorf("payments-developers (edit): verbs %q, want get,list,watch", got)
	}
	if _, ok := db["User/auditor@example.com"]; ok {
		t.Error("auditor (view) reads Secrets")
	}
	// The CI deployer reads everything; system:masters always does.
	for _, s := range r.Secrets {
		m := readers(s.Namespace, s.Name)
		if _, ok := m["ServiceAccount/ci/deployer"]; !ok {
			t.Errorf("ci/deployer (cluster-admin) does not read %s/%s", s.Namespace, s.Name)
		}
		if _, ok := m["Group/system:masters"]; !ok {
			t.Errorf("system:masters does not read %s/%s", s.Namespace, s.Name)
		}
		// Bootstrap controllers read Secrets too (e.g. the namespace controller).
		if _, ok := m["ServiceAccount/kube-system/namespace-controller"]; !ok {
			t.Errorf("the bootstrap namespace-controller does not read %s/%s", s.Namespace, s.Name)
		}
	}
	if got := severity("platform", "wildcard-tls"); got != "critical" {
		t.Errorf("platform/wildcard-tls severity %q, want critical (system:authenticated)", got)
	}
	if got := severity("payments", "db-credentials"); got != "high" {
		t.Errorf("payments/db-credentials severity %q, want high (ci/deployer via ClusterRoleBinding)", got)
	}
	rules := map[string]bool{}
	for _, f := range r.Findings {
		rules[f.Rule+" "+f.Object.String()] = true
	}
	for _, want := range []string{
		"KH101 Secret/platform/wildcard-tls",
		"KH102 Secret/payments/db-credentials",
		"KH110 ClusterRoleBinding/ci-deployer-cluster-admin",
		"KH120 RoleBinding/search/legacy-reader",
		"KH610 Secret/payments/stripe-api-key",
	} {
		if !rules[want] {
			t.Errorf("missing finding %s", want)
		}
	}
	// The staging checkout reads the prod Stripe key directly, and the
	// staging testers by minting a token for it (edit allows it; a pod run
	// as it is as short, and token-mint comes first on a tie).
	var cross []string
	for _, s := range r.Secrets {
		for _, c := range s.CrossEnv {
			cross = append(cross, fmt.Sprintf("%s/%s %s<-%s %s %s", s.Namespace, s.Name, s.Environment, c.FromEnvironment, c.Subject, c.Path))
		}
	}
	if want := []string{
		"payments/stripe-api-key prod<-staging Group/payments-testers token-mint",
		"payments/stripe-api-key prod<-staging ServiceAccount/payments-staging/checkout direct",
	}; strings.Join(cross, "\n") != strings.Join(want, "\n") {
		t.Errorf("cross-environment readers:\n got %q\nwant %q", cross, want)
	}
}

// TestCanaryNeverLeaks plants canary values in every Secret fixture (the
// fixtures carry the marker KEYHOLE-CANARY in every value) and checks that
// no output of any format, nor stderr, contains one, in plain or base64
// form. The manifests are audited as files, and the git fixtures as a
// repository (gitCanaryRepo), from its history (with and without a hash
// key), its working tree and its index.
func TestCanaryNeverLeaks(t *testing.T) {
	repo := gitCanaryRepo(t)
	t.Chdir(repoRoot)
	var inputs []string
	for _, dir := range []string{"testdata/demo", "testdata/manifests", "testdata/rules"} {
		if _, err := os.Stat(dir); err == nil {
			inputs = append(inputs, dir)
		}
	}
	// The test can only fail if the inputs hold the canary.
	planted := 0
	for _, dir := range inputs {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, rerr := os.ReadFile(p)
				if rerr == nil && (bytes.Contains(b, []byte(canary)) || bytes.Contains(b, []byte("S0VZSE9MRS1DQU5BUlkt"))) {
					planted++
				}
			}
			return nil
		})
	}
	if planted == 0 {
		t.Fatal("no fixture holds the canary: the test would prove nothing")
	}
	var runs [][]string
	for _, in := range inputs {
		runs = append(runs, []string{"--manifests", in})
	}
	key := writeTemp(t, "hmac.key", strings.Repeat("k", 32))
	for _, args := range [][]string{{}, {"--hash-key-file", key}, {"--git-history=false"}, {"--staged"}} {
		runs = append(runs, append([]string{"--git", repo}, args...))
	}
	gitRules := map[string]bool{}
	for _, format := range report.Formats {
		for _, in := range runs {
			args := append([]string{"audit", "--format", format, "--verbose"}, in...)
			_, out, stderr := run(t, "", args...)
			for _, leak := range canaryForms() {
				if strings.Contains(out, leak) || strings.Contains(stderr, leak) {
					t.Errorf("%v in format %s: output contains %q", in, format, leak)
				}
			}
			if format == "json" && in[0] == "--git" {
				for _, f := range decodeReport(t, out).Findings {
					gitRules[f.Rule] = true
				}
			}
		}
	}
	// The repository proves something only if every git rule reached the
	// output.
	for _, rule := range finding.Catalog() {
		if strings.HasPrefix(rule.ID, "KH3") && !gitRules[rule.ID] {
			t.Errorf("no %s finding from the git fixtures: the canary test does not cover it", rule.ID)
		}
	}
}

const canary = "KEYHOLE-CANARY"

// canaryForms are the canary and the part of its base64 encoding that
// depends on it alone, at each of the three byte alignments, so that a
// leaked base64 value is caught wherever it starts.
func canaryForms() []string {
	forms := []string{canary}
	for pad := 0; pad < 3; pad++ {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", pad) + canary))
		first := (pad + 2) / 3          // first 3-byte group wholly inside the canary
		last := (pad + len(canary)) / 3 // groups before this one end inside it
		forms = append(forms, enc[4*first:4*last])
	}
	return forms
}

func TestExitCodes(t *testing.T) {
	t.Chdir(repoRoot)
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"findings at or above high", []string{"audit", "--manifests", "testdata/demo"}, ExitFindings},
		{"threshold above every finding", []string{"audit", "--manifests", "testdata/demo", "--fail-on", "critical"}, ExitFindings},
		{"no findings", []string{"audit", "--manifests", "-", "--no-bootstrap-policy"}, ExitOK},
		{"unknown severity", []string{"audit", "--manifests", "testdata/demo", "--fail-on", "urgent"}, ExitError},
		{"unknown format", []string{"audit", "--manifests", "testdata/demo", "--format", "xml"}, ExitError},
		{"unknown flag", []string{"audit", "--nope"}, ExitError},
		{"missing file", []string{"audit", "--manifests", "does/not/exist.yaml"}, ExitError},
		{"manifests and kubeconfig together", []string{"audit", "--manifests", "testdata/demo", "--kubeconfig", "x"}, ExitError},
		{"missing kubeconfig", []string{"audit", "--kubeconfig", "does/not/exist"}, ExitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, "", tt.args...)
			if code != tt.want {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.want, stderr)
			}
			if code == ExitError && !strings.Contains(stderr, "keyhole:") {
				t.Errorf("exit 2 without a message on stderr")
			}
		})
	}
}

func TestMalformedInputStillReports(t *testing.T) {
	dir := t.TempDir()
	good := "apiVersion: v1\nkind: Secret\nmetadata: {name: ok, namespace: a}\nstringData: {k: KEYHOLE-CANARY-x}\n"
	bad := "apiVersion: v1\nkind: Secret\nmetadata: {name: bad, namespace: a\n"
	if err := os.WriteFile(filepath.Join(dir, "good.yaml"), []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad+"---\n"+good), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "", "audit", "--manifests", dir, "--format", "json")
	if code != ExitError {
		t.Fatalf("exit %d, want %d", code, ExitError)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("the report is not JSON: %v", err)
	}
	if len(r.Secrets) != 1 || r.Secrets[0].Name != "ok" {
		t.Errorf("secrets = %+v, want the good Secret still analysed", r.Secrets)
	}
	if len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "bad.yaml") {
		t.Errorf("errors = %+v, want one naming bad.yaml", r.Errors)
	}
	if !strings.Contains(stderr, "bad.yaml") {
		t.Errorf("stderr does not name bad.yaml:\n%s", stderr)
	}
}

func TestEnvironmentVariables(t *testing.T) {
	t.Chdir(repoRoot)
	t.Setenv("KEYHOLE_FAIL_ON", "critical")
	t.Setenv("KEYHOLE_FORMAT", "json")
	t.Setenv("KEYHOLE_MANIFESTS", "testdata/demo/platform,testdata/demo/namespaces.yaml")
	code, out, stderr := run(t, "", "audit")
	if code != ExitFindings {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("KEYHOLE_FORMAT=json was not honoured: %v", err)
	}
	if len(r.Secrets) != 1 {
		t.Errorf("KEYHOLE_MANIFESTS was not honoured: %d secrets", len(r.Secrets))
	}
	// A flag on the command line wins over the environment.
	code, _, _ = run(t, "", "audit", "--format", "table", "--fail-on", "critical", "--manifests", "testdata/demo/search")
	if code != ExitOK {
		t.Errorf("exit %d, want 0: search has no critical finding", code)
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want: " + a + "\n  got:  " + c + "\n")
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.String()
}

// TestOutputFileIsPrivate: --output leaves the report readable by its owner
// only, even when the file existed with wider permissions.
func TestOutputFileIsPrivate(t *testing.T) {
	t.Chdir(repoRoot)
	out := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "", "audit", "--manifests", "testdata/demo/platform", "--output", out, "-o", "json"); code == ExitError {
		t.Fatalf("exit 2: %s", stderr)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("--output file mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestPathFlags: --max-depth and --pod-security-default change what the
// indirect analysis follows, and bad values are usage errors.
func TestPathFlags(t *testing.T) {
	t.Chdir(repoRoot)
	readers := func(args ...string) map[string]string {
		t.Helper()
		code, out, stderr := run(t, "", append([]string{"explain", "secret", "payments/db-credentials", "--manifests", "testdata/demo", "-o", "json"}, args...)...)
		if code != ExitOK {
			t.Fatalf("explain %v: exit %d; stderr:\n%s", args, code, stderr)
		}
		return readerMap(*decodeExplanation(t, out))
	}
	const escape = "Group/monitoring-admins node-escape"
	if _, ok := readers()[escape]; !ok {
		t.Fatalf("the demo's monitoring admins do not escape to a node by default")
	}
	for _, args := range [][]string{{"--max-depth", "1"}, {"--pod-security-default", "baseline"}} {
		if _, ok := readers(args...)[escape]; ok {
			t.Errorf("%v: the monitoring admins still escape to a node", args)
		}
	}
	for _, args := range [][]string{{"--max-depth", "11"}, {"--max-depth", "-1"}, {"--pod-security-default", "strict"}} {
		code, _, stderr := run(t, "", append([]string{"audit", "--manifests", "testdata/demo"}, args...)...)
		if code != ExitError || !strings.Contains(stderr, args[0]) {
			t.Errorf("audit %v: exit %d, want %d with a message naming the flag; stderr:\n%s", args, code, ExitError, stderr)
		}
	}
}

// TestCompletion: cobra's completion scripts, and the closed value sets
// completed without falling back to file names.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, stderr := run(t, "", "completion", shell)
		if code != ExitOK || !strings.Contains(out, "keyhole") {
			t.Errorf("completion %s: exit %d, %d bytes; stderr:\n%s", shell, code, len(out), stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"audit", "--format", ""}, report.Formats},
		{[]string{"audit", "--fail-on", ""}, finding.Severities()},
		{[]string{"explain", "secret", "-o", ""}, report.ExplainFormats},
		{[]string{"audit", "diff", "--format", ""}, diffFormats},
	} {
		_, out, _ := run(t, "", append([]string{cobra.ShellCompRequestCmd}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if got := strings.Join(lines[:len(lines)-1], ","); got != strings.Join(tc.want, ",") || lines[len(lines)-1] != ":4" {
			t.Errorf("completing %v: %q, want %v and directive :4 (no file completion)", tc.args, out, tc.want)
		}
	}
}

// TestDisplayName: installed as kubectl-keyhole, help says `kubectl keyhole`.
func TestDisplayName(t *testing.T) {
	for argv0, want := range map[string]string{
		"keyhole": "keyhole", "/usr/local/bin/keyhole": "keyhole",
		"/home/u/.krew/bin/kubectl-keyhole": "kubectl keyhole", "kubectl-keyhole.exe": "kubectl keyhole",
	} {
		if got := displayName(argv0); got != want {
			t.Errorf("displayName(%q) = %q, want %q", argv0, got, want)
		}
	}
}
