package git

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/keyhole-sec/keyhole/internal/gitscan"
)

// maxPathspecs is the most generator input paths passed to git log as
// pathspecs; beyond it, the whole history is listed again and filtered
// here, which stays correct without risking the argument-length limit.
const maxPathspecs = 500

// noCommits is the warning for a repository without commits.
const noCommits = "the repository has no commits: there is no history to scan"

// history is what the walk recorded: the commits in walk order and the
// changes to the paths worth reading.
type history struct {
	commits []commit
	changes []change
	// gen marks changes read as secretGenerator inputs, by index in
	// changes; kept apart so that change stays small.
	gen map[int]bool
}

// scanHistory walks the commits, scans the blobs, and attributes.
func (e *engine) scanHistory(ctx context.Context, l *layout, res *Result) error {
	revs, err := e.revisions(ctx, l)
	if err != nil {
		return err
	}
	if revs == nil {
		res.Warnings = append(res.Warnings, noCommits)
		return nil
	}
	h := &history{gen: map[int]bool{}}

	e.progress.setPhase("history")
	if err := e.readBlobs(ctx, func(ctx context.Context, send func(request) error) error {
		return e.walk(ctx, revs, nil, h, false, send)
	}); err != nil {
		return err
	}
	if len(h.commits) == 0 && l.head == "" {
		res.Warnings = append(res.Warnings, noCommits)
	}

	if paths := e.collectInputs(); len(paths) > 0 {
		e.progress.setPhase("generator inputs")
		var spec []string
		if len(paths) <= maxPathspecs {
			spec = paths
		}
		if err := e.readBlobs(ctx, func(ctx context.Context, send func(request) error) error {
			return e.walk(ctx, revs, spec, h, true, send)
		}); err != nil {
			return err
		}
	}

	intro, removed := attribute(h, e)
	head, err := e.headVersions(ctx, l, intro)
	if err != nil {
		return err
	}
	for id, in := range intro {
		f := Finding{
			Leak:       *in.leak,
			Path:       id.path,
			Origin:     OriginHistory,
			Commit:     h.commits[in.commit].oid,
			CommitTime: time.Unix(h.commits[in.commit].time, 0).UTC(),
		}
		f.PresentAtHead = head.has(e, id)
		if r, ok := removed[id]; ok && !f.PresentAtHead {
			f.RemovedIn = h.commits[r].oid
		}
		res.Findings = append(res.Findings, f)
	}
	res.Problems = append(res.Problems, historyProblems(h, e)...)
	return nil
}

// revisions turns Branches and Since into git log's revision arguments;
// nil means there is nothing to walk.
func (e *engine) revisions(ctx context.Context, l *layout) ([]string, error) {
	var revs []string
	switch e.opts.Branches {
	case BranchesCurrent:
		if l.head == "" {
			return nil, nil
		}
		revs = []string{l.head}
	default:
		revs = []string{"--all"}
	}
	if e.opts.Since != "" {
		// Resolved here, so that git log is only ever given a hash:
		// a revision starting with "-" cannot become an option.
		out, err := e.repo.output(ctx, "resolving the since revision", "rev-parse", "--verify", "--end-of-options", e.opts.Since+"^{commit}")
		if err != nil {
			var ge *Error
			if errors.As(err, &ge) {
				ge.Detail = strings.TrimSpace(ge.Detail) + " (" + e.opts.Since + ")"
			}
			return nil, err
		}
		revs = append(revs, "--not", strings.TrimSpace(string(out)))
	}
	return revs, nil
}

// walk runs git log over revs (limited to paths when given) and records
// commits and changes. The first walk (gen false) keeps the paths the
// Detector calls candidates; the second (gen true) keeps the
// secretGenerator inputs found by the first, and reuses its commit
// numbering, which is the same since git log is run with the same
// arguments.
func (e *engine) walk(ctx context.Context, revs, paths []string, h *history, gen bool, send func(request) error) error {
	// Its own context, to stop git log when the parsing fails.
	logCtx, stop := context.WithCancel(ctx)
	defer stop()
	cmd := e.repo.command(logCtx, logArgs(revs, paths)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return &Error{Repo: e.repo.path, Op: "listing history", Detail: err.Error(), Err: err}
	}
	if err := cmd.Start(); err != nil {
		return &Error{Repo: e.repo.path, Op: "listing history", Detail: err.Error(), Err: err}
	}
	// With pathspecs, git log lists only the commits touching them, so
	// its numbering is not the first walk's: commits are looked up by
	// hash instead.
	var byOID map[string]int32
	if gen {
		byOID = make(map[string]int32, len(h.commits))
		for i, c := range h.commits {
			byOID[c.oid] = int32(i) //nolint:gosec // G115: a commit count fits an int32.
		}
	}
	var cur int32 = -1
	parseErr := newLogParser(stdout).parse(ctx,
		func(c commit) error {
			if !gen {
				h.commits = append(h.commits, c)
				cur = int32(len(h.commits) - 1) //nolint:gosec // G115: as above.
				e.progress.commits.Add(1)
				return nil
			}
			i, ok := byOID[c.oid]
			if !ok {
				// A ref moved between the two walks.
				h.commits = append(h.commits, c)
				i = int32(len(h.commits) - 1) //nolint:gosec // G115: as above.
				byOID[c.oid] = i
			}
			cur = i
			return nil
		},
		func(c change) error {
			if c.old == "" && c.new == "" {
				return nil
			}
			if gen {
				if _, ok := e.inputs[c.path]; !ok {
					return nil
				}
			} else if !e.det.Candidate(c.path) {
				return nil
			}
			c.commit = cur
			if gen {
				h.gen[len(h.changes)] = true
			}
			h.changes = append(h.changes, c)
			where := "commit " + h.commits[cur].oid
			for _, oid := range [2]string{c.new, c.old} {
				if oid == "" {
					continue
				}
				if err := send(request{key: blobKey{oid: oid, path: c.path, gen: gen}, where: where}); err != nil {
					return err
				}
			}
			return nil
		})
	if parseErr != nil {
		stop()
	}
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case waitErr != nil && (parseErr == nil || stderr.Len() > 0):
		// git stopped on its own (a missing tree, a bad ref), and its
		// words say why better than the truncated output does.
		return e.repo.gitError(ctx, "listing history", waitErr, stderr.Bytes())
	case parseErr != nil:
		return &Error{Repo: e.repo.path, Op: "listing history", Detail: parseErr.Error(), Err: ErrCorrupt}
	}
	return nil
}

