package inventory

import (
	"errors"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErrUnsupportedKind is returned by Builder.Add for kinds the analysis does
// not read. Sources count such objects instead of failing.
var ErrUnsupportedKind = errors.New("kind not used by the analysis")

// Builder collects objects from one or more sources. An object added again
// under the same Ref replaces the earlier one: sources are layered, the
// embedded bootstrap policy first and the user's inputs over it.
type Builder struct {
	objects   map[Ref]any
	locations map[Ref]Location
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{objects: map[Ref]any{}, locations: map[Ref]Location{}}
}

// Add puts one API object into the inventory under construction. Secrets
// are converted to the value-free model at once. It reports whether an
// object with the same Ref was replaced, and its location.
func (b *Builder) Add(obj any, loc Location) (replaced bool, previous Location, err error) {
	var ref Ref
	var stored any
	switch o := obj.(type) {
	case *corev1.Secret:
		s := SecretFromAPI(o)
		ref, stored = s.Ref(), s
	case *Secret:
		ref, stored = o.Ref(), o
	case *corev1.Namespace:
		ref, stored = refOf("Namespace", o.ObjectMeta), o
	case *corev1.ServiceAccount:
		ref, stored = refOf("ServiceAccount", o.ObjectMeta), o
	case *rbacv1.Role:
		ref, stored = refOf("Role", o.ObjectMeta), o
	case *rbacv1.ClusterRole:
		ref, stored = refOf("ClusterRole", o.ObjectMeta), o
	case *rbacv1.RoleBinding:
		ref, stored = refOf("RoleBinding", o.ObjectMeta), o
	case *rbacv1.ClusterRoleBinding:
		ref, stored = refOf("ClusterRoleBinding", o.ObjectMeta), o
	case *corev1.Pod:
		ref, stored = refOf("Pod", o.ObjectMeta), o
	case *corev1.ConfigMap:
		ref, stored = refOf("ConfigMap", o.ObjectMeta), o
	case *corev1.Node:
		ref, stored = refOf("Node", o.ObjectMeta), o
	case *networkingv1.Ingress:
		ref, stored = refOf("Ingress", o.ObjectMeta), o
	case *corev1.PersistentVolumeClaim:
		ref, stored = refOf("PersistentVolumeClaim", o.ObjectMeta), o
	case *corev1.PersistentVolume:
		ref, stored = refOf("PersistentVolume", o.ObjectMeta), o
	case *Workload:
		ref, stored = o.Ref(), o
	default:
		w := WorkloadFromAPI(obj)
		if w == nil {
			return false, Location{}, ErrUnsupportedKind
		}
		ref, stored = w.Ref(), w
	}
	previous, replaced = b.locations[ref]
	b.objects[ref] = stored
	b.locations[ref] = loc
	return replaced, previous, nil
}

// Len returns the number of objects added so far.
func (b *Builder) Len() int { return len(b.objects) }

func refOf(kind string, m metav1.ObjectMeta) Ref {
	return Ref{Kind: kind, Namespace: m.Namespace, Name: m.Name}
}

// Build returns the immutable, sorted and indexed inventory.
func (b *Builder) Build() *Inventory {
	refs := make([]Ref, 0, len(b.objects))
	for r := range b.objects {
		refs = append(refs, r)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Less(refs[j]) })

	inv := &Inventory{locations: make(map[Ref]Location, len(b.locations)), keyholeAnnotations: map[Ref]map[string]string{}}
	for _, r := range refs {
		inv.locations[r] = b.locations[r]
		if a := keyholeAnnotations(b.objects[r]); a != nil {
			inv.keyholeAnnotations[r] = a
		}
		switch o := b.objects[r].(type) {
		case *Secret:
			inv.Secrets = append(inv.Secrets, o)
		case *corev1.Namespace:
			inv.Namespaces = append(inv.Namespaces, o)
		case *corev1.ServiceAccount:
			inv.ServiceAccounts = append(inv.ServiceAccounts, o)
		case *rbacv1.Role:
			inv.Roles = append(inv.Roles, o)
		case *rbacv1.ClusterRole:
			inv.ClusterRoles = append(inv.ClusterRoles, o)
		case *rbacv1.RoleBinding:
			inv.RoleBindings = append(inv.RoleBindings, o)
		case *rbacv1.ClusterRoleBinding:
			inv.ClusterRoleBindings = append(inv.ClusterRoleBindings, o)
		case *corev1.Pod:
			inv.Pods = append(inv.Pods, o)
		case *Workload:
			inv.Workloads = append(inv.Workloads, o)
		case *corev1.ConfigMap:
			inv.ConfigMaps = append(inv.ConfigMaps, o)
		case *corev1.Node:
			inv.Nodes = append(inv.Nodes, o)
		case *networkingv1.Ingress:
			inv.Ingresses = append(inv.Ingresses, o)
		case *corev1.PersistentVolumeClaim:
			inv.PersistentVolumeClaims = append(inv.PersistentVolumeClaims, o)
		case *corev1.PersistentVolume:
			inv.PersistentVolumes = append(inv.PersistentVolumes, o)
		}
	}
	inv.index()
	return inv
}

func (inv *Inventory) index() {
	inv.secretsByNS = map[string][]*Secret{}
	inv.secretByName = make(map[nsName]*Secret, len(inv.Secrets))
	for _, s := range inv.Secrets {
		inv.secretsByNS[s.Namespace] = append(inv.secretsByNS[s.Namespace], s)
		inv.secretByName[nsName{s.Namespace, s.Name}] = s
	}
	inv.rolesByName = make(map[nsName]*rbacv1.Role, len(inv.Roles))
	for _, r := range inv.Roles {
		inv.rolesByName[nsName{r.Namespace, r.Name}] = r
	}
	inv.clusterRoleNamed = make(map[string]*rbacv1.ClusterRole, len(inv.ClusterRoles))
	for _, r := range inv.ClusterRoles {
		inv.clusterRoleNamed[r.Name] = r
	}
	inv.namespaceNamed = make(map[string]*corev1.Namespace, len(inv.Namespaces))
	for _, n := range inv.Namespaces {
		inv.namespaceNamed[n.Name] = n
	}
}

// AnnotationPrefix is the prefix of keyhole's own annotations, such as
// keyhole.io/ignore.
const AnnotationPrefix = "keyhole.io/"

// keyholeAnnotations returns the keyhole.io/ annotations of an object, or
// nil. Only these are indexed: other annotations stay on the objects.
func keyholeAnnotations(obj any) map[string]string {
	var all map[string]string
	switch o := obj.(type) {
	case *Secret:
		all = o.Annotations
	case *Workload:
		all = o.Annotations
	case metav1.Object:
		all = o.GetAnnotations()
	}
	var out map[string]string
	for k, v := range all {
		if strings.HasPrefix(k, AnnotationPrefix) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}
