// Package git reads a git repository for plaintext Kubernetes Secret
// values: its whole history, its index (for a pre-commit hook) or its
// working tree. It owns the git plumbing (one `git log --raw` pass over
// the commits, one persistent `git cat-file --batch` for the blobs, every
// git process isolated from the user's configuration) and the attribution
// of each value found to commits: which commit first introduced it, which
// one removed it, whether HEAD still holds it. What counts as a leak is
// the Detector's business (internal/gitscan); this package never looks
// inside a file itself and never holds a value beyond the bytes it hands
// to the Detector: a Finding carries gitscan's Leak (key names and an HMAC
// digest), and no error, warning or problem quotes file content.
//
// Scan is the entry point. It reads, in order:
//
//  1. the commits (or the index, or the working tree's files), keeping
//     the paths gitscan.Candidate accepts, and scans each distinct blob
//     once, as the file at that path, on Options.Workers goroutines;
//  2. the files the kustomize secretGenerators of the kustomizations
//     found in step 1 read (envs and files), which may have any name;
//  3. HEAD's version of every path with a finding, to tell whether the
//     value is still there.
//
// A value's identity is (path, rule, object, key, digest): the same value
// under the same key of the same object in the same file. The line is not
// part of it, so a value that moves within its file stays one finding.
package git

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"time"

	"github.com/keyhole-sec/keyhole/internal/gitscan"
)

// Branches selects the commits a history scan walks.
type Branches string

const (
	// BranchesAll walks every commit reachable from any ref (branches,
	// tags, remote-tracking branches, the stash, notes, the refs/original
	// backups git filter-branch leaves) and from HEAD: git log --all.
	BranchesAll Branches = "all"
	// BranchesCurrent walks the commits reachable from HEAD.
	BranchesCurrent Branches = "current"
)

// DefaultMaxBlobSize is the largest blob read when Options.MaxBlobSize is
// 0: gitscan's own limit, so that a file gitscan would refuse is skipped
// (with a Problem) before it is read into memory rather than after.
const DefaultMaxBlobSize = gitscan.MaxBlobSize

// Options says what Scan reads. The zero value scans the working tree.
type Options struct {
	// History scans the commits. When false (and Staged is false), the
	// working tree is scanned instead: the files git tracks plus the
	// untracked files .gitignore does not exclude, as they are on disk.
	History bool
	// Since, with History, walks only the commits not reachable from
	// this revision (git's REV..), and reports only the values such a
	// commit introduced. Any revision git understands.
	Since string
	// Branches is BranchesAll (also when empty) or BranchesCurrent.
	Branches Branches
	// Staged scans the index instead of history or the working tree:
	// what the next commit would hold, for a pre-commit hook. It cannot
	// be combined with History or Since. A GIT_INDEX_FILE set by the
	// calling hook is honoured.
	Staged bool
	// Workers is the number of goroutines running the Detector; 0 means
	// GOMAXPROCS.
	Workers int
	// MaxBlobSize is the largest file read, in bytes; 0 means
	// DefaultMaxBlobSize.
	MaxBlobSize int64
	// Progress, when set, is called from one goroutine a few times a
	// second while Scan runs, and once more with Done set at the end.
	// NewProgressRenderer draws it on a terminal.
	Progress func(Progress)
}

// Origin says where a Finding was read.
type Origin string

// Origins.
const (
	OriginHistory  Origin = "history"
	OriginIndex    Origin = "index"
	OriginWorkTree Origin = "worktree"
)

// Finding is one leaked value at one path.
//
// History attribution, over the commits walked:
//   - Commit is the oldest commit whose first-parent diff adds the value
//     at Path (its new blob holds the value, its old blob did not); Leak
//     (and so Leak.Line) is as found in that commit's blob. A value added
//     on a branch and merged is attributed to the branch's commit; a value
//     added while resolving a merge, to the merge commit. A renamed file
//     is read at its new path, and the rename commit introduces its values
//     there; the old path keeps its own finding, removed by the rename.
//   - PresentAtHead says that HEAD's version of Path holds the value.
//   - RemovedIn, when the value is not at HEAD, is the newest commit whose
//     first-parent diff drops it from Path (a merge that brings a branch's
//     deletion in counts, being newer than the branch's commit). It is ""
//     when no walked commit dropped it: with BranchesAll, the value then
//     lives on a ref other than HEAD; with Since, it may have been dropped
//     before the range.
//
// For the index and the working tree, Commit and RemovedIn are "", and
// PresentAtHead says that the value is already committed at HEAD at the
// same path, so that a pre-commit hook can tell what this commit adds.
type Finding struct {
	Leak   gitscan.Leak
	Path   string // slash-separated, relative to the repository's top level
	Origin Origin
	// Commit is the introducing commit's full hash; CommitTime its
	// committer date.
	Commit        string
	CommitTime    time.Time
	PresentAtHead bool
	RemovedIn     string
}

// Problem is one file that could not be scanned, or scanned only in part
// (a document that does not parse, a binary or oversized blob). It never
// holds file content.
type Problem struct {
	Path string
	// Commit is the oldest walked commit holding this version of the
	// file; "" for the index and the working tree.
	Commit  string
	Line    int
	Message string
}

