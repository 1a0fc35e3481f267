package git

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// layout is what Scan learns about the repository before reading it.
type layout struct {
	top     string // work tree top level; "" for a bare repository
	bare    bool
	shallow bool
	head    string // HEAD's commit; "" when HEAD is unborn (no commits)
}

// open checks that r.path is a readable repository and describes it.
func (r *repo) open(ctx context.Context) (*layout, error) {
	info, err := os.Stat(r.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &Error{Repo: r.path, Op: "opening", Detail: "no such directory", Err: ErrNotRepository}
	case err != nil:
		return nil, &Error{Repo: r.path, Op: "opening", Detail: err.Error(), Err: err}
	case !info.IsDir():
		return nil, &Error{Repo: r.path, Op: "opening", Detail: "not a directory", Err: ErrNotRepository}
	}
	out, err := r.output(ctx, "opening", "rev-parse", "--is-bare-repository", "--is-shallow-repository")
	if err != nil {
		return nil, r.explainOpen(err)
	}
	fields := strings.Fields(string(out))
	if len(fields) != 2 {
		return nil, &Error{Repo: r.path, Op: "opening", Detail: fmt.Sprintf("unexpected git rev-parse output %q", out), Err: ErrCorrupt}
	}
	l := &layout{bare: fields[0] == "true", shallow: fields[1] == "true"}
	if !l.bare {
		top, err := r.output(ctx, "opening", "rev-parse", "--show-toplevel")
		if err != nil {
			return nil, err
		}
		l.top = strings.TrimSuffix(string(top), "\n")
		// From a subdirectory, ls-files would list (and name relative
		// to it) only the files below it: run everything from the top,
		// so that every mode reads the whole repository alike.
		r.dir = l.top
	}
	// --verify -q prints nothing and exits 1 for an unborn HEAD, but
	// fails loudly for a HEAD that names a missing or broken object.
	head, err := r.output(ctx, "reading HEAD", "rev-parse", "--verify", "-q", "HEAD^{commit}")
	if err != nil {
		if unborn, uerr := r.unbornHead(ctx); uerr == nil && unborn {
			return l, nil
		}
		// -q leaves git nothing to say when HEAD names a commit that is
		// missing: say it.
		if id, herr := r.output(ctx, "reading HEAD", "rev-parse", "-q", "--verify", "HEAD"); herr == nil {
			return nil, &Error{Repo: r.path, Op: "reading HEAD", Err: ErrCorrupt,
				Detail: fmt.Sprintf("HEAD's commit %s cannot be read: the repository is corrupt (run git fsck)", shortOID(strings.TrimSpace(string(id))))}
		}
		return nil, err
	}
	l.head = strings.TrimSpace(string(head))
	return l, nil
}

// unbornHead reports whether HEAD is a symbolic ref to a branch that has
// no commit yet: a fresh repository, or an orphan branch.
func (r *repo) unbornHead(ctx context.Context) (bool, error) {
	ref, err := r.output(ctx, "reading HEAD", "symbolic-ref", "-q", "HEAD")
	if err != nil {
		return false, err
	}
	name := strings.TrimSpace(string(ref))
	// rev-parse resolves the ref without reading its object: a branch
	// whose commit is missing exists, and is corrupt, not unborn
	// (show-ref --verify fails alike for both).
	_, err = r.output(ctx, "reading HEAD", "rev-parse", "-q", "--verify", "--end-of-options", name)
	return err != nil, nil
}

// explainOpen sharpens git's "not a git repository" when the directory
// plainly is one: git says the same about a repository whose HEAD holds
// garbage, and a user would look in the wrong place.
func (r *repo) explainOpen(err error) error {
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrNotRepository) {
		return err
	}
	if _, serr := os.Stat(filepath.Join(r.path, ".git")); serr == nil {
		e.Detail = "has a .git but git cannot read it (corrupt HEAD or config?): " + e.Detail
		e.Err = ErrCorrupt
	}
	return e
}

// RefsState digests every ref of the repository at path and its HEAD. It
// changes when a commit, branch or tag is added, moved or removed, which
// is when a history scan would read something new, and costs one `git
// for-each-ref`: a daemon polls it to scan only when history moved.
func RefsState(ctx context.Context, path string) (string, error) {
	r, err := newRepo(path, false)
	if err != nil {
		return "", err
	}
	refs, err := r.output(ctx, "listing refs", "for-each-ref", "--format=%(objectname) %(refname)")
	if err != nil {
		return "", r.explainOpen(err)
	}
	// Fails for an unborn HEAD, which for-each-ref already shows as no
	// refs at all.
	head, _ := r.output(ctx, "reading HEAD", "rev-parse", "--verify", "-q", "HEAD")
	sum := sha256.Sum256(append(refs, head...))
	return hex.EncodeToString(sum[:]), nil
}
