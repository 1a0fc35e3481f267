package diff

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// Tree is what one side of a diff audits: paths in a directory given by
// the user, in the working tree, or in a temporary directory holding a git
// revision's files.
type Tree struct {
	Side Side
	// Paths are the arguments for the manifest source.
	Paths []string
	// Missing are the requested paths that do not exist on this side, as
	// the user gave them. Their Secrets count as added or removed.
	Missing []string
	// tmp is the directory a git revision was written to, removed by
	// Close; "" otherwise.
	tmp string
}

// Close removes the files a git revision was written to.
func (t *Tree) Close() error {
	if t.tmp == "" {
		return nil
	}
	tempDirs.Delete(t.tmp)
	return os.RemoveAll(t.tmp)
}

// tempDirs holds every revision directory not yet closed, so that a process
// exiting at once (a second interrupt) can still remove them: they hold a
// revision's manifests, which may be plaintext Secrets.
var tempDirs sync.Map

// RemoveTemp removes every revision directory not yet closed. It is safe
// to call at any time, from any goroutine.
func RemoveTemp() {
	tempDirs.Range(func(dir, _ any) bool {
		_ = os.RemoveAll(dir.(string))
		tempDirs.Delete(dir)
		return true
	})
}

// Resolve prepares one side of a diff. ref is a directory (when one
// exists by that name), a git revision of the repository that holds the
// manifests, or "" for the working tree. manifests are the paths to audit:
// relative to ref when it is a directory, as on the command line
// otherwise; none means the whole directory (or the current one).
func Resolve(ctx context.Context, ref string, manifests []string) (*Tree, error) {
	if ref == "" {
		return localTree(Side{}, "", manifests)
	}
	if fi, err := os.Stat(ref); err == nil && fi.IsDir() {
		for _, m := range manifests {
			if filepath.IsAbs(m) {
				return nil, fmt.Errorf("--manifests %s: must be relative when comparing directories: it names a path inside %s", m, ref)
			}
		}
		return localTree(Side{Ref: ref}, ref, manifests)
	}
	return gitTree(ctx, ref, manifests)
}

func localTree(side Side, dir string, manifests []string) (*Tree, error) {
	t := &Tree{Side: side}
	if len(manifests) == 0 {
		manifests = []string{"."}
	}
	for _, m := range manifests {
		p := m
		if dir != "" {
			p = joinUnder(dir, m)
		}
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			t.Missing = append(t.Missing, m)
			continue
		}
		t.Paths = append(t.Paths, p)
	}
	return t, nil
}

// joinUnder joins m under dir as the user would write it ("old" and "."
// give "old", not "old/.").
func joinUnder(dir, m string) string {
	if m == "." || m == "" {
		return dir
	}
	return filepath.Join(dir, m)
}

// git runs git in dir with the user's and the system's git configuration
// ignored, so that aliases, hooks, pagers and credential helpers play no
// part, and without inherited GIT_* variables (a hook's GIT_DIR or
// GIT_INDEX_FILE would point git elsewhere).
func git(ctx context.Context, dir string, stdin io.Reader, stdout io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	env := []string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0", "LC_ALL=C"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "LC_ALL=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return errors.New("git is not installed: comparing git revisions needs the git command")
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("git %s: %s", args[0], firstLine(msg))
		}
		return fmt.Errorf("git %s: %w", args[0], err)
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	var out bytes.Buffer
	err := git(ctx, dir, nil, &out, args...)
	return strings.TrimSpace(out.String()), err
}

