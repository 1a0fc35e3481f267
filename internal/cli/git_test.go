package cli

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/diff/gittest"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// gitSecret is a Secret manifest with one stringData value.
func gitSecret(namespace, name, key, value string, annotations ...string) string {
	meta := "metadata:\n  name: " + name + "\n"
	if namespace != "" {
		meta += "  namespace: " + namespace + "\n"
	}
	if len(annotations) > 0 {
		meta += "  annotations:\n"
		for _, a := range annotations {
			meta += "    " + a + "\n"
		}
	}
	return "apiVersion: v1\nkind: Secret\n" + meta + "stringData:\n  " + key + ": " + value + "\n"
}

// newGitRepo is a repository whose commits all have one fixed date, so
// that its hashes are the same on every run.
func newGitRepo(t *testing.T) *gittest.Repo {
	t.Helper()
	t.Setenv("GIT_AUTHOR_DATE", "1700000000 +0000")
	t.Setenv("GIT_COMMITTER_DATE", "1700000000 +0000")
	return gittest.New(t)
}

// dbPassword is the value TestGitAudit commits; every test value holds
// the canary, which no output may.
const dbPassword = canary + "-db-password"

// leakyRepo commits payments/db (deploy/db.yaml) and, on a branch merged
// later, a ConfigMap holding a credential; then it deletes a third Secret
// that only history keeps.
func leakyRepo(t *testing.T) (r *gittest.Repo, first string) {
	t.Helper()
	r = newGitRepo(t)
	r.Write(map[string]string{
		"deploy/db.yaml":  gitSecret("payments", "db", "password", dbPassword),
		"deploy/old.yaml": gitSecret("payments", "old", "token", canary+"-old-token-value"),
		"README.md":       "not a manifest\n",
	})
	first = r.Commit("manifests")
	r.Git("checkout", "-q", "-b", "side")
	r.Write(map[string]string{"deploy/app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: payments}\ndata:\n  DATABASE_URL: postgres://app:" + canary + "-url@db:5432/app\n"})
	r.Commit("app config")
	r.Git("checkout", "-q", "main")
	r.Git("merge", "-q", "--no-ff", "--no-edit", "side")
	r.Git("rm", "-q", "deploy/old.yaml")
	r.Commit("drop old")
	return r, first
}

// gitFindings are the findings of the git rules (KH3xx), by rule, path
// and key.
func gitFindings(r *report.Report) map[string]report.Finding {
	out := map[string]report.Finding{}
	for _, f := range r.Findings {
		if f.Location != nil && strings.HasPrefix(f.Rule, "KH3") {
			out[f.Rule+" "+f.Location.Path+" "+f.Key] = f
		}
	}
	return out
}

func assertNoCanary(t *testing.T, what string, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		for _, leak := range canaryForms() {
			if strings.Contains(out, leak) {
				t.Errorf("%s: output contains %q", what, leak)
			}
		}
	}
}

