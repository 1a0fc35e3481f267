package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/config"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
)

// inputOptions are the flags that say what to analyse, manifests or a
// live cluster, and how. audit and explain share them, so that explain
// always explains what audit reports.
type inputOptions struct {
	manifests  []string
	kubeconfig string
	context    string
	secretsVia string
	analysis   analysisOptions
	// git is a repository to scan besides (or instead of) the above;
	// only audit registers its flags.
	git gitOptions
	// reads is the audit log summary keyhole serve stored, to add who
	// did read each Secret to a live audit.
	reads auditReadsOptions
}

// analysisOptions are the flags that change how the analysis runs. Every
// command that analyses (audit, audit diff, explain) takes them, so that a
// switch added here applies to all of them alike.
type analysisOptions struct {
	noBootstrap        bool
	maxDepth           int
	maxPaths           int
	podSecurityDefault string
}

func (o *inputOptions) addFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&o.manifests, "manifests", nil, "manifest file or directory to audit, or - for stdin (repeatable)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the live cluster to audit")
	f.StringVar(&o.context, "context", "", "kubeconfig context to use")
	f.StringVar(&o.secretsVia, "secrets-via", "table", "how to list live Secrets without their values: table (server-side Table, metadata only) or full (values dropped page by page)")
	_ = f.MarkHidden("secrets-via")
	o.analysis.addFlags(f)
	o.reads.addFlags(f)
}

func (o *analysisOptions) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.noBootstrap, "no-bootstrap-policy", false, "do not layer the embedded Kubernetes bootstrap RBAC policy under the manifests")
	o.addPathFlags(f)
}

// addPathFlags adds the flags of the indirect-path analysis alone, for
// serve, which never reads manifests.
func (o *analysisOptions) addPathFlags(f *pflag.FlagSet) {
	f.IntVar(&o.maxDepth, "max-depth", 0, fmt.Sprintf("longest chain of steps followed from a subject to a Secret, 1 to %d (default %d, or the config's paths.maxDepth)", config.MaxPathDepth, paths.DefaultMaxDepth))
	f.IntVar(&o.maxPaths, "max-paths", 0, fmt.Sprintf("budget of the indirect-path search, in recorded paths, about 20 bytes of memory each; past it only direct readers are reported (default %d, or the config's paths.maxPaths)", paths.DefaultMaxHits))
	f.StringVar(&o.podSecurityDefault, "pod-security-default", "", "Pod Security level of namespaces without a pod-security.kubernetes.io/enforce label: "+strings.Join(config.PodSecurityLevels, ", ")+" (default privileged, or the config's paths.podSecurityDefault)")
}

// stoppedError is the error of a command whose report's indirect-path
// search passed its budget: what it wrote holds direct readers only, so
// it must not pass a gate as if complete. what names the output ("the
// report"); nil when the search finished.
func stoppedError(what string, rep *report.Report) error {
	if !rep.Coverage.IndirectStopped {
		return nil
	}
	return &exitError{code: ExitError, err: fmt.Errorf("the indirect-path search passed its budget: %s holds direct readers only; a larger --max-paths (paths.maxPaths) lets it finish, a lower --max-depth shortens it", what)}
}

// checkAnalysis rejects out-of-range analysis flags.
func (o *analysisOptions) check() error {
	if o.maxDepth != 0 && (o.maxDepth < 1 || o.maxDepth > config.MaxPathDepth) {
		return usageError("--max-depth: must be from 1 to %d, not %d", config.MaxPathDepth, o.maxDepth)
	}
	if o.maxPaths < 0 {
		return usageError("--max-paths: must be positive, or 0 for the default, not %d", o.maxPaths)
	}
	if o.podSecurityDefault != "" && !contains(config.PodSecurityLevels, o.podSecurityDefault) {
		return usageError("--pod-security-default: %q is not a Pod Security level (want one of %s)", o.podSecurityDefault, strings.Join(config.PodSecurityLevels, ", "))
	}
	return nil
}

// offline are the options of reading manifests, with the config's
// ignored paths.
func (o *analysisOptions) offline(gt *gate, stdin io.Reader) audit.OfflineOptions {
	return audit.OfflineOptions{Stdin: stdin, NoBootstrap: o.noBootstrap, Ignore: gt.ignore()}
}

