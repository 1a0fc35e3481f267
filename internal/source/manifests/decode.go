package manifests

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source"
)

// kindInfo describes a kind the analysis reads.
type kindInfo struct {
	// version is the only group/version decoded.
	version    schema.GroupVersion
	namespaced bool
}

var (
	coreV1       = schema.GroupVersion{Version: "v1"}
	appsV1       = schema.GroupVersion{Group: "apps", Version: "v1"}
	batchV1      = schema.GroupVersion{Group: "batch", Version: "v1"}
	rbacV1       = rbacv1.SchemeGroupVersion
	networkingV1 = schema.GroupVersion{Group: "networking.k8s.io", Version: "v1"}
)

var kinds = map[string]kindInfo{
	"Namespace":             {coreV1, false},
	"Secret":                {coreV1, true},
	"ServiceAccount":        {coreV1, true},
	"Pod":                   {coreV1, true},
	"ReplicationController": {coreV1, true},
	"ConfigMap":             {coreV1, true},
	"Node":                  {coreV1, false},
	"PersistentVolumeClaim": {coreV1, true},
	"PersistentVolume":      {coreV1, false},
	"Role":                  {rbacV1, true},
	"ClusterRole":           {rbacV1, false},
	"RoleBinding":           {rbacV1, true},
	"ClusterRoleBinding":    {rbacV1, false},
	"Deployment":            {appsV1, true},
	"ReplicaSet":            {appsV1, true},
	"StatefulSet":           {appsV1, true},
	"DaemonSet":             {appsV1, true},
	"Job":                   {batchV1, true},
	"CronJob":               {batchV1, true},
	"Ingress":               {networkingV1, true},
}

