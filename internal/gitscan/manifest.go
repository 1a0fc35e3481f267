package gitscan

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// lastAppliedAnnotation repeats, as JSON, the whole object kubectl applied:
// for a Secret, its values.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// maxDepth bounds how deep the walkers follow a document: Kubernetes
// objects and values files are shallow, and a hostile blob must not make
// a history scan recurse without end.
const maxDepth = 64

// chunk is one YAML document of a file and the file line it starts on.
type chunk struct {
	text      []byte
	firstLine int
}

// splitDocuments cuts a file at its document markers. yaml.v3's decoder
// stops at the first document that does not parse; cutting first keeps the
// other documents of the file, and the marker rules of YAML (a "---" or
// "..." at the start of a line always ends a document, even inside a block
// scalar) make the cut exact.
func splitDocuments(content []byte) []chunk {
	var out []chunk
	start, startLine, line := 0, 1, 1
	for off := 0; off < len(content); {
		end := bytes.IndexByte(content[off:], '\n')
		next := len(content)
		if end >= 0 {
			next = off + end + 1
		}
		l := content[off:next]
		switch {
		case isMarker(l, "---"):
			if off > start {
				out = append(out, chunk{content[start:off], startLine})
			}
			start, startLine = off, line // the marker line may carry content
		case isMarker(l, "..."):
			if off > start {
				out = append(out, chunk{content[start:off], startLine})
			}
			start, startLine = next, line+1
		}
		off = next
		line++
	}
	if start < len(content) {
		out = append(out, chunk{content[start:], startLine})
	}
	return out
}

func isMarker(line []byte, m string) bool {
	if !bytes.HasPrefix(line, []byte(m)) {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' || line[3] == '\n'
}

// file is the state of one Scan.
type file struct {
	s             *Scanner
	path          string
	sopsPath      bool // *.sops.yaml: meant to be committed encrypted
	values        bool // a Helm values file
	kustomization bool
	leaks         []Leak
	problems      []Problem
}

// doc is what the walkers need to know about the document they are in.
type doc struct {
	// offset turns a node's line into a file line.
	offset int
	// sops is set when the document carries SOPS metadata.
	sops bool
	// lastApplied, when set, is the file line of the last-applied
	// annotation whose JSON the walkers are reading: every leak is
	// reported there, with form last-applied.
	lastApplied int
}

func (d doc) line(n *yaml.Node) int {
	if d.lastApplied > 0 {
		return d.lastApplied
	}
	return n.Line + d.offset
}

func (d doc) form(f string) string {
	if d.lastApplied > 0 {
		return FormLastApplied
	}
	return f
}

// manifests reads every document of a file that parses as YAML or JSON.
func (f *file) manifests(content []byte) {
	for i, c := range splitDocuments(content) {
		if !f.interesting(c.text) {
			continue
		}
		root, err := parse(c.text)
		if err != nil {
			f.problems = append(f.problems, Problem{
				Line:    c.firstLine + errorLine(err) - 1,
				Message: fmt.Sprintf("document %d is not valid YAML or JSON; its values were not checked", i+1),
			})
			continue
		}
		if root == nil {
			continue
		}
		f.object(doc{offset: c.firstLine - 1, sops: isMapping(lookup(root, "sops"))}, root, 0)
	}
}

// interesting is the cheap test that spares parsing documents that cannot
// hold a value this package reports, which most manifests of a repository
// cannot: every kind read here is named Secret, ConfigMap (or their
// lists), or SealedSecret, ExternalSecret, SopsSecret; and the
// last-applied annotation of a Secret repeats its kind. "Secret" must
// start a word, so that imagePullSecrets does not make every Deployment
// parse. Values, SOPS and kustomization files are read whole.
func (f *file) interesting(text []byte) bool {
	if f.values || f.sopsPath || f.kustomization {
		return true
	}
	for _, w := range [...]string{"Secret", "ConfigMap"} {
		if containsWord(text, w) {
			return true
		}
	}
	for _, w := range [...]string{"SealedSecret", "ExternalSecret", "SopsSecret", "secretGenerator"} {
		if bytes.Contains(text, []byte(w)) {
			return true
		}
	}
	return false
}

// containsWord reports whether w occurs in text not preceded by a letter
// or digit.
func containsWord(text []byte, w string) bool {
	for i := 0; ; {
		j := bytes.Index(text[i:], []byte(w))
		if j < 0 {
			return false
		}
		if at := i + j; at == 0 || !isAlnum(text[at-1]) {
			return true
		}
		i += j + 1
	}
}

// parse reads one document. yaml.v3 reads JSON too, with line numbers.
// It has panicked on hostile input before, and a history scan reads
// whatever was ever committed, so a panic is a parse error here.
func parse(text []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: parser failure")
		}
	}()
	var n yaml.Node
	if err := yaml.Unmarshal(text, &n); err != nil {
		return nil, err
	}
	if n.Kind != yaml.DocumentNode || len(n.Content) == 0 {
		return nil, nil
	}
	return resolve(n.Content[0]), nil
}

