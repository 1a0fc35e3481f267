package vault

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// File is one output file: its path under the output directory, what it
// is for people, and its content. No File holds a Secret value.
type File struct {
	Path string
	What string
	Data []byte
}

// PlanAPIVersion and PlanKind identify plan.json's schema.
const (
	PlanAPIVersion = "keyhole.io/v1alpha1"
	PlanKind       = "VaultMigrationPlan"
)

// PlanFile is plan.json: the plan for machines.
type PlanFile struct {
	APIVersion   string            `json:"apiVersion"`
	Kind         string            `json:"kind"`
	Address      string            `json:"vaultAddress"`
	Mount        string            `json:"mount"`
	PathTemplate string            `json:"pathTemplate"`
	Consumer     Consumer          `json:"consumer"`
	Secrets      []*Entry          `json:"secrets"`
	Skipped      []Skip            `json:"skipped,omitempty"`
	Workloads    []*WorkloadChange `json:"workloads,omitempty"`
	Notes        []string          `json:"notes,omitempty"`
}

// planFileName is plan.json's name under the output directory.
const planFileName = "plan.json"

const yamlHeader = "# Written by keyhole migrate vault. It holds no Secret value.\n"

const fillInHeader = "# Before applying: replace every value that starts with \"" + fillIn + "\".\n"