// retired lists the versions of the kinds above that API servers no longer
// serve. client-go's scheme still has types for some of them (rbac v1beta1
// and v1alpha1), but no conversion to v1, and no current cluster would
// accept them, so they are reported instead of read.
var retired = map[string][]string{
	"extensions/v1beta1":                {"Deployment", "ReplicaSet", "DaemonSet", "Ingress"},
	"apps/v1beta1":                      {"Deployment", "StatefulSet"},
	"apps/v1beta2":                      {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"},
	"batch/v1beta1":                     {"CronJob"},
	"batch/v2alpha1":                    {"CronJob"},
	"networking.k8s.io/v1beta1":         {"Ingress"},
	"rbac.authorization.k8s.io/v1beta1": {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"},
	"rbac.authorization.k8s.io/v1alpha1": {
		"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding",
	},
}

// maxListDepth bounds Lists inside Lists. Real inputs nest once at most;
// the bound keeps a crafted input from costing time quadratic in its
// depth.
const maxListDepth = 8

// fileLoad decodes the content of one file.
type fileLoad struct {
	l    *loader
	path string
	cov  *source.Coverage
}

// object locates one object (a document, or an item of a List) and carries
// what is needed to point at lines inside it.
type object struct {
	doc     int // 1-based document index in the file
	docLine int // line where the document starts
	line    int // line where this object starts (docLine for a document)
	// item is the path of a List item inside its document, e.g.
	// "items[2]"; empty for the document itself.
	item string
	// text is this object's source text when known, starting at line
	// textLine; it is used to find the line of a field, and (when isJSON,
	// meaning text is the object's exact JSON) of List items.
	text     []byte
	textLine int
	isJSON   bool
	// isYAML says text is this object's YAML, in which List items can be
	// found by indentation.
	isYAML bool
	// inherit is the kind of a typed List's items (SecretList → Secret),
	// used when an item has no apiVersion or kind of its own, as in API
	// responses.
	inherit schema.GroupVersionKind
	depth   int
}

func (o *object) location(path string) inventory.Location {
	return inventory.Location{Path: path, Line: o.line, Document: o.doc}
}

// where prefixes every message about the object.
func (f *fileLoad) where(o *object) string {
	s := fmt.Sprintf("%s: document %d (line %d)", f.path, o.doc, o.docLine)
	if o.item != "" {
		s += fmt.Sprintf(": %s (line %d)", o.item, o.line)
	}
	return s
}

func (f *fileLoad) problem(o *object, ref *inventory.Ref, impact, format string, args ...any) {
	msg := f.where(o) + ": "
	if ref != nil {
		msg += ref.String() + ": "
	}
	f.l.problems = append(f.l.problems, source.Problem{
		Source:   SourceName,
		Location: o.location(f.path),
		Object:   ref,
		Message:  msg + fmt.Sprintf(format, args...),
		Impact:   impact,
	})
}

func (f *fileLoad) note(o *object, format string, args ...any) {
	f.cov.Notes = append(f.cov.Notes, f.where(o)+": "+fmt.Sprintf(format, args...))
}

const impactObject = "this object is missing from the analysis"

// decode reads every document of a file. JSON is recognised by its
// content, as kubectl does; a .json file is always read as JSON, other
// files fall back to YAML (of which JSON is a subset) when they are not a
// clean JSON stream, e.g. a flow-style YAML document or JSON followed by
// "---".
func (f *fileLoad) decode(data []byte, jsonExt bool) {
	if jsonExt || looksLikeJSON(data) {
		docs, errs := splitJSON(data)
		// Content that fails as JSON from its first value on is taken
		// for YAML; once a value has been read, it is a JSON stream
		// with an error in it.
		if jsonExt || len(errs) == 0 || errs[0].index > 1 {
			f.decodeJSON(docs, errs)
			return
		}
	}
	for i, d := range splitYAML(data) {
		f.yamlDocument(i+1, d)
	}
}

func (f *fileLoad) decodeJSON(docs []document, errs []jsonSyntaxError) {
	di, ei := 0, 0
	for index := 1; di < len(docs) || ei < len(errs); index++ {
		if ei < len(errs) && errs[ei].index == index {
			e := errs[ei]
			ei++
			o := &object{doc: index, docLine: e.line, line: e.line}
			at := fmt.Sprintf("line %d", e.errLine)
			if e.errCol > 0 {
				at += fmt.Sprintf(", column %d", e.errCol)
			}
			rest := "the rest of the file is not read"
			if e.resume > 0 {
				rest = fmt.Sprintf("reading resumed at line %d", e.resume)
			}
			f.problem(o, nil, impactFile, "invalid JSON at %s: %s; %s", at, e.reason, rest)
			continue
		}
		d := docs[di]
		di++
		f.object(&object{doc: index, docLine: d.line, line: d.line, text: d.data, textLine: d.line, isJSON: true}, d.data)
	}
}

func (f *fileLoad) yamlDocument(index int, d document) {
	o := &object{doc: index, docLine: d.line, line: d.line, text: d.data, textLine: d.line, isYAML: true}
	j, err := yaml.YAMLToJSON(d.data)
	if err != nil {
		line, reason := yamlErrorReason(err, d.data)
		// yaml.v2 may place an error at the end of the stream, which is
		// the line of the next document's marker: keep it in this one.
		line = min(line, 1+bytes.Count(bytes.TrimRight(d.data, "\r\n"), []byte{'\n'}))
		at := ""
		if line > 0 {
			at = fmt.Sprintf(" at line %d", d.line+line-1)
		}
		f.problem(o, nil, impactFile, "invalid YAML%s: %s%s; document not read", at, reason, templateHint(d.data))
		return
	}
	if string(j) == "null" {
		return // "~" or an explicit null: an empty document
	}
	if end := flowRootEnd(d.data); end >= 0 {
		if i := firstContent(d.data[end:]); i >= 0 {
			line := d.line + bytes.Count(d.data[:end+i], []byte{'\n'})
			f.problem(o, nil, impactFile, "line %d starts another object without a --- before it; the rest of the document is not read (kubectl ignores it too)", line)
		}
	}
	f.object(o, j)
}

// firstContent returns the offset of the first character in text that is
// neither blank nor in a comment, or -1.
func firstContent(text []byte) int {
	for off := 0; off < len(text); {
		l, next := nextLine(text, off)
		if hasContent(l) {
			return off + len(l) - len(bytes.TrimLeft(l, " \t\r"))
		}
		off = next
	}
	return -1
}

// templateHint adds a hint when a document that could not be read looks
// like an unrendered Helm or Go template.
func templateHint(text []byte) string {
	if bytes.Contains(text, []byte("{{")) {
		return " (it looks like a template: render it first, e.g. with helm template)"
	}
	return ""
}

// header is the part of every object read before its kind is known.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   *struct {
		Name         string `json:"name"`
		GenerateName string `json:"generateName"`
		Namespace    string `json:"namespace"`
	} `json:"metadata"`
	Items json.RawMessage `json:"items"`
}

