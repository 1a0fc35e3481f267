package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/keyhole-sec/keyhole/internal/gitscan"
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// blobKey names one scan: a version of a file (a blob, or a file on
// disk when oid is "") read as the file at path, either as itself or,
// when gen is set, as a kustomize secretGenerator input. The path is part
// of the key because it decides how the Detector reads the bytes.
type blobKey struct {
	oid  string
	path string
	gen  bool
}

// blobResult is what one scan found. It holds no content.
type blobResult struct {
	leaks    []gitscan.Leak // one per leakID, at its first line
	problems []gitscan.Problem
	inputs   []gitscan.GeneratorInput // for a kustomization
}

// leakID is a value's identity within one file (see the package doc).
type leakID struct {
	rule   string
	object inventory.Ref
	key    string
	digest string
}

func idOf(l *gitscan.Leak) leakID {
	return leakID{rule: l.Rule, object: l.Object, key: l.Key, digest: string(l.Digest)}
}

// find returns the leak with that identity, or nil.
func (b *blobResult) find(id leakID) *gitscan.Leak {
	if b == nil {
		return nil
	}
	for i := range b.leaks {
		if idOf(&b.leaks[i]) == id {
			return &b.leaks[i]
		}
	}
	return nil
}

// job is one file's content on its way to a worker; skip says why there
// is no content.
type job struct {
	key     blobKey
	content []byte
	skip    string
}

// request asks cat-file for one blob. where names the commit (or "the
// index") the blob was listed in, for the error when it is missing.
type request struct {
	key   blobKey
	where string
}

// sniffLen is how much of a file is searched for a NUL byte to call it
// binary: the same heuristic, and length, as git's own.
const sniffLen = 8000

// engine holds one Scan's state: the blobs already asked for and what
// their scans found.
type engine struct {
	repo     *repo
	det      Detector
	opts     Options
	progress tracker

	// requested is only touched by the goroutine that feeds the readers.
	requested map[blobKey]bool
	// inputs maps a path to the secretGenerator inputs it is; it is only
	// written between pipelines, while no worker runs.
	inputs map[string][]gitscan.GeneratorInput

	mu      sync.Mutex
	results map[blobKey]*blobResult
}

func newEngine(r *repo, det Detector, opts Options) *engine {
	return &engine{
		repo:      r,
		det:       det,
		opts:      opts,
		requested: map[blobKey]bool{},
		inputs:    map[string][]gitscan.GeneratorInput{},
		results:   map[blobKey]*blobResult{},
	}
}

func (e *engine) result(k blobKey) *blobResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.results[k]
}

// firstErr keeps the first error of a pipeline and cancels it.
type firstErr struct {
	once   sync.Once
	err    error
	cancel context.CancelFunc
}

func (f *firstErr) set(err error) {
	if err == nil {
		return
	}
	f.once.Do(func() {
		f.err = err
		f.cancel()
	})
}

// startWorkers runs the Detector over jobs on opts.Workers goroutines and
// stores the results; wait returns when jobs is closed and drained.
func (e *engine) startWorkers(jobs <-chan job) (wait func()) {
	var wg sync.WaitGroup
	for range e.opts.Workers {
		wg.Go(func() {
			for j := range jobs {
				res := e.scan(j)
				e.mu.Lock()
				e.results[j.key] = res
				e.mu.Unlock()
				e.progress.blobs.Add(1)
			}
		})
	}
	return wg.Wait
}

// scan runs the Detector over one job.
func (e *engine) scan(j job) *blobResult {
	res := &blobResult{}
	switch {
	case j.skip != "":
		res.problems = []gitscan.Problem{{Message: j.skip}}
	case j.key.gen:
		for _, in := range e.inputs[j.key.path] {
			res.leaks = append(res.leaks, e.det.ScanGeneratorInput(in, j.content)...)
		}
	default:
		res.leaks, res.problems = e.det.Scan(j.key.path, j.content)
		res.inputs = e.det.GeneratorInputs(j.key.path, j.content)
	}
	res.leaks = firstOfEach(res.leaks)
	return res
}

// firstOfEach keeps one leak per identity, the one on the lowest line: a
// value repeated in one file is one finding there.
func firstOfEach(leaks []gitscan.Leak) []gitscan.Leak {
	if len(leaks) < 2 {
		return leaks
	}
	at := make(map[leakID]int, len(leaks))
	out := leaks[:0:0]
	for _, l := range leaks {
		id := idOf(&l)
		if i, ok := at[id]; ok {
			if l.Line < out[i].Line {
				out[i] = l
			}
			continue
		}
		at[id] = len(out)
		out = append(out, l)
	}
	return out
}

