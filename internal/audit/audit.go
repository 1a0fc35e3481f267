// Package audit wires the sources to the analysis for one-shot audits: an
// offline audit of manifests layered over the embedded bootstrap policy,
// or a live audit of a cluster. The CLI and the integration tests share it,
// so that what the tests prove is what users run.
package audit

import (
	"context"
	"io"
	"time"

	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/bootstrap"
	"github.com/keyhole-sec/keyhole/internal/exposure"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
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
// their stored rules, which is what the authorizer uses. The error is
// non-nil only when the cluster cannot be read at all.
func Live(ctx context.Context, cfg *rest.Config, opts cluster.Options) (analysis.Input, error) {
	b := inventory.NewBuilder()
	cov, problems, err := cluster.Load(ctx, cfg, b, opts)
	if err != nil {
		return analysis.Input{}, err
	}
	return analysis.Input{
		Inventory:   b.Build(),
		Coverage:    []source.Coverage{cov},
		Problems:    problems,
		Aggregation: rbac.AggregationStored,
	}, nil
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
	// PodSecurityDefault is the Pod Security level of namespaces without
	// the enforce label; privileged when empty.
	PodSecurityDefault string
}

// Analyze runs the analysis with keyhole's defaults.
func Analyze(in analysis.Input, opts Options) (*report.Report, error) {
	expected, err := bootstrap.ControlPlaneSubjects()
	if err != nil {
		return nil, err
	}
	for _, s := range opts.Expected {
		expected[s] = true
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	return analysis.Run(in, analysis.Options{
		Exposure:    exposure.Options{Expected: expected, ManyPrincipals: opts.ManyPrincipals},
		ToolVersion: opts.ToolVersion,
		Rules:       opts.Rules,
		Suppress:    opts.Suppress,
		Workload:    workload.Options{Now: now, StaleAfter: opts.StaleAfter},
		Paths:       paths.Options{MaxDepth: opts.MaxDepth, PodSecurityDefault: opts.PodSecurityDefault},
	}), nil
}