func (p Problem) String() string {
	loc := p.Path
	if p.Commit != "" {
		loc += "@" + shortOID(p.Commit)
	}
	if p.Line > 0 {
		loc += fmt.Sprintf(":%d", p.Line)
	}
	return loc + ": " + p.Message
}

// Result is what Scan read and found.
type Result struct {
	// Repo is the repository's top level (its git directory when bare).
	Repo string
	// Head is HEAD's commit, "" when the repository has no commit yet.
	Head string
	// Origin is what was read: history, index or worktree.
	Origin Origin
	// Shallow is set for a shallow clone; Warnings then says so.
	Shallow bool
	// Findings are sorted by path, line, key, commit (then rule, object
	// and digest), so that the same repository gives the same list.
	Findings []Finding
	// Problems are sorted by path, commit hash, line and message.
	Problems []Problem
	// Warnings say why the result may be incomplete: a shallow clone, a
	// repository without commits. They are for people, one line each.
	Warnings []string
	// Commits is the number of commits walked; Blobs the number of
	// distinct file versions read (including skipped ones).
	Commits int
	Blobs   int
}

// Scan reads the repository at path (its top level, a directory inside
// its work tree, or a bare repository's directory) as opts says and
// reports the values det finds. From a subdirectory, the whole repository
// is read all the same, and paths stay relative to its top level. Every error is an *Error naming the
// repository and carrying git's one-line message; errors.Is tells
// ErrNotRepository (no repository there) from ErrCorrupt (a repository
// git cannot read: a missing object, a broken HEAD). A context
// cancellation is returned as ctx.Err(). A repository without commits is
// not an error: its history holds nothing, and a warning says so.
func Scan(ctx context.Context, path string, det Detector, opts Options) (*Result, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	r, err := newRepo(path, opts.Staged)
	if err != nil {
		return nil, err
	}
	l, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{Repo: l.top, Head: l.head, Shallow: l.shallow}
	if l.bare {
		res.Repo = r.path
	}
	if l.shallow && opts.History && !opts.Staged {
		res.Warnings = append(res.Warnings, "shallow clone: history before the clone's depth is missing, so values older than it are attributed to the oldest commits present")
	}
	e := newEngine(r, det, opts)
	stop := e.progress.start(opts.Progress)
	defer stop()
	switch {
	case opts.Staged:
		res.Origin = OriginIndex
		err = e.scanIndex(ctx, l, res)
	case opts.History:
		res.Origin = OriginHistory
		err = e.scanHistory(ctx, l, res)
	default:
		if l.bare {
			return nil, &Error{Repo: r.path, Op: "reading the working tree", Detail: "a bare repository has no working tree", Err: ErrNotRepository}
		}
		res.Origin = OriginWorkTree
		err = e.scanWorkTree(ctx, l, res)
	}
	if err != nil {
		return nil, err
	}
	res.Blobs = int(e.progress.blobs.Load())
	res.Commits = int(e.progress.commits.Load())
	sortFindings(res.Findings)
	sortProblems(res.Problems)
	return res, nil
}

func (o *Options) validate() error {
	switch o.Branches {
	case "":
		o.Branches = BranchesAll
	case BranchesAll, BranchesCurrent:
	default:
		return fmt.Errorf("git: branches must be %q or %q, not %q", BranchesAll, BranchesCurrent, o.Branches)
	}
	if o.Staged && (o.History || o.Since != "") {
		return fmt.Errorf("git: the index (staged) scan cannot be combined with a history scan or a since revision")
	}
	if o.Since != "" && !o.History {
		return fmt.Errorf("git: a since revision needs a history scan")
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.MaxBlobSize <= 0 {
		o.MaxBlobSize = DefaultMaxBlobSize
	}
	return nil
}

func sortFindings(fs []Finding) {
	sort.Slice(fs, func(i, j int) bool {
		a, b := &fs[i], &fs[j]
		switch {
		case a.Path != b.Path:
			return a.Path < b.Path
		case a.Leak.Line != b.Leak.Line:
			return a.Leak.Line < b.Leak.Line
		case a.Leak.Key != b.Leak.Key:
			return a.Leak.Key < b.Leak.Key
		case a.Commit != b.Commit:
			return a.Commit < b.Commit
		case a.Leak.Rule != b.Leak.Rule:
			return a.Leak.Rule < b.Leak.Rule
		case a.Leak.Object != b.Leak.Object:
			return a.Leak.Object.Less(b.Leak.Object)
		default:
			return string(a.Leak.Digest) < string(b.Leak.Digest)
		}
	})
}

func sortProblems(ps []Problem) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := &ps[i], &ps[j]
		switch {
		case a.Path != b.Path:
			return a.Path < b.Path
		case a.Commit != b.Commit:
			return a.Commit < b.Commit
		case a.Line != b.Line:
			return a.Line < b.Line
		default:
			return a.Message < b.Message
		}
	})
}

func shortOID(oid string) string {
	if len(oid) > 12 {
		return oid[:12]
	}
	return oid
}