// errorLine finds the line in a yaml.v3 error ("yaml: line 7: …"), so that
// a Problem can point at it without quoting the message, which may hold
// file content.
func errorLine(err error) int {
	msg := err.Error()
	i := strings.Index(msg, "line ")
	if i < 0 {
		return 1
	}
	j := i + len("line ")
	k := j
	for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
		k++
	}
	n, convErr := strconv.Atoi(msg[j:k])
	if convErr != nil || n < 1 {
		return 1
	}
	return n
}

// object reads one Kubernetes object (or a kustomization, or a values or
// SOPS file's root).
func (f *file) object(d doc, obj *yaml.Node, depth int) {
	if !isMapping(obj) || depth > maxDepth {
		return
	}
	kind := scalar(lookup(obj, "kind"))
	apiVersion := scalar(lookup(obj, "apiVersion"))
	meta := lookup(obj, "metadata")
	ref := inventory.Ref{Kind: kind, Namespace: scalar(lookup(meta, "namespace")), Name: scalar(lookup(meta, "name"))}
	first := len(f.leaks)

	annotations := lookup(meta, "annotations")
	if d.lastApplied == 0 {
		if la := lookup(annotations, lastAppliedAnnotation); la != nil && la.Kind == yaml.ScalarNode {
			f.lastApplied(d, la, depth)
		}
	}

	switch {
	case kind == "Secret":
		form := func(base string) string {
			if d.sops || f.sopsPath {
				return FormSopsUnencrypted
			}
			return base
		}
		f.entries(d, site{rule: finding.PlaintextSecretInGit, object: ref, form: form(FormData)}, lookup(obj, "data"), base64Data)
		f.entries(d, site{rule: finding.PlaintextSecretInGit, object: ref, form: form(FormStringData)}, lookup(obj, "stringData"), plain)
	case kind == "ConfigMap":
		f.configMap(d, ref, obj)
	case kind == "SealedSecret":
		f.entries(d, site{rule: finding.PlaintextSecretInGit, object: ref, form: FormSealedSecretTemplate},
			dig(obj, "spec", "template", "data"), plain)
	case kind == "ExternalSecret":
		f.entries(d, site{rule: finding.PlaintextSecretInGit, object: ref, form: FormExternalSecretTemplate},
			dig(obj, "spec", "target", "template", "data"), plain)
	case kind == "ClusterExternalSecret":
		f.entries(d, site{rule: finding.PlaintextSecretInGit, object: ref, form: FormExternalSecretTemplate},
			dig(obj, "spec", "externalSecretSpec", "target", "template", "data"), plain)
	case kind == "SopsSecret":
		f.sopsSecret(d, ref, obj)
	case isKustomization(f.kustomization, kind, apiVersion):
		f.kustomize(d, obj)
	case strings.HasSuffix(kind, "List") && lookup(obj, "items") != nil && lookup(obj, "items").Kind == yaml.SequenceNode:
		for _, item := range lookup(obj, "items").Content {
			f.object(d, resolve(item), depth+1)
		}
	case apiVersion == "" && depth == 0 && d.lastApplied == 0:
		// Not a Kubernetes object: a values file may well have a kind
		// key of its own (kind: DaemonSet), but no apiVersion.
		switch {
		case f.sopsPath && !d.sops:
			f.decryptedSopsFile(d, obj)
		case f.values:
			f.helmValues(d, obj)
		}
	}

	if ann := keyholeAnnotations(annotations); ann != nil {
		for i := first; i < len(f.leaks); i++ {
			f.leaks[i].Annotations = ann
		}
	}
}

// lastApplied reads the object that a last-applied annotation repeats. It
// is JSON, parsed with the same walkers as the document; only one level
// deep, as kubectl never nests the annotation.
func (f *file) lastApplied(d doc, la *yaml.Node, depth int) {
	if strings.TrimSpace(la.Value) == "" {
		return
	}
	embedded, err := parse([]byte(la.Value))
	if err != nil {
		f.problems = append(f.problems, Problem{Line: d.line(la), Message: "the last-applied-configuration annotation is not valid JSON; its values were not checked"})
		return
	}
	f.object(doc{offset: d.offset, lastApplied: d.line(la)}, embedded, depth+1)
}

// entries reports the values of a key → value mapping (a Secret's data, a
// template's data). at.key, when set, prefixes the keys.
func (f *file) entries(d doc, at site, m *yaml.Node, enc encoding) {
	prefix := at.key
	at.form = d.form(at.form)
	pairs(m, func(k, v *yaml.Node) {
		if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
			return
		}
		at.key, at.line = prefix+k.Value, d.line(v)
		f.leaks = f.s.leak(f.leaks, at, v.Value, enc)
	})
}

// configMap reports the credentials of a ConfigMap, with the detector of
// the workload rules, so that git and the cluster agree on what a
// credential is.
func (f *file) configMap(d doc, ref inventory.Ref, obj *yaml.Node) {
	at := site{rule: finding.ConfigMapCredentialInGit, object: ref, form: d.form(FormConfigMap)}
	pairs(lookup(obj, "data"), func(k, v *yaml.Node) {
		if v.Kind != yaml.ScalarNode {
			return
		}
		at.key, at.line = k.Value, d.line(v)
		f.leaks = f.s.detected(f.leaks, at, k.Value, value{bytes: []byte(v.Value)})
	})
	pairs(lookup(obj, "binaryData"), func(k, v *yaml.Node) {
		if v.Kind != yaml.ScalarNode {
			return
		}
		at.key, at.line = k.Value, d.line(v)
		f.leaks = f.s.detected(f.leaks, at, k.Value, decode(v.Value, base64Data))
	})
}

