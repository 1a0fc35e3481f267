package git

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/keyhole-sec/keyhole/internal/gitscan"
)

// File is one file of HEAD's tree that ReadHead read: Content, or, when
// it was not read (binary, over the size limit, not a blob), Skip saying
// why. Path is relative to the directory ReadHead was given, with forward
// slashes.
type File struct {
	Path    string
	Content []byte
	Skip    string
}

// Head is what ReadHead read: HEAD's commit and the candidate files, in
// path order.
type Head struct {
	Commit string
	Files  []File
}

// ReadHead reads the files of HEAD's tree under dir (a repository, or a
// directory inside one) whose dir-relative paths candidate accepts, as
// committed, whatever the working tree holds: with the isolation and
// limits of Scan (files over maxSize, 0 for DefaultMaxBlobSize, and binary
// files are skipped, with the reason). Errors are *Error, as Scan's; a
// repository without commits is an error here, since it has no HEAD to
// read.
func ReadHead(ctx context.Context, dir string, candidate func(path string) bool, maxSize int64) (*Head, error) {
	r, err := newRepo(dir, false)
	if err != nil {
		return nil, err
	}
	l, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	if l.head == "" {
		return nil, &Error{Repo: r.path, Op: "reading HEAD", Detail: "HEAD names no commit (a repository without commits?)", Err: ErrNotRepository}
	}
	prefix := ""
	if !l.bare {
		// The directory given, relative to the top level that open
		// moved to.
		sub := &repo{path: r.path, dir: r.path, env: r.env}
		out, err := sub.output(ctx, "opening", "rev-parse", "--show-prefix")
		if err != nil {
			return nil, err
		}
		prefix = strings.TrimSuffix(string(out), "\n")
	}
	tree, err := r.output(ctx, "listing HEAD's files", "ls-tree", "-r", "-z", "--full-tree", "--end-of-options", l.head)
	if err != nil {
		return nil, err
	}
	det := &headReader{candidate: candidate, prefix: prefix, files: map[string]*File{}}
	if maxSize <= 0 {
		maxSize = DefaultMaxBlobSize
	}
	e := newEngine(r, det, Options{Workers: 1, MaxBlobSize: maxSize})
	err = e.readBlobs(ctx, func(ctx context.Context, send func(request) error) error {
		for _, rec := range bytes.Split(tree, []byte{0}) {
			// "<mode> SP <type> SP <oid> TAB <path>"
			meta, p, ok := bytes.Cut(rec, []byte{'\t'})
			if !ok {
				continue
			}
			f := strings.Fields(string(meta))
			if len(f) != 3 || f[1] != "blob" || (f[0] != "100644" && f[0] != "100755") || !det.Candidate(string(p)) {
				continue
			}
			if err := send(request{key: blobKey{oid: f[2], path: string(p)}, where: "HEAD"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	head := &Head{Commit: l.head}
	for k, res := range e.results {
		f := det.files[k.path]
		if f == nil { // not read: the engine says why
			f = &File{Path: det.relative(k.path)}
			for _, p := range res.problems {
				f.Skip = p.Message
			}
			if f.Skip == "" {
				f.Skip = fmt.Sprintf("object %s was not read", shortOID(k.oid))
			}
		}
		head.Files = append(head.Files, *f)
	}
	sort.Slice(head.Files, func(i, j int) bool { return head.Files[i].Path < head.Files[j].Path })
	return head, nil
}

// headReader is the Detector ReadHead runs the engine with: it keeps each
// candidate file's content instead of scanning it.
type headReader struct {
	candidate func(string) bool
	prefix    string // dir, relative to the top level, with a slash; "" at the top

	mu    sync.Mutex
	files map[string]*File // by top-level-relative path
}

// relative is p relative to the directory ReadHead was given.
func (h *headReader) relative(p string) string { return strings.TrimPrefix(p, h.prefix) }

func (h *headReader) Candidate(p string) bool {
	return strings.HasPrefix(p, h.prefix) && h.candidate(path.Clean(h.relative(p)))
}

func (h *headReader) Scan(p string, content []byte) ([]gitscan.Leak, []gitscan.Problem) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[p] = &File{Path: h.relative(p), Content: content}
	return nil, nil
}

func (h *headReader) GeneratorInputs(string, []byte) []gitscan.GeneratorInput { return nil }

func (h *headReader) ScanGeneratorInput(gitscan.GeneratorInput, []byte) []gitscan.Leak { return nil }