func TestGitAudit(t *testing.T) {
	r, first := leakyRepo(t)
	code, out, stderr := run(t, "", "audit", "--git", r.Dir, "-o", "json")
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d (high findings); stderr:\n%s", code, ExitFindings, stderr)
	}
	assertNoCanary(t, "json", out, stderr)
	rep := decodeReport(t, out)
	got := gitFindings(rep)
	db, ok := got["KH301 deploy/db.yaml password"]
	if !ok {
		t.Fatalf("no KH301 finding for deploy/db.yaml: %+v", rep.Findings)
	}
	wantMsg := `Secret/payments/db key "password" committed in plaintext (stringData, 16 to 63 characters) at deploy/db.yaml:7 in commit ` + first[:12] + `; still present at HEAD`
	if db.Message != wantMsg || db.Severity != "high" || db.Title != "Plaintext Secret value committed to git" ||
		db.Object != (report.ObjectRef{Kind: "Secret", Namespace: "payments", Name: "db"}) ||
		db.Location.Line != 7 || db.Location.Commit != first || db.Location.PresentAtHead == nil || !*db.Location.PresentAtHead ||
		db.Location.RemovedIn != "" || len(db.Fingerprint) != 32 || db.ValueHash != "" {
		t.Errorf("deploy/db.yaml finding:\n%+v\nwant message %q", db, wantMsg)
	}
	old := got["KH301 deploy/old.yaml token"]
	if old.Location == nil || *old.Location.PresentAtHead || old.Location.RemovedIn != r.Git("rev-parse", "HEAD") ||
		!strings.Contains(old.Message, "removed in commit "+old.Location.RemovedIn[:12]+", still in history") {
		t.Errorf("the deleted Secret: %+v", old)
	}
	app := got["KH303 deploy/app.yaml DATABASE_URL"]
	if app.Location == nil || app.Location.Commit != r.Git("rev-parse", "side") || app.Severity != "high" {
		t.Errorf("the ConfigMap added on a merged branch: %+v", app)
	}
	if len(rep.Coverage.Sources) != 1 || rep.Coverage.Sources[0].Kind != "git" || rep.Coverage.Sources[0].Target != r.Dir {
		t.Fatalf("coverage sources %+v, want the repository alone", rep.Coverage.Sources)
	}
	if g := rep.Coverage.Sources[0].Git; g == nil || g.Read != "history" || g.Commits != 4 || g.Blobs == 0 || g.Branches != "all" || g.Head != r.Git("rev-parse", "HEAD") {
		t.Errorf("git coverage %+v", rep.Coverage.Sources[0].Git)
	}
	if rep.Summary.Secrets != 0 || rep.Summary.FindingsByRule["KH301"] != 2 || rep.Summary.FindingsByRule["KH303"] != 1 {
		t.Errorf("summary %+v", rep.Summary)
	}
	// Each committed object that leaked gets a recommendation (KH501),
	// located where git holds it: the database credential goes to Vault,
	// the token to Sealed Secrets.
	moves := map[string]string{}
	for _, f := range rep.Findings {
		if f.Rule == "KH501" && f.Location != nil {
			moves[f.Object.String()+" "+f.Location.Path] = f.Message
		}
	}
	for obj, target := range map[string]string{
		"Secret/payments/db deploy/db.yaml":      "should move to Vault (dynamic-credential)",
		"ConfigMap/payments/app deploy/app.yaml": "should move to Vault (dynamic-credential)",
		"Secret/payments/old deploy/old.yaml":    "should move to Sealed Secrets (plaintext-in-git)",
	} {
		if !strings.Contains(moves[obj], target) {
			t.Errorf("KH501 on %s: %q, want %q (all: %v)", obj, moves[obj], target, moves)
		}
	}

	// The threshold applies to git findings as to any other.
	if code, _, stderr := run(t, "", "audit", "--git", r.Dir, "--fail-on", "critical"); code != ExitOK {
		t.Errorf("--fail-on critical: exit %d, want 0 (no critical finding); stderr:\n%s", code, stderr)
	}

	// Every format carries them.
	for format, want := range map[string][]string{
		"table":    {"KH301  Secret/payments/db", "deploy/db.yaml:7@" + first[:12], wantMsg},
		"markdown": {"`deploy/db.yaml:7@" + first[:12] + "`", "committed in plaintext (stringData, 16 to 63 characters)"},
		"sarif":    {`"uri": "deploy/db.yaml"`, `"startLine": 7`, `"commit": "` + first + `"`, `"presentAtHead": true`, `"keyhole/v1": "` + db.Fingerprint + `"`},
	} {
		code, out, stderr := run(t, "", "audit", "--git", r.Dir, "-o", format)
		if code != ExitFindings {
			t.Errorf("%s: exit %d; stderr:\n%s", format, code, stderr)
		}
		assertNoCanary(t, format, out, stderr)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s output lacks %q:\n%s", format, w, out)
			}
		}
	}

	// --since narrows the history to what the first commit lacks.
	_, out, _ = run(t, "", "audit", "--git", r.Dir, "--since", first, "-o", "json")
	rep = decodeReport(t, out)
	if fs := gitFindings(rep); len(fs) != 1 || fs["KH303 deploy/app.yaml DATABASE_URL"].Rule == "" || rep.Coverage.Sources[0].Git.Since != first {
		t.Errorf("--since the first commit: %v", fs)
	}
	// Working tree.
	_, out, _ = run(t, "", "audit", "--git", r.Dir, "--git-history=false", "-o", "json")
	rep = decodeReport(t, out)
	if fs := gitFindings(rep); len(fs) != 2 || rep.Coverage.Sources[0].Git.Read != "worktree" {
		t.Errorf("working tree: %v, coverage %+v", fs, rep.Coverage.Sources[0].Git)
	}
}