// options are the analysis options of one run: the flags' and the
// config's.
func (o *analysisOptions) options(gt *gate) audit.Options {
	opts := audit.Options{ToolVersion: Version}
	gt.apply(&opts)
	// Flags win over the config.
	if o.maxDepth != 0 {
		opts.MaxDepth = o.maxDepth
	}
	if o.maxPaths != 0 {
		opts.MaxPaths = o.maxPaths
	}
	if o.podSecurityDefault != "" {
		opts.PodSecurityDefault = o.podSecurityDefault
	}
	return opts
}

// checkFormat rejects a --format that is not one of formats.
func checkFormat(format string, formats []string) error {
	if !contains(formats, format) {
		return usageError("--format: unknown format %q (want one of %s)", format, strings.Join(formats, ", "))
	}
	return nil
}

// check rejects contradictory flags before anything is read.
func (o *inputOptions) check() error {
	if len(o.manifests) > 0 && (o.kubeconfig != "" || o.context != "") {
		return usageError("--manifests cannot be combined with --kubeconfig or --context: audit files or a cluster, not both")
	}
	if err := o.git.check(len(o.manifests) > 0); err != nil {
		return err
	}
	if err := o.reads.check(len(o.manifests) > 0); err != nil {
		return err
	}
	return o.analysis.check()
}

// live reports whether the live cluster is read: without --manifests,
// unless --git alone names what to audit; --kubeconfig, --context or
// --correlate add the cluster to a --git audit.
func (o *inputOptions) live() bool {
	if len(o.manifests) > 0 {
		return false
	}
	return o.git.path == "" || o.kubeconfig != "" || o.context != "" || o.git.correlate
}

// analyze checks the flags, loads the config (and baseline) of gopts, then
// reads the manifests, or the live cluster without --manifests, and
// analyses them with the config applied. Its errors carry exit 2.
func (o *inputOptions) analyze(ctx context.Context, g *globals, gopts *gateOptions, stdin io.Reader) (*report.Report, *gate, error) {
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	gt, err := gopts.load()
	if err != nil {
		return nil, nil, err
	}
	rep, err := o.read(ctx, g, gt, stdin)
	return rep, gt, err
}

func (o *inputOptions) read(ctx context.Context, g *globals, gt *gate, stdin io.Reader) (*report.Report, error) {
	var (
		in  analysis.Input
		cfg *rest.Config
		err error
	)
	// The repository first: a path that is not one fails before a cluster
	// is read.
	var gitIn *analysis.GitInput
	var key []byte
	if o.git.path != "" {
		var operator bool
		if key, operator, err = o.git.key(); err != nil {
			return nil, err
		}
		if gitIn, err = o.git.scan(ctx, g, key, operator); err != nil {
			return nil, err
		}
	}
	switch {
	case o.live():
		if cfg, err = cluster.RESTConfig(o.kubeconfig, o.context); err != nil {
			return nil, &exitError{code: ExitError, err: err}
		}
		in, err = audit.Live(ctx, cfg, cluster.Options{SecretsVia: o.secretsVia})
	case len(o.manifests) > 0:
		in, err = audit.Offline(o.manifests, o.analysis.offline(gt, stdin))
	default:
		in = audit.None()
	}
	if err != nil {
		return nil, &exitError{code: ExitError, err: err}
	}
	if gitIn != nil && o.git.correlate {
		problems, cerr := audit.Correlate(ctx, cfg, key, gitIn)
		if cerr != nil {
			return nil, &exitError{code: ExitError, err: cerr}
		}
		in.Problems = append(in.Problems, problems...)
	}
	in.Git = gitIn
	if o.reads.namespace != "" && cfg != nil {
		if in.Reads, err = o.reads.load(ctx, cfg); err != nil {
			return nil, &exitError{code: ExitError, err: err}
		}
	}
	g.logger.Debug("inventory built", "counts", in.Inventory.Counts())
	rep, err := audit.Analyze(in, o.analysis.options(gt))
	if err != nil {
		return nil, &exitError{code: ExitError, err: err}
	}
	return rep, nil
}

// sourceNames names what a report was read from, for messages: its
// manifest paths, cluster URL or git repository (the embedded bootstrap
// policy is implied).
func sourceNames(rep *report.Report) string {
	var names []string
	for _, s := range rep.Coverage.Sources {
		if s.Kind == "bootstrap" {
			continue
		}
		name := s.Kind
		if s.Target != "" {
			name += " " + s.Target
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return "no source"
	}
	return strings.Join(names, ", ")
}
