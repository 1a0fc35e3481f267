package cli

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// kubectlPluginName is the file name under which kubectl runs keyhole as
// `kubectl keyhole` (kubectl finds plugins as kubectl-NAME on PATH).
const kubectlPluginName = "kubectl-keyhole"

// displayName is how help and usage name the program: `kubectl keyhole`
// when it runs as the kubectl plugin, keyhole otherwise.
func displayName(argv0 string) string {
	base := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	if base == kubectlPluginName {
		return "kubectl keyhole"
	}
	return "keyhole"
}

// flagValues are the closed sets of values of flags, by command (its path
// below the root) and flag, for shell completion (`keyhole completion
// bash|zsh|fish|powershell`, which cobra adds).
func flagValues() map[string]map[string][]string {
	severities := finding.Severities()
	return map[string]map[string][]string{
		"audit":          {"format": report.Formats, "fail-on": severities},
		"audit diff":     {"format": diffFormats, "fail-on": severities},
		"explain secret": {"format": report.ExplainFormats},
	}
}

// registerCompletions completes the flags whose values are a closed set.
// Every other flag completes as cobra does by default (file names).
func registerCompletions(root *cobra.Command) {
	values := flagValues()
	var walk func(cmd *cobra.Command, path string)
	walk = func(cmd *cobra.Command, path string) {
		for flag, vs := range values[path] {
			if cmd.Flags().Lookup(flag) == nil {
				continue
			}
			_ = cmd.RegisterFlagCompletionFunc(flag, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
				return vs, cobra.ShellCompDirectiveNoFileComp
			})
		}
		for _, sub := range cmd.Commands() {
			walk(sub, strings.TrimPrefix(path+" "+sub.Name(), " "))
		}
	}
	walk(root, "")
}
