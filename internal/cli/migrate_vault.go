package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/migrate"
	"github.com/keyhole-sec/keyhole/internal/migrate/vault"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
)

type migrateVaultOptions struct {
	fromCluster   string
	fromFile      string
	selector      string
	namespace     string
	allNamespaces bool
	kubeconfig    string
	context       string

	vaultAddr    string
	mount        string
	pathTemplate string
	consumer     string
	out          string
	apply        bool
	force        bool
	auth         vault.Auth
}

func newMigrateVaultCommand(g *globals, stdin io.Reader, stdout io.Writer) *cobra.Command {
	o := &migrateVaultOptions{}
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "Move Secrets to Vault KV v2 and print the manifests that read them back",
		Long: `vault maps each Secret to a path in a Vault KV v2 engine and prints the
plan: every path and its keys (never a value), the manifests of the
consumer that reads them back into the cluster, and, for live Secrets, a
JSON patch per workload that takes them as environment variables, moving
it to files. Nothing is written to Vault without --apply.

Input: --from-cluster NAMESPACE/NAME, --from-file FILE (- for stdin; a
Secret without a namespace takes -n, else "default"), or --selector
LABELS with -n NAMESPACE or --all-namespaces.

Consumers (--consumer): eso, an ExternalSecret per Secret and a vault
ClusterSecretStore (External Secrets Operator, external-secrets.io/v1);
vso, a VaultStaticSecret per Secret with a VaultAuth and VaultConnection
per namespace (Vault Secrets Operator); agent, Vault Agent injector
annotations. ESO and VSO still write a Kubernetes Secret; with the agent
the values never sit in etcd.

--apply writes each Secret with check-and-set: a new path with cas=0, a
path already holding the same data is left alone (re-running changes
nothing), a path holding different data is refused unless --force. Every
write is read back and compared as a keyed hash. Vault login: VAULT_TOKEN,
or --vault-auth kubernetes --vault-role ROLE with the service account
token file. VAULT_CACERT and the other standard VAULT_ variables apply.

Files: with --out DIR, plan.json, the manifests and the patches are
written there (mode 0600), and --apply keeps a journal there so that a
batch that failed halfway resumes. Without --out they follow the plan on
stdout.

Exit codes: 0 done; 1 some Secrets not written to Vault (refused or
failed; the output says which, and re-running resumes); 2 usage error or
input that could not be read.`,
		Example: `  keyhole migrate vault --from-cluster shop/db-credentials --vault-addr https://vault:8200
  keyhole migrate vault --selector app=shop -n shop --consumer vso --out migration/
  keyhole migrate vault --from-file secret.yaml --consumer agent --path-template 'apps/{{.Namespace}}/{{.Name}}'
  VAULT_TOKEN=... keyhole migrate vault --selector tier=db -A --out migration/ --apply`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrateVault(cmd.Context(), g, o, cmd, stdin, stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.fromCluster, "from-cluster", "", "migrate the live Secret NAMESPACE/NAME")
	f.StringVar(&o.fromFile, "from-file", "", "migrate the Secrets of a YAML or JSON manifest file (- for stdin)")
	f.StringVarP(&o.selector, "selector", "l", "", "migrate the live Secrets matching this label selector (with -n or --all-namespaces)")
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of --selector; with --from-file, the namespace of Secrets that name none")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "with --selector, look in every namespace")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the live cluster")
	f.StringVar(&o.context, "context", "", "kubeconfig context to use")
	f.StringVar(&o.vaultAddr, "vault-addr", os.Getenv("VAULT_ADDR"), "Vault's address, e.g. https://vault.example:8200 (default $VAULT_ADDR)")
	f.StringVar(&o.mount, "kv-mount", vault.DefaultMount, "mount path of the KV v2 secrets engine")
	f.StringVar(&o.pathTemplate, "path-template", vault.DefaultPathTemplate, "Go template of each Secret's path under the mount; it sees .Namespace, .Name, .Type and .Labels")
	f.StringVar(&o.consumer, "consumer", string(vault.ConsumerESO), "what reads the values back: eso, vso or agent")
	f.StringVar(&o.out, "out", "", "write plan.json, manifests and patches to this directory (mode 0600) instead of stdout")
	f.BoolVar(&o.apply, "apply", false, "write the values to Vault (default: print the plan only)")
	f.BoolVar(&o.force, "force", false, "with --apply, write over a path that holds different data (as a new KV version)")
	f.StringVar(&o.auth.Method, "vault-auth", vault.AuthToken, "how to log in to Vault: token (VAULT_TOKEN) or kubernetes")
	f.StringVar(&o.auth.Role, "vault-role", "", "Vault role for --vault-auth kubernetes")
	f.StringVar(&o.auth.Mount, "vault-auth-mount", "kubernetes", "mount path of Vault's Kubernetes auth method")
	f.StringVar(&o.auth.TokenFile, "vault-sa-token-file", vault.DefaultServiceAccountTokenFile, "service account token for --vault-auth kubernetes")
	return cmd
}

