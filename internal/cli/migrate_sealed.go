package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/migrate"
	"github.com/keyhole-sec/keyhole/internal/migrate/sealedsecrets"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
)

type migrateSealedOptions struct {
	fromFile    string
	fromCluster string
	fromGit     string
	cert        string
	ctrlNS      string
	ctrlName    string
	scope       string
	out         string
	apply       bool
	kubeconfig  string
	context     string
}

func newMigrateSealedSecretsCommand(g *globals, stdin io.Reader, stdout io.Writer) *cobra.Command {
	o := &migrateSealedOptions{}
	cmd := &cobra.Command{
		Use:   "sealed-secrets",
		Short: "Seal Secrets into SealedSecrets and hand live ones over to the controller",
		Long: `sealed-secrets seals Secrets with the Sealed Secrets controller's
certificate into SealedSecret manifests (bitnami.com/v1alpha1), which are
safe to commit: only the controller's private key opens them.

Input (one of): --from-file FILE (YAML or JSON, several documents or a
List; - for stdin), --from-cluster NAMESPACE/NAME (the live Secret), or
--from-git PATH (the Secret manifests committed at HEAD in that
repository or directory of one; templates are skipped). Other documents
are skipped and listed. The metadata that must not travel is removed
before sealing: managedFields, uid, resourceVersion, ownerReferences and
the last-applied-configuration annotation, which holds the values.

Certificate (one of): --cert FILE, or fetched from the controller as
kubeseal does, through the API server's service proxy (the Service's first
port, /v1/cert.pem); that needs "get" on services and services/proxy in
--controller-namespace.

Scope (--scope): strict (default; the SealedSecret only unseals under its
own name and namespace), namespace-wide (any name in its namespace) or
cluster-wide (anywhere).

Output: with --out DIR, one file per Secret, NAMESPACE/NAME.yaml, or with
--from-git the input's layout (a file holding several Secrets gives one
file holding their SealedSecrets); files are mode 0600, directories 0700.
Without --out the SealedSecrets go to stdout (ciphertext is not secret)
and the plan to stderr; --from-git needs --out.

Hand-over: the controller takes over an existing Secret only when the
live Secret carries sealedsecrets.bitnami.com/managed: "true" (in the
SealedSecret's template it does nothing). So the plan says, for each
Secret: 1. annotate the live Secret, 2. apply the SealedSecret. --apply
does both on the cluster, in that order (a merge patch, then server-side
apply), which needs "patch" on secrets and "get", "create" and "patch" on
sealedsecrets.bitnami.com.

Resume: with --out, a journal in DIR records the steps done (names only);
a batch that failed halfway prints what was done and what was not, and
the same command run again resumes. A completed batch removes its journal.

Exit codes: 0 done; 1 some steps failed (the output says which; run again
to resume); 2 usage error, or input or certificate that could not be
read.`,
		Example: `  keyhole migrate sealed-secrets --from-file secret.yaml --cert pub-cert.pem > sealed.yaml
  keyhole migrate sealed-secrets --from-git ./deploy --out ./sealed
  keyhole migrate sealed-secrets --from-cluster prod/db-credentials --out migration/
  keyhole migrate sealed-secrets --from-cluster prod/db-credentials --out migration/ --apply`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrateSealed(cmd.Context(), g, o, cmd, stdin, stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.fromFile, "from-file", "", "seal the Secrets of a YAML or JSON manifest file (- for stdin)")
	f.StringVar(&o.fromCluster, "from-cluster", "", "seal the live Secret NAMESPACE/NAME")
	f.StringVar(&o.fromGit, "from-git", "", "seal the Secret manifests committed at HEAD in this git repository (or directory of one)")
	f.StringVar(&o.cert, "cert", "", "the controller's sealing certificate (PEM file); default: fetch it from the controller")
	f.StringVar(&o.ctrlNS, "controller-namespace", "kube-system", "namespace of the Sealed Secrets controller's Service")
	f.StringVar(&o.ctrlName, "controller-name", "sealed-secrets-controller", "name of the Sealed Secrets controller's Service")
	f.StringVar(&o.scope, "scope", "strict", "sealing scope: strict, namespace-wide or cluster-wide")
	f.StringVar(&o.out, "out", "", "write the SealedSecrets (and the journal) to this directory instead of stdout")
	f.BoolVar(&o.apply, "apply", false, "hand the Secrets over on the cluster: annotate each live Secret, then apply its SealedSecret")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (for --from-cluster, fetching the certificate, --apply)")
	f.StringVar(&o.context, "context", "", "kubeconfig context to use")
	return cmd
}

// check rejects contradictory flags before anything is read.
func (o *migrateSealedOptions) check(cmd *cobra.Command) (ssv1alpha1.SealingScope, error) {
	inputs := 0
	for _, set := range []bool{cmd.Flags().Changed("from-file"), cmd.Flags().Changed("from-cluster"), cmd.Flags().Changed("from-git")} {
		if set {
			inputs++
		}
	}
	ctrlSet := cmd.Flags().Changed("controller-namespace") || cmd.Flags().Changed("controller-name")
	switch {
	case inputs != 1:
		return 0, usageError("give exactly one of --from-file, --from-cluster and --from-git")
	case o.fromFile == "" && o.fromCluster == "" && o.fromGit == "":
		return 0, usageError("the input flag is empty: name a file, NAMESPACE/NAME or a repository")
	case o.cert != "" && ctrlSet:
		return 0, usageError("--cert or --controller-namespace/--controller-name: the certificate comes from a file or from the controller, not both")
	case cmd.Flags().Changed("cert") && o.cert == "":
		return 0, usageError("--cert is empty: name the certificate file")
	case o.fromGit != "" && o.out == "":
		return 0, usageError("--from-git needs --out DIR: the SealedSecrets mirror the repository's layout there")
	case cmd.Flags().Changed("out") && o.out == "":
		return 0, usageError("--out is empty: name a directory")
	case o.ctrlNS == "" || o.ctrlName == "":
		return 0, usageError("--controller-namespace and --controller-name cannot be empty")
	}
	if o.fromCluster != "" {
		if _, _, err := migrate.ParseRef(o.fromCluster); err != nil {
			return 0, usageError("--from-cluster: %v", err)
		}
	}
	scope, err := sealedsecrets.ParseScope(o.scope)
	if err != nil {
		return 0, usageError("--scope: %v", err)
	}
	return scope, nil
}

// needsCluster reports whether the run talks to the API server.
func (o *migrateSealedOptions) needsCluster() bool {
	return o.fromCluster != "" || o.cert == "" || o.apply
}

type sealedClients struct {
	cfg     *rest.Config
	client  kubernetes.Interface
	dynamic dynamic.Interface
}

func (o *migrateSealedOptions) clients() (*sealedClients, error) {
	cfg, err := cluster.RESTConfig(o.kubeconfig, o.context)
	if err != nil {
		return nil, &exitError{code: ExitError, err: err}
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, &exitError{code: ExitError, err: err}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, &exitError{code: ExitError, err: err}
	}
	return &sealedClients{cfg: cfg, client: client, dynamic: dyn}, nil
}

func runMigrateSealed(ctx context.Context, g *globals, o *migrateSealedOptions, cmd *cobra.Command, stdin io.Reader, stdout io.Writer) error {
	scope, err := o.check(cmd)
	if err != nil {
		return err
	}
	// A file or repository is read before the kubeconfig, and the input
	// before the certificate: a typo in a path is reported first.
	var cs *sealedClients
	if o.fromCluster != "" {
		if cs, err = o.clients(); err != nil {
			return err
		}
	}
	batch, input, err := o.load(ctx, cs, stdin)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	if cs == nil && o.needsCluster() {
		if cs, err = o.clients(); err != nil {
			return err
		}
	}
	broken := 0
	for _, s := range batch.Skipped {
		switch {
		case s.Broken:
			broken++
			g.logger.Error(s.String())
		case s.Kind == "Secret" || o.fromGit == "":
			g.logger.Info(s.String())
		default:
			g.logger.Debug(s.String())
		}
	}
	var cert *sealedsecrets.Cert
	if o.cert != "" {
		cert, err = sealedsecrets.CertFromFile(o.cert)
	} else {
		cert, err = sealedsecrets.FetchCert(ctx, cs.client, o.ctrlNS, o.ctrlName)
	}
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	g.logger.Debug("sealing certificate", "source", cert.Source, "notAfter", cert.NotAfter)

	opts := sealedsecrets.Options{Cert: cert, Scope: scope}
	if o.fromGit != "" {
		opts.Layout = sealedsecrets.Mirror
	}
	var out *migrate.Out
	if o.out != "" {
		if out, err = migrate.OpenOut(o.out); err != nil {
			return &exitError{code: ExitError, err: err}
		}
		defer out.Close()
		opts.Out = out
	}
	if o.apply {
		opts.Client, opts.Dynamic = cs.client, cs.dynamic
		if cs.cfg.Host != "" {
			input += " on " + cs.cfg.Host
		}
	}
	m := sealedsecrets.Prepare(batch, opts)
	for _, s := range m.Skipped {
		g.logger.Warn(s.String())
	}
	if len(m.Items) == 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("no Secret to seal in %s", input)}
	}

	// Manifests go to stdout without --out; the plan and the report then
	// go to stderr, so that stdout stays one YAML stream.
	report := stdout
	if out == nil {
		report = g.stderr
		if !o.apply {
			data, err := m.Manifests()
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			if _, err := stdout.Write(data); err != nil {
				return &exitError{code: ExitError, err: err}
			}
		}
	}
	manifest := "SEALED.yaml"
	fmt.Fprintln(report, "# Hand-over plan: for each Secret that exists in the cluster, annotate the live Secret first, then apply the SealedSecret.")
	if out == nil {
		if o.apply {
			fmt.Fprintln(report, "# (SEALED.yaml: the SealedSecrets keyhole applies; pass --out to keep them.)")
		} else {
			fmt.Fprintln(report, "# (SEALED.yaml: the SealedSecrets printed on stdout, saved to a file.)")
		}
	}
	m.WritePlan(report, manifest)

	if out == nil && !o.apply {
		return sealedResult(broken, m.Failed(), nil)
	}
	var journal *migrate.Journal
	if out != nil {
		scopeName := sealedsecrets.ScopeName(scope)
		if journal, err = out.Journal("sealed-secrets", input+", scope "+scopeName); err != nil {
			return &exitError{code: ExitError, err: err}
		}
		if journal.Resumed() {
			fmt.Fprintf(report, "# Resuming the unfinished batch recorded in %s\n", out.Path(migrate.JournalFile))
		}
	}
	outcome, jerr := journal.Run(ctx, m.Tasks())
	outcome.Print(report)
	if jerr != nil {
		return &exitError{code: ExitError, err: jerr}
	}
	return sealedResult(broken, false, outcome)
}

