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
		Short: "Audit manifests, a live cluster or a git repository once, print the report, and gate on severity",
		Long: `Audit computes who can read every Secret and reports it.

Inputs: --manifests PATH (a file, a directory read recursively, or - for
stdin; repeatable) audits files offline, layered over the embedded
Kubernetes ` + bootstrap.KubernetesVersion + ` bootstrap RBAC policy. Without --manifests, keyhole
reads the live cluster named by --kubeconfig and --context (default: the
usual kubeconfig rules, or the in-cluster config in a pod), and the API
server's own /metrics for how Secrets are stored in etcd (KH601-KH603;
needs get on /metrics, else the provider is reported unknown).

Plaintext Secrets in git: --git PATH scans a repository for Secret values
committed in plaintext (KH301-KH310): every commit reachable from any ref
(--branches current: from HEAD; --since REV: only the commits REV lacks),
the working tree (--git-history=false), or the index (--staged, for a
pre-commit hook). Alone, --git audits the repository only; with
--manifests, or --kubeconfig or --context, its findings join the same
report. Values are never printed: --hash-key-file FILE (at least 32 bytes)
adds valueHash, HMAC-SHA256 of each value under that key; without it the
values are told apart under a random key that never leaves the process.
--correlate (with a live cluster) reads the live Secrets' values, which
needs get and list on secrets, hashes each as it arrives and keeps no
value, and flags every Secret whose current value is in the repository
(KH412, rotate now).

Exit codes: 0 no finding at or above --fail-on; 1 some finding at or above
it; 2 usage error or input that could not be read (the report is still
printed for everything that could be).`,
		Example: `  keyhole audit --manifests deploy/
  keyhole audit --manifests - --format json < world.yaml
  keyhole audit --kubeconfig ~/.kube/config --fail-on critical
  keyhole audit --manifests deploy/ --config keyhole.yaml --baseline keyhole-baseline.json
  keyhole audit diff --base origin/main --manifests deploy/ --fail-on-increase high
  keyhole audit --git . --format sarif --output keyhole.sarif
  keyhole audit --git . --staged --fail-on high                  # in .git/hooks/pre-commit
  keyhole audit --git . --since origin/main --baseline keyhole-baseline.json
  keyhole audit --kubeconfig ~/.kube/config --git . --correlate --hash-key-file /run/keyhole/hmac.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAudit(cmd.Context(), g, o, stdin, stdout)
		},
	}
	f := cmd.Flags()
	o.input.addFlags(f)
	o.input.git.addFlags(f)
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
	case rep.Coverage.IndirectStopped:
		return stoppedError("the report", rep)
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
