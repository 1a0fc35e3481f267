package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/diff"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
)

type diffOptions struct {
	base           string
	head           string
	manifests      []string
	config         string
	format         string
	output         string
	failOnIncrease string
	analysis       analysisOptions
}

// diffFormats are the diff's output formats, the default first. "table"
// is the name the audit's human format has, so that one KEYHOLE_FORMAT
// serves both commands.
var diffFormats = []string{"table", "json"}

func newDiffCommand(g *globals, stdout io.Writer) *cobra.Command {
	o := &diffOptions{}
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Compare who can read each Secret between two directories or two git revisions",
		Long: `Diff audits the manifests twice, offline, and reports per Secret the readers
added and removed (subject, path, and the bindings they read through) and
the change of severity, and the Secrets added and removed.

--base and --head are each a directory, when one exists by that name, or a
git revision of the repository that holds --manifests (read with the git
command, the user's git configuration ignored). Without --head, the working
tree is the head. With directories, --manifests are paths inside both
(default: the whole directories); with git revisions, paths as on the
command line (default: the current directory). A path that exists on one
side only makes its Secrets added or removed.

Exit codes: 0 no Secret's exposure increased at or above --fail-on-increase
(or no --fail-on-increase); 1 some did; 2 usage error, a revision that does
not exist, or input that could not be read.`,
		Example: `  keyhole audit diff --base origin/main --manifests deploy/ --fail-on-increase high
  keyhole audit diff --base v1.4.0 --head HEAD --manifests deploy/ --format json
  keyhole audit diff --base rendered-old/ --head rendered-new/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDiff(cmd.Context(), g, o, stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.base, "base", "", "the before side: a directory or a git revision (required)")
	f.StringVar(&o.head, "head", "", "the after side: a directory or a git revision (default: the working tree)")
	f.StringArrayVar(&o.manifests, "manifests", nil, "manifest file or directory to compare (repeatable)")
	f.StringVar(&o.config, "config", "", "keyhole config file, applied to both sides")
	f.StringVarP(&o.format, "format", "o", "table", "output format: "+strings.Join(diffFormats, ", "))
	f.StringVar(&o.output, "output", "", "write the diff to this file instead of stdout")
	f.StringVar(&o.failOnIncrease, "fail-on-increase", "", "exit 1 when a Secret's exposure increased and its head severity is this or higher: "+strings.Join(finding.Severities(), ", "))
	o.analysis.addFlags(f)
	return cmd
}

func runDiff(ctx context.Context, g *globals, o *diffOptions, stdout io.Writer) error {
	var threshold finding.Severity
	if o.failOnIncrease != "" {
		t, err := finding.ParseSeverity(o.failOnIncrease)
		if err != nil {
			return usageError("--fail-on-increase: %v", err)
		}
		threshold = t
	}
	if err := checkFormat(o.format, diffFormats); err != nil {
		return err
	}
	if o.base == "" {
		return usageError("--base is required: a directory or a git revision to compare with")
	}
	if err := o.analysis.check(); err != nil {
		return err
	}
	for _, m := range o.manifests {
		if m == "-" || m == "" {
			return usageError("--manifests %q: diff reads files from each side, not standard input", m)
		}
	}
	gt, err := (&gateOptions{config: o.config}).load()
	if err != nil {
		return err
	}

	base, err := diff.Resolve(ctx, o.base, o.manifests)
	if err != nil {
		return &exitError{code: ExitError, err: fmt.Errorf("--base: %w", err)}
	}
	defer closeTree(g, base)
	head, err := diff.Resolve(ctx, o.head, o.manifests)
	if err != nil {
		return &exitError{code: ExitError, err: fmt.Errorf("--head: %w", err)}
	}
	defer closeTree(g, head)
	for _, m := range base.Missing {
		if contains(head.Missing, m) {
			return usageError("--manifests %s: exists neither at base %s nor at head %s", m, sideLabel(base.Side), sideLabel(head.Side))
		}
		base.Side.NotAnalysed = append(base.Side.NotAnalysed, m+": does not exist here; its Secrets at head count as added")
	}
	for _, m := range head.Missing {
		if !contains(base.Missing, m) {
			head.Side.NotAnalysed = append(head.Side.NotAnalysed, m+": does not exist here; its Secrets at base count as removed")
		}
	}

	// Both sides are judged at the same instant, or staleness could
	// differ between them for no change at all.
	now := time.Now()
	baseRep, err := auditTree(gt, base, &o.analysis, now)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	headRep, err := auditTree(gt, head, &o.analysis, now)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	d := diff.Compare(baseRep, headRep, base.Side, head.Side, report.Tool{Name: "keyhole", Version: Version})
	if err := writeOutput(o.output, stdout, func(w io.Writer) error {
		if o.format == "json" {
			return diff.WriteJSON(w, d)
		}
		return diff.WriteText(w, d)
	}); err != nil {
		return &exitError{code: ExitError, err: err}
	}
	for _, e := range d.Errors {
		g.logger.Error(e.Message, "side", e.Side, "source", e.Source)
	}
	switch {
	case len(d.Errors) > 0:
		return &exitError{code: ExitError, err: fmt.Errorf("%d input error(s): the diff covers everything else", len(d.Errors))}
	case baseRep.Coverage.IndirectStopped:
		return stoppedError("the diff's base", baseRep)
	case headRep.Coverage.IndirectStopped:
		return stoppedError("the diff's head", headRep)
	case o.failOnIncrease != "":
		if up := d.Increases(threshold); len(up) > 0 {
			return &exitError{code: ExitFindings, err: fmt.Errorf("exposure increased on %d Secret(s) at or above %s at head", len(up), threshold)}
		}
	}
	return nil
}

func sideLabel(s diff.Side) string {
	if s.Ref == "" {
		return "(the working tree)"
	}
	return s.Ref
}

// auditTree runs the offline audit of one side with the config applied.
func auditTree(gt *gate, t *diff.Tree, ao *analysisOptions, now time.Time) (*report.Report, error) {
	in, err := audit.Offline(t.Paths, ao.offline(gt, nil))
	if err != nil {
		return nil, err
	}
	aopts := ao.options(gt)
	aopts.Now = now
	rep, err := audit.Analyze(in, aopts)
	if err != nil {
		return nil, err
	}
	t.Relabel(rep)
	return rep, nil
}

func closeTree(g *globals, t *diff.Tree) {
	if err := t.Close(); err != nil {
		g.logger.Warn("could not remove a temporary directory", "error", err)
	}
}

// writeOutput writes with fn to the file named by output (mode 0600), or
// to stdout when output is "" or "-".
func writeOutput(output string, stdout io.Writer, fn func(io.Writer) error) (err error) {
	if output == "" || output == "-" {
		return fn(stdout)
	}
	f, err := os.OpenFile(output, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	// O_CREATE's mode applies to new files only: an existing report file
	// may have been world-readable.
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return fmt.Errorf("--output: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("--output %s: %w", output, cerr)
		}
	}()
	return fn(f)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
