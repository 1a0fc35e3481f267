package bootstrap

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

func TestEmbeddedPolicy(t *testing.T) {
	b := inventory.NewBuilder()
	counts, err := AddTo(b)
	if err != nil {
		t.Fatal(err)
	}
	// As the generated file's header states.
	want := map[string]int{"ClusterRole": 68, "ClusterRoleBinding": 49, "Role": 7, "RoleBinding": 7}
	for kind, n := range want {
		if counts[kind] != n {
			t.Errorf("%d %s objects, want %d", counts[kind], kind, n)
		}
	}
	inv := b.Build()
	for _, name := range []string{"admin", "edit", "view"} {
		cr := inv.ClusterRole(name)
		if cr == nil || cr.AggregationRule == nil || len(cr.Rules) == 0 {
			t.Errorf("ClusterRole %s is not stored aggregated: %+v", name, cr)
		}
	}
	// The stored aggregation is what keyhole computes from the selectors.
	computed, errs := rbac.AggregateClusterRoles(inv.ClusterRoles)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	for name, rules := range computed {
		if !rbac.SameRules(inv.ClusterRole(name).Rules, rules) {
			t.Errorf("ClusterRole %s: stored rules differ from the computed aggregation", name)
		}
	}
	// edit reads Secrets, view does not.
	if all, _ := rbac.SecretReads(inv.ClusterRole("edit").Rules); all != rbac.AllReadVerbs {
		t.Errorf("edit reads Secrets with %v", all.Names())
	}
	if all, named := rbac.SecretReads(inv.ClusterRole("view").Rules); all != 0 || len(named) != 0 {
		t.Error("view reads Secrets")
	}
	if inv.Role("kube-system", "system:controller:bootstrap-signer") == nil {
		t.Error("the kube-system bootstrap Roles are missing")
	}
}

func TestControlPlaneSubjects(t *testing.T) {
	got, err := ControlPlaneSubjects()
	if err != nil {
		t.Fatal(err)
	}
	if !got[rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: "kube-system", Name: "namespace-controller"}] {
		t.Error("the namespace controller is not a control-plane subject")
	}
	if !got[rbac.Subject{Kind: rbac.KindUser, Name: "system:kube-controller-manager"}] {
		t.Error("kube-controller-manager is not a control-plane subject")
	}
	for s := range got {
		if s.IsEveryone() {
			t.Errorf("%s stands for everyone but is expected", s)
		}
	}
	all, _ := BindingSubjects()
	everyone := false
	for _, s := range all {
		everyone = everyone || (s == rbac.Subject{Kind: rbac.KindGroup, Name: rbac.GroupAuthenticated})
	}
	if !everyone {
		t.Error("BindingSubjects lacks system:authenticated (system:basic-user binds it)")
	}
	objs, _ := Objects()
	if _, ok := objs[0].(*rbacv1.ClusterRole); !ok {
		t.Errorf("first object is %T, want the ClusterRoles first", objs[0])
	}
}
