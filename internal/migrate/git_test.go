package migrate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// gitRepo creates a repository in a temporary directory with files
// committed at HEAD, and returns its path.
func gitRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runGit(t, dir, "init", "-q")
	runGit(t, dir, "add", "-A")
	runGit(t, dir, "commit", "-q", "-m", "c")
	return dir
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

const gitSecret = `apiVersion: v1
kind: Secret
metadata:
  name: %s
  namespace: apps
stringData:
  token: ` + canary + `
`

func secretYAML(name string) string { return strings.Replace(gitSecret, "%s", name, 1) }

func TestFromGit(t *testing.T) {
	dir := gitRepo(t, map[string]string{
		"apps/db/secret.yaml":         secretYAML("db"),
		"apps/web/all.yml":            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n" + secretYAML("web-1") + "---\n" + secretYAML("web-2"),
		"apps/web/deployment.yaml":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
		"charts/c/templates/s.yaml":   "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Values.name }}\n  {{- if .x }}\n",
		"broken/bad.yaml":             "apiVersion: v1\nkind: Secret\n  x: " + canary + ": y\n",
		"README.md":                   secretYAML("not-a-manifest-name"),
		"json/s.json":                 `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"j","namespace":"apps"},"stringData":{"k":"v"}}`,
		"deleted-in-worktree/s.yaml":  secretYAML("committed"),
		"changed-in-worktree/s.yaml":  secretYAML("at-head"),
		"untracked-dir/.gitkeep":      "",
		"apps/db/kustomization.yaml":  "resources: [secret.yaml]\n",
		"apps/db/notes/empty.yaml":    "# nothing\n",
		"apps/db/notes/nothing.yml":   "---\n",
		"apps/web/sub/dir/x.yaml":     secretYAML("deep"),
		"apps/web/sub/dir/other.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
	})
	// The working tree differs from HEAD: HEAD is what is read.
	if err := os.Remove(filepath.Join(dir, "deleted-in-worktree", "s.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "changed-in-worktree", "s.yaml"), []byte(secretYAML("in-worktree")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "untracked.yaml"), []byte(secretYAML("untracked")), 0o600); err != nil {
		t.Fatal(err)
	}

	b, src, err := FromGit(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if head := strings.TrimSpace(runGit(t, dir, "rev-parse", "HEAD")); src.Commit != head {
		t.Errorf("Commit = %q, want %q", src.Commit, head)
	}
	var got []string
	for _, s := range b.Secrets {
		got = append(got, s.Origin.String()+" "+s.Ref())
		if string(s.Secret.Data["token"]) != canary && s.Ref() != "apps/j" {
			t.Errorf("%s: value not read", s.Ref())
		}
	}
	want := []string{
		"apps/db/secret.yaml document 1 apps/db",
		"apps/web/all.yml document 2 apps/web-1",
		"apps/web/all.yml document 3 apps/web-2",
		"apps/web/sub/dir/x.yaml document 1 apps/deep",
		"changed-in-worktree/s.yaml document 1 apps/at-head",
		"deleted-in-worktree/s.yaml document 1 apps/committed",
		"json/s.json document 1 apps/j",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("secrets:\n got %q\nwant %q", got, want)
	}
	var broken, template int
	for _, s := range b.Skipped {
		if strings.Contains(s.Reason, canary) {
			t.Errorf("skip reason quotes the value: %s", s)
		}
		switch s.Origin.Path {
		case "broken/bad.yaml":
			broken++
			if !s.Broken || !strings.Contains(s.String(), "broken/bad.yaml document 1: skipped: line 3: not valid YAML") {
				t.Errorf("broken file: %s (Broken %v)", s, s.Broken)
			}
		case "charts/c/templates/s.yaml":
			template++
			if s.Broken {
				t.Errorf("template reported broken: %s", s)
			}
		}
	}
	if broken != 1 || template != 1 {
		t.Errorf("skipped: %v", b.Skipped)
	}

	// A subdirectory: paths relative to it.
	b, _, err = FromGit(context.Background(), filepath.Join(dir, "apps", "web"))
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, s := range b.Secrets {
		got = append(got, s.Origin.Path)
	}
	if want := []string{"all.yml", "all.yml", "sub/dir/x.yaml"}; !reflect.DeepEqual(got, want) {
		t.Errorf("subdirectory paths %q, want %q", got, want)
	}
}

func TestFromGitErrors(t *testing.T) {
	ctx := context.Background()
	notRepo := t.TempDir()
	if _, _, err := FromGit(ctx, notRepo); err == nil || !strings.Contains(err.Error(), "git repository "+notRepo) || !strings.Contains(err.Error(), "not a git repository") {
		t.Errorf("not a repository: %v", err)
	}

	empty := t.TempDir()
	runGit(t, empty, "init", "-q")
	if _, _, err := FromGit(ctx, empty); err == nil || !strings.Contains(err.Error(), "git repository "+empty+": reading HEAD: HEAD names no commit") {
		t.Errorf("no commits: %v", err)
	}

	// A repository whose objects are gone: git cannot read HEAD's tree.
	corrupt := gitRepo(t, map[string]string{"s.yaml": secretYAML("s")})
	if err := os.RemoveAll(filepath.Join(corrupt, ".git", "objects")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(corrupt, ".git", "objects"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, _, err := FromGit(ctx, corrupt)
	if err == nil || !strings.Contains(err.Error(), "git repository "+corrupt+": reading HEAD: HEAD's commit ") || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt repository: %v", err)
	} else if strings.Contains(err.Error(), canary) {
		t.Errorf("error quotes the value: %v", err)
	}

	if _, _, err := FromGit(ctx, filepath.Join(notRepo, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing directory: %v", err)
	}
}