// sealedResult is the run's exit: 2 when input files could not be read
// (a Secret in them was missed), 1 when some Secret could not be sealed
// or some step failed, else 0.
func sealedResult(broken int, sealFailed bool, outcome *migrate.Outcome) error {
	var failed error
	switch {
	case outcome != nil && !outcome.OK():
		failed = fmt.Errorf("%d step(s) failed, %d not done: run the same command again to resume", len(outcome.Failed), len(outcome.NotDone))
	case sealFailed:
		failed = fmt.Errorf("some Secrets could not be sealed (see above)")
	}
	if broken > 0 {
		msg := fmt.Sprintf("%d file(s) could not be read: the Secrets in them, if any, were not sealed", broken)
		if failed != nil {
			msg += "; " + failed.Error()
		}
		return &exitError{code: ExitError, err: fmt.Errorf("%s", msg)}
	}
	if failed != nil {
		return &exitError{code: ExitFindings, err: failed}
	}
	return nil
}

// load reads the input and describes it for the journal: what changes
// when the input does (the file, the repository's commit, the live
// object), never a value.
func (o *migrateSealedOptions) load(ctx context.Context, cs *sealedClients, stdin io.Reader) (*migrate.Batch, string, error) {
	switch {
	case o.fromFile == "-":
		b, err := migrate.FromReader("stdin", stdin)
		return b, "stdin", err
	case o.fromFile != "":
		b, err := migrate.FromFile(o.fromFile)
		abs, aerr := filepath.Abs(o.fromFile)
		if aerr != nil {
			abs = o.fromFile
		}
		return b, "file " + abs, err
	case o.fromGit != "":
		b, src, err := migrate.FromGit(ctx, o.fromGit)
		if err != nil {
			return nil, "", err
		}
		return b, fmt.Sprintf("git %s at %s", src.Dir, src.Commit), nil
	default:
		b, err := migrate.FromCluster(ctx, cs.client, o.fromCluster)
		return b, "cluster secret/" + o.fromCluster, err
	}
}
