package cli

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/baseline"
	"github.com/keyhole-sec/keyhole/internal/config"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// gateOptions are the audit flags of the CI gate: the config file and the
// baseline.
type gateOptions struct {
	config        string
	baseline      string
	writeBaseline string
}

func (o *gateOptions) addFlags(f *pflag.FlagSet) {
	o.addConfigFlag(f)
	f.StringVar(&o.baseline, "baseline", "", "suppress the findings this baseline file lists, so that only new ones fail the gate")
	f.StringVar(&o.writeBaseline, "write-baseline", "", "write this run's findings (those no annotation suppresses) to this baseline file, mode 0600")
}

// addConfigFlag adds --config alone, for commands that take the config
// but no baseline.
func (o *gateOptions) addConfigFlag(f *pflag.FlagSet) {
	f.StringVar(&o.config, "config", "", "keyhole config file: rule overrides, expected readers, ignored paths, environments (keyhole config example prints one)")
}

// gate is the loaded config and baseline of one run.
type gate struct {
	cfg  *config.Config // nil without --config
	base *baseline.Baseline
	opts *gateOptions
}

// load reads and checks the config and the baseline before anything
// runs: a bad one is a usage error (exit 2), never a half-applied gate.
func (o *gateOptions) load() (*gate, error) {
	g := &gate{opts: o}
	if o.config != "" {
		cfg, err := loadConfig(o.config)
		if err != nil {
			return nil, err
		}
		g.cfg = cfg
	}
	if o.baseline != "" {
		b, err := baseline.Load(o.baseline)
		if err != nil {
			return nil, &exitError{code: ExitError, err: err}
		}
		g.base = b
	}
	return g, nil
}

func loadConfig(name string) (*config.Config, error) {
	cfg, err := config.Load(name)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) && len(ce.Problems) > 1 {
			err = fmt.Errorf("%w\n%d problems in %s", err, len(ce.Problems), name)
		}
		return nil, &exitError{code: ExitError, err: err}
	}
	return cfg, nil
}

// ignore is the manifest filter of the config's ignore.paths.
func (g *gate) ignore() func(string) bool { return g.cfg.IgnoreFunc() }

// apply sets the analysis options the config and the baseline give.
func (g *gate) apply(opts *audit.Options) {
	opts.Expected = append(opts.Expected, g.cfg.Expected()...)
	opts.ManyPrincipals = g.cfg.ManyPrincipalsLimit()
	opts.Rules = g.cfg.Overrides()
	opts.StaleAfter = g.cfg.StaleAfterDuration()
	opts.MaxDepth = g.cfg.PathDepth()
	opts.MaxPaths = g.cfg.PathBudget()
	opts.PodSecurityDefault = g.cfg.PodSecurityDefault()
	opts.Environments = g.cfg.EnvironmentList()
	if g.base != nil {
		opts.Suppress = g.base.Suppress
	}
}

// finish writes the baseline when asked, and says which baseline entries
// no longer match anything, so that it can be pruned.
func (g *gate) finish(logger *slog.Logger, rep *report.Report) error {
	if g.base != nil {
		if gone := g.base.Unmatched(rep); len(gone) > 0 {
			logger.Info("baseline entries match no finding any more (fixed, or their object is gone); rewrite the baseline with --write-baseline to drop them",
				"baseline", g.base.Name(), "unmatched", len(gone), "entries", g.base.Len())
		}
	}
	if g.opts.writeBaseline == "" {
		return nil
	}
	f := baseline.FromReport(rep)
	if err := baseline.Write(g.opts.writeBaseline, f); err != nil {
		return fmt.Errorf("--write-baseline: %w", err)
	}
	logger.Info("baseline written", "file", g.opts.writeBaseline, "findings", len(f.Findings))
	return nil
}
