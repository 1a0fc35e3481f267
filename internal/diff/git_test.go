package diff

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/diff/gittest"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// files lists the regular files under dir, relative, with their content.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			out[filepath.ToSlash(rel)] = "-> " + target
			return nil
		}
		fi, _ := d.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", rel, fi.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestResolveGit(t *testing.T) {
	r := gittest.New(t)
	r.Write(map[string]string{
		"deploy/app.yaml":        "app v1",
		"deploy/sub/db.yaml":     "db v1",
		"deploy-other/x.yaml":    "not under deploy",
		"docs/readme.md":         "docs",
		"deploy/with space.yaml": "spaces",
		"de*ploy/glob.yaml":      "a literal star",
		"deploy/notes.txt":       "not a manifest: never copied out of the repository",
		"deploy/key.PEM":         "KEYHOLE-CANARY-not-a-manifest",
	})
	if err := os.Symlink("app.yaml", filepath.Join(r.Dir, "deploy", "link.yaml")); err != nil {
		t.Skipf("symlinks: %v", err)
	}
	if err := os.Symlink("../../etc/passwd", filepath.Join(r.Dir, "deploy", "escape.yaml")); err != nil {
		t.Fatal(err)
	}
	first := r.Commit("first")
	r.Write(map[string]string{"deploy/app.yaml": "app v2", "new/n.yaml": "new"})
	if err := os.Remove(filepath.Join(r.Dir, "deploy", "sub", "db.yaml")); err != nil {
		t.Fatal(err)
	}
	second := r.Commit("second")
	t.Chdir(r.Dir)
	ctx := context.Background()

	base, err := Resolve(ctx, "HEAD~1", []string{"deploy", "new"})
	if err != nil {
		t.Fatal(err)
	}
	if base.Side.Ref != "HEAD~1" || base.Side.Commit != first {
		t.Errorf("side %+v, want HEAD~1 at %s", base.Side, first)
	}
	if !reflect.DeepEqual(base.Missing, []string{"new"}) {
		t.Errorf("missing %v, want [new]", base.Missing)
	}
	if len(base.Paths) != 1 {
		t.Fatalf("paths %v", base.Paths)
	}
	got := files(t, base.Paths[0])
	want := map[string]string{
		"app.yaml":        "app v1",
		"sub/db.yaml":     "db v1",
		"with space.yaml": "spaces",
		"link.yaml":       "-> app.yaml",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("base files %v, want %v", got, want)
	}
	if !reflect.DeepEqual(base.Side.NotAnalysed, []string{"deploy/escape.yaml: a symlink out of the repository, not followed"}) {
		t.Errorf("notes %q", base.Side.NotAnalysed)
	}

	head, err := Resolve(ctx, second, []string{"./deploy/", filepath.Join(r.Dir, "new")})
	if err != nil {
		t.Fatal(err)
	}
	if len(head.Paths) != 2 || len(head.Missing) != 0 {
		t.Fatalf("head paths %v missing %v", head.Paths, head.Missing)
	}
	if got := files(t, head.Paths[0])["app.yaml"]; got != "app v2" {
		t.Errorf("head app.yaml %q", got)
	}
	if _, ok := files(t, head.Paths[0])["sub/db.yaml"]; ok {
		t.Error("head has the file deleted in the second commit")
	}

	// A path with glob characters is literal.
	star, err := Resolve(ctx, "main", []string{"de*ploy"})
	if err != nil {
		t.Fatal(err)
	}
	if got := files(t, star.Paths[0]); !reflect.DeepEqual(got, map[string]string{"glob.yaml": "a literal star"}) {
		t.Errorf("de*ploy: %v", got)
	}

	// Relabel names the revision, not the temporary directory.
	rep := &report.Report{Errors: []report.Error{{Message: base.Paths[0] + "/app.yaml: document 1: bad", Location: &report.Location{Path: base.Paths[0] + "/app.yaml"}}},
		Coverage: report.Coverage{Sources: []report.SourceCoverage{{Target: base.Paths[0]}}}}
	base.Relabel(rep)
	if rep.Errors[0].Message != "HEAD~1:deploy/app.yaml: document 1: bad" || rep.Errors[0].Location.Path != "HEAD~1:deploy/app.yaml" || rep.Coverage.Sources[0].Target != "HEAD~1:deploy" {
		t.Errorf("relabelled: %q %q %q", rep.Errors[0].Message, rep.Errors[0].Location.Path, rep.Coverage.Sources[0].Target)
	}

	// Close removes the files.
	for _, tr := range []*Tree{base, head, star} {
		tmp := tr.tmp
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(tmp); !os.IsNotExist(err) {
			t.Errorf("%s still there after Close", tmp)
		}
	}
}

func TestResolveWholeRepository(t *testing.T) {
	r := gittest.New(t)
	r.Write(map[string]string{"a.yaml": "a", "sub/b.yaml": "b"})
	r.Commit("one")
	t.Chdir(filepath.Join(r.Dir, "sub"))
	// Without --manifests: the current directory, here a subdirectory.
	tr, err := Resolve(context.Background(), "HEAD", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Close() }()
	if got := files(t, tr.Paths[0]); !reflect.DeepEqual(got, map[string]string{"b.yaml": "b"}) {
		t.Errorf("files %v", got)
	}
	t.Chdir(r.Dir)
	whole, err := Resolve(context.Background(), "HEAD", []string{"."})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = whole.Close() }()
	if got := files(t, whole.Paths[0]); !reflect.DeepEqual(got, map[string]string{"a.yaml": "a", "sub/b.yaml": "b"}) {
		t.Errorf("files %v", got)
	}
}

