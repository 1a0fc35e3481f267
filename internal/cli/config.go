package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/keyhole-sec/keyhole/internal/config"
)

// DefaultConfigFile is what keyhole config check reads without a file.
const DefaultConfigFile = "keyhole.yaml"

func newConfigCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check keyhole's config file, or print a documented example",
		Args:  cobra.NoArgs,
	}
	var file string
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a config file without running anything",
		Long: `Check decodes and validates a config file exactly as audit --config does,
and prints "FILE: ok", or every problem with its file, line and field.
FILE defaults to --config (KEYHOLE_CONFIG), then ` + DefaultConfigFile + `.

Exit codes: 0 valid; 2 invalid or unreadable.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			name := file
			if len(args) == 1 {
				name = args[0]
			}
			if name == "" {
				name = DefaultConfigFile
			}
			if _, err := loadConfig(name); err != nil {
				return err
			}
			_, err := fmt.Fprintf(stdout, "%s: ok\n", name)
			return err
		},
	}
	check.Flags().StringVar(&file, "config", "", "the config file to check")
	example := &cobra.Command{
		Use:   "example",
		Short: "Print a documented config that uses every field",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := io.WriteString(stdout, config.Example)
			return err
		},
	}
	cmd.AddCommand(check, example)
	return cmd
}
