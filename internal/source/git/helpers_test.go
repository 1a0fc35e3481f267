package git

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/gitscan"
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// canary is in every test value; no error, warning, problem or finding
// may ever contain it.
const canary = "KEYHOLE-CANARY"

// fakeDetector flags every "key: value" (or "KEY=VALUE" in a generator
// input) line whose value contains the canary. A file's object is the
// first "name: " line's value. A line "BROKEN" is a parse problem. A
// kustomization's "env: FILE" and "file: FILE" lines are generator
// inputs; a file input leaks when it holds the canary anywhere.
type fakeDetector struct {
	mu      sync.Mutex
	maxSeen int            // longest content handed to the detector
	calls   map[string]int // Scan calls per path
}

func (d *fakeDetector) Candidate(p string) bool {
	switch path.Ext(p) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func (d *fakeDetector) note(p string, content []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maxSeen = max(d.maxSeen, len(content))
	if d.calls == nil {
		d.calls = map[string]int{}
	}
	d.calls[p]++
}

func (d *fakeDetector) Scan(p string, content []byte) ([]gitscan.Leak, []gitscan.Problem) {
	d.note(p, content)
	obj := inventory.Ref{Kind: "Secret", Name: p}
	var leaks []gitscan.Leak
	var problems []gitscan.Problem
	sc := bufio.NewScanner(bytes.NewReader(content))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "BROKEN" {
			problems = append(problems, gitscan.Problem{Line: n, Message: "document does not parse"})
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if k == "name" && obj.Name == p {
			obj.Name = v
			continue
		}
		if strings.Contains(v, canary) {
			leaks = append(leaks, fakeLeak(obj, strings.Trim(k, `"`), v, n))
		}
	}
	return leaks, problems
}

func fakeLeak(obj inventory.Ref, key, value string, line int) gitscan.Leak {
	sum := sha256.Sum256([]byte(value))
	return gitscan.Leak{Rule: "FAKE", Line: line, Object: obj, Key: key, Form: gitscan.FormData, Digest: sum[:]}
}

func (d *fakeDetector) GeneratorInputs(p string, content []byte) []gitscan.GeneratorInput {
	var ins []gitscan.GeneratorInput
	for line := range strings.SplitSeq(string(content), "\n") {
		kind, f, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if ok && (kind == "env" || kind == "file") {
			ins = append(ins, gitscan.GeneratorInput{
				Path: path.Join(path.Dir(p), f), Kind: kind, Key: path.Base(f),
				Generator: inventory.Ref{Kind: "Kustomization", Name: "generated"},
			})
		}
	}
	return ins
}

func (d *fakeDetector) ScanGeneratorInput(in gitscan.GeneratorInput, content []byte) []gitscan.Leak {
	d.note(in.Path, content)
	if in.Kind == "file" {
		if bytes.Contains(content, []byte(canary)) {
			return []gitscan.Leak{fakeLeak(in.Generator, in.Key, string(content), 1)}
		}
		return nil
	}
	var leaks []gitscan.Leak
	for n, line := range strings.Split(string(content), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.Contains(v, canary) {
			leaks = append(leaks, fakeLeak(in.Generator, k, v, n+1))
		}
	}
	return leaks
}

// testRepo builds a repository with the git CLI. Commits get fixed
// authors and increasing fixed dates, so hashes are the same every run.
type testRepo struct {
	t   *testing.T
	dir string
	n   int
}

func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	r := &testRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *testRepo) env() []string {
	date := fmt.Sprintf("%d +0000", 1700000000+60*r.n)
	return append(gitEnv(os.Environ(), false),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date)
}

// git runs git in the repository and returns its trimmed output.
func (r *testRepo) git(args ...string) string {
	r.t.Helper()
	out, err := r.gitErr(args...)
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (r *testRepo) gitErr(args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	cmd.Env = r.env()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (r *testRepo) write(p, content string) {
	r.t.Helper()
	full := filepath.Join(r.dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// commit stages everything and commits; it returns the new commit.
func (r *testRepo) commit(msg string) string {
	r.t.Helper()
	r.git("add", "-A")
	r.n++
	r.git("commit", "-q", "--allow-empty", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// merge merges branch into the current one, resolving nothing; it
// reports whether the merge stopped on a conflict.
func (r *testRepo) merge(branch string) (conflict bool) {
	r.t.Helper()
	r.n++
	if _, err := r.gitErr("merge", "-q", "--no-ff", "--no-edit", branch); err != nil {
		return true
	}
	return false
}

// secret is a manifest holding one value under key.
func secret(name, key, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\ndata:\n  %s: %s\n", name, key, value)
}

// scan runs Scan with the fake detector and checks the canary on the
// way out.
func scan(t *testing.T, dir string, opts Options) (*Result, *fakeDetector) {
	t.Helper()
	det := &fakeDetector{}
	res, err := Scan(context.Background(), dir, det, opts)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	assertNoCanary(t, res)
	return res, det
}

func assertNoCanary(t *testing.T, v any) {
	t.Helper()
	if s := fmt.Sprintf("%+v", v); strings.Contains(s, canary) {
		t.Errorf("output holds a value: %s", s)
	}
	if err, ok := v.(error); ok && err != nil && strings.Contains(err.Error(), canary) {
		t.Errorf("error holds a value: %v", err)
	}
}

// findingsAt returns the findings at path.
func findingsAt(res *Result, p string) []Finding {
	var out []Finding
	for _, f := range res.Findings {
		if f.Path == p {
			out = append(out, f)
		}
	}
	return out
}

// one returns the single finding at path, failing otherwise.
func one(t *testing.T, res *Result, p string) Finding {
	t.Helper()
	fs := findingsAt(res, p)
	if len(fs) != 1 {
		t.Fatalf("%s: want 1 finding, got %d: %s", p, len(fs), describe(res))
	}
	return fs[0]
}

// describe prints findings without digests, for failure messages.
func describe(res *Result) string {
	var b strings.Builder
	for _, f := range res.Findings {
		fmt.Fprintf(&b, "\n  %s:%d %s %s commit=%.8s head=%v removed=%.8s", f.Path, f.Leak.Line, f.Leak.Object, f.Leak.Key, f.Commit, f.PresentAtHead, f.RemovedIn)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(&b, "\n  problem %s", p)
	}
	return b.String()
}
