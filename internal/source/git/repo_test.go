package git

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// scanErr runs Scan expecting an error, and checks that the error is an
// *Error naming dir, on one line, without a value.
func scanErr(t *testing.T, dir string, opts Options) error {
	t.Helper()
	res, err := Scan(context.Background(), dir, &fakeDetector{}, opts)
	if err == nil {
		t.Fatalf("no error; result %s", describe(res))
	}
	var ge *Error
	if !errors.As(err, &ge) {
		t.Fatalf("error %T %v is not an *Error", err, err)
	}
	abs, _ := filepath.Abs(dir)
	msg := err.Error()
	if !strings.Contains(msg, abs) || strings.Contains(msg, "\n") {
		t.Errorf("error %q must name %s on one line", msg, abs)
	}
	assertNoCanary(t, err)
	t.Logf("error: %v", err)
	return err
}

func TestNotARepository(t *testing.T) {
	dir := t.TempDir()
	err := scanErr(t, dir, historyOpts)
	if !errors.Is(err, ErrNotRepository) || !strings.Contains(err.Error(), "not a git repository") {
		t.Errorf("got %v", err)
	}
	err = scanErr(t, filepath.Join(dir, "missing"), historyOpts)
	if !errors.Is(err, ErrNotRepository) || !strings.Contains(err.Error(), "no such directory") {
		t.Errorf("got %v", err)
	}
}

func TestCorruptHead(t *testing.T) {
	r := newTestRepo(t)
	r.write("s.yaml", secret("s", "password", canary))
	r.commit("one")
	if err := os.WriteFile(filepath.Join(r.dir, ".git", "HEAD"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := scanErr(t, r.dir, historyOpts)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "git cannot read it") {
		t.Errorf("got %v", err)
	}
}

func TestMissingObject(t *testing.T) {
	r := newTestRepo(t)
	r.write("s.yaml", secret("s", "password", canary+"-lost"))
	r.commit("one")
	blob := r.git("rev-parse", "HEAD:s.yaml")
	if err := os.Remove(filepath.Join(r.dir, ".git", "objects", blob[:2], blob[2:])); err != nil {
		t.Fatal(err)
	}
	err := scanErr(t, r.dir, historyOpts)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), blob) || !strings.Contains(err.Error(), "s.yaml") {
		t.Errorf("got %v", err)
	}

	// A missing tree stops git log itself.
	r2 := newTestRepo(t)
	r2.write("d/s.yaml", secret("s", "password", canary))
	r2.commit("one")
	tree := r2.git("rev-parse", "HEAD:d")
	if err := os.Remove(filepath.Join(r2.dir, ".git", "objects", tree[:2], tree[2:])); err != nil {
		t.Fatal(err)
	}
	err = scanErr(t, r2.dir, historyOpts)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "listing history") {
		t.Errorf("got %v", err)
	}
}

func TestEmptyRepository(t *testing.T) {
	r := newTestRepo(t)
	for _, b := range []Branches{BranchesAll, BranchesCurrent} {
		res, _ := scan(t, r.dir, Options{History: true, Branches: b})
		if len(res.Findings) != 0 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "no commits") || res.Head != "" {
			t.Errorf("%s: %+v", b, res)
		}
	}
	// Nothing committed, but something staged: the hook case.
	r.write("s.yaml", secret("s", "password", canary+"-first"))
	r.git("add", "s.yaml")
	res, _ := scan(t, r.dir, Options{Staged: true})
	if f := one(t, res, "s.yaml"); f.Origin != OriginIndex || f.PresentAtHead {
		t.Errorf("got %s", describe(res))
	}
}

