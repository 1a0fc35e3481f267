package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNotRepository is wrapped by the error Scan returns when the path is
// not inside a git repository at all.
var ErrNotRepository = errors.New("not a git repository")

// ErrCorrupt is wrapped by the error Scan returns when git could not read
// the repository: a missing object, a broken HEAD or ref, a truncated pack.
var ErrCorrupt = errors.New("repository cannot be read")

// Error is every error Scan returns about the repository. Its message is
// one line naming the repository, what was being done and what git said;
// it never holds file content.
type Error struct {
	Repo   string // the path as given, made absolute
	Op     string // what keyhole was doing, e.g. "listing history"
	Detail string // git's own message (one line), or keyhole's
	Err    error  // ErrNotRepository, ErrCorrupt, or the underlying error
}

func (e *Error) Error() string {
	return fmt.Sprintf("git repository %s: %s: %s", e.Repo, e.Op, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// repo runs git against one repository, isolated from the user's and the
// system's git configuration so that aliases, pagers, external diff
// drivers, fsmonitor hooks or a different quoting never change what is
// read, and from any GIT_* variable inherited from a hook or a shell.
type repo struct {
	path string   // absolute path as given; error messages name it
	dir  string   // where git runs: path, then the work tree's top level
	env  []string // the environment every git process gets
}

func newRepo(path string, keepIndexFile bool) (*repo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{Repo: path, Op: "resolving the path", Detail: err.Error(), Err: err}
	}
	return &repo{path: abs, dir: abs, env: gitEnv(os.Environ(), keepIndexFile)}, nil
}

// gitEnv drops every GIT_* variable of the caller's environment (a
// pre-commit hook exports GIT_DIR and friends, which would redirect git to
// another repository) and adds the isolation. GIT_INDEX_FILE is kept when
// asked for: in a hook of `git commit -a` or `git commit PATH` it names the
// index that is about to be committed, which is what --staged must read.
func gitEnv(environ []string, keepIndexFile bool) []string {
	env := make([]string, 0, len(environ)+8)
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GIT_") && (!keepIndexFile || !strings.HasPrefix(kv, "GIT_INDEX_FILE=")) {
			continue
		}
		if strings.HasPrefix(kv, "LC_ALL=") || strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LANGUAGE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		// Reading must not take the index lock or rewrite the index:
		// keyhole may run next to a user's git, or on a read-only mount.
		"GIT_OPTIONAL_LOCKS=0",
		// Paths given on the command line are file names, never pathspec
		// magic such as ":(exclude)".
		"GIT_LITERAL_PATHSPECS=1",
		// A partial clone would otherwise fetch every missing blob from
		// the network, one round trip each (git 2.44 and later).
		"GIT_NO_LAZY_FETCH=1",
		// refs/replace can hide a commit behind another: history is
		// read as stored, not as it has been made to look.
		"GIT_NO_REPLACE_OBJECTS=1",
		"LC_ALL=C",
	)
}

// baseArgs come before every subcommand: no pager, paths printed as bytes
// rather than C-quoted, and the settings of the repository's own
// configuration (the one the isolation cannot drop) that would run a
// program or change what git log prints: an fsmonitor hook, gpg for every
// commit, --follow turned on for a single path.
var baseArgs = []string{
	"--no-pager",
	"-c", "core.quotepath=off",
	"-c", "core.fsmonitor=false",
	"-c", "log.showSignature=false",
	"-c", "log.follow=false",
	// A repository owned by another user is read all the same: a CI
	// checkout made by the runner's user, or a git-sync volume written
	// by the sidecar's. git refuses such a "dubious" repository because
	// its configuration could run programs, and the isolation above
	// leaves no user configuration in which to list it as safe; but what
	// keyhole runs (log, cat-file, ls-files, rev-parse) runs no program
	// the repository's configuration names once fsmonitor and signature
	// checks are off, no pager, hook, diff driver nor network helper.
	"-c", "safe.directory=*",
}

// command prepares a git command run in the repository.
func (r *repo) command(ctx context.Context, args ...string) *exec.Cmd {
	full := make([]string, 0, len(baseArgs)+2+len(args))
	full = append(full, "-C", r.dir)
	full = append(full, baseArgs...)
	full = append(full, args...)
	// G702: the program is always git and no shell is involved; the
	// arguments are this package's, plus the repository path (after -C)
	// and paths and hashes read from git itself. A user's revision is
	// only ever given to rev-parse after --end-of-options.
	cmd := exec.CommandContext(ctx, "git", full...) //nolint:gosec // G702: see above.
	cmd.Env = r.env
	return cmd
}

// output runs a short git command and returns its standard output. op
// names what was being done, for the error.
func (r *repo) output(ctx context.Context, op string, args ...string) ([]byte, error) {
	cmd := r.command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, r.gitError(ctx, op, err, stderr.Bytes())
	}
	return out, nil
}

// gitError turns a failed git run into an *Error carrying git's most
// telling line.
func (r *repo) gitError(ctx context.Context, op string, err error, stderr []byte) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		// git could not be started at all.
		return &Error{Repo: r.path, Op: op, Detail: err.Error(), Err: err}
	}
	detail := gitMessage(stderr)
	if detail == "" {
		detail = exitErr.String()
	}
	kind := ErrCorrupt
	if strings.Contains(detail, "not a git repository") {
		kind = ErrNotRepository
	}
	return &Error{Repo: r.path, Op: op, Detail: detail, Err: kind}
}

// gitMessage picks one line from git's standard error: the first "fatal:"
// line (the reason git stopped), else the first "error:" line, else the
// last non-empty line. git's own prefix is kept: it tells a reader that
// the words are git's.
func gitMessage(stderr []byte) string {
	lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
	for _, prefix := range []string{"fatal:", "error:"} {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(l)
			}
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}
