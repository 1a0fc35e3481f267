package rbac

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// world builds a small inventory for table tests.
type world struct{ objs []any }

func (w *world) secret(ns, name string) *world {
	w.objs = append(w.objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	return w
}

func (w *world) role(ns, name string, rules ...rbacv1.PolicyRule) *world {
	w.objs = append(w.objs, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules})
	return w
}

func (w *world) clusterRole(name string, labels map[string]string, agg *rbacv1.AggregationRule, rules ...rbacv1.PolicyRule) *world {
	w.objs = append(w.objs, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, AggregationRule: agg, Rules: rules})
	return w
}

func (w *world) roleBinding(ns, name, roleKind, role string, subjects ...rbacv1.Subject) *world {
	w.objs = append(w.objs, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: roleKind, Name: role}, Subjects: subjects})
	return w
}

func (w *world) clusterRoleBinding(name, role string, subjects ...rbacv1.Subject) *world {
	w.objs = append(w.objs, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}, Subjects: subjects})
	return w
}

func (w *world) build(t testing.TB) *inventory.Inventory {
	t.Helper()
	b := inventory.NewBuilder()
	for _, o := range w.objs {
		if _, _, err := b.Add(o, inventory.Location{}); err != nil {
			t.Fatalf("add %T: %v", o, err)
		}
	}
	return b.Build()
}

func user(name string) rbacv1.Subject  { return rbacv1.Subject{Kind: "User", Name: name} }
func group(name string) rbacv1.Subject { return rbacv1.Subject{Kind: "Group", Name: name} }
func sa(ns, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: "ServiceAccount", Namespace: ns, Name: name}
}

func rule(verbs, groups, resources []string, names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources, ResourceNames: names}
}

func s(v ...string) []string { return v }

// readersOf returns subject → verbs for one Secret, without system:masters.
func readersOf(t testing.TB, inv *inventory.Inventory, mode AggregationMode, ns, name string) map[string]Verbs {
	t.Helper()
	ix := NewReadIndex(NewPolicy(inv, mode))
	out := map[string]Verbs{}
	for _, r := range ix.Readers(ns, name) {
		if r.Subject == Superuser.Subject {
			continue
		}
		out[r.Subject.String()] = r.Verbs
	}
	return out
}
