package sealedsecrets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/migrate"
)

// Layout says how SealedSecrets are laid out in output files.
type Layout int

const (
	// PerSecret writes one file per Secret, NAMESPACE/NAME.yaml (NAME.yaml
	// for a Secret without a namespace).
	PerSecret Layout = iota
	// Mirror writes, for each input file holding Secrets, a file at the
	// same relative path holding their SealedSecrets in input order (for
	// input read from git).
	Mirror
)

// StepWrite is the journal step of writing one output file.
const StepWrite = "write"

// Options configure a Migration.
type Options struct {
	Cert   *Cert
	Scope  ssv1alpha1.SealingScope
	Layout Layout
	// Out is the output directory, or nil for the manifests to go to one
	// stream (Manifests).
	Out *migrate.Out
	// Client and Dynamic are set to apply the hand-over on the cluster
	// (annotate, then apply); nil for a plan only.
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
}

// Item is one Secret of the batch and what became of it.
type Item struct {
	Secret migrate.Secret
	// Sealed is the SealedSecret, or nil when Err says why not.
	Sealed *ssv1alpha1.SealedSecret
	Err    error
	// File is the output file (relative to Out) that holds it.
	File string
}

// Ref is the Secret's namespace/name.
func (it *Item) Ref() string { return it.Secret.Ref() }

// Migration is a batch of Secrets sealed in memory, ready to be written
// and applied.
type Migration struct {
	opts Options
	// Items are the Secrets sealed (or not: Err), in input order.
	Items []*Item
	// Skipped are the Secrets not migrated on purpose: written by a
	// controller, or of a type that must not be sealed.
	Skipped []migrate.Skipped
	// files are the output files in order, each with its items.
	files []*outFile
}

type outFile struct {
	rel   string
	items []*Item
}

// Prepare seals every Secret of b (in memory) and lays them out in
// files. A Secret that cannot be sealed gets an Err; the others go on.
func Prepare(b *migrate.Batch, opts Options) *Migration {
	m := &Migration{opts: opts}
	seen := map[string]*Item{}
	byFile := map[string]*outFile{}
	for _, s := range b.Secrets {
		if why := migrate.Unmovable(&s); why != "" {
			m.Skipped = append(m.Skipped, migrate.Skipped{Origin: s.Origin, APIVersion: "v1", Kind: "Secret", Name: s.Ref(), Reason: why})
			continue
		}
		it := &Item{Secret: s}
		it.File = outputFile(&s, opts.Layout)
		key := s.Secret.Namespace + "/" + s.Secret.Name
		if prev, ok := seen[key]; ok && (opts.Layout == PerSecret || prev.File == it.File) {
			it.Err = fmt.Errorf("secret/%s appears twice in the input (also %s): migrate one of them", it.Ref(), prev.Secret.Origin)
		} else {
			seen[key] = it
			it.Sealed, it.Err = Seal(s.Secret, opts.Cert, opts.Scope)
		}
		m.Items = append(m.Items, it)
		f := byFile[it.File]
		if f == nil {
			f = &outFile{rel: it.File}
			m.files = append(m.files, f)
			byFile[it.File] = f
		}
		f.items = append(f.items, it)
	}
	return m
}

func outputFile(s *migrate.Secret, layout Layout) string {
	if layout == Mirror && s.Origin.Path != "" {
		return s.Origin.Path
	}
	if s.Secret.Namespace == "" {
		return s.Secret.Name + ".yaml"
	}
	return path.Join(s.Secret.Namespace, s.Secret.Name+".yaml")
}

// Failed reports whether some Secret could not be sealed.
func (m *Migration) Failed() bool {
	for _, it := range m.Items {
		if it.Err != nil {
			return true
		}
	}
	return false
}

// Manifests renders every SealedSecret as one YAML stream, for stdout.
// Secrets that could not be sealed are left out (their Err says why).
func (m *Migration) Manifests() ([]byte, error) {
	var sss []*ssv1alpha1.SealedSecret
	for _, it := range m.Items {
		if it.Sealed != nil {
			sss = append(sss, it.Sealed)
		}
	}
	return Marshal(sss...)
}