// check rejects contradictory flags before anything is read.
func (o *migrateVaultOptions) check(cmd *cobra.Command) error {
	inputs := 0
	for _, set := range []bool{o.fromCluster != "", o.fromFile != "", cmd.Flags().Changed("selector")} {
		if set {
			inputs++
		}
	}
	switch {
	case inputs != 1:
		return usageError("give exactly one of --from-cluster, --from-file and --selector")
	case cmd.Flags().Changed("selector") && o.selector == "":
		return usageError("--selector is empty: name the labels of the Secrets to migrate")
	case o.allNamespaces && o.selector == "":
		return usageError("--all-namespaces is for --selector")
	case o.allNamespaces && o.namespace != "":
		return usageError("--namespace and --all-namespaces cannot be used together")
	case o.selector != "" && o.namespace == "" && !o.allNamespaces:
		return usageError("--selector needs --namespace NAMESPACE or --all-namespaces")
	case o.fromCluster != "" && o.namespace != "":
		return usageError("--namespace is for --selector and --from-file; --from-cluster names the namespace")
	case o.fromFile != "" && (o.kubeconfig != "" || o.context != ""):
		return usageError("--from-file reads no cluster: --kubeconfig and --context are for --from-cluster and --selector")
	case o.force && !o.apply:
		return usageError("--force is for --apply")
	}
	if o.fromCluster != "" {
		if _, _, err := migrate.ParseRef(o.fromCluster); err != nil {
			return usageError("--from-cluster: %v", err)
		}
	}
	if err := vault.CheckOptions(o.planOptions()); err != nil {
		return usageError("%v", err)
	}
	if err := vault.CheckAuth(o.authOptions(cmd)); err != nil {
		return usageError("%v", err)
	}
	return nil
}

func (o *migrateVaultOptions) planOptions() vault.Options {
	return vault.Options{Address: o.vaultAddr, Mount: o.mount, PathTemplate: o.pathTemplate, Consumer: vault.Consumer(o.consumer)}
}

// authOptions leaves the Kubernetes auth flags out of a token login, so
// that their defaults do not count as set.
func (o *migrateVaultOptions) authOptions(cmd *cobra.Command) vault.Auth {
	a := o.auth
	if a.Method == vault.AuthToken && !cmd.Flags().Changed("vault-auth-mount") {
		a.Mount = ""
	}
	return a
}

// input describes the batch for the journal: the same command on the same
// input resumes, anything else does not.
func (o *migrateVaultOptions) input() string {
	var src string
	switch {
	case o.fromCluster != "":
		src = "cluster secret " + o.fromCluster
	case o.fromFile != "":
		src = "file " + o.fromFile
	case o.allNamespaces:
		src = "cluster secrets -l " + o.selector + " -A"
	default:
		src = "cluster secrets -l " + o.selector + " -n " + o.namespace
	}
	return src + " to " + strings.TrimRight(o.vaultAddr, "/") + " mount " + o.mount
}

