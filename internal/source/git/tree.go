package git

import (
	"bytes"
	"context"
	"fmt"
)

// file is one entry of a listing (a tree, the index or the working
// tree): its path and, except on disk, its blob.
type file struct {
	path string
	oid  string
}

// listing runs a git command printing NUL-terminated "<fields>\t<path>"
// entries (ls-tree, ls-files -s) or bare paths (ls-files), and keeps the
// regular files. fields gives the positions of the mode and the object id
// among the tab-separated fields; -1 when the output has none.
func (e *engine) listing(ctx context.Context, op string, modeField, oidField int, args ...string) ([]file, error) {
	out, err := e.repo.output(ctx, op, args...)
	if err != nil {
		return nil, err
	}
	var files []file
	for len(out) > 0 {
		i := bytes.IndexByte(out, 0)
		if i < 0 {
			i = len(out)
		}
		entry := out[:i]
		out = out[min(i+1, len(out)):]
		if len(entry) == 0 {
			continue
		}
		if modeField < 0 {
			files = append(files, file{path: string(entry)})
			continue
		}
		tab := bytes.IndexByte(entry, '\t')
		if tab < 0 {
			return nil, &Error{Repo: e.repo.path, Op: op, Detail: fmt.Sprintf("unexpected git output %q", truncate(entry, 80)), Err: ErrCorrupt}
		}
		meta := bytes.Fields(entry[:tab])
		if len(meta) <= max(modeField, oidField) {
			return nil, &Error{Repo: e.repo.path, Op: op, Detail: fmt.Sprintf("unexpected git output %q", truncate(entry, 80)), Err: ErrCorrupt}
		}
		if !isFile(meta[modeField]) {
			continue
		}
		files = append(files, file{path: string(entry[tab+1:]), oid: string(meta[oidField])})
	}
	return files, nil
}

// headBlobs maps the paths HEAD holds among want to their blobs.
func (e *engine) headBlobs(ctx context.Context, l *layout, want map[string]bool) (map[string]string, error) {
	blobs := map[string]string{}
	if l.head == "" || len(want) == 0 {
		return blobs, nil
	}
	// The whole tree is listed and filtered here rather than passing the
	// paths: there may be more than a command line holds.
	files, err := e.listing(ctx, "listing HEAD", 0, 2, "ls-tree", "-r", "-z", "--full-tree", l.head)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if want[f.path] {
			blobs[f.path] = f.oid
		}
	}
	return blobs, nil
}

// headState says which values HEAD still holds.
type headState struct {
	blobs map[string]string // path → blob at HEAD
}

func (h headState) has(e *engine, k pathLeak) bool {
	oid, ok := h.blobs[k.path]
	if !ok {
		return false
	}
	return e.result(blobKey{oid: oid, path: k.path, gen: k.gen}).find(k.id) != nil
}

// headVersions scans HEAD's version of every path in found that was not
// scanned already (outside a Since range, or for the index and the
// working tree), so that headState.has can answer.
func (e *engine) headVersions(ctx context.Context, l *layout, found map[pathLeak]introduction) (headState, error) {
	want := map[string]bool{}
	for k := range found {
		want[k.path] = true
	}
	blobs, err := e.headBlobs(ctx, l, want)
	if err != nil {
		return headState{}, err
	}
	var missing []blobKey
	seen := map[blobKey]bool{}
	for k := range found {
		oid, ok := blobs[k.path]
		if !ok {
			continue
		}
		bk := blobKey{oid: oid, path: k.path, gen: k.gen}
		if !e.requested[bk] && !seen[bk] {
			seen[bk] = true
			missing = append(missing, bk)
		}
	}
	if len(missing) > 0 {
		e.progress.setPhase("HEAD")
		err := e.readBlobs(ctx, func(ctx context.Context, send func(request) error) error {
			for _, k := range missing {
				if err := send(request{key: k, where: "HEAD"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return headState{}, err
		}
	}
	return headState{blobs: blobs}, nil
}

// scanIndex scans the files staged in the index.
func (e *engine) scanIndex(ctx context.Context, l *layout, res *Result) error {
	e.progress.setPhase("index")
	files, err := e.listing(ctx, "listing the index", 0, 1, "ls-files", "-s", "-z")
	if err != nil {
		return err
	}
	read := func(ctx context.Context, keys []blobKey) error {
		return e.readBlobs(ctx, func(ctx context.Context, send func(request) error) error {
			for _, k := range keys {
				if err := send(request{key: k, where: "the index"}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return e.scanSnapshot(ctx, l, res, OriginIndex, files, read)
}

// scanWorkTree scans the working tree's files as they are on disk: those
// git tracks, and the untracked ones .gitignore does not exclude (the
// next `git add -A` would commit them). Ignored files are not read: they
// are kept out of git on purpose.
func (e *engine) scanWorkTree(ctx context.Context, l *layout, res *Result) error {
	e.progress.setPhase("worktree")
	files, err := e.listing(ctx, "listing the working tree", -1, -1,
		"ls-files", "-z", "--cached", "--others", "--exclude-standard", "--deduplicate")
	if err != nil {
		return err
	}
	read := func(ctx context.Context, keys []blobKey) error {
		return e.readFiles(ctx, l.top, keys)
	}
	return e.scanSnapshot(ctx, l, res, OriginWorkTree, files, read)
}

// scanSnapshot scans one listing of files (the index or the working
// tree): the candidates first, then the secretGenerator inputs the
// kustomizations among them read, when the listing holds them.
func (e *engine) scanSnapshot(ctx context.Context, l *layout, res *Result, origin Origin, files []file,
	read func(context.Context, []blobKey) error) error {
	var keys []blobKey
	seen := map[blobKey]bool{} // a conflicted index lists a path per stage
	for _, f := range files {
		k := blobKey{oid: f.oid, path: f.path}
		if !seen[k] && e.det.Candidate(f.path) {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if err := read(ctx, keys); err != nil {
		return err
	}
	if paths := e.collectInputs(); len(paths) > 0 {
		var gen []blobKey
		for _, f := range files {
			k := blobKey{oid: f.oid, path: f.path, gen: true}
			if _, ok := e.inputs[f.path]; ok && !seen[k] {
				seen[k] = true
				gen = append(gen, k)
			}
		}
		if err := read(ctx, gen); err != nil {
			return err
		}
		keys = append(keys, gen...)
	}

	found := map[pathLeak]introduction{}
	for _, k := range keys {
		r := e.result(k)
		if r == nil {
			continue // not a regular file on disk, or gone
		}
		for i := range r.leaks {
			found[pathLeak{path: k.path, gen: k.gen, id: idOf(&r.leaks[i])}] = introduction{leak: &r.leaks[i]}
		}
		for _, p := range r.problems {
			res.Problems = append(res.Problems, Problem{Path: k.path, Line: p.Line, Message: p.Message})
		}
	}
	head, err := e.headVersions(ctx, l, found)
	if err != nil {
		return err
	}
	for k, in := range found {
		res.Findings = append(res.Findings, Finding{
			Leak:          *in.leak,
			Path:          k.path,
			Origin:        origin,
			PresentAtHead: head.has(e, k),
		})
	}
	return nil
}