// gitTree writes the manifests of revision rev to a temporary directory.
func gitTree(ctx context.Context, rev string, manifests []string) (_ *Tree, err error) {
	if strings.HasPrefix(rev, "-") {
		return nil, fmt.Errorf("git revision %q: a revision cannot start with -", rev)
	}
	if len(manifests) == 0 {
		manifests = []string{"."}
	}
	top, err := repoTop(ctx, manifests[0])
	if err != nil {
		return nil, fmt.Errorf("%q is not a directory, so it was taken for a git revision, but %w", rev, err)
	}
	commit, err := gitOutput(ctx, top, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if err != nil || commit == "" {
		return nil, fmt.Errorf("git revision %q not found in repository %s (nor is it a directory)", rev, top)
	}
	rels := make([]string, len(manifests))
	for i, m := range manifests {
		rel, err := relativeTo(top, m)
		if err != nil {
			return nil, err
		}
		rels[i] = rel
	}
	tmp, err := os.MkdirTemp("", "keyhole-diff-")
	if err != nil {
		return nil, err
	}
	tempDirs.Store(tmp, true)
	t := &Tree{Side: Side{Ref: rev, Commit: commit}, tmp: tmp}
	defer func() {
		if err != nil {
			_ = t.Close() // the error matters more
		}
	}()
	found, err := extract(ctx, top, commit, rels, tmp, &t.Side)
	if err != nil {
		return nil, fmt.Errorf("reading %s at %s: %w", top, rev, err)
	}
	for i, rel := range rels {
		if !found[rel] {
			t.Missing = append(t.Missing, manifests[i])
			continue
		}
		t.Paths = append(t.Paths, joinUnder(tmp, filepath.FromSlash(rel)))
	}
	return t, nil
}

// repoTop returns the top directory of the repository holding p.
func repoTop(ctx context.Context, p string) (string, error) {
	dir := existingDir(p)
	top, err := gitOutput(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return "", fmt.Errorf("%s is not in a git repository (%v)", dir, err)
	}
	if top == "" {
		return "", fmt.Errorf("%s is not in a git work tree", dir)
	}
	return physical(top), nil
}

// existingDir returns p if it is a directory, else its nearest existing
// parent directory: a path may be gone from the working tree and still be
// in a revision.
func existingDir(p string) string {
	for d := p; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
		if parent := filepath.Dir(d); parent == d {
			return "."
		}
	}
}

// physical resolves symlinks in the longest existing prefix of p, so that
// paths compare with git's --show-toplevel (physical on every platform).
func physical(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	var rest []string
	for d := abs; ; d = filepath.Dir(d) {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return abs
		}
		rest = append([]string{filepath.Base(d)}, rest...)
	}
}

// relativeTo returns m as a slash path relative to the repository top.
func relativeTo(top, m string) (string, error) {
	rel, err := filepath.Rel(top, physical(m))
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("--manifests %s is outside the repository %s", m, top)
	}
	return filepath.ToSlash(rel), nil
}

type treeEntry struct {
	mode, kind, oid, path string
}

// extract writes the blobs of commit under the repository paths rels to
// dir, and reports which rels exist in the commit.
func extract(ctx context.Context, top, commit string, rels []string, dir string, side *Side) (map[string]bool, error) {
	args := []string{"ls-tree", "-r", "-z", "--full-tree", commit}
	wholeTree := false
	for _, r := range rels {
		if r == "." {
			wholeTree = true
		}
	}
	if !wholeTree {
		args = append(append(args, "--"), rels...)
	}
	var listing bytes.Buffer
	if err := git(ctx, top, nil, &listing, args...); err != nil {
		return nil, err
	}
	found := map[string]bool{}
	var blobs []treeEntry
	for _, rec := range bytes.Split(listing.Bytes(), []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		meta, p, ok := strings.Cut(string(rec), "\t")
		fields := strings.Fields(meta)
		if !ok || len(fields) != 3 {
			return nil, fmt.Errorf("unexpected ls-tree output %q", rec)
		}
		e := treeEntry{mode: fields[0], kind: fields[1], oid: fields[2], path: p}
		matched, named := false, false
		for _, r := range rels {
			if r == "." || e.path == r || strings.HasPrefix(e.path, r+"/") {
				found[r] = true
				matched = true
				named = named || e.path == r
			}
		}
		// Inside a directory the offline audit reads manifests only: copy
		// nothing else of the revision (binaries, other secrets) to disk.
		if matched && !named && e.kind == "blob" && !isManifestName(e.path) {
			continue
		}
		if !matched || !safeRelPath(e.path) {
			continue
		}
		switch e.kind {
		case "blob":
			blobs = append(blobs, e)
		case "commit":
			side.NotAnalysed = append(side.NotAnalysed, e.path+": a git submodule, not read")
		}
	}
	return found, catBlobs(ctx, top, blobs, dir, side)
}

