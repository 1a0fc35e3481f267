package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/gitscan"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/source/git"
)

// DefaultGitInterval is how often a mounted repository is checked for
// new commits.
const DefaultGitInterval = 10 * time.Minute

// repoNameRE is what a repository's name may be: it is a metric label, so
// a short identifier, never a path or a URL.
var repoNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// Git configures the scan of a repository mounted into the pod (by the
// git-sync sidecar, usually).
type Git struct {
	// Path is the repository's directory.
	Path string
	// Name is the repository's short name, the repo label of
	// keyhole_git_plaintext_secrets: never the path or the remote's URL.
	Name string
	// Interval is how often the repository is checked for new commits;
	// DefaultGitInterval when 0.
	Interval time.Duration
	// Correlate compares the live Secrets' current values with the
	// repository at every interval (KH412, as keyhole audit --correlate):
	// a LIST of every Secret with its data, each value hashed as its page
	// arrives under the scan's key and dropped, nothing kept but digests.
	Correlate bool
}

func (g Git) withDefaults() (Git, error) {
	if g.Path == "" {
		return g, errors.New("--git-repo: no path")
	}
	if !repoNameRE.MatchString(g.Name) {
		return g, fmt.Errorf("--git-repo-name %q: want a short lower-case name (letters, digits, '.', '_', '-'), not a path or URL", g.Name)
	}
	if g.Interval <= 0 {
		g.Interval = DefaultGitInterval
	}
	// A path whose directory is not there at all is a typo: fail at
	// start. The path itself may not exist yet (git-sync links it after
	// its first clone), nor be a repository yet: it is retried every
	// interval, and said once.
	if info, err := os.Stat(filepath.Dir(filepath.Clean(g.Path))); err != nil || !info.IsDir() {
		return g, fmt.Errorf("--git-repo %s: its directory %s does not exist", g.Path, filepath.Dir(filepath.Clean(g.Path)))
	}
	return g, nil
}

// gitLoop scans the repository's whole history at once, then every
// interval when its refs moved, and hands each scan to the analysis. A
// scan reads every commit again rather than only the new ones: whether a
// value is still at HEAD, and which commit removed it, can change for any
// value, old ones included, and a history scan is seconds even for tens of
// thousands of commits (benchmarks.md). An unchanged repository costs one
// `git for-each-ref` (git.RefsState). A failed scan keeps the previous one and is logged;
// the analysis then says nothing new about the repository until a scan
// succeeds.
func (d *daemon) gitLoop(ctx context.Context) {
	cfg := d.opts.Git
	// Values are told apart by HMAC under a key that never leaves this
	// process, so no digest is ever exported.
	key, err := gitscan.NewRandomKey()
	if err != nil {
		d.log.Error("no random key for the git scan; the repository is not scanned", "err", err)
		return
	}
	last := ""
	failing := false
	var scanned *analysis.GitInput
	corr := &correlation{}
	for {
		state, err := git.RefsState(ctx, cfg.Path)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				d.log.Error("cannot read the git repository; its last scan stands", "repo", cfg.Name, "err", err)
			}
			failing = true
		case state != last:
			start := time.Now()
			in, err := audit.Git(ctx, cfg.Path, audit.GitOptions{
				Options: git.Options{History: true, Branches: git.BranchesAll},
				Key:     key,
			})
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				if !failing {
					d.log.Error("git scan failed; its last scan stands", "repo", cfg.Name, "err", err)
				}
				failing = true
				break
			}
			if failing {
				d.log.Info("git repository readable again", "repo", cfg.Name)
			}
			failing = false
			last = state
			in.Target = cfg.Name
			scanned = in
			d.log.Info("git history scanned", "repo", cfg.Name, "commits", in.Result.Commits, "blobs", in.Result.Blobs,
				"findings", len(in.Result.Findings), "took", time.Since(start).Round(time.Millisecond))
			if !cfg.Correlate {
				d.git.Store(in)
				d.markChanged()
			}
		}
		if cfg.Correlate && scanned != nil {
			if d.correlate(ctx, key, scanned, corr) {
				d.markChanged()
			}
			if ctx.Err() != nil {
				return
			}
		}
		// A repository that cannot be read yet (git-sync's first clone
		// still running) is tried again soon, not an interval later.
		wait := cfg.Interval
		if failing {
			wait = min(wait, gitRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// gitRetry is how soon a repository that could not be read is tried again.
const gitRetry = 15 * time.Second

// correlation is what the last correlation saw: the scan it joined and
// the live digests, so that an unchanged cluster and repository cost no
// analysis, and whether the last LIST failed, so that a failure is logged
// once.
type correlation struct {
	scan    *analysis.GitInput
	values  map[inventory.Ref]map[string][]byte
	failing bool
}

// correlate lists the live Secrets' values, hashed under key, and stores
// the scan joined with them. It reports whether that changed anything. A
// failed LIST (forbidden, the apiserver away) keeps the last correlation
// and is logged once, with what to grant.
func (d *daemon) correlate(ctx context.Context, key []byte, scan *analysis.GitInput, c *correlation) bool {
	values, problems, err := cluster.SecretValueDigests(ctx, d.opts.Config, audit.ValueDigest(key))
	if err == nil && len(problems) > 0 {
		err = errors.New(problems[0].Message)
	}
	if err != nil {
		if ctx.Err() == nil && !c.failing {
			d.log.Error("cannot read the live Secrets' values to correlate them with git (needs list on secrets); the last correlation stands", "err", err)
		}
		c.failing = true
		if c.scan == nil { // never correlated: the scan alone
			c.scan = scan
			d.git.Store(scan)
			return true
		}
		return false
	}
	if c.failing {
		d.log.Info("live Secret values readable again; correlating with git")
	}
	c.failing = false
	if c.scan == scan && maps.EqualFunc(c.values, values, func(a, b map[string][]byte) bool {
		return maps.EqualFunc(a, b, bytes.Equal)
	}) {
		return false
	}
	joined := *scan
	joined.LiveValues = values
	c.scan, c.values = scan, values
	d.git.Store(&joined)
	return true
}

// gitInput is the latest scan, or nil.
func (d *daemon) gitInput() *analysis.GitInput { return d.git.Load() }
