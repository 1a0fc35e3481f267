package analysis

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/source"
)

// TestSecretReaders: a ServiceAccount reads Secrets itself, or through a
// group every ServiceAccount of its namespace is in; system:masters,
// which reads every Secret, does not make everyone a reader.
func TestSecretReaders(t *testing.T) {
	sa := func(ns, name string) rbac.Subject {
		return rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: ns, Name: name}
	}
	grant := func(ns, name string, subject rbacv1.Subject) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: meta(ns, name), RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "reader"},
			Subjects: []rbacv1.Subject{subject}}
	}
	for _, tt := range []struct {
		name    string
		binding *rbacv1.RoleBinding
		reads   map[rbac.Subject]bool
	}{
		{"none", nil, map[rbac.Subject]bool{sa("a", "app"): false, rbac.Superuser.Subject: false}},
		{"the account", grant("a", "b", rbacv1.Subject{Kind: "ServiceAccount", Name: "app"}),
			map[rbac.Subject]bool{sa("a", "app"): true, sa("a", "other"): false}},
		{"its namespace's group", grant("a", "b", rbacv1.Subject{Kind: "Group", Name: "system:serviceaccounts:a"}),
			map[rbac.Subject]bool{sa("a", "app"): true, sa("b", "app"): false}},
		{"every account", grant("a", "b", rbacv1.Subject{Kind: "Group", Name: "system:serviceaccounts"}),
			map[rbac.Subject]bool{sa("b", "app"): true}},
		{"every authenticated identity", grant("a", "b", rbacv1.Subject{Kind: "Group", Name: "system:authenticated"}),
			map[rbac.Subject]bool{sa("b", "app"): true, {Kind: rbac.KindUser, Name: "alice"}: false}},
	} {
		objs := []any{
			&corev1.Secret{ObjectMeta: meta("a", "db")},
			&rbacv1.ClusterRole{ObjectMeta: meta("", "reader"), Rules: readAll},
		}
		if tt.binding != nil {
			objs = append(objs, tt.binding)
		}
		inv := build(t, objs)
		reads := secretReaders(rbac.NewReadIndex(rbac.NewPolicy(inv, rbac.AggregationComputed)))
		for s, want := range tt.reads {
			if got := reads(s); got != want {
				t.Errorf("%s: %s reads Secrets: %v, want %v", tt.name, s, got, want)
			}
		}
	}
}

// TestSecretReadersWithoutSecrets: a repository often holds no Secret
// manifests; a ServiceAccount bound to a Secret-reading role still reads
// Secrets.
func TestSecretReadersWithoutSecrets(t *testing.T) {
	inv := build(t, []any{
		&rbacv1.ClusterRole{ObjectMeta: meta("", "reader"), Rules: readAll},
		&rbacv1.ClusterRoleBinding{ObjectMeta: meta("", "ci"), RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "reader"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "ci", Name: "deployer"}}},
		&rbacv1.RoleBinding{ObjectMeta: meta("x", "named"), RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "one"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "app"}}},
		&rbacv1.Role{ObjectMeta: meta("x", "one"), Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"later"}}}},
	})
	reads := secretReaders(rbac.NewReadIndex(rbac.NewPolicy(inv, rbac.AggregationComputed)))
	for s, want := range map[rbac.Subject]bool{
		{Kind: rbac.KindServiceAccount, Namespace: "ci", Name: "deployer"}: true,
		{Kind: rbac.KindServiceAccount, Namespace: "x", Name: "app"}:       true,
		{Kind: rbac.KindServiceAccount, Namespace: "x", Name: "other"}:     false,
	} {
		if got := reads(s); got != want {
			t.Errorf("%s reads Secrets: %v, want %v", s, got, want)
		}
	}
}

func TestComplete(t *testing.T) {
	live := []source.Coverage{{Kind: "cluster"}}
	for _, tt := range []struct {
		name string
		in   Input
		want bool
	}{
		{"manifests", Input{Coverage: []source.Coverage{{Kind: "bootstrap"}, {Kind: "manifests"}}}, false},
		{"live", Input{Coverage: live}, true},
		{"live, a resource not listed", Input{Coverage: live, Problems: []source.Problem{{Resource: "secrets"}}}, false},
	} {
		if got := complete(tt.in); got != tt.want {
			t.Errorf("%s: complete = %v, want %v", tt.name, got, tt.want)
		}
	}
}
