package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// ciSnippets returns the YAML blocks of docs/ci.md that follow a
// `<!-- ci: NAME -->` marker, by name.
func ciSnippets(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docs", "ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- ci: ([a-z]+) -->\n```yaml\n(.*?)```")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		out[m[1]] = m[2]
	}
	for _, name := range []string{"github", "gitlab"} {
		if out[name] == "" {
			t.Fatalf("docs/ci.md has no %q snippet", name)
		}
	}
	return out
}

// ciRepo is a repository as the snippets expect one: manifests under
// deploy/, one of them a Secret committed in plaintext.
func ciRepo(t *testing.T) string {
	t.Helper()
	r := newGitRepo(t)
	r.Write(map[string]string{"deploy/db.yaml": gitSecret("payments", "db", "password", dbPassword)})
	r.Commit("db")
	return r.Dir
}

// keyholeLines are the keyhole command lines of a CI script, as argument
// lists without the program name, and checks that keyhole is installed
// from this module.
func keyholeLines(t *testing.T, lines []string) [][]string {
	t.Helper()
	var out [][]string
	installed := false
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "keyhole":
			out = append(out, f[1:])
		case strings.HasPrefix(l, "go install "):
			installed = strings.HasPrefix(f[2], "github.com/keyhole-sec/keyhole/cmd/keyhole@")
		}
	}
	if !installed || len(out) == 0 {
		t.Fatalf("the script must go install github.com/keyhole-sec/keyhole/cmd/keyhole and run keyhole: %q", lines)
	}
	return out
}

// runCI runs a snippet's keyhole command in the repository, as the CI
// job would: it must exit 1 on the plaintext Secret, write its report,
// and leak no value.
func runCI(t *testing.T, dir string, args []string) {
	t.Helper()
	t.Chdir(dir)
	code, out, stderr := run(t, "", args...)
	if code != ExitFindings {
		t.Fatalf("keyhole %s: exit %d, want %d; stderr:\n%s", strings.Join(args, " "), code, ExitFindings, stderr)
	}
	assertNoCanary(t, strings.Join(args, " "), out, stderr)
}

