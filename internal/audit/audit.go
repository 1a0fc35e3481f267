// Package audit wires the sources to the analysis for one-shot audits: an
// offline audit of manifests layered over the embedded bootstrap policy,
// or a live audit of a cluster, and the scan of a git repository that
// either may add (or that stands alone), with its correlation with the
// live Secrets' values. The CLI and the integration tests share it,
// so that what the tests prove is what users run.
package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"time"

	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/bootstrap"
	"github.com/keyhole-sec/keyhole/internal/encryption"
	"github.com/keyhole-sec/keyhole/internal/environment"
	"github.com/keyhole-sec/keyhole/internal/exposure"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/gitscan"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/source/git"
	"github.com/keyhole-sec/keyhole/internal/source/manifests"
	"github.com/keyhole-sec/keyhole/internal/workload"
)

// OfflineOptions configure an offline audit.
type OfflineOptions struct {
	Stdin io.Reader
	// NoBootstrap leaves the embedded bootstrap policy out.
	NoBootstrap bool
	// Ignore, when set, names manifest files not to read inside
	// directories (the config's ignore.paths); see manifests.Options.
	Ignore func(path string) bool
}

// Offline reads manifests into an analysis input. Aggregated ClusterRoles
// get the rules their selectors compute, as the controller would store.
func Offline(paths []string, opts OfflineOptions) (analysis.Input, error) {
	b := inventory.NewBuilder()
	in := analysis.Input{Aggregation: rbac.AggregationComputed}
	if !opts.NoBootstrap {
		counts, err := bootstrap.AddTo(b)
		if err != nil {
			return in, err
		}
		in.Coverage = append(in.Coverage, source.Coverage{Kind: "bootstrap",
			Target: "Kubernetes " + bootstrap.KubernetesVersion + " bootstrap RBAC policy", Objects: counts})
	}
	covs, problems := manifests.Load(paths, b, manifests.Options{Stdin: opts.Stdin, Ignore: opts.Ignore})
	in.Coverage = append(in.Coverage, covs...)
	in.Problems = append(in.Problems, problems...)
	in.Inventory = b.Build()
	return in, nil
}

// Live reads a cluster into an analysis input. Aggregated ClusterRoles keep
// their stored rules, which is what the authorizer uses. It also reads the
// API server's /metrics for encryption at rest; a /metrics that cannot be
// read makes that unknown (KH603), not an input error. The error is
// non-nil only when the cluster cannot be read at all.
func Live(ctx context.Context, cfg *rest.Config, opts cluster.Options) (analysis.Input, error) {
	b := inventory.NewBuilder()
	cov, problems, err := cluster.Load(ctx, cfg, b, opts)
	if err != nil {
		return analysis.Input{}, err
	}
	in := LiveInput(b, cov, problems)
	st := encryption.Read(ctx, cfg)
	in.Encryption = &st
	return in, nil
}

// LiveInput makes the analysis input of a cluster read into b, by a LIST
// (Live) or from informers (keyhole serve), so that both analyse alike.
func LiveInput(b *inventory.Builder, cov source.Coverage, problems []source.Problem) analysis.Input {
	return analysis.Input{
		Inventory:   b.Build(),
		Coverage:    []source.Coverage{cov},
		Problems:    problems,
		Aggregation: rbac.AggregationStored,
	}
}

// None is the analysis input of an audit that reads no manifests and no
// cluster: a git repository alone (keyhole audit --git PATH).
func None() analysis.Input {
	return analysis.Input{Inventory: inventory.NewBuilder().Build(), Aggregation: rbac.AggregationComputed}
}

// GitOptions configure the scan of a git repository.
type GitOptions struct {
	git.Options
	// Key identifies values (gitscan.NewScanner): the operator's key, or
	// random bytes held only for this run. At least gitscan.MinKeyLen
	// bytes.
	Key []byte
	// OperatorKey says Key is the operator's, so that the report may
	// print digests under it (valueHash).
	OperatorKey bool
}