// TestGitRepositoryErrors: a path that is not a repository, or a
// repository git cannot read, exits 2 with one line naming it, and no
// report.
func TestGitRepositoryErrors(t *testing.T) {
	notRepo := t.TempDir()
	r := newGitRepo(t)
	r.Write(map[string]string{"s.yaml": gitSecret("a", "s", "k", canary+"-corrupt")})
	r.Commit("one")
	// Every object gone: HEAD names a commit that no longer exists.
	objects := filepath.Join(r.Dir, ".git", "objects")
	if err := os.RemoveAll(objects); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(objects, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "nope")
	for _, tc := range []struct {
		name, path, want string
	}{
		{"not a repository", notRepo, "git repository " + notRepo + ": opening: "},
		{"missing", missing, "git repository " + missing + ": opening: no such directory"},
		{"corrupt", r.Dir, "git repository " + r.Dir + ": "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := run(t, "", "audit", "--git", tc.path)
			if code != ExitError {
				t.Errorf("exit %d, want %d", code, ExitError)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "keyhole: "+tc.want) {
				t.Errorf("stderr %q, want one line starting %q", stderr, "keyhole: "+tc.want)
			}
			if out != "" {
				t.Errorf("a report was printed:\n%s", out)
			}
			assertNoCanary(t, tc.name, stderr)
		})
	}
}