// object decodes one object from its JSON j.
func (f *fileLoad) object(o *object, j []byte) {
	if i := skipJSONSpace(j, 0); i >= len(j) || j[i] != '{' {
		if o.item != "" {
			f.problem(o, nil, impactObject, "not an object; not read")
		} else {
			f.note(o, "not a Kubernetes object, skipped")
		}
		return
	}
	var h header
	// utiljson matches keys case-sensitively, as the API server does:
	// "Kind:" is not "kind:".
	if err := utiljson.Unmarshal(j, &h); err != nil {
		f.problem(o, nil, impactObject, "%s%s; not read", f.decodeErrorText(o, err, nil, "", nil), templateHint(o.text))
		return
	}
	if h.Kind == "" && o.inherit.Kind != "" {
		h.Kind = o.inherit.Kind
	}
	if h.APIVersion == "" && o.inherit.Kind != "" {
		h.APIVersion = o.inherit.GroupVersion().String()
	}
	// A document missing apiVersion or kind is only taken for a broken
	// object when it has the metadata every object has: Helm's
	// Chart.yaml has an apiVersion and kustomization.yaml may have a
	// kind, and neither is an object.
	looksLikeObject := h.Metadata != nil || o.item != ""
	switch {
	case (h.Kind == "" || h.APIVersion == "") && !looksLikeObject:
		f.note(o, "not a Kubernetes object, skipped")
		return
	case h.Kind == "" && h.APIVersion == "":
		f.problem(o, nil, impactObject, "no apiVersion and kind; not read")
		return
	case h.Kind == "":
		f.problem(o, nil, impactObject, "apiVersion %s but no kind; not read", clip(h.APIVersion))
		return
	case h.APIVersion == "":
		f.problem(o, nil, impactObject, "kind %s but no apiVersion; not read", clip(h.Kind))
		return
	}
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	if err != nil {
		f.problem(o, nil, impactObject, "%s has an invalid apiVersion %q; not read", clip(h.Kind), clip(h.APIVersion))
		return
	}
	if h.Kind == "List" || (strings.HasSuffix(h.Kind, "List") && h.Items != nil) {
		f.list(o, h, gv)
		return
	}

	info, known := kinds[h.Kind]
	var ref *inventory.Ref
	if h.Metadata != nil && h.Metadata.Name != "" {
		ref = &inventory.Ref{Kind: h.Kind, Name: h.Metadata.Name}
		if known && info.namespaced {
			ref.Namespace = h.Metadata.Namespace
			if ref.Namespace == "" {
				ref.Namespace = f.l.opts.DefaultNamespace
			}
		}
	}
	if !known {
		source.Count(&f.cov.Ignored, h.Kind)
		return
	}
	if gv != info.version {
		f.otherVersion(o, ref, h.Kind, gv, info)
		return
	}
	if ref == nil {
		if h.Metadata != nil && h.Metadata.GenerateName != "" {
			f.problem(o, nil, impactObject, "%s has metadata.generateName but no metadata.name: its name is only chosen when it is created; not read", h.Kind)
		} else {
			f.problem(o, nil, impactObject, "%s has no metadata.name; not read", h.Kind)
		}
		return
	}

	gvk := gv.WithKind(h.Kind)
	obj, err := scheme.Scheme.New(gvk)
	if err != nil {
		// Every kind in the table is in client-go's scheme; this is a
		// programming error, reported rather than panicking on input.
		f.problem(o, ref, impactObject, "kind not in the client-go scheme; not read")
		return
	}
	// This is the decode the UniversalDeserializer does after sniffing the
	// kind; the kind is already known here, and the deserializer's own
	// sniff matches keys case-insensitively, unlike the API server.
	if err := utiljson.Unmarshal(j, obj); err != nil {
		f.problem(o, ref, impactObject, "%s%s; not read", f.decodeErrorText(o, err, j, h.Kind, obj), templateHint(o.text))
		return
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	if m, ok := obj.(metav1.Object); ok {
		switch {
		case !info.namespaced:
			m.SetNamespace("")
		case m.GetNamespace() == "":
			m.SetNamespace(f.l.opts.DefaultNamespace)
		}
	}
	if !f.check(o, ref, obj) {
		return
	}
	f.add(o, ref, obj)
}

func (f *fileLoad) otherVersion(o *object, ref *inventory.Ref, kind string, gv schema.GroupVersion, info kindInfo) {
	if slices.Contains(retired[gv.String()], kind) {
		f.problem(o, ref, impactObject, "apiVersion %s is no longer served; convert to %s; not read", gv, info.version)
		return
	}
	if gv.Group == info.version.Group || (gv.Group == "extensions" && slices.Contains(retired["extensions/v1beta1"], kind)) {
		f.problem(o, ref, impactObject, "apiVersion %s is not a known version of %s (read: %s); not read", clip(gv.String()), kind, info.version)
		return
	}
	// The same kind name in another API group, e.g. a custom resource
	// called Role: not what the analysis reads.
	source.Count(&f.cov.Ignored, kind+" ("+clip(gv.String())+")")
}

func (f *fileLoad) add(o *object, ref *inventory.Ref, obj runtime.Object) {
	loc := o.location(f.path)
	replaced, prev, err := f.l.b.Add(obj, loc)
	if errors.Is(err, inventory.ErrUnsupportedKind) {
		source.Count(&f.cov.Ignored, ref.Kind)
		return
	}
	if err != nil {
		f.problem(o, ref, impactObject, "not added: %v", err)
		return
	}
	source.Count(&f.cov.Objects, ref.Kind)
	switch {
	case replaced && prev.Path != "":
		f.cov.Notes = append(f.cov.Notes, fmt.Sprintf("%s in %s replaces the one in %s", ref, shortLocation(loc), shortLocation(prev)))
	case replaced && prev.Layer != "":
		f.cov.Notes = append(f.cov.Notes, fmt.Sprintf("%s in %s replaces the %s policy's", ref, shortLocation(loc), prev.Layer))
	}
}

func shortLocation(l inventory.Location) string {
	if l.Line > 0 {
		return fmt.Sprintf("%s:%d", l.Path, l.Line)
	}
	return l.String()
}

// list reads the items of a List. A typed List (SecretList) gives its
// apiVersion and kind to items that have none, as the API server's list
// responses do; a plain List does not.
func (f *fileLoad) list(o *object, h header, gv schema.GroupVersion) {
	if o.depth >= maxListDepth {
		f.problem(o, nil, impactObject, "List nested more than %d deep; not read", maxListDepth)
		return
	}
	if h.Items == nil || string(h.Items) == "null" {
		return
	}
	var items []json.RawMessage
	if err := json.Unmarshal(h.Items, &items); err != nil {
		f.problem(o, nil, impactObject, "%s items is not a list; not read", clip(h.Kind))
		return
	}
	var inherit schema.GroupVersionKind
	if h.Kind != "List" {
		inherit = gv.WithKind(strings.TrimSuffix(h.Kind, "List"))
	}
	lines := f.itemLines(o, items)
	for i, it := range items {
		c := &object{
			doc:     o.doc,
			docLine: o.docLine,
			line:    o.line,
			item:    fmt.Sprintf("%sitems[%d]", itemPrefix(o.item), i),
			inherit: inherit,
			depth:   o.depth + 1,
		}
		if lines != nil {
			c.line, c.text, c.textLine, c.isJSON, c.isYAML = lines[i].line, lines[i].text, lines[i].line, o.isJSON, o.isYAML
		}
		f.object(c, it)
	}
}

func itemPrefix(item string) string {
	if item == "" {
		return ""
	}
	return item + "."
}

type itemPos struct {
	line int
	text []byte
}

// itemLines finds where each List item starts in the source, or returns
// nil when it cannot tell cheaply (the items then carry the List's line).
func (f *fileLoad) itemLines(o *object, items []json.RawMessage) []itemPos {
	switch {
	case o.isJSON && o.text != nil:
		// A RawMessage is the exact source text of the item, so each
		// item is found by searching on from the previous one.
		out := make([]itemPos, len(items))
		lc := lineCounter{buf: o.text}
		from := 0
		for i, it := range items {
			k := bytes.Index(o.text[from:], it)
			if k < 0 {
				return nil
			}
			at := from + k
			out[i] = itemPos{line: o.textLine + lc.at(at) - 1, text: o.text[at : at+len(it)]}
			from = at + len(it)
		}
		return out
	case o.isYAML && o.text != nil:
		pos := yamlItems(o.text)
		if len(pos) != len(items) {
			return nil
		}
		out := make([]itemPos, len(items))
		lc := lineCounter{buf: o.text}
		for i, off := range pos {
			end := len(o.text)
			if i+1 < len(pos) {
				end = pos[i+1]
			}
			out[i] = itemPos{line: o.textLine + lc.at(off) - 1, text: o.text[off:end]}
		}
		return out
	}
	return nil
}

// check applies the rules the API server would enforce on the objects the
// RBAC analysis depends on. It reports whether obj is to be added; it may
// drop parts of obj (a subject of unknown kind) and report them.
func (f *fileLoad) check(o *object, ref *inventory.Ref, obj runtime.Object) bool {
	switch r := obj.(type) {
	case *rbacv1.Role:
		if r.Rules == nil {
			f.problem(o, ref, "the Role is read as granting nothing", "no rules field (or rules is null); write rules: [] for a Role that grants nothing")
		}
	case *rbacv1.ClusterRole:
		if r.Rules == nil && r.AggregationRule == nil {
			f.problem(o, ref, "the ClusterRole is read as granting nothing", "no rules field (or rules is null) and no aggregationRule; write rules: [] for a ClusterRole that grants nothing")
		}
	case *rbacv1.RoleBinding:
		if !f.checkRoleRef(o, ref, r.RoleRef, true) {
			return false
		}
		r.Subjects = f.checkSubjects(o, ref, r.Subjects)
	case *rbacv1.ClusterRoleBinding:
		if !f.checkRoleRef(o, ref, r.RoleRef, false) {
			return false
		}
		r.Subjects = f.checkSubjects(o, ref, r.Subjects)
	}
	return true
}

const impactBinding = "what this binding grants is missing from the analysis"

func (f *fileLoad) checkRoleRef(o *object, ref *inventory.Ref, rr rbacv1.RoleRef, namespaced bool) bool {
	switch {
	case rr.Name == "":
		f.problem(o, ref, impactBinding, "roleRef has no name; binding not read")
		return false
	case rr.APIGroup != "" && rr.APIGroup != rbacv1.GroupName:
		f.problem(o, ref, impactBinding, "roleRef.apiGroup is %q, not %s; binding not read", clip(rr.APIGroup), rbacv1.GroupName)
		return false
	case !namespaced && rr.Kind == "Role":
		f.problem(o, ref, impactBinding, "roleRef.kind is Role, but a ClusterRoleBinding can only refer to a ClusterRole; binding not read")
		return false
	case !namespaced && rr.Kind != "ClusterRole":
		f.problem(o, ref, impactBinding, "roleRef.kind is %q, want ClusterRole; binding not read", clip(rr.Kind))
		return false
	case namespaced && rr.Kind != "Role" && rr.Kind != "ClusterRole":
		f.problem(o, ref, impactBinding, "roleRef.kind is %q, want Role or ClusterRole; binding not read", clip(rr.Kind))
		return false
	}
	return true
}

// checkSubjects returns the subjects the API server would accept, and
// reports each one dropped. The binding's other subjects still count.
func (f *fileLoad) checkSubjects(o *object, ref *inventory.Ref, subjects []rbacv1.Subject) []rbacv1.Subject {
	var kept []rbacv1.Subject
	for i, s := range subjects {
		var why string
		switch {
		case s.Kind != rbacv1.UserKind && s.Kind != rbacv1.GroupKind && s.Kind != rbacv1.ServiceAccountKind:
			why = fmt.Sprintf("has kind %q, want User, Group or ServiceAccount", clip(s.Kind))
		case s.Name == "":
			why = "has no name"
		case s.Kind == rbacv1.ServiceAccountKind && s.APIGroup != "":
			why = fmt.Sprintf("is a ServiceAccount with apiGroup %q, which must be empty", clip(s.APIGroup))
		case s.Kind != rbacv1.ServiceAccountKind && s.APIGroup != "" && s.APIGroup != rbacv1.GroupName:
			why = fmt.Sprintf("is a %s with apiGroup %q, not %s", s.Kind, clip(s.APIGroup), rbacv1.GroupName)
		default:
			// A ServiceAccount without a namespace in a ClusterRoleBinding
			// is kept: it matches no one, and the analysis reports it as
			// an invalid subject (KH121).
			kept = append(kept, s)
			continue
		}
		f.problem(o, ref, "this subject is missing from the analysis", "subjects[%d] %s; that subject is ignored", i, why)
	}
	if len(kept) == len(subjects) {
		return subjects
	}
	return kept
}

// decodeErrorText describes a decoding error without quoting the input. j
// and kind are given for a typed decode, to name the Secret data key that
// is not base64.
func (f *fileLoad) decodeErrorText(o *object, err error, j []byte, kind string, into any) string {
	d := describeDecodeError(err, into)
	if d.base64 && kind == "Secret" && j != nil {
		if key, pos, ok := badBase64Key(j); ok {
			at := ""
			if l := keyLine(o.text, []string{"data", key}); l > 0 {
				at = fmt.Sprintf(" (line %d)", o.textLine+l-1)
			}
			return fmt.Sprintf("data key %q%s is not valid base64 (at character %d)", clip(key), at, pos+1)
		}
	}
	if d.field == "" {
		return d.reason
	}
	at := ""
	if l := keyLine(o.text, strings.Split(d.field, ".")); l > 0 {
		at = fmt.Sprintf(" (line %d)", o.textLine+l-1)
	}
	return fmt.Sprintf("field %s%s: %s", d.field, at, d.reason)
}

// badBase64Key finds the first (in key order) Secret data value that is not
// valid base64.
func badBase64Key(j []byte) (key string, pos int64, ok bool) {
	var s struct {
		Data map[string]*string `json:"data"`
	}
	if utiljson.Unmarshal(j, &s) != nil {
		return "", 0, false
	}
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := s.Data[k]
		if v == nil {
			continue
		}
		if _, err := base64.StdEncoding.DecodeString(*v); err != nil {
			var ce base64.CorruptInputError
			if errors.As(err, &ce) {
				return k, int64(ce), true
			}
			return k, 0, true
		}
	}
	return "", 0, false
}

// clip bounds user-supplied names echoed in messages.
func clip(s string) string {
	const n = 100
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
