package gitscan

import (
	"bytes"
	pathpkg "path"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// kustomize reports the literals of a kustomization's secretGenerators.
func (f *file) kustomize(d doc, k *yaml.Node) {
	ns := scalar(lookup(k, "namespace"))
	forGenerators(k, ns, func(ref inventory.Ref, g *yaml.Node) {
		lits := lookup(g, "literals")
		if lits == nil || lits.Kind != yaml.SequenceNode {
			return
		}
		for _, item := range lits.Content {
			item = resolve(item)
			if item == nil || item.Kind != yaml.ScalarNode {
				continue
			}
			key, val, ok := strings.Cut(item.Value, "=")
			if !ok {
				continue
			}
			at := site{rule: finding.PlaintextSecretInChart, object: ref, key: key, form: d.form(FormKustomizeLiteral), line: d.line(item)}
			f.leaks = f.s.leak(f.leaks, at, stripQuotes(val), plain)
		}
	})
}

// isKustomization reports a kustomization: a document of a file kustomize
// reads (kustomization.yaml) with no kind or kind Kustomization, or any
// document of kustomize's apiVersion. Flux's Kustomization is another
// kind, with no generators.
func isKustomization(byPath bool, kind, apiVersion string) bool {
	return (byPath && (kind == "" || kind == "Kustomization")) || strings.HasPrefix(apiVersion, "kustomize.config.k8s.io/")
}

// forGenerators calls fn for each secretGenerator of a kustomization,
// with the Secret it generates: Kind Kustomization, the generator's name,
// and its namespace or the kustomization's.
func forGenerators(k *yaml.Node, ns string, fn func(inventory.Ref, *yaml.Node)) {
	gens := lookup(k, "secretGenerator")
	if gens == nil || gens.Kind != yaml.SequenceNode {
		return
	}
	for _, g := range gens.Content {
		g = resolve(g)
		if !isMapping(g) {
			continue
		}
		ref := inventory.Ref{Kind: "Kustomization", Namespace: ns, Name: scalar(lookup(g, "name"))}
		if gns := scalar(lookup(g, "namespace")); gns != "" {
			ref.Namespace = gns
		}
		fn(ref, g)
	}
}

// stripQuotes removes one pair of matching quotes around a literal, as
// kustomize does for literals.
func stripQuotes(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// GeneratorInputs lists the files the secretGenerators of the
// kustomization at kustomizationPath read (envs, the legacy env, and
// files, as "key=path" or "path"), so that the driver can scan them with
// ScanGeneratorInput. Paths are resolved against the kustomization's
// directory and cleaned; those that leave the repository, absolute paths
// and URLs are left out. A file that is not a kustomization lists
// nothing.
func GeneratorInputs(kustomizationPath string, content []byte) []GeneratorInput {
	kust := isKustomizationPath(kustomizationPath)
	if !kust && !bytes.Contains(content, []byte("secretGenerator")) {
		return nil
	}
	dir := pathpkg.Dir(kustomizationPath)
	var out []GeneratorInput
	add := func(in GeneratorInput, rel string) {
		rel = strings.TrimSpace(rel)
		if rel == "" || pathpkg.IsAbs(rel) || strings.Contains(rel, "://") {
			return
		}
		p := pathpkg.Join(dir, rel)
		if p == ".." || strings.HasPrefix(p, "../") {
			return
		}
		in.Path = p
		out = append(out, in)
	}
	for _, c := range splitDocuments(content) {
		root, err := parse(c.text)
		if err != nil || !isMapping(root) {
			continue
		}
		if !isKustomization(kust, scalar(lookup(root, "kind")), scalar(lookup(root, "apiVersion"))) {
			continue
		}
		forGenerators(root, scalar(lookup(root, "namespace")), func(ref inventory.Ref, g *yaml.Node) {
			if env := scalar(lookup(g, "env")); env != "" {
				add(GeneratorInput{Kind: "env", Generator: ref}, env)
			}
			for _, e := range scalars(lookup(g, "envs")) {
				add(GeneratorInput{Kind: "env", Generator: ref}, e)
			}
			for _, spec := range scalars(lookup(g, "files")) {
				key, rel, ok := strings.Cut(spec, "=")
				if !ok {
					key, rel = pathpkg.Base(strings.TrimSpace(spec)), spec
				}
				add(GeneratorInput{Kind: "file", Key: strings.TrimSpace(key), Generator: ref}, rel)
			}
		})
	}
	return out
}

// scalars returns the scalar items of a sequence.
func scalars(n *yaml.Node) []string {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	var out []string
	for _, c := range n.Content {
		if c = resolve(c); c != nil && c.Kind == yaml.ScalarNode {
			out = append(out, c.Value)
		}
	}
	return out
}

// ScanGeneratorInput finds the leaks in one file a secretGenerator reads:
// each KEY=VALUE line of an env file (comments, blank lines and keys
// without a value, which kustomize takes from its environment, skipped),
// or the whole content of a file, which may be binary (a key store). A
// blob over the size limit is skipped.
func (s *Scanner) ScanGeneratorInput(in GeneratorInput, content []byte) []Leak {
	if len(content) > MaxBlobSize {
		return nil
	}
	var out []Leak
	at := site{rule: finding.PlaintextSecretInChart, object: in.Generator}
	switch in.Kind {
	case "env":
		if bytes.IndexByte(content, 0) >= 0 {
			return nil
		}
		for i, line := range strings.Split(string(content), "\n") {
			line = strings.TrimLeft(strings.TrimRight(line, "\r"), " \t")
			if line == "" || line[0] == '#' {
				continue
			}
			key, val, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			at.key, at.form, at.line = key, FormKustomizeEnv, i+1
			out = s.leak(out, at, val, plain)
		}
	case "file":
		at.key, at.form, at.line = in.Key, FormKustomizeFile, 1
		v := value{bytes: content, binary: isBinary(content)}
		if !v.binary && isReference(string(content)) && !bytes.ContainsAny(bytes.TrimSpace(content), "\n") {
			return nil
		}
		out = s.leakValue(out, at, v)
	}
	return out
}