// collectInputs gathers the secretGenerator inputs of every kustomization
// scanned so far into e.inputs, and returns their paths, sorted.
func (e *engine) collectInputs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[string]map[gitscan.GeneratorInput]bool{}
	for _, r := range e.results {
		for _, in := range r.inputs {
			if seen[in.Path] == nil {
				seen[in.Path] = map[gitscan.GeneratorInput]bool{}
			}
			if !seen[in.Path][in] {
				seen[in.Path][in] = true
				e.inputs[in.Path] = append(e.inputs[in.Path], in)
			}
		}
	}
	paths := make([]string, 0, len(e.inputs))
	for p, ins := range e.inputs {
		paths = append(paths, p)
		// Map order must not leak into which generator a leak names.
		sort.Slice(ins, func(i, j int) bool { return lessInput(ins[i], ins[j]) })
	}
	sort.Strings(paths)
	return paths
}

func lessInput(a, b gitscan.GeneratorInput) bool {
	switch {
	case a.Generator != b.Generator:
		return a.Generator.Less(b.Generator)
	case a.Kind != b.Kind:
		return a.Kind < b.Kind
	default:
		return a.Key < b.Key
	}
}

// pathLeak is a value's identity at a path.
type pathLeak struct {
	path string
	gen  bool
	id   leakID
}

// introduction is where a value first appeared.
type introduction struct {
	commit int32
	leak   *gitscan.Leak
}

// attribute finds, for every value, the oldest commit adding it to its
// path (largest walk number) and the newest commit dropping it (smallest).
// A commit adds a value when its new blob holds it and its old blob (the
// first parent's) does not, and drops it the other way round.
func attribute(h *history, e *engine) (intro map[pathLeak]introduction, removed map[pathLeak]int32) {
	intro = map[pathLeak]introduction{}
	removed = map[pathLeak]int32{}
	for i, c := range h.changes {
		gen := h.gen[i]
		var oldRes, newRes *blobResult
		if c.old != "" {
			oldRes = e.result(blobKey{oid: c.old, path: c.path, gen: gen})
		}
		if c.new != "" {
			newRes = e.result(blobKey{oid: c.new, path: c.path, gen: gen})
		}
		if newRes != nil {
			for j := range newRes.leaks {
				l := &newRes.leaks[j]
				id := idOf(l)
				if oldRes.find(id) != nil {
					continue
				}
				k := pathLeak{path: c.path, gen: gen, id: id}
				if cur, ok := intro[k]; !ok || c.commit > cur.commit {
					intro[k] = introduction{commit: c.commit, leak: l}
				}
			}
		}
		if oldRes != nil {
			for j := range oldRes.leaks {
				id := idOf(&oldRes.leaks[j])
				if newRes.find(id) != nil {
					continue
				}
				k := pathLeak{path: c.path, gen: gen, id: id}
				if cur, ok := removed[k]; !ok || c.commit < cur {
					removed[k] = c.commit
				}
			}
		}
	}
	return intro, removed
}

// historyProblems reports each scanned version's problems once, at the
// oldest walked commit whose diff brings that version in. A version only
// ever seen as an old blob (before a Since range, or a shallow boundary)
// is outside what was asked for and reports nothing.
func historyProblems(h *history, e *engine) []Problem {
	first := map[blobKey]int32{}
	for i, c := range h.changes {
		if c.new == "" {
			continue
		}
		k := blobKey{oid: c.new, path: c.path, gen: h.gen[i]}
		if cur, ok := first[k]; !ok || c.commit > cur {
			first[k] = c.commit
		}
	}
	var out []Problem
	for k, n := range first {
		for _, p := range e.result(k).problemsOrNil() {
			out = append(out, Problem{Path: k.path, Commit: h.commits[n].oid, Line: p.Line, Message: p.Message})
		}
	}
	return out
}

func (b *blobResult) problemsOrNil() []gitscan.Problem {
	if b == nil {
		return nil
	}
	return b.problems
}