// Tasks are the batch's steps, in order: writing each output file (with
// Out), then for each Secret, with a Client, annotating the live Secret
// and applying the SealedSecret. A Secret that could not be sealed fails
// its first step.
func (m *Migration) Tasks() []migrate.Task {
	var tasks []migrate.Task
	if m.opts.Out != nil {
		for _, f := range m.files {
			tasks = append(tasks, migrate.Task{Ref: f.rel, Step: StepWrite, Do: func(context.Context) error {
				var sss []*ssv1alpha1.SealedSecret
				for _, it := range f.items {
					if it.Err != nil {
						return it.Err
					}
					sss = append(sss, it.Sealed)
				}
				data, err := Marshal(sss...)
				if err != nil {
					return err
				}
				return m.opts.Out.WriteFile(f.rel, data)
			}})
		}
	}
	if m.opts.Client == nil {
		return tasks
	}
	for _, it := range m.Items {
		tasks = append(tasks,
			migrate.Task{Ref: it.Ref(), Step: StepAnnotate, Do: func(ctx context.Context) error {
				if it.Err != nil {
					return it.Err
				}
				return m.annotate(ctx, it)
			}},
			migrate.Task{Ref: it.Ref(), Step: StepApply, Do: func(ctx context.Context) error {
				return Apply(ctx, m.opts.Dynamic, it.Sealed)
			}},
		)
	}
	return tasks
}

// annotate is the hand-over's first step. A live Secret read from the
// cluster must still be there (the same object, by uid); for a Secret
// read from a file, there may be no live Secret at all, and then there is
// nothing to hand over.
func (m *Migration) annotate(ctx context.Context, it *Item) error {
	s := it.Secret
	if s.Secret.Namespace == "" {
		return nil // cluster-wide, no namespace: it names no live Secret
	}
	err := Annotate(ctx, m.opts.Client, s.Secret.Namespace, s.Secret.Name, s.Origin.UID)
	if err != nil && !s.Origin.Live && errors.Is(err, errNoLiveSecret) {
		return nil
	}
	return err
}

// WritePlan prints the hand-over plan for people: for each output file,
// the SealedSecrets it holds, where each Secret came from and its keys,
// then the kubectl commands of the hand-over in order (annotate every live
// Secret, then apply the file). It never prints a value. manifest names
// the stream the SealedSecrets went to when there is no output directory.
func (m *Migration) WritePlan(w io.Writer, manifest string) {
	for _, f := range m.files {
		name := manifest
		if m.opts.Out != nil {
			name = m.opts.Out.Path(f.rel)
		}
		fmt.Fprintf(w, "%s:\n", name)
		var steps []string
		ok := true
		for _, it := range f.items {
			s := it.Secret.Secret
			if it.Err != nil {
				ok = false
				fmt.Fprintf(w, "  secret/%s from %s: NOT SEALED: %s\n", it.Ref(), it.Secret.Origin, it.Err)
				continue
			}
			fmt.Fprintf(w, "  sealedsecret/%s (scope %s; keys: %s) from secret/%s in %s\n",
				it.Ref(), ScopeName(m.opts.Scope), keyList(&it.Secret), it.Ref(), it.Secret.Origin)
			if s.Namespace != "" {
				plan := HandOverPlan(s.Namespace, s.Name, name)
				cmd := plan[0].Kubectl
				if !it.Secret.Origin.Live {
					cmd += "   # if it exists in the cluster"
				}
				steps = append(steps, cmd)
			}
		}
		if !ok {
			continue
		}
		steps = append(steps, ApplyCommand(name))
		for i, s := range steps {
			fmt.Fprintf(w, "  %d. %s\n", i+1, s)
		}
	}
}

func keyList(s *migrate.Secret) string {
	keys := s.Keys()
	if len(keys) == 0 {
		return "none"
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}