// readBlobs runs one pipeline over a persistent git cat-file --batch:
// produce (given the pipeline's context, cancelled on its first error)
// sends requests (each key at most once per Scan: send drops keys
// already asked for), a writer goroutine feeds them to cat-file, a reader
// goroutine turns its answers into jobs, and the workers scan them. The
// three stages overlap, so git, the reading and the scanning share the
// cores, and every channel is bounded, so memory is too.
func (e *engine) readBlobs(parent context.Context, produce func(ctx context.Context, send func(request) error) error) error {
	// The pipeline cancels its own context on its first error; parent
	// tells the caller's cancellation from that.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	fail := &firstErr{cancel: cancel}

	cmd := e.repo.command(ctx, "cat-file", "--batch")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return &Error{Repo: e.repo.path, Op: "starting git cat-file", Detail: err.Error(), Err: err}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return &Error{Repo: e.repo.path, Op: "starting git cat-file", Detail: err.Error(), Err: err}
	}
	if err := cmd.Start(); err != nil {
		return &Error{Repo: e.repo.path, Op: "starting git cat-file", Detail: err.Error(), Err: err}
	}

	reqs := make(chan request, 256)
	pending := make(chan request, 1024)
	jobs := make(chan job, 2*e.opts.Workers)
	waitWorkers := e.startWorkers(jobs)

	var stages sync.WaitGroup
	stages.Go(func() { // writer
		defer close(pending)
		defer stdin.Close()
		w := bufio.NewWriterSize(stdin, 32<<10)
		for rq := range reqs {
			if _, err := w.WriteString(rq.key.oid + "\n"); err != nil {
				fail.set(errCatFileDied)
				return
			}
			select {
			case pending <- rq:
			case <-ctx.Done():
				return
			}
			// Flush when the producer has nothing more ready, so that
			// cat-file never waits on a buffered request.
			if len(reqs) == 0 {
				if err := w.Flush(); err != nil {
					fail.set(errCatFileDied)
					return
				}
			}
		}
		if err := w.Flush(); err != nil {
			fail.set(errCatFileDied)
		}
	})
	stages.Go(func() { // reader
		defer close(jobs)
		out := bufio.NewReaderSize(stdout, 256<<10)
		for rq := range pending {
			j, err := e.readAnswer(out, rq)
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					err = errCatFileDied
				}
				fail.set(err)
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	})

	send := func(rq request) error {
		if e.requested[rq.key] {
			return nil
		}
		e.requested[rq.key] = true
		e.progress.queued.Add(1)
		select {
		case reqs <- rq:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	fail.set(produce(ctx, send))
	close(reqs)
	stages.Wait()
	waitWorkers()
	waitErr := cmd.Wait()
	// stderr may only be read now: exec copies it on its own goroutine
	// until Wait returns.
	switch {
	case errors.Is(fail.err, errCatFileDied):
		return e.catFileError(parent, waitErr, stderr.Bytes())
	case fail.err != nil:
		return fail.err
	case waitErr != nil:
		return e.catFileError(parent, waitErr, stderr.Bytes())
	}
	return nil
}

// errCatFileDied marks a pipe to or from cat-file closing early; the
// error is made from what cat-file said once it has exited.
var errCatFileDied = errors.New("git cat-file stopped")

// catFileError describes cat-file dying under us, with what it said.
func (e *engine) catFileError(ctx context.Context, waitErr error, stderr []byte) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if waitErr != nil {
		return e.repo.gitError(ctx, "reading blobs", waitErr, stderr)
	}
	return &Error{Repo: e.repo.path, Op: "reading blobs", Detail: "git cat-file stopped answering", Err: ErrCorrupt}
}

