package cli

import (
	"io"

	"github.com/spf13/cobra"
)

// newMigrateCommand groups the commands that move Secrets out of plain
// Kubernetes Secrets: into SealedSecrets for GitOps, or into Vault.
func newMigrateCommand(g *globals, stdin io.Reader, stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Move Secrets to Sealed Secrets or Vault",
		Long:  "migrate writes the artifacts that move a Secret to the target keyhole recommends: SealedSecret manifests sealed with the controller's certificate, or Vault KV v2 entries with the manifests that consume them. Values pass through memory only.",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newMigrateSealedSecretsCommand(g, stdin, stdout), newMigrateVaultCommand(g, stdin, stdout))
	return cmd
}