func TestStaged(t *testing.T) {
	r := newTestRepo(t)
	r.write("committed.yaml", secret("c", "password", canary+"-committed"))
	r.write("edited.yaml", secret("e", "password", "clean"))
	r.commit("one")
	r.write("staged.yaml", secret("s", "password", canary+"-staged"))
	r.git("add", "staged.yaml")
	r.write("edited.yaml", secret("e", "password", canary+"-unstaged"))
	r.write("untracked.yaml", secret("u", "password", canary+"-untracked"))

	res, _ := scan(t, r.dir, Options{Staged: true})
	if res.Origin != OriginIndex || len(res.Findings) != 2 {
		t.Fatalf("got %s", describe(res))
	}
	if f := one(t, res, "staged.yaml"); f.PresentAtHead || f.Commit != "" {
		t.Errorf("staged: %s", describe(res))
	}
	if f := one(t, res, "committed.yaml"); !f.PresentAtHead {
		t.Errorf("committed: %s", describe(res))
	}

	// A hook's environment must not redirect git elsewhere.
	t.Setenv("GIT_DIR", t.TempDir())
	t.Setenv("GIT_WORK_TREE", t.TempDir())
	again, _ := scan(t, r.dir, Options{Staged: true})
	if len(again.Findings) != 2 {
		t.Errorf("with GIT_DIR set: %s", describe(again))
	}

	if _, err := Scan(context.Background(), r.dir, &fakeDetector{}, Options{Staged: true, History: true}); err == nil {
		t.Error("staged with history accepted")
	}
}

func TestWorkTree(t *testing.T) {
	r := newTestRepo(t)
	r.write(".gitignore", "ignored.yaml\n")
	r.write("tracked.yaml", secret("t", "password", "clean"))
	r.commit("one")
	r.write("tracked.yaml", secret("t", "password", canary+"-edited"))
	r.write("new.yaml", secret("n", "password", canary+"-new"))
	r.write("ignored.yaml", secret("i", "password", canary+"-ignored"))
	if err := os.Symlink(filepath.Join(r.dir, "ignored.yaml"), filepath.Join(r.dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}

	res, det := scan(t, r.dir, Options{})
	if res.Origin != OriginWorkTree || len(res.Findings) != 2 {
		t.Fatalf("got %s", describe(res))
	}
	one(t, res, "tracked.yaml")
	one(t, res, "new.yaml")
	if det.calls["ignored.yaml"] != 0 || det.calls["link.yaml"] != 0 {
		t.Errorf("calls %v", det.calls)
	}
}

func TestProgress(t *testing.T) {
	r := newTestRepo(t)
	r.write("s.yaml", secret("s", "password", canary+"-progress"))
	r.commit("one")
	var mu sync.Mutex
	var got []Progress
	_, _ = scan(t, r.dir, Options{History: true, Progress: func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, p)
	}})
	if len(got) == 0 {
		t.Fatal("progress never called")
	}
	last := got[len(got)-1]
	if !last.Done || last.Commits != 1 || last.Blobs != 1 || last.Queued != 1 {
		t.Errorf("last progress %+v", last)
	}

	var quiet bytes.Buffer
	render := NewProgressRenderer(&quiet, false)
	render(Progress{Phase: "history", Commits: 3})
	render(last)
	if quiet.Len() != 0 {
		t.Errorf("not a terminal, but wrote %q", quiet.String())
	}
	if IsTerminal(&quiet) {
		t.Error("a buffer is not a terminal")
	}

	var tty bytes.Buffer
	render = NewProgressRenderer(&tty, true)
	render(Progress{Phase: "history", Commits: 12345, Blobs: 10, Queued: 20, Elapsed: 2e9})
	render(Progress{Phase: "history", Commits: 12346}) // too soon: dropped
	render(Progress{Phase: "history", Commits: 1, Done: true})
	out := tty.String()
	if strings.Count(out, "\r") != 2 || !strings.HasSuffix(out, "\n") || !strings.Contains(out, "12345 commits, 10/20 files scanned (5/s)") {
		t.Errorf("rendered %q", out)
	}
	// The shorter last line pads over the longer first one.
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\r")
	if len(lines[2]) < len(lines[1]) {
		t.Errorf("no padding: %q", out)
	}
}

func TestSubdirectoryReadsWholeRepository(t *testing.T) {
	r := newTestRepo(t)
	r.write("top.yaml", secret("t", "password", canary+"-top"))
	r.write("sub/dir/inner.yaml", secret("i", "password", canary+"-inner"))
	r.commit("one")
	sub := filepath.Join(r.dir, "sub", "dir")
	for _, opts := range []Options{{}, {Staged: true}, {History: true}} {
		res, _ := scan(t, sub, opts)
		if len(res.Findings) != 2 || res.Findings[0].Path != "sub/dir/inner.yaml" || res.Findings[1].Path != "top.yaml" {
			t.Errorf("%+v: %s", opts, describe(res))
		}
	}
}

