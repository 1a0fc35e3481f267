// Package inventory is keyhole's one model of the world it audits: an
// immutable snapshot of the Kubernetes objects the analyzers read, with
// indexes by namespace and name. Sources fill it through a Builder; the
// analyzers only read it.
//
// The inventory never holds a Secret value. Secrets enter it only through
// SecretFromAPI, which keeps metadata, type and key names and drops data,
// stringData and the last-applied annotation (which repeats the data).
package inventory

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// Ref names one object as kind/namespace/name. Namespace is empty for
// cluster-scoped kinds.
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Less orders refs by kind, namespace, then name.
func (r Ref) Less(o Ref) bool {
	if r.Kind != o.Kind {
		return r.Kind < o.Kind
	}
	if r.Namespace != o.Namespace {
		return r.Namespace < o.Namespace
	}
	return r.Name < o.Name
}

// Location says where an object was read from. Objects read from a live
// cluster have an empty Path.
type Location struct {
	// Path is the file the object came from ("-" for stdin).
	Path string `json:"path,omitempty"`
	// Line is the 1-based line where the object's document starts.
	Line int `json:"line,omitempty"`
	// Document is the 1-based index of the YAML document within the file.
	Document int `json:"document,omitempty"`
	// Layer names where the object came from when it was not a file:
	// "bootstrap" for the embedded policy, "cluster" for a live read.
	Layer string `json:"layer,omitempty"`
}

func (l Location) String() string {
	switch {
	case l.Path == "" && l.Layer != "":
		return l.Layer
	case l.Path == "":
		return "(unknown)"
	case l.Line > 0:
		return fmt.Sprintf("%s:%d (document %d)", l.Path, l.Line, l.Document)
	case l.Document > 0:
		return fmt.Sprintf("%s (document %d)", l.Path, l.Document)
	default:
		return l.Path
	}
}

// Inventory is an immutable snapshot. Every slice is sorted by namespace
// then name, so analyzers that walk it are deterministic whatever order the
// sources read objects in.
type Inventory struct {
	Namespaces             []*corev1.Namespace
	Secrets                []*Secret
	ServiceAccounts        []*corev1.ServiceAccount
	Roles                  []*rbacv1.Role
	ClusterRoles           []*rbacv1.ClusterRole
	RoleBindings           []*rbacv1.RoleBinding
	ClusterRoleBindings    []*rbacv1.ClusterRoleBinding
	Pods                   []*corev1.Pod
	Workloads              []*Workload
	ConfigMaps             []*corev1.ConfigMap
	Nodes                  []*corev1.Node
	Ingresses              []*networkingv1.Ingress
	PersistentVolumeClaims []*corev1.PersistentVolumeClaim
	PersistentVolumes      []*corev1.PersistentVolume

	locations          map[Ref]Location
	keyholeAnnotations map[Ref]map[string]string
	secretsByNS        map[string][]*Secret
	secretByName       map[nsName]*Secret
	rolesByName        map[nsName]*rbacv1.Role
	clusterRoleNamed   map[string]*rbacv1.ClusterRole
	namespaceNamed     map[string]*corev1.Namespace
}

type nsName struct{ namespace, name string }

// Location returns where the object named by ref was read from.
func (inv *Inventory) Location(ref Ref) Location { return inv.locations[ref] }

// KeyholeAnnotations returns the keyhole.io/ annotations of the object
// named by ref (nil when it has none).
func (inv *Inventory) KeyholeAnnotations(ref Ref) map[string]string {
	return inv.keyholeAnnotations[ref]
}

// AnnotatedRefs returns, sorted, every object that carries a keyhole.io/
// annotation.
func (inv *Inventory) AnnotatedRefs() []Ref {
	out := make([]Ref, 0, len(inv.keyholeAnnotations))
	for r := range inv.keyholeAnnotations {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// SecretsIn returns the Secrets of one namespace, sorted by name.
func (inv *Inventory) SecretsIn(namespace string) []*Secret { return inv.secretsByNS[namespace] }

// Secret returns the Secret namespace/name, or nil.
func (inv *Inventory) Secret(namespace, name string) *Secret {
	return inv.secretByName[nsName{namespace, name}]
}

// Role returns the Role namespace/name, or nil.
func (inv *Inventory) Role(namespace, name string) *rbacv1.Role {
	return inv.rolesByName[nsName{namespace, name}]
}

// ClusterRole returns the ClusterRole name, or nil.
func (inv *Inventory) ClusterRole(name string) *rbacv1.ClusterRole { return inv.clusterRoleNamed[name] }

// Namespace returns the Namespace name, or nil when the inventory has no
// Namespace object for it (common offline: manifests rarely include them).
func (inv *Inventory) Namespace(name string) *corev1.Namespace { return inv.namespaceNamed[name] }

// SecretNamespaces returns every namespace that holds at least one Secret,
// sorted.
func (inv *Inventory) SecretNamespaces() []string {
	out := make([]string, 0, len(inv.secretsByNS))
	for ns := range inv.secretsByNS {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// Counts returns the number of objects of each kind in the inventory.
func (inv *Inventory) Counts() map[string]int {
	counts := map[string]int{}
	add := func(kind string, n int) {
		if n > 0 {
			counts[kind] += n
		}
	}
	add("Namespace", len(inv.Namespaces))
	add("Secret", len(inv.Secrets))
	add("ServiceAccount", len(inv.ServiceAccounts))
	add("Role", len(inv.Roles))
	add("ClusterRole", len(inv.ClusterRoles))
	add("RoleBinding", len(inv.RoleBindings))
	add("ClusterRoleBinding", len(inv.ClusterRoleBindings))
	add("Pod", len(inv.Pods))
	for _, w := range inv.Workloads {
		add(w.Kind, 1)
	}
	add("ConfigMap", len(inv.ConfigMaps))
	add("Node", len(inv.Nodes))
	add("Ingress", len(inv.Ingresses))
	add("PersistentVolumeClaim", len(inv.PersistentVolumeClaims))
	add("PersistentVolume", len(inv.PersistentVolumes))
	return counts
}