// Files renders the plan's output files, in a stable order: plan.json,
// then the consumer manifests, then the workload patches.
func (p *Plan) Files() ([]File, error) {
	var files []File
	pf := PlanFile{
		APIVersion: PlanAPIVersion, Kind: PlanKind,
		Address: p.Address, Mount: p.Mount, PathTemplate: p.PathTemplate, Consumer: p.Consumer,
		Secrets: p.Entries, Skipped: p.Skipped, Workloads: p.Workloads, Notes: p.Notes,
	}
	if pf.Secrets == nil {
		pf.Secrets = []*Entry{}
	}
	js, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("rendering plan.json: %w", err)
	}
	files = append(files, File{Path: planFileName, What: "the plan, for machines (" + PlanAPIVersion + " " + PlanKind + ")", Data: append(js, '\n')})

	add := func(name, what, header string, objs ...map[string]any) error {
		f, err := yamlFile(name, what, header, objs...)
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	}
	if len(p.Entries) > 0 {
		switch p.Consumer {
		case ConsumerESO:
			if err := add("eso/cluster-secret-store.yaml", "ESO ClusterSecretStore for Vault mount "+p.Mount+" (fill in the auth block)", fillInHeader, esoStore(p)); err != nil {
				return nil, err
			}
			for _, e := range p.Entries {
				if err := add(path.Join("eso", e.Namespace, e.Name+".external-secret.yaml"), "ExternalSecret "+e.Ref(), "", esoExternalSecret(p, e)); err != nil {
					return nil, err
				}
			}
		case ConsumerVSO:
			for _, ns := range p.namespaces() {
				if err := add(path.Join("vso", ns, "vault-auth.yaml"), "VSO VaultConnection and VaultAuth for namespace "+ns+" (fill in the role and service account)", fillInHeader, vsoConnection(p, ns), vsoAuth(ns)); err != nil {
					return nil, err
				}
			}
			for _, e := range p.Entries {
				if err := add(path.Join("vso", e.Namespace, e.Name+".vault-static-secret.yaml"), "VaultStaticSecret "+e.Ref(), "", vsoStaticSecret(p, e)); err != nil {
					return nil, err
				}
			}
		case ConsumerAgent:
			for _, e := range p.Entries {
				header := fillInHeader + "# Pod template annotations for the Vault Agent injector: every key of " + e.Ref() + " as a file\n# under " + agentSecretsDir + ". Apply to a workload with\n#   kubectl patch KIND NAME -n " + e.Namespace + " --patch-file FILE\n"
				if err := add(path.Join("agent", e.Namespace, e.Name+".annotations.yaml"), "Vault Agent injector annotations for "+e.Ref()+" (a strategic-merge patch)", header, agentSnippet(e)); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, w := range p.Workloads {
		if w.PatchFile == "" {
			continue
		}
		js, err := json.MarshalIndent(w.patch, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("rendering the patch of %s: %w", w.Ref(), err)
		}
		files = append(files, File{Path: w.PatchFile, What: "JSON patch of " + w.Ref() + " (env to files)", Data: append(js, '\n')})
	}
	return files, nil
}

func yamlFile(name, what, header string, objs ...map[string]any) (File, error) {
	var b strings.Builder
	b.WriteString(yamlHeader)
	b.WriteString(header)
	for i, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			return File{}, fmt.Errorf("rendering %s: %w", name, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return File{Path: name, What: what, Data: []byte(b.String())}, nil
}

func (p *Plan) namespaces() []string {
	seen := map[string]bool{}
	for _, e := range p.Entries {
		seen[e.Namespace] = true
	}
	return sortedMapKeys(seen)
}

// Namespaces are the namespaces of the planned Secrets, sorted: where to
// look for workloads.
func (p *Plan) Namespaces() []string { return p.namespaces() }

// WriteText writes the plan for people: the Vault paths and keys, the
// workloads to change, what was skipped, notes, and the files: listed
// when written under dir, else following on w (all but plan.json, which
// only repeats the table for machines).
func (p *Plan) WriteText(w io.Writer, files []File, dir string, apply bool) error {
	ew := &errWriter{w: w}
	mode := "dry run: nothing is written to Vault; --apply writes"
	if apply {
		mode = "--apply: writing to Vault"
	}
	ew.printf("keyhole migrate vault (%s)\n", mode)
	ew.printf("Vault %s, KV v2 mount %q, consumer %s\n\n", p.Address, p.Mount, p.Consumer)
	if len(p.Entries) == 0 {
		ew.printf("No Secret to migrate.\n")
	} else {
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SECRET\tVAULT PATH (KV v2)\tKEYS")
		for _, e := range p.Entries {
			fmt.Fprintf(tw, "%s\t%s/%s\t%s\n", e.Ref(), p.Mount, e.Path, keyList(e.Keys))
		}
		_ = tw.Flush()
	}
	if len(p.Workloads) > 0 {
		ew.printf("\nWorkloads that take these Secrets as environment variables:\n")
		for _, c := range p.Workloads {
			switch {
			case c.PatchFile != "":
				ew.printf("  %s: kubectl patch %s %s -n %s --type json --patch-file %s\n", c.Ref(), strings.ToLower(c.Kind), c.Name, c.Namespace, c.PatchFile)
			default:
				ew.printf("  %s: by hand: %s\n", c.Ref(), c.Manual)
			}
			for _, u := range c.Uses {
				what := "env " + u.Variable
				if u.Variable == "" {
					what = "envFrom " + u.Secret
					if u.Prefix != "" {
						what += " (prefix " + u.Prefix + ")"
					}
				}
				ew.printf("    container %s: %s -> file %s\n", u.Container, what, u.File)
			}
			for _, warn := range c.Warnings {
				ew.printf("    warning: %s\n", warn)
			}
		}
		ew.printf("  The patches are not applied by keyhole: each application must first read its value from the file instead of the variable.\n")
	}
	if len(p.Skipped) > 0 {
		ew.printf("\nSkipped:\n")
		for _, s := range p.Skipped {
			ew.printf("  %s: %s\n", s.Ref, s.Reason)
		}
	}
	if len(p.Notes) > 0 {
		ew.printf("\nNotes:\n")
		for _, n := range p.Notes {
			ew.printf("  - %s\n", n)
		}
	}
	if dir != "" {
		ew.printf("\nFiles written under %s:\n", dir)
		for _, f := range files {
			ew.printf("  %s: %s\n", f.Path, f.What)
		}
		return ew.err
	}
	for _, f := range files {
		if f.Path == planFileName {
			continue // the table above says it for people
		}
		ew.printf("\n# ---- %s: %s\n", f.Path, f.What)
		_, _ = ew.Write(f.Data)
	}
	return ew.err
}

func keyList(keys []Key) string {
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		n := k.Name
		if k.Encoding == EncodingBase64 {
			n += " (base64)"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// errWriter keeps the first write error, so that long outputs need one
// check.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(e, format, args...)
}

// ResultFile is apply-result.json: what --apply did, for machines.
type ResultFile struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Results    []Result `json:"results"`
	Done       int      `json:"done"`
	NotDone    int      `json:"notDone"`
}

// ResultKind is apply-result.json's kind.
const ResultKind = "VaultMigrationResult"

// NotDone counts the results whose Secret is not (verified) in Vault.
func NotDone(results []Result) int {
	n := 0
	for _, r := range results {
		if !r.Outcome.Done() {
			n++
		}
	}
	return n
}

// ResultJSON renders apply-result.json.
func ResultJSON(results []Result) ([]byte, error) {
	rf := ResultFile{APIVersion: PlanAPIVersion, Kind: ResultKind, Results: results, NotDone: NotDone(results)}
	rf.Done = len(results) - rf.NotDone
	if rf.Results == nil {
		rf.Results = []Result{}
	}
	js, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(js, '\n'), nil
}

// WriteResults writes what --apply did for people: one line per Secret,
// then what was done and what was not.
func WriteResults(w io.Writer, results []Result) error {
	ew := &errWriter{w: w}
	ew.printf("\nVault writes:\n")
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SECRET\tVAULT PATH\tOUTCOME\tVERSION\tDETAIL")
	for _, r := range results {
		version := "-"
		if r.Version > 0 {
			version = fmt.Sprint(r.Version)
		}
		detail := r.Error
		switch r.Outcome {
		case Written, Overwritten:
			detail = "read back and verified"
		case Unchanged:
			detail = "already holds this data: nothing written"
		case DoneEarlier:
			detail = "written by an earlier run of this batch (journal)"
		case NotAttempted:
			detail = "the run stopped before it"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Secret, r.Path, r.Outcome, version, detail)
	}
	_ = tw.Flush()
	notDone := NotDone(results)
	ew.printf("%d of %d Secrets in Vault", len(results)-notDone, len(results))
	if notDone > 0 {
		ew.printf("; %d not done: fix the cause and run the same command again to resume (what is done stays unchanged)", notDone)
	}
	ew.printf(".\n")
	return ew.err
}