func TestResolveErrors(t *testing.T) {
	r := gittest.New(t)
	r.Write(map[string]string{"deploy/a.yaml": "a"})
	r.Commit("one")
	outside := t.TempDir()
	t.Chdir(r.Dir)
	// Inherited GIT_ variables (as in a hook) must not point git elsewhere.
	t.Setenv("GIT_DIR", outside)
	for _, tc := range []struct {
		name, rev string
		manifests []string
		want      string
	}{
		{"no such revision", "no-such-branch", []string{"deploy"}, `git revision "no-such-branch" not found in repository ` + physical(r.Dir)},
		{"no such commit", "0123456789abcdef0123456789abcdef01234567", []string{"deploy"}, `git revision "0123456789abcdef0123456789abcdef01234567" not found`},
		{"a tree is not a commit", "HEAD^{tree}", []string{"deploy"}, `git revision "HEAD^{tree}" not found`},
		{"option-like", "--output=/tmp/x", []string{"deploy"}, `git revision "--output=/tmp/x": a revision cannot start with -`},
		{"not a repository", "HEAD", []string{outside}, "is not in a git repository"},
		{"outside the repository", "HEAD", []string{"deploy", outside}, "--manifests " + outside + " is outside the repository"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Resolve(context.Background(), tc.rev, tc.manifests)
			if err == nil {
				_ = tr.Close()
				t.Fatalf("no error; paths %v", tr.Paths)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestResolveDirectories(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"old/deploy/a.yaml", "new/deploy/a.yaml", "new/extra/b.yaml"} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	ctx := context.Background()
	tr, err := Resolve(ctx, "old", nil)
	if err != nil || !reflect.DeepEqual(tr.Paths, []string{"old"}) || tr.Side.Ref != "old" || tr.Side.Commit != "" {
		t.Errorf("Resolve(old) = %+v, %v", tr, err)
	}
	tr, err = Resolve(ctx, "old", []string{"deploy", "extra"})
	if err != nil || !reflect.DeepEqual(tr.Paths, []string{filepath.Join("old", "deploy")}) || !reflect.DeepEqual(tr.Missing, []string{"extra"}) {
		t.Errorf("Resolve(old, deploy extra) = %+v, %v", tr, err)
	}
	if _, err := Resolve(ctx, "old", []string{filepath.Join(dir, "deploy")}); err == nil || !strings.Contains(err.Error(), "must be relative when comparing directories") {
		t.Errorf("absolute --manifests with a directory: %v", err)
	}
	// The working tree.
	tr, err = Resolve(ctx, "", []string{"new/extra", "missing"})
	if err != nil || !reflect.DeepEqual(tr.Paths, []string{"new/extra"}) || !reflect.DeepEqual(tr.Missing, []string{"missing"}) {
		t.Errorf("Resolve(working tree) = %+v, %v", tr, err)
	}
	if err := tr.Close(); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat("new/extra/b.yaml"); err != nil {
		t.Errorf("Close removed the user's files: %v", err)
	}
}

func TestSafeRelPath(t *testing.T) {
	for p, want := range map[string]bool{
		"a/b.yaml": true, "a.yaml": true, "a/../b": false, "/etc/x": false, "..": false,
		".git/config": false, "a/.git/x": false, "a//b": false, `a\b`: false, "": false, "./a": false,
	} {
		if got := safeRelPath(p); got != want {
			t.Errorf("safeRelPath(%q) = %v, want %v", p, got, want)
		}
	}
	for _, tc := range []struct {
		link, target string
		want         bool
	}{
		{"a/l", "b", true}, {"a/l", "../b", true}, {"a/l", "../../b", false}, {"l", "/etc/passwd", false}, {"l", "", false}, {"a/b/l", "../../c/d", true},
	} {
		if got := inside(tc.link, tc.target); got != tc.want {
			t.Errorf("inside(%q, %q) = %v, want %v", tc.link, tc.target, got, tc.want)
		}
	}
}

// TestRemoveTemp: a revision written to disk is removed by RemoveTemp, the
// cleanup a second interrupt runs instead of the deferred Close.
func TestRemoveTemp(t *testing.T) {
	r := gittest.New(t)
	r.Write(map[string]string{"deploy/app.yaml": "app"})
	r.Commit("first")
	t.Chdir(r.Dir)
	tree, err := Resolve(context.Background(), "HEAD", []string{"deploy"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tree.Paths[0]); err != nil {
		t.Fatalf("the revision was not written: %v", err)
	}
	RemoveTemp()
	if _, err := os.Stat(tree.Paths[0]); !os.IsNotExist(err) {
		t.Errorf("after RemoveTemp the revision is still on disk: %v", err)
	}
	if err := tree.Close(); err != nil {
		t.Errorf("Close after RemoveTemp: %v", err)
	}
}