// readAnswer reads cat-file's answer to one request: "<oid> <type>
// <size>\n<content>\n", or "<name> missing\n". A candidate that is binary
// or too big is skipped without holding more than sniffLen bytes of it.
func (e *engine) readAnswer(out *bufio.Reader, rq request) (job, error) {
	j := job{key: rq.key}
	hdr, err := out.ReadSlice('\n')
	if err != nil {
		return j, err
	}
	f := bytes.Fields(hdr)
	if len(f) == 2 && string(f[1]) == "missing" {
		return j, &Error{Repo: e.repo.path, Op: "reading blobs",
			Detail: fmt.Sprintf("object %s (%s in %s) is missing; run git fsck", rq.key.oid, rq.key.path, rq.where), Err: ErrCorrupt}
	}
	if len(f) != 3 {
		return j, &Error{Repo: e.repo.path, Op: "reading blobs",
			Detail: fmt.Sprintf("unexpected git cat-file answer %q for %s", truncate(hdr, 80), rq.key.oid), Err: ErrCorrupt}
	}
	size, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil || size < 0 {
		return j, &Error{Repo: e.repo.path, Op: "reading blobs",
			Detail: fmt.Sprintf("unexpected git cat-file answer %q for %s", truncate(hdr, 80), rq.key.oid), Err: ErrCorrupt}
	}
	if string(f[1]) != "blob" {
		// A path whose mode says file but whose object is not a blob:
		// only a damaged tree does that.
		j.skip = fmt.Sprintf("object %s is a %s, not a file; not scanned", shortOID(rq.key.oid), f[1])
		_, err := io.CopyN(io.Discard, out, size+1)
		return j, err
	}
	j.content, j.skip, err = readLimited(out, size, e.opts.MaxBlobSize, rq.key.gen)
	if err != nil {
		return j, err
	}
	// The content is followed by a newline.
	if _, err := out.Discard(1); err != nil {
		return j, err
	}
	return j, nil
}

// readLimited reads size bytes from r. Content over max, and binary
// content (a NUL in the first sniffLen bytes) unless binaryOK, are
// consumed but not kept, and skip says why. A secretGenerator's file input
// may well be binary (a key store) and is still a leak, hence binaryOK.
func readLimited(r io.Reader, size, max int64, binaryOK bool) (content []byte, skip string, err error) {
	sniff := make([]byte, min(size, sniffLen))
	if _, err := io.ReadFull(r, sniff); err != nil {
		return nil, "", err
	}
	rest := size - int64(len(sniff))
	discard := func(why string) ([]byte, string, error) {
		_, err := io.CopyN(io.Discard, r, rest)
		return nil, why, err
	}
	if !binaryOK && bytes.IndexByte(sniff, 0) >= 0 {
		return discard("binary content; not scanned")
	}
	if size > max {
		return discard(fmt.Sprintf("%s is over the %s limit; not scanned", byteSize(size), byteSize(max)))
	}
	if rest == 0 {
		return sniff, "", nil
	}
	content = make([]byte, size)
	copy(content, sniff)
	if _, err := io.ReadFull(r, content[len(sniff):]); err != nil {
		return nil, "", err
	}
	return content, "", nil
}

func byteSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d bytes", n)
	case n < 1<<20:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

// readFiles runs the workers over files of the working tree. Only regular
// files are read: a symlink could point out of the repository.
func (e *engine) readFiles(ctx context.Context, top string, keys []blobKey) error {
	jobs := make(chan job, 2*e.opts.Workers)
	waitWorkers := e.startWorkers(jobs)
	var err error
	for _, k := range keys {
		if e.requested[k] {
			continue
		}
		e.requested[k] = true
		if err = ctx.Err(); err != nil {
			break
		}
		var j job
		var ok bool
		j, ok, err = readFile(filepath.Join(top, filepath.FromSlash(k.path)), k, e.opts.MaxBlobSize)
		if err != nil {
			err = &Error{Repo: e.repo.path, Op: "reading the working tree", Detail: err.Error(), Err: err}
			break
		}
		if ok {
			e.progress.queued.Add(1)
			jobs <- j
		}
	}
	close(jobs)
	waitWorkers()
	return err
}

// readFile reads one working-tree file; ok is false when there is nothing
// to read (deleted since it was listed, or not a regular file).
func readFile(name string, k blobKey, max int64) (j job, ok bool, err error) {
	j.key = k
	info, err := os.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return j, false, nil
	}
	if err != nil {
		return j, false, err
	}
	if !info.Mode().IsRegular() {
		return j, false, nil
	}
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return j, false, nil
	}
	if err != nil {
		return j, false, err
	}
	defer f.Close()
	j.content, j.skip, err = readLimited(bufio.NewReader(f), info.Size(), max, k.gen)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		// The file shrank while being read: read what a rerun would.
		return j, false, fmt.Errorf("%s changed while being read", k.path)
	}
	return j, true, err
}