// TestRepositoryOfAnotherOwner: a repository git deems owned by another
// user (a CI checkout, a git-sync volume) is read, where plain git with
// the same isolation refuses it as "dubious ownership". git's own test
// switch stands for the other owner, so the test runs as any user.
func TestRepositoryOfAnotherOwner(t *testing.T) {
	r := newTestRepo(t)
	r.write("s.yaml", secret("s", "password", canary))
	head := r.commit("one")
	foreign := append(gitEnv(os.Environ(), false), "GIT_TEST_ASSUME_DIFFERENT_OWNER=1")

	plain := exec.Command("git", "-C", r.dir, "rev-parse", "HEAD")
	plain.Env = foreign
	if out, err := plain.CombinedOutput(); err == nil || !strings.Contains(string(out), "dubious ownership") {
		t.Fatalf("git without keyhole's arguments: %v, %s; want a dubious-ownership refusal, or this test proves nothing", err, out)
	}
	rp, err := newRepo(r.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	rp.env = foreign
	if _, err := rp.open(context.Background()); err != nil {
		t.Fatalf("opening the repository: %v", err)
	}
	out, err := rp.output(context.Background(), "reading HEAD", "rev-parse", "HEAD")
	if err != nil || strings.TrimSpace(string(out)) != head {
		t.Errorf("rev-parse HEAD: %q, %v; want %s", out, err, head)
	}
}

// TestMissingCommit: a branch whose commit object is gone (objects
// deleted, a broken clone) is a corrupt repository, not one without
// commits.
func TestMissingCommit(t *testing.T) {
	r := newTestRepo(t)
	r.write("s.yaml", secret("s", "password", canary))
	r.commit("one")
	objects := filepath.Join(r.dir, ".git", "objects")
	if err := os.RemoveAll(objects); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(objects, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := scanErr(t, r.dir, historyOpts); !errors.Is(err, ErrCorrupt) {
		t.Errorf("got %v, want ErrCorrupt", err)
	}
	if _, err := ReadHead(context.Background(), r.dir, func(string) bool { return true }, 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadHead: %v, want ErrCorrupt", err)
	}
}

// TestReadHead reads HEAD's tree as committed, below a subdirectory,
// with paths relative to it; the working tree's edits and other
// directories are not read, and a binary file is skipped with the reason.
func TestReadHead(t *testing.T) {
	r := newTestRepo(t)
	r.write("apps/web/s.yaml", secret("s", "password", canary))
	r.write("apps/web/blob.yaml", "a\x00b")
	r.write("apps/web/README.md", "docs")
	r.write("other/t.yaml", secret("t", "password", canary))
	head := r.commit("one")
	r.write("apps/web/s.yaml", "edited in the working tree")
	yaml := func(p string) bool { return strings.HasSuffix(p, ".yaml") }
	got, err := ReadHead(context.Background(), filepath.Join(r.dir, "apps", "web"), yaml, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit != head || len(got.Files) != 2 {
		t.Fatalf("commit %s files %+v; want %s and 2 files", got.Commit, got.Files, head)
	}
	if f := got.Files[0]; f.Path != "blob.yaml" || f.Content != nil || !strings.Contains(f.Skip, "binary") {
		t.Errorf("binary file: %+v", f)
	}
	if f := got.Files[1]; f.Path != "s.yaml" || !strings.Contains(string(f.Content), canary) || f.Skip != "" {
		t.Errorf("s.yaml: path %q skip %q, %d bytes (want HEAD's content)", f.Path, f.Skip, len(f.Content))
	}
	empty := newTestRepo(t)
	if _, err := ReadHead(context.Background(), empty.dir, yaml, 0); err == nil || !strings.Contains(err.Error(), "HEAD names no commit") {
		t.Errorf("repository without commits: %v", err)
	}
}