// Git scans the repository at path for plaintext Secret values. Its errors
// are those of git.Scan: an *git.Error naming the repository, a usage
// error in opts, or ctx's.
func Git(ctx context.Context, path string, opts GitOptions) (*analysis.GitInput, error) {
	res, err := git.Scan(ctx, path, git.NewDetector(gitscan.NewScanner(opts.Key)), opts.Options)
	if err != nil {
		return nil, err
	}
	return &analysis.GitInput{Target: path, Branches: opts.Branches, Since: opts.Since, Result: res, ValueHashes: opts.OperatorKey}, nil
}

// ValueDigest is the identity gitscan gives a value: HMAC-SHA256 under
// key. The live values are hashed with it, so that they compare with what
// the repository holds without either being kept.
func ValueDigest(key []byte) func([]byte) []byte {
	key = append([]byte(nil), key...)
	return func(v []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(v)
		return m.Sum(nil)
	}
}

// Correlate reads the digests of the live Secrets' current values under
// key into g, for KH412 (cluster.SecretValueDigests: this reads every
// Secret's values, and needs get and list on Secrets). A LIST that fails
// is returned as a problem, and g is left without live values.
func Correlate(ctx context.Context, cfg *rest.Config, key []byte, g *analysis.GitInput) ([]source.Problem, error) {
	values, problems, err := cluster.SecretValueDigests(ctx, cfg, ValueDigest(key))
	if err != nil {
		return nil, err
	}
	g.LiveValues = values
	return problems, nil
}

// Options configure the analysis of an audit.
type Options struct {
	ToolVersion string
	// Expected adds subjects to the expected readers; the control-plane
	// identities of the bootstrap policy are always expected.
	Expected []rbac.Subject
	// ManyPrincipals overrides exposure.DefaultManyPrincipals when
	// positive.
	ManyPrincipals int
	// Rules overrides catalog rules by id (the config file's rules).
	Rules map[string]finding.Override
	// Suppress suppresses findings no annotation does (the baseline).
	Suppress func(report.Finding) *report.Suppressed
	// Now is the time of the audit, against which Secret staleness is
	// judged; the current time when zero.
	Now time.Time
	// StaleAfter is the age of a Secret's last data write beyond which it
	// is stale; workload.DefaultStaleAfter when zero.
	StaleAfter time.Duration
	// MaxDepth bounds indirect paths, in steps; paths.DefaultMaxDepth when
	// zero.
	MaxDepth int
	// MaxPaths is the indirect-path search's budget, in recorded paths;
	// paths.DefaultMaxHits when zero.
	MaxPaths int
	// PodSecurityDefault is the Pod Security level of namespaces without
	// the enforce label; privileged when empty.
	PodSecurityDefault string
	// Environments are the config's environments, lowest first, for
	// cross-environment exposure (KH610); none when empty.
	Environments []environment.Environment
}

// Analyze runs the analysis with keyhole's defaults.
func Analyze(in analysis.Input, opts Options) (*report.Report, error) {
	aopts, err := AnalysisOptions(opts)
	if err != nil {
		return nil, err
	}
	return analysis.Run(in, aopts), nil
}

// AnalysisOptions are the options Analyze runs the analysis with, for a
// caller that runs it in stages (keyhole serve reuses the access stage).
func AnalysisOptions(opts Options) (analysis.Options, error) {
	expected, err := bootstrap.ControlPlaneSubjects()
	if err != nil {
		return analysis.Options{}, err
	}
	for _, s := range opts.Expected {
		expected[s] = true
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	return analysis.Options{
		Exposure:     exposure.Options{Expected: expected, ManyPrincipals: opts.ManyPrincipals},
		ToolVersion:  opts.ToolVersion,
		Rules:        opts.Rules,
		Suppress:     opts.Suppress,
		Workload:     workload.Options{Now: now, StaleAfter: opts.StaleAfter},
		Paths:        paths.Options{MaxDepth: opts.MaxDepth, MaxHits: opts.MaxPaths, PodSecurityDefault: opts.PodSecurityDefault},
		Environments: opts.Environments,
	}, nil
}