func runMigrateVault(ctx context.Context, g *globals, o *migrateVaultOptions, cmd *cobra.Command, stdin io.Reader, stdout io.Writer) error {
	if err := o.check(cmd); err != nil {
		return err
	}
	batch, client, err := o.load(ctx, stdin)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	for _, s := range batch.Skipped {
		g.logger.Info(s.String())
	}
	plan, err := vault.NewPlan(batch.Secrets, o.planOptions())
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	if client != nil && len(plan.Entries) > 0 {
		ws, problems, err := vault.ListWorkloads(ctx, client, plan.Namespaces())
		if err != nil {
			return &exitError{code: ExitError, err: err}
		}
		plan.AddWorkloads(ws, problems)
	}
	files, err := plan.Files()
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	var out *migrate.Out
	if o.out != "" {
		if out, err = migrate.OpenOut(o.out); err != nil {
			return &exitError{code: ExitError, err: err}
		}
		defer out.Close()
		for _, f := range files {
			if err := out.WriteFile(f.Path, f.Data); err != nil {
				return &exitError{code: ExitError, err: err}
			}
		}
	}
	if err := plan.WriteText(stdout, files, o.out, o.apply); err != nil {
		return &exitError{code: ExitError, err: err}
	}
	if !o.apply || len(plan.Entries) == 0 {
		return nil
	}
	return applyVault(ctx, o, cmd, plan, out, stdout)
}

// load reads the Secrets, and returns the cluster client when they are
// live (for the workload scan).
func (o *migrateVaultOptions) load(ctx context.Context, stdin io.Reader) (*migrate.Batch, kubernetes.Interface, error) {
	if o.fromFile != "" {
		var (
			b   *migrate.Batch
			err error
		)
		if o.fromFile == "-" {
			b, err = migrate.FromReader("stdin", stdin)
		} else {
			b, err = migrate.FromFile(o.fromFile)
		}
		if err != nil {
			return nil, nil, err
		}
		ns := o.namespace
		if ns == "" {
			ns = "default"
		}
		for _, s := range b.Secrets {
			if s.Secret.Namespace == "" {
				s.Secret.Namespace = ns
			}
		}
		return b, nil, nil
	}
	cfg, err := cluster.RESTConfig(o.kubeconfig, o.context)
	if err != nil {
		return nil, nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	var b *migrate.Batch
	if o.fromCluster != "" {
		b, err = migrate.FromCluster(ctx, client, o.fromCluster)
	} else {
		b, err = migrate.FromSelector(ctx, client, o.namespace, o.selector)
	}
	if err != nil {
		return nil, nil, err
	}
	return b, client, nil
}

func applyVault(ctx context.Context, o *migrateVaultOptions, cmd *cobra.Command, plan *vault.Plan, out *migrate.Out, stdout io.Writer) error {
	client, err := vault.NewClient(ctx, o.vaultAddr, o.authOptions(cmd))
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	var journal *migrate.Journal
	if out != nil {
		if journal, err = out.Journal("vault", o.input()); err != nil {
			return &exitError{code: ExitError, err: err}
		}
	}
	results, applyErr := vault.Apply(ctx, client, plan, o.force, journal)
	if results != nil {
		if err := vault.WriteResults(stdout, results); err != nil {
			return &exitError{code: ExitError, err: err}
		}
		if out != nil {
			js, err := vault.ResultJSON(results)
			if err == nil {
				err = out.WriteFile("apply-result.json", js)
			}
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
		}
	}
	if applyErr != nil {
		return &exitError{code: ExitError, err: applyErr}
	}
	if n := vault.NotDone(results); n > 0 {
		return &exitError{code: ExitFindings, err: fmt.Errorf("%d of %d Secrets not written to Vault; re-run to resume", n, len(results))}
	}
	return nil
}