// TestGitHubWorkflow runs the documented workflow's keyhole step and
// checks that the SARIF it writes is the file the upload step sends.
func TestGitHubWorkflow(t *testing.T) {
	var wf struct {
		Permissions map[string]string `json:"permissions"`
		Jobs        map[string]struct {
			Steps []struct {
				Uses string            `json:"uses"`
				Run  string            `json:"run"`
				With map[string]string `json:"with"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	// Not strict: the struct holds only what the test checks.
	if err := yaml.Unmarshal([]byte(ciSnippets(t)["github"]), &wf); err != nil {
		t.Fatalf("the GitHub workflow: %v", err)
	}
	if wf.Permissions["security-events"] != "write" {
		t.Errorf("uploading SARIF needs permissions.security-events: write, have %v", wf.Permissions)
	}
	dir := ciRepo(t)
	for _, job := range wf.Jobs {
		var runs []string
		uploads := map[string]bool{}
		for _, s := range job.Steps {
			if s.Run != "" {
				runs = append(runs, s.Run)
			}
			if strings.HasPrefix(s.Uses, "github/codeql-action/upload-sarif@") {
				uploads[s.With["sarif_file"]] = true
			}
		}
		for _, args := range keyholeLines(t, runs) {
			runCI(t, dir, args)
			sarif := flagValue(args, "--output")
			if !uploads[sarif] {
				t.Errorf("the workflow writes %q but uploads %v", sarif, uploads)
			}
			data, err := os.ReadFile(filepath.Join(dir, sarif))
			var log struct {
				Version string `json:"version"`
				Runs    []struct {
					Results []json.RawMessage `json:"results"`
				} `json:"runs"`
			}
			if err != nil || json.Unmarshal(data, &log) != nil || log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) == 0 {
				t.Errorf("%s is not a SARIF log with results (%v): %.300s", sarif, err, data)
			}
		}
	}
}

// TestGitLabJob runs the documented job's keyhole command and checks
// that its artifact is the report it writes.
func TestGitLabJob(t *testing.T) {
	var jobs map[string]struct {
		Stage     string            `json:"stage"`
		Image     string            `json:"image"`
		Variables map[string]string `json:"variables"`
		Script    []string          `json:"script"`
		Artifacts struct {
			When  string   `json:"when"`
			Paths []string `json:"paths"`
		} `json:"artifacts"`
	}
	if err := yaml.UnmarshalStrict([]byte(ciSnippets(t)["gitlab"]), &jobs); err != nil {
		t.Fatalf("the GitLab job: %v", err)
	}
	dir := ciRepo(t)
	for name, job := range jobs {
		if job.Variables["GIT_DEPTH"] != "0" || job.Artifacts.When != "always" {
			t.Errorf("job %s: want GIT_DEPTH 0 (the whole history) and artifacts when: always", name)
		}
		for _, args := range keyholeLines(t, job.Script) {
			runCI(t, dir, args)
			out := flagValue(args, "--output")
			if len(job.Artifacts.Paths) != 1 || job.Artifacts.Paths[0] != out {
				t.Errorf("job %s writes %q but keeps %v", name, out, job.Artifacts.Paths)
			}
			if data, err := os.ReadFile(filepath.Join(dir, out)); err != nil || !strings.Contains(string(data), "KH301") {
				t.Errorf("%s: %v: %.300s", out, err, data)
			}
		}
	}
}

// TestPreCommitHook runs the shipped hook's entry as pre-commit does: in
// the repository, on the index. Staging a plaintext Secret fails it;
// unstaging it passes.
func TestPreCommitHook(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, ".pre-commit-hooks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var hooks []struct {
		ID            string   `json:"id"`
		Name          string   `json:"name"`
		Description   string   `json:"description"`
		Entry         string   `json:"entry"`
		Language      string   `json:"language"`
		PassFilenames *bool    `json:"pass_filenames"`
		AlwaysRun     bool     `json:"always_run"`
		Stages        []string `json:"stages"`
	}
	if err := yaml.UnmarshalStrict(data, &hooks); err != nil {
		t.Fatalf(".pre-commit-hooks.yaml: %v", err)
	}
	if len(hooks) != 1 || hooks[0].ID != "keyhole" || hooks[0].Language != "golang" ||
		hooks[0].PassFilenames == nil || *hooks[0].PassFilenames || !hooks[0].AlwaysRun {
		t.Fatalf("hooks %+v: want one golang hook keyhole, pass_filenames false (keyhole reads the index itself), always_run", hooks)
	}
	f := strings.Fields(hooks[0].Entry)
	if f[0] != "keyhole" {
		t.Fatalf("entry %q does not run keyhole", hooks[0].Entry)
	}
	args := f[1:]
	if !strings.Contains(hooks[0].Entry, "--staged") {
		t.Errorf("entry %q does not read the index (--staged)", hooks[0].Entry)
	}

	r := newGitRepo(t)
	r.Write(map[string]string{"README.md": "hello\n"})
	r.Commit("init")
	t.Chdir(r.Dir)
	if code, out, stderr := run(t, "", args...); code != ExitOK {
		t.Errorf("clean index: exit %d, want 0\n%s%s", code, out, stderr)
	}
	r.Write(map[string]string{"deploy/db.yaml": gitSecret("payments", "db", "password", dbPassword)})
	r.Git("add", "deploy/db.yaml")
	code, out, stderr := run(t, "", args...)
	if code != ExitFindings || !strings.Contains(out, "KH301") {
		t.Errorf("staged plaintext Secret: exit %d, want 1 with KH301\n%s%s", code, out, stderr)
	}
	assertNoCanary(t, "pre-commit", out, stderr)
	r.Git("rm", "-q", "--cached", "deploy/db.yaml")
	if code, out, stderr := run(t, "", args...); code != ExitOK {
		t.Errorf("unstaged again: exit %d, want 0\n%s%s", code, out, stderr)
	}
}

// flagValue is the value of --name VALUE in args, or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}
