package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhole-sec/keyhole/internal/bootstrap"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
)

type auditOptions struct {
	input  inputOptions
	format string
	output string
	failOn string
	gate   gateOptions
}

func newAuditCommand(g *globals, stdin io.Reader, stdout io.Writer) *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Audit manifests or a live cluster once, print the report, and gate on severity",
		Long: `Audit computes who can read every Secret and reports it.

Inputs: --manifests PATH (a file, a directory read recursively, or - for
stdin; repeatable) audits files offline, layered over the embedded
Kubernetes ` + bootstrap.KubernetesVersion + ` bootstrap RBAC policy. Without --manifests, keyhole
reads the live cluster named by --kubeconfig and --context (default: the
usual kubeconfig rules, or the in-cluster config in a pod).

Exit codes: 0 no finding at or above --fail-on; 1 some finding at or above
it; 2 usage error or input that could not be read (the report is still
printed for everything that could be).`,
		Example: `  keyhole audit --manifests deploy/
  keyhole audit --manifests - --format json < world.yaml
  keyhole audit --kubeconfig ~/.kube/config --fail-on critical
  keyhole audit --manifests deploy/ --config keyhole.yaml --baseline keyhole-baseline.json
  keyhole audit diff --base origin/main --manifests deploy/ --fail-on-increase high`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAudit(cmd.Context(), g, o, stdin, stdout)
		},
	}
	f := cmd.Flags()
	o.input.addFlags(f)
	f.StringVarP(&o.format, "format", "o", "table", "output format: "+strings.Join(report.Formats, ", "))
	f.StringVar(&o.output, "output", "", "write the report to this file instead of stdout")
	f.StringVar(&o.failOn, "fail-on", "high", "exit 1 when a finding has this severity or higher: "+strings.Join(finding.Severities(), ", "))
	o.gate.addFlags(f)
	cmd.AddCommand(newDiffCommand(g, stdout))
	return cmd
}

func runAudit(ctx context.Context, g *globals, o *auditOptions, stdin io.Reader, stdout io.Writer) error {
	threshold, err := finding.ParseSeverity(o.failOn)
	if err != nil {
		return usageError("--fail-on: %v", err)
	}
	if err := checkFormat(o.format, report.Formats); err != nil {
		return err
	}
	rep, gt, err := o.input.analyze(ctx, g, &o.gate, stdin)
	if err != nil {
		return err
	}
	if err := writeReport(o, stdout, rep); err != nil {
		return &exitError{code: ExitError, err: err}
	}
	if err := gt.finish(g.logger, rep); err != nil {
		return &exitError{code: ExitError, err: err}
	}
	for _, e := range rep.Errors {
		g.logger.Error(e.Message, "source", e.Source)
	}
	switch {
	case len(rep.Errors) > 0:
		return &exitError{code: ExitError, err: fmt.Errorf("%d input error(s): the report covers everything else", len(rep.Errors))}
	case failing(rep, threshold) > 0:
		return &exitError{code: ExitFindings, err: fmt.Errorf("%d finding(s) at or above %s", failing(rep, threshold), threshold)}
	}
	return nil
}

func writeReport(o *auditOptions, stdout io.Writer, rep *report.Report) error {
	return writeOutput(o.output, stdout, func(w io.Writer) error { return report.Write(w, o.format, rep) })
}

// failing counts the unsuppressed findings at or above the threshold.
func failing(rep *report.Report, threshold finding.Severity) int {
	n := 0
	for sev, count := range rep.Summary.FindingsBySeverity {
		s, err := finding.ParseSeverity(sev)
		if err == nil && s >= threshold {
			n += count
		}
	}
	return n
}
