package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/gitscan"
	"github.com/keyhole-sec/keyhole/internal/source/git"
)

// gitOptions are audit's flags for plaintext Secrets in a git repository.
type gitOptions struct {
	path        string
	history     bool
	since       string
	branches    string
	staged      bool
	hashKeyFile string
	correlate   bool
	// flags is where addFlags registered them; nil for a command that
	// takes no git flags (explain), which never reads a repository.
	flags *pflag.FlagSet
}

// maxHashKeyFile bounds what --hash-key-file reads: a key, not a file of
// data.
const maxHashKeyFile = 64 << 10

func (o *gitOptions) addFlags(f *pflag.FlagSet) {
	o.flags = f
	f.StringVar(&o.path, "git", "", "git repository to scan for plaintext Secret values (its whole history by default); alone, it is all that is audited")
	f.BoolVar(&o.history, "git-history", true, "with --git: scan every commit; false scans the working tree's files as they are on disk")
	f.StringVar(&o.since, "since", "", "with --git: scan only the commits not reachable from this revision (e.g. origin/main), and report the values they introduced")
	f.StringVar(&o.branches, "branches", string(git.BranchesAll), "with --git: the commits scanned, all (reachable from any ref) or current (reachable from HEAD)")
	f.BoolVar(&o.staged, "staged", false, "with --git: scan the index, what the next commit will hold, instead of history (for a pre-commit hook)")
	f.StringVar(&o.hashKeyFile, "hash-key-file", "", fmt.Sprintf("with --git: a file of at least %d bytes, the HMAC key under which each leaked value gets a valueHash; without it, no hash of a value is printed", gitscan.MinKeyLen))
	f.BoolVar(&o.correlate, "correlate", false, "with --git and a live cluster: read the live Secrets' values (needs get and list on secrets) and flag each Secret whose current value is in the repository (KH412)")
}

// check rejects git flags that cannot apply.
func (o *gitOptions) check(manifests bool) error {
	if o.flags == nil {
		return nil
	}
	if o.path == "" {
		// Changed also covers a flag set from its KEYHOLE_ variable.
		for _, name := range []string{"git-history", "since", "branches", "staged", "hash-key-file", "correlate"} {
			if o.flags.Changed(name) {
				return usageError("--%s needs --git PATH", name)
			}
		}
		return nil
	}
	switch {
	case o.branches != string(git.BranchesAll) && o.branches != string(git.BranchesCurrent):
		return usageError("--branches: %q is neither %s nor %s", o.branches, git.BranchesAll, git.BranchesCurrent)
	case o.staged && o.since != "":
		return usageError("--staged scans the index, which has no commits: it cannot be combined with --since")
	case o.since != "" && !o.history:
		return usageError("--since limits the history scan: it cannot be combined with --git-history=false")
	case o.correlate && manifests:
		return usageError("--correlate compares the live Secrets' values with the repository: it needs a live cluster, not --manifests")
	}
	return nil
}

// key returns the HMAC key of the run: the operator's, read from
// --hash-key-file, or random bytes that never leave this process, so
// that no digest a report could print is ever unkeyed or guessable.
func (o *gitOptions) key() (key []byte, operator bool, err error) {
	if o.hashKeyFile == "" {
		key, err = gitscan.NewRandomKey()
		if err != nil {
			return nil, false, &exitError{code: ExitError, err: fmt.Errorf("drawing a random HMAC key: %w", err)}
		}
		return key, false, nil
	}
	f, err := os.Open(o.hashKeyFile)
	if err != nil {
		return nil, false, usageError("--hash-key-file: %v", err)
	}
	defer func() { _ = f.Close() }() // read-only
	key, err = io.ReadAll(io.LimitReader(f, maxHashKeyFile+1))
	switch {
	case err != nil:
		return nil, false, usageError("--hash-key-file %s: %v", o.hashKeyFile, err)
	case len(key) > maxHashKeyFile:
		return nil, false, usageError("--hash-key-file %s: over %d KiB: not a key", o.hashKeyFile, maxHashKeyFile>>10)
	case len(key) < gitscan.MinKeyLen:
		return nil, false, usageError("--hash-key-file %s: the key is %d bytes, at least %d are needed (head -c 32 /dev/urandom > %s)", o.hashKeyFile, len(key), gitscan.MinKeyLen, o.hashKeyFile)
	}
	return key, true, nil
}

// scan reads the repository as the flags say, drawing progress on stderr
// when it is a terminal. Its errors carry exit 2 and name the repository.
func (o *gitOptions) scan(ctx context.Context, g *globals, key []byte, operator bool) (*analysis.GitInput, error) {
	opts := audit.GitOptions{
		Options: git.Options{
			History:  o.history && !o.staged,
			Since:    o.since,
			Branches: git.Branches(o.branches),
			Staged:   o.staged,
			Progress: git.NewProgressRenderer(g.stderr, showProgress(g)),
		},
		Key:         key,
		OperatorKey: operator,
	}
	in, err := audit.Git(ctx, o.path, opts)
	if err != nil {
		var ge *git.Error
		if errors.As(err, &ge) || ctx.Err() != nil {
			return nil, &exitError{code: ExitError, err: err}
		}
		return nil, &exitError{code: ExitError, err: fmt.Errorf("--git %s: %w", o.path, err)}
	}
	g.logger.Debug("git repository scanned", "repo", in.Result.Repo, "read", in.Result.Origin,
		"commits", in.Result.Commits, "blobs", in.Result.Blobs, "findings", len(in.Result.Findings))
	return in, nil
}

// showProgress draws the progress line only for a person watching a
// terminal: never with --quiet, in CI, or when stderr is not a tty.
func showProgress(g *globals) bool {
	return !g.quiet && os.Getenv("CI") == "" && git.IsTerminal(g.stderr)
}
