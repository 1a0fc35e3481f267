// Package migrate owns what the `keyhole migrate` commands share: loading
// Secrets with their values (from a manifest file, the live cluster or the
// plaintext manifests tracked in a git repository), cleaning them of the
// metadata that must not travel, writing output files safely, and the
// batch journal that lets an interrupted migration resume.
//
// It is the one place in keyhole where Secret values are held, and it
// holds them in memory only. No error, Skipped reason, journal entry or
// log line of this package quotes a value: decoder messages, which can
// quote input, are replaced by keyhole's own text naming the file,
// document, object and key. Files are written with mode 0600 into
// directories of mode 0700, atomically, and never outside the output
// directory; values never reach a temporary file anywhere else.
//
// The targets (Sealed Secrets, Vault) live in subpackages and commands of
// their own; this package knows nothing of them.
package migrate

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Secret is one Secret loaded with its values, and where it came from.
type Secret struct {
	// Secret is the object, cleaned (see Clean): stringData is merged into
	// data as the API server does, so Data holds every value and
	// StringData is nil.
	Secret *corev1.Secret
	// Origin says where it was read.
	Origin Origin
}

// Ref is the Secret's "namespace/name" (just "name" when the manifest has
// no namespace).
func (s *Secret) Ref() string { return refOf(s.Secret.Namespace, s.Secret.Name) }

// Keys returns the Secret's data keys, sorted: what output may show of
// its content.
func (s *Secret) Keys() []string {
	keys := make([]string, 0, len(s.Secret.Data))
	for k := range s.Secret.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func refOf(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// Origin is where a Secret was read.
type Origin struct {
	// Path is the file as given (FromFile), or the path relative to the
	// repository's top level, with forward slashes (FromGit). It is empty
	// for a live Secret.
	Path string
	// Doc is the 1-based index of the document in the file, counting
	// only documents with content (a lone "---" is not one). Item is the
	// 1-based index in the document's List, or 0 when the document is not
	// a List. Output that mirrors an input file keeps this order.
	Doc, Item int
	// Live is set for a Secret read from the API server. UID and
	// ResourceVersion are then the live object's (Clean removed them from
	// Secret): a plan can use them as preconditions.
	Live            bool
	UID             string
	ResourceVersion string
	// ControlledBy is the Secret's controller before Clean removed its
	// ownerReferences, as "Kind/name" (such as "SealedSecret/db" or
	// "ExternalSecret/db"), or "". A controlled Secret is written by
	// something else already: migrating it would fight its owner.
	ControlledBy string
}

// String names the origin for messages: "file.yaml document 2", "file.yaml
// document 1 item 3", "file.yaml" (the whole file) or "cluster".
func (o Origin) String() string {
	if o.Live {
		return "cluster"
	}
	if o.Doc == 0 {
		return o.Path
	}
	s := fmt.Sprintf("%s document %d", o.Path, o.Doc)
	if o.Item > 0 {
		s += fmt.Sprintf(" item %d", o.Item)
	}
	return s
}

// Skipped is a document that was read but is not a v1 Secret, or a file
// that could not be read as manifests (FromGit only; FromFile fails
// instead). Nothing is skipped silently: commands report these.
type Skipped struct {
	Origin Origin
	// APIVersion, Kind and Name are the document's, when it had them.
	APIVersion, Kind, Name string
	// Reason says why, in keyhole's words; it never quotes the file.
	Reason string
	// Broken is set when a whole file could not be read (FromGit): a
	// Secret in it may have been missed, so a command should not report
	// success.
	Broken bool
}

func (s Skipped) String() string {
	what := s.Kind
	if s.Name != "" {
		what += " " + s.Name
	}
	if what != "" {
		what = " (" + strings.TrimSpace(what) + ")"
	}
	return fmt.Sprintf("%s%s: skipped: %s", s.Origin, what, s.Reason)
}

// Batch is what a loader read: the Secrets in input order, and the
// documents it skipped.
type Batch struct {
	Secrets []Secret
	Skipped []Skipped
}

// ParseRef splits "NAMESPACE/NAME" and checks both are valid object names,
// so that a typo fails before anything is read.
func ParseRef(ref string) (namespace, name string, err error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%q is not NAMESPACE/NAME", ref)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "", "", fmt.Errorf("%q: namespace %q is not valid: %s", ref, ns, errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", "", fmt.Errorf("%q: name %q is not valid: %s", ref, name, errs[0])
	}
	return ns, name, nil
}

// controllerOf names s's controller ownerReference as "Kind/name".
func controllerOf(s *corev1.Secret) string {
	if ref := metav1.GetControllerOfNoCopy(s); ref != nil {
		return ref.Kind + "/" + ref.Name
	}
	return ""
}

// writtenByOthers are Secret types whose content Kubernetes or a tool
// writes, not people: nothing to move.
var writtenByOthers = map[corev1.SecretType]string{
	corev1.SecretTypeServiceAccountToken: "a service account token, which the token controller writes",
	"helm.sh/release.v1":                 "Helm's release record, which Helm writes",
}

// Unmovable says why s is not to be migrated by any target, or "" when it
// may be: its controller writes it (Origin.ControlledBy: a SealedSecret
// has unsealed it already, or another controller would overwrite it), or
// Secrets of its type are written by Kubernetes or Helm.
func Unmovable(s *Secret) string {
	if c := s.Origin.ControlledBy; c != "" {
		if strings.HasPrefix(c, "SealedSecret/") {
			return "already unsealed from " + c
		}
		return "written by its controller " + c + ": change the value at that object's source instead"
	}
	if why, ok := writtenByOthers[s.Secret.Type]; ok {
		return "type " + string(s.Secret.Type) + ": " + why
	}
	return ""
}