func TestGitFlagErrors(t *testing.T) {
	r := newGitRepo(t)
	short := writeTemp(t, "short.key", "too short")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "HEAD"}, "--since needs --git PATH"},
		{[]string{"--correlate"}, "--correlate needs --git PATH"},
		{[]string{"--git", r.Dir, "--staged", "--since", "HEAD"}, "cannot be combined with --since"},
		{[]string{"--git", r.Dir, "--git-history=false", "--since", "HEAD"}, "cannot be combined with --git-history=false"},
		{[]string{"--git", r.Dir, "--branches", "some"}, `--branches: "some" is neither all nor current`},
		{[]string{"--git", r.Dir, "--manifests", "x", "--correlate"}, "needs a live cluster, not --manifests"},
		{[]string{"--git", r.Dir, "--hash-key-file", short}, "the key is 9 bytes, at least 32 are needed"},
		{[]string{"--git", r.Dir, "--hash-key-file", short + ".none"}, "--hash-key-file: open "},
	} {
		code, _, stderr := run(t, "", append([]string{"audit"}, tc.args...)...)
		if code != ExitError || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestGitStaged is the pre-commit hook: the index is scanned, and what
// HEAD already holds is told from what this commit adds.
func TestGitStaged(t *testing.T) {
	r := newGitRepo(t)
	r.Write(map[string]string{"deploy/db.yaml": gitSecret("payments", "db", "password", dbPassword)})
	r.Commit("db")
	r.Write(map[string]string{
		"deploy/api.yaml":   gitSecret("payments", "api", "token", canary+"-staged-token"),
		"deploy/draft.yaml": gitSecret("payments", "draft", "token", canary+"-never-staged"),
	})
	r.Git("add", "deploy/api.yaml")
	code, out, stderr := run(t, "", "audit", "--git", r.Dir, "--staged", "-o", "json")
	if code != ExitFindings {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	assertNoCanary(t, "staged", out, stderr)
	rep := decodeReport(t, out)
	fs := gitFindings(rep)
	api, db := fs["KH301 deploy/api.yaml token"], fs["KH301 deploy/db.yaml password"]
	if len(fs) != 2 || api.Location == nil || db.Location == nil {
		t.Fatalf("staged findings %v, want api and db (draft is not staged)", fs)
	}
	if *api.Location.PresentAtHead || api.Location.Commit != "" || !strings.HasSuffix(api.Message, "; not committed yet") ||
		!strings.Contains(api.Message, `key "token" staged in plaintext`) {
		t.Errorf("staged value: %+v", api)
	}
	if !*db.Location.PresentAtHead || !strings.HasSuffix(db.Message, "; already committed at HEAD") {
		t.Errorf("committed value: %+v", db)
	}
	if g := rep.Coverage.Sources[0].Git; g.Read != "index" || g.Branches != "" {
		t.Errorf("coverage %+v", g)
	}
}

func TestGitHashKeyFile(t *testing.T) {
	r := newGitRepo(t)
	r.Write(map[string]string{"deploy/db.yaml": gitSecret("payments", "db", "password", dbPassword)})
	r.Commit("db")
	key := bytes.Repeat([]byte("0123456789abcdef"), 3) // 48 bytes, as written
	keyFile := writeTemp(t, "hmac.key", string(key))

	_, out, _ := run(t, "", "audit", "--git", r.Dir, "--hash-key-file", keyFile, "-o", "json")
	f := gitFindings(decodeReport(t, out))["KH301 deploy/db.yaml password"]
	m := hmac.New(sha256.New, key)
	m.Write([]byte(dbPassword))
	if want := hex.EncodeToString(m.Sum(nil)); f.ValueHash != want {
		t.Errorf("valueHash %q, want HMAC-SHA256 under the key %q", f.ValueHash, want)
	}
	_, sarif, _ := run(t, "", "audit", "--git", r.Dir, "--hash-key-file", keyFile, "-o", "sarif")
	if !strings.Contains(sarif, `"valueHash": "`+f.ValueHash+`"`) {
		t.Errorf("SARIF lacks the valueHash:\n%s", sarif)
	}

	// Without a key, no digest of any kind is printed, in any format.
	plain := sha256.Sum256([]byte(dbPassword))
	for _, format := range report.Formats {
		_, out, _ := run(t, "", "audit", "--git", r.Dir, "-o", format)
		if strings.Contains(out, "valueHash") || strings.Contains(out, hex.EncodeToString(plain[:])) || strings.Contains(out, f.ValueHash) {
			t.Errorf("%s: a value's digest is printed without --hash-key-file:\n%s", format, out)
		}
	}
}

// TestGitBaseline: a baseline written from a history scan suppresses the
// same findings in history, in the working tree and in the index, and
// survives unrelated edits; a moved file is a new finding, and a value
// staged but not committed is never suppressed by it.
func TestGitBaseline(t *testing.T) {
	r := newGitRepo(t)
	r.Write(map[string]string{"deploy/db.yaml": gitSecret("payments", "db", "password", dbPassword)})
	r.Commit("db")
	baseline := filepath.Join(t.TempDir(), "baseline.json")
	if code, _, stderr := run(t, "", "audit", "--git", r.Dir, "--write-baseline", baseline); code != ExitFindings {
		t.Fatalf("writing the baseline: exit %d; stderr:\n%s", code, stderr)
	}
	raw, err := os.ReadFile(baseline)
	if err != nil {
		t.Fatal(err)
	}
	assertNoCanary(t, "baseline", string(raw))

	// Unrelated edits move the value to another line and commit again.
	r.Write(map[string]string{
		"deploy/db.yaml": "# the payments database\n" + gitSecret("payments", "db", "password", dbPassword),
		"README.md":      "x\n",
	})
	r.Commit("unrelated")
	for _, args := range [][]string{{}, {"--git-history=false"}, {"--staged"}} {
		code, out, stderr := run(t, "", append([]string{"audit", "--git", r.Dir, "--baseline", baseline, "-o", "json"}, args...)...)
		rep := decodeReport(t, out)
		if code != ExitOK || rep.Summary.Suppressed == 0 {
			t.Errorf("%v: exit %d, %d suppressed, want 0 and all suppressed; stderr:\n%s", args, code, rep.Summary.Suppressed, stderr)
		}
		for _, f := range rep.Findings {
			if f.Suppressed == nil || f.Suppressed.By != "baseline" {
				t.Errorf("%v: not suppressed by the baseline: %s", args, f.Message)
			}
		}
	}

	// A new value staged under the baselined key is not accepted.
	r.Write(map[string]string{"deploy/db.yaml": gitSecret("payments", "db", "password", canary+"-rotated-but-plain")})
	r.Git("add", "deploy/db.yaml")
	if code, out, _ := run(t, "", "audit", "--git", r.Dir, "--baseline", baseline, "--staged"); code != ExitFindings {
		t.Errorf("a new staged value under a baselined key: exit %d, want 1\n%s", code, out)
	}
	r.Git("reset", "-q", "--hard")

	// A move is a new place for the value: a new finding.
	r.Git("mv", "deploy/db.yaml", "deploy/database.yaml")
	r.Commit("move")
	code, out, _ := run(t, "", "audit", "--git", r.Dir, "--baseline", baseline, "-o", "json")
	fs := gitFindings(decodeReport(t, out))
	if code != ExitFindings || fs["KH301 deploy/database.yaml password"].Suppressed != nil || fs["KH301 deploy/db.yaml password"].Suppressed == nil {
		t.Errorf("after a move: exit %d, findings %+v", code, fs)
	}
}

// TestGitExemptions: the keyhole.io/ignore annotation of the committed
// object, and the config's rule overrides, apply to git findings.
func TestGitExemptions(t *testing.T) {
	r := newGitRepo(t)
	r.Write(map[string]string{
		"test/fixture.yaml": gitSecret("test", "fixture", "password", canary+"-fixture",
			"keyhole.io/ignore: KH301", "keyhole.io/ignore-reason: a test fixture, not a credential"),
	})
	r.Commit("fixture")
	code, out, stderr := run(t, "", "audit", "--git", r.Dir, "-o", "json")
	rep := decodeReport(t, out)
	if code != ExitOK || len(rep.Findings) != 1 || rep.Findings[0].Suppressed == nil ||
		rep.Findings[0].Suppressed.By != "annotation" || rep.Findings[0].Suppressed.Reason != "a test fixture, not a credential" {
		t.Errorf("annotated fixture: exit %d, findings %+v; stderr:\n%s", code, rep.Findings, stderr)
	}

	r.Write(map[string]string{"deploy/db.yaml": gitSecret("payments", "db", "password", dbPassword)})
	r.Commit("db")
	if code, _, _ := run(t, "", "audit", "--git", r.Dir); code != ExitFindings {
		t.Fatalf("exit %d, want 1 for the high finding", code)
	}
	for _, tc := range []struct {
		config, severity string
		code             int
	}{
		{"rules:\n  KH301: {severity: low}\n", "low", ExitOK},
		{"rules:\n  KH301: {severity: critical}\n", "critical", ExitFindings},
		{"rules:\n  KH301: {enabled: false}\n", "", ExitOK},
	} {
		file := writeTemp(t, "keyhole.yaml", configHeader+tc.config)
		code, out, stderr := run(t, "", "audit", "--git", r.Dir, "--config", file, "-o", "json")
		rep := decodeReport(t, out)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", tc.config, code, tc.code, stderr)
		}
		f, ok := gitFindings(rep)["KH301 deploy/db.yaml password"]
		switch {
		case tc.severity == "" && (ok || !containsString(rep.Coverage.NotAnalysed, "rule KH301 disabled by config: 2 finding(s) not reported")):
			t.Errorf("%s: findings %+v, notes %q", tc.config, rep.Findings, rep.Coverage.NotAnalysed)
		case tc.severity != "" && f.Severity != tc.severity:
			t.Errorf("%s: severity %q", tc.config, f.Severity)
		}
	}
}

// TestGitShallowClone: a shallow clone is scanned, with a warning that
// its history is incomplete.
func TestGitShallowClone(t *testing.T) {
	r, _ := leakyRepo(t)
	clone := filepath.Join(t.TempDir(), "clone")
	cmd := exec.Command("git", "clone", "-q", "--depth", "1", "file://"+r.Dir, clone)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git clone --depth 1: %v\n%s", err, out)
	}
	code, out, stderr := run(t, "", "audit", "--git", clone, "-o", "json")
	if code != ExitFindings {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	rep := decodeReport(t, out)
	if g := rep.Coverage.Sources[0].Git; g == nil || !g.Shallow {
		t.Errorf("coverage does not say shallow: %+v", g)
	}
	warned := false
	for _, n := range rep.Coverage.NotAnalysed {
		warned = warned || strings.HasPrefix(n, "warning: git "+clone+": shallow clone: history")
	}
	if !warned {
		t.Errorf("no shallow warning in coverage.notAnalysed: %q", rep.Coverage.NotAnalysed)
	}
	_, table, _ := run(t, "", "audit", "--git", clone)
	if !strings.Contains(table, "NOT ANALYSED\n  warning: git "+clone+": shallow clone") {
		t.Errorf("the table does not show the warning:\n%s", table)
	}
}

// TestGitWithManifests: --git with --manifests makes one report, in which
// the Secrets the repository leaked carry its summary.
func TestGitWithManifests(t *testing.T) {
	r := newGitRepo(t)
	r.Write(map[string]string{
		"deploy/db.yaml":      gitSecret("payments", "db", "password", dbPassword),
		"deploy/default.yaml": gitSecret("", "plain", "token", canary+"-no-namespace"),
		"deploy/gone.yaml":    gitSecret("payments", "gone", "token", canary+"-gone"),
		"deploy/bad.yaml":     "apiVersion: v1\nkind: Secret\nmetadata: {name: x\n",
	})
	r.Commit("deploy")
	r.Git("rm", "-q", "deploy/gone.yaml")
	r.Commit("gone")
	manifests := writeTemp(t, "world.yaml", strings.Join([]string{
		"apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: payments}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: plain, namespace: default}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: gone, namespace: payments}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: clean, namespace: payments}\n",
	}, "---\n"))
	code, out, stderr := run(t, "", "audit", "--manifests", manifests, "--git", r.Dir, "-o", "json")
	if code != ExitFindings {
		t.Errorf("exit %d, want 1 (plaintext Secrets; a broken file in history is a warning, not an input error); stderr:\n%s", code, stderr)
	}
	rep := decodeReport(t, out)
	kinds := []string{}
	for _, s := range rep.Coverage.Sources {
		kinds = append(kinds, s.Kind)
	}
	if strings.Join(kinds, ",") != "bootstrap,manifests,git" {
		t.Errorf("sources %v", kinds)
	}
	want := map[string]*report.SecretGit{
		"payments/db":    {Plaintext: true, PresentAtHead: true},
		"default/plain":  {Plaintext: true, PresentAtHead: true},
		"payments/gone":  {Plaintext: true},
		"payments/clean": nil,
	}
	for _, s := range rep.Secrets {
		w := want[s.Namespace+"/"+s.Name]
		if (w == nil) != (s.Git == nil) || (w != nil && *w != *s.Git) {
			t.Errorf("%s/%s git %+v, want %+v", s.Namespace, s.Name, s.Git, w)
		}
	}
	if len(rep.Errors) != 0 {
		t.Errorf("errors %+v, want none: history's problems are warnings", rep.Errors)
	}
	warned := false
	for _, n := range rep.Coverage.NotAnalysed {
		warned = warned || strings.HasPrefix(n, "warning: git: deploy/bad.yaml@")
	}
	if !warned {
		t.Errorf("no warning naming deploy/bad.yaml@COMMIT in coverage.notAnalysed: %q", rep.Coverage.NotAnalysed)
	}

	// The working tree holds the broken file now: an input error.
	code, out, stderr = run(t, "", "audit", "--git", r.Dir, "--git-history=false", "-o", "json")
	if code != ExitError {
		t.Errorf("working tree: exit %d, want 2 (a file does not parse); stderr:\n%s", code, stderr)
	}
	rep = decodeReport(t, out)
	if len(rep.Errors) != 1 || rep.Errors[0].Source != "git" || rep.Errors[0].Location == nil ||
		rep.Errors[0].Location.Path != "deploy/bad.yaml" || rep.Errors[0].Location.Line == 0 ||
		!strings.HasPrefix(rep.Errors[0].Message, "deploy/bad.yaml") {
		t.Errorf("working tree errors %+v", rep.Errors)
	}
	if !strings.Contains(stderr, "deploy/bad.yaml") {
		t.Errorf("stderr does not name the file:\n%s", stderr)
	}
}

// gitCanaryRepo commits every gitscan fixture (each holds the canary in
// every value) into a repository, at the paths the fixtures are read
// under, then deletes half of them and changes the rest, so that findings
// of every rule, removed and present at HEAD, and problems, reach the
// report.
func gitCanaryRepo(t *testing.T) string {
	t.Helper()
	r := newGitRepo(t)
	root := filepath.Join(repoRoot, "testdata", "gitscan")
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".expect") {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	planted := 0
	for _, content := range files {
		if strings.Contains(content, canary) || strings.Contains(content, "S0VZSE9MRS1DQU5BUlkt") {
			planted++
		}
	}
	if planted == 0 {
		t.Fatalf("no fixture under %s holds the canary: the test would prove nothing", root)
	}
	r.Write(files)
	r.Commit("every fixture")
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for i, p := range paths {
		if i%2 == 0 {
			r.Git("rm", "-q", p)
		}
	}
	r.Commit("half gone")
	return r.Dir
}

// The report's JSON shape for git findings is the documented one.
func TestGitFindingJSONShape(t *testing.T) {
	r := newGitRepo(t)
	r.Write(map[string]string{"deploy/db.yaml": gitSecret("payments", "db", "password", dbPassword)})
	r.Commit("db")
	_, out, _ := run(t, "", "audit", "--git", r.Dir, "-o", "json")
	var raw struct {
		Findings []map[string]json.RawMessage `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil || len(raw.Findings) != 2 || string(raw.Findings[0]["rule"]) != `"KH301"` {
		t.Fatalf("%v: want KH301 and its recommendation (KH501): %s", err, out)
	}
	var loc map[string]any
	if err := json.Unmarshal(raw.Findings[0]["location"], &loc); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"path", "line", "commit", "presentAtHead"} {
		if _, ok := loc[field]; !ok {
			t.Errorf("location lacks %q: %v", field, loc)
		}
	}
	if _, ok := loc["removedIn"]; ok {
		t.Errorf("removedIn present for a value still at HEAD: %v", loc)
	}
}
