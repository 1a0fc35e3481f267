// Package cli is keyhole's command line: flag parsing, wiring sources to
// the analysis and the analysis to the sinks, and exit codes. It holds no
// analysis logic. Every flag can also be set from a KEYHOLE_ environment
// variable (--fail-on is KEYHOLE_FAIL_ON).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keyhole-sec/keyhole/internal/diff"
)

// Exit codes. They are part of keyhole's interface: CI pipelines branch on
// them.
const (
	ExitOK       = 0 // nothing at or above the --fail-on threshold
	ExitFindings = 1 // some finding at or above the threshold
	ExitError    = 2 // usage error, or input that could not be read
)

// Cleanup removes what a run leaves on disk while it works (the git
// revisions of `audit diff`). main calls it before exiting at once on a
// second signal, when deferred cleanups do not run.
func Cleanup() { diff.RemoveTemp() }

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func usageError(format string, args ...any) error {
	return &exitError{code: ExitError, err: fmt.Errorf(format, args...)}
}

// Run executes keyhole with args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return RunAs(ctx, "keyhole", args, stdin, stdout, stderr)
}

// RunAs is Run for a program started as argv0: installed as
// kubectl-keyhole, help and usage say `kubectl keyhole`.
func RunAs(ctx context.Context, argv0 string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	if name := displayName(argv0); name != root.Name() {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: name}
	}
	registerCompletions(root)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			printError(stderr, ee.err)
		}
		return ee.code
	}
	// Cobra's own errors: unknown flags, bad arguments.
	printError(stderr, err)
	return ExitError
}

// printError prints an error, one "keyhole: " line per line of it (a
// config file's problems come one per line).
func printError(stderr io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(stderr, "keyhole: %s\n", line)
	}
}

type globals struct {
	quiet   bool
	verbose bool
	logger  *slog.Logger
	// stderr is where progress is drawn, when it is a terminal.
	stderr io.Writer
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stderr: stderr}
	root := &cobra.Command{
		Use:           "keyhole",
		Short:         "Audit who can read each Kubernetes Secret, and how",
		Long:          "keyhole computes, for every Kubernetes Secret, exactly who can read it (directly through RBAC, and indirectly), flags Secrets that leak through git or env vars, and recommends Sealed Secrets or Vault.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return &exitError{code: ExitError, err: err}
			}
			level := slog.LevelInfo
			switch {
			case g.quiet && g.verbose:
				return usageError("--quiet and --verbose cannot be used together")
			case g.quiet:
				level = slog.LevelError
			case g.verbose:
				level = slog.LevelDebug
			}
			g.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
			return nil
		},
	}
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "print only errors on stderr")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "print debug logs on stderr")
	root.AddCommand(newAuditCommand(g, stdin, stdout), newExplainCommand(g, stdin, stdout), newServeCommand(g), newMigrateCommand(g, stdin, stdout), newConfigCommand(stdout), newVersionCommand(stdout))
	return root
}

func newVersionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print keyhole's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(stdout, "keyhole %s\n", Version)
			return err
		},
	}
}

// bindEnv sets every flag the user did not set on the command line from
// KEYHOLE_<FLAG> (dashes and dots become underscores), so that containers
// and CI systems can configure keyhole without a wrapper script.
func bindEnv(cmd *cobra.Command) error {
	var errs []error
	visit := func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := "KEYHOLE_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(f.Name))
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		values := []string{v}
		if f.Value.Type() == "stringArray" || f.Value.Type() == "stringSlice" {
			values = strings.Split(v, ",")
		}
		for _, val := range values {
			if err := cmd.Flags().Set(f.Name, val); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	}
	cmd.Flags().VisitAll(visit)
	return errors.Join(errs...)
}
