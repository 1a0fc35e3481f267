package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhole-sec/keyhole/internal/report"
)

type explainOptions struct {
	input  inputOptions
	config gateOptions // --config only: explain has no findings to baseline
	format string
	output string
}

func newExplainCommand(g *globals, stdin io.Reader, stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "explain",
		Short: "Explain who can read one Secret, and by which paths",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError("explain what? keyhole explain secret NAMESPACE/NAME")
		},
	}
	cmd.AddCommand(newExplainSecretCommand(g, stdin, stdout))
	return cmd
}

func newExplainSecretCommand(g *globals, stdin io.Reader, stdout io.Writer) *cobra.Command {
	o := &explainOptions{}
	cmd := &cobra.Command{
		Use:   "secret NAMESPACE/NAME",
		Short: "Show every reader of a Secret and the chain of steps each one takes",
		Long: `Explain secret runs the same analysis as audit, with the same inputs and
config, and shows one Secret: its severity and score, then every subject
that can obtain its value, grouped by path kind (direct first), with the
grants behind each step of an indirect path.

Formats: tree (default; for people, aligned and sorted; table is accepted
as the same, so that one KEYHOLE_FORMAT serves every command); json (a
document {"apiVersion": "` + report.APIVersion + `", "kind": "` + report.ExplanationKind + `",
"secret": ...} whose secret is the Secret exactly as audit's JSON report
holds it); dot (a Graphviz digraph: dot -Tsvg renders it).

Exit codes: 0 explained; 2 usage error, a Secret that is not in the
inventory, or input that could not be read (the explanation is still
printed when the Secret was found).`,
		Example: `  keyhole explain secret payments/db-credentials --manifests deploy/
  keyhole explain secret prod/api-key --kubeconfig ~/.kube/config --context prod
  keyhole explain secret payments/db-credentials --manifests deploy/ --format dot | dot -Tsvg > db.svg`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("explain secret takes one NAMESPACE/NAME, not %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExplainSecret(cmd.Context(), g, o, args[0], stdin, stdout)
		},
	}
	f := cmd.Flags()
	o.input.addFlags(f)
	f.StringVarP(&o.format, "format", "o", "tree", "output format: "+strings.Join(report.ExplainFormats, ", "))
	f.StringVar(&o.output, "output", "", "write the explanation to this file instead of stdout")
	o.config.addConfigFlag(f)
	return cmd
}

// parseSecretArg reads NAMESPACE/NAME, or Secret/NAMESPACE/NAME as
// keyhole's outputs name Secrets.
func parseSecretArg(arg string) (namespace, name string, err error) {
	parts := strings.Split(arg, "/")
	if len(parts) == 3 && (strings.EqualFold(parts[0], "secret") || strings.EqualFold(parts[0], "secrets")) {
		parts = parts[1:]
	}
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", usageError("explain secret %q: want NAMESPACE/NAME, e.g. payments/db-credentials", arg)
	}
	return parts[0], parts[1], nil
}

func runExplainSecret(ctx context.Context, g *globals, o *explainOptions, arg string, stdin io.Reader, stdout io.Writer) error {
	namespace, name, err := parseSecretArg(arg)
	if err != nil {
		return err
	}
	if o.format == "table" {
		o.format = "tree"
	}
	if err := checkFormat(o.format, report.ExplainFormats); err != nil {
		return err
	}
	rep, _, err := o.input.analyze(ctx, g, &o.config, stdin)
	if err != nil {
		return err
	}
	for _, e := range rep.Errors {
		g.logger.Error(e.Message, "source", e.Source)
	}
	s := findSecret(rep, namespace, name)
	if s == nil {
		msg := fmt.Sprintf("Secret/%s/%s is not in the inventory read from %s%s", namespace, name, sourceNames(rep), secretHint(rep, namespace, name))
		if n := len(rep.Errors); n > 0 {
			msg += fmt.Sprintf("; %d input error(s): it may be in what could not be read", n)
		}
		return &exitError{code: ExitError, err: fmt.Errorf("%s", msg)}
	}
	if err := writeOutput(o.output, stdout, func(w io.Writer) error { return report.WriteExplanation(w, o.format, s) }); err != nil {
		return &exitError{code: ExitError, err: err}
	}
	if n := len(rep.Errors); n > 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("%d input error(s): the explanation covers everything else", n)}
	}
	return stoppedError("the explanation", rep)
}

func findSecret(rep *report.Report, namespace, name string) *report.Secret {
	for i := range rep.Secrets {
		if s := &rep.Secrets[i]; s.Namespace == namespace && s.Name == name {
			return s
		}
	}
	return nil
}

// maxHints bounds the Secrets a "not in the inventory" message suggests.
const maxHints = 10

// secretHint suggests what the user may have meant: the Secrets of that
// name in other namespaces, or else the namespace's Secrets.
func secretHint(rep *report.Report, namespace, name string) string {
	var sameName, sameNS []string
	for _, s := range rep.Secrets {
		switch {
		case s.Name == name:
			sameName = append(sameName, s.Namespace+"/"+s.Name)
		case s.Namespace == namespace:
			sameNS = append(sameNS, s.Name)
		}
	}
	list := func(names []string) string {
		sort.Strings(names)
		if len(names) > maxHints {
			return strings.Join(names[:maxHints], ", ") + fmt.Sprintf(" and %d more", len(names)-maxHints)
		}
		return strings.Join(names, ", ")
	}
	switch {
	case len(sameName) > 0:
		return " (found in another namespace: " + list(sameName) + ")"
	case len(sameNS) > 0:
		return " (namespace " + namespace + " has: " + list(sameNS) + ")"
	}
	return " (no Secret in namespace " + namespace + ")"
}