// sopsSecret reads a SopsSecret (isindir/sops-secrets-operator): its
// secretTemplates hold data (base64) and stringData like a Secret's. All
// of it is meant to be encrypted, so any plain value is reported as
// sops-unencrypted, with or without a sops block; keys are template/key.
func (f *file) sopsSecret(d doc, ref inventory.Ref, obj *yaml.Node) {
	templates := dig(obj, "spec", "secretTemplates")
	if templates == nil || templates.Kind != yaml.SequenceNode {
		return
	}
	for _, t := range templates.Content {
		t = resolve(t)
		at := site{rule: finding.PlaintextSecretInGit, object: ref, form: FormSopsUnencrypted, key: scalar(lookup(t, "name")) + "/"}
		f.entries(d, at, lookup(t, "data"), base64Data)
		f.entries(d, at, lookup(t, "stringData"), plain)
	}
}

// decryptedSopsFile reports every string of a *.sops.yaml that has no
// sops metadata: such a file is meant to hold only ciphertext, so every
// value in it was meant to be secret. Keys are dotted paths.
func (f *file) decryptedSopsFile(d doc, root *yaml.Node) {
	at := site{
		rule:   finding.PlaintextSecretInGit,
		object: inventory.Ref{Kind: "SopsFile", Name: baseName(f.path)},
		form:   FormSopsUnencrypted,
	}
	leaves(root, "", 0, func(key string, v *yaml.Node) {
		if v.ShortTag() != "!!str" {
			return // SOPS encrypts numbers and booleans too, but they are settings
		}
		at.key, at.line = key, d.line(v)
		f.leaks = f.s.leak(f.leaks, at, v.Value, plain)
	})
}

// leaves calls fn for every scalar under n, with its dotted path. Aliases
// are not followed, so that a hostile file cannot expand exponentially.
func leaves(n *yaml.Node, prefix string, depth int, fn func(key string, v *yaml.Node)) {
	if n == nil || depth > maxDepth {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if prefix != "" {
				k = prefix + "." + k
			}
			leaves(n.Content[i+1], k, depth+1, fn)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			leaves(c, prefix+"["+strconv.Itoa(i)+"]", depth+1, fn)
		}
	case yaml.ScalarNode:
		fn(prefix, n)
	}
}

// resolve follows an alias to what it names, and a document to its root.
func resolve(n *yaml.Node) *yaml.Node {
	for range 8 {
		switch {
		case n == nil:
			return nil
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		default:
			return n
		}
	}
	return nil
}

func isMapping(n *yaml.Node) bool { return n != nil && n.Kind == yaml.MappingNode }

// lookup returns the value under key in a mapping, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if !isMapping(m) {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i].Kind == yaml.ScalarNode {
			return resolve(m.Content[i+1])
		}
	}
	return nil
}

// dig follows keys from a mapping.
func dig(m *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		m = lookup(m, k)
	}
	return m
}

// scalar is a scalar's text, or "".
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// pairs calls fn for each key and (resolved) value of a mapping, including
// the entries a merge key (<<: *base) brings in, one level deep.
func pairs(m *yaml.Node, fn func(k, v *yaml.Node)) {
	if !isMapping(m) {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], resolve(m.Content[i+1])
		if k.Kind != yaml.ScalarNode || v == nil {
			continue
		}
		if m.Content[i+1].Kind == yaml.AliasNode && v.Kind == yaml.ScalarNode {
			// Report an alias where it is used, not at its anchor.
			used := *v
			used.Line = k.Line
			v = &used
		}
		if k.ShortTag() == "!!merge" {
			for _, base := range mergeSources(v) {
				for j := 0; j+1 < len(base.Content); j += 2 {
					if bk, bv := base.Content[j], resolve(base.Content[j+1]); bk.Kind == yaml.ScalarNode && bv != nil {
						fn(bk, bv)
					}
				}
			}
			continue
		}
		fn(k, v)
	}
}

func mergeSources(v *yaml.Node) []*yaml.Node {
	if isMapping(v) {
		return []*yaml.Node{v}
	}
	var out []*yaml.Node
	if v.Kind == yaml.SequenceNode {
		for _, c := range v.Content {
			if c = resolve(c); isMapping(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// keyholeAnnotations returns an object's keyhole.io/ annotations, or nil.
func keyholeAnnotations(m *yaml.Node) map[string]string {
	var out map[string]string
	pairs(m, func(k, v *yaml.Node) {
		if strings.HasPrefix(k.Value, inventory.AnnotationPrefix) && v.Kind == yaml.ScalarNode {
			if out == nil {
				out = map[string]string{}
			}
			out[k.Value] = v.Value
		}
	})
	return out
}