// isManifestName reports whether a file inside a directory is one the
// manifest loader reads: .yaml, .yml or .json, in any case.
func isManifestName(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// safeRelPath rejects paths that would land outside the directory (git
// itself refuses to create them, but the tree is input).
func safeRelPath(p string) bool {
	if p == "" || path.IsAbs(p) || strings.Contains(p, "\\") {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." || part == ".git" {
			return false
		}
	}
	return true
}

// catBlobs streams the blobs through one git cat-file --batch and writes
// them under dir: files 0600 (they may hold Secrets), symlinks as they
// are when they stay inside dir.
func catBlobs(ctx context.Context, top string, blobs []treeEntry, dir string, side *Side) error {
	if len(blobs) == 0 {
		return nil
	}
	var in bytes.Buffer
	for _, b := range blobs {
		in.WriteString(b.oid + "\n")
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := git(ctx, top, &in, pw, "cat-file", "--batch")
		_ = pw.CloseWithError(err)
		done <- err
	}()
	r := bufio.NewReader(pr)
	werr := writeBlobs(r, blobs, dir, side)
	if werr != nil {
		_ = pr.CloseWithError(werr) // stops git's writes
	}
	gerr := <-done
	if werr != nil {
		return werr
	}
	return gerr
}

func writeBlobs(r *bufio.Reader, blobs []treeEntry, dir string, side *Side) error {
	for _, b := range blobs {
		header, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("git cat-file: %w", err)
		}
		fields := strings.Fields(header)
		if len(fields) != 3 || fields[0] != b.oid || fields[1] != "blob" {
			return fmt.Errorf("git cat-file: unexpected header %q for %s", strings.TrimSpace(header), b.path)
		}
		size, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("git cat-file: bad size in %q", strings.TrimSpace(header))
		}
		dest := filepath.Join(dir, filepath.FromSlash(b.path))
		if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
			return err
		}
		if b.mode == "120000" {
			target := make([]byte, size)
			if _, err := io.ReadFull(r, target); err != nil {
				return fmt.Errorf("git cat-file: %w", err)
			}
			if inside(b.path, string(target)) {
				if err := os.Symlink(string(target), dest); err != nil {
					return err
				}
			} else {
				side.NotAnalysed = append(side.NotAnalysed, b.path+": a symlink out of the repository, not followed")
			}
		} else if err := writeFile(dest, io.LimitReader(r, size), size); err != nil {
			return err
		}
		if _, err := r.Discard(1); err != nil { // the newline after the content
			return fmt.Errorf("git cat-file: %w", err)
		}
	}
	return nil
}

// inside reports whether a relative symlink target, from the link at
// slash path p, stays inside the tree.
func inside(p, target string) bool {
	if target == "" || path.IsAbs(target) || filepath.IsAbs(target) {
		return false
	}
	joined := path.Clean(path.Join(path.Dir(p), filepath.ToSlash(target)))
	return joined != ".." && !strings.HasPrefix(joined, "../")
}

func writeFile(dest string, r io.Reader, size int64) (err error) {
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	n, err := io.Copy(f, r)
	if err == nil && n != size {
		err = fmt.Errorf("git cat-file: %s: short read (%d of %d bytes)", dest, n, size)
	}
	return err
}

// Relabel rewrites the paths of a report audited from this tree so that
// they name the revision ("main:deploy/app.yaml"), not the temporary
// directory.
func (t *Tree) Relabel(r *report.Report) {
	if t.tmp == "" {
		return
	}
	fix := func(s string) string {
		s = strings.ReplaceAll(s, t.tmp+string(filepath.Separator), t.Side.Ref+":")
		return strings.ReplaceAll(s, t.tmp, t.Side.Ref+":.")
	}
	for i := range r.Errors {
		e := &r.Errors[i]
		e.Message = fix(e.Message)
		if e.Location != nil {
			e.Location.Path = fix(e.Location.Path)
		}
	}
	for i, n := range r.Coverage.NotAnalysed {
		r.Coverage.NotAnalysed[i] = fix(n)
	}
	for i := range r.Coverage.Sources {
		r.Coverage.Sources[i].Target = fix(r.Coverage.Sources[i].Target)
	}
	for i := range r.Secrets {
		if l := r.Secrets[i].Location; l != nil {
			l.Path = fix(l.Path)
		}
	}
	for i := range r.Findings {
		if l := r.Findings[i].Location; l != nil {
			l.Path = fix(l.Path)
		}
	}
}
