package manifests

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestDecodedObjects checks that objects arrive as typed API objects with
// their content, not only under the right names.
func TestDecodedObjects(t *testing.T) {
	t.Chdir(fixtures)
	r := load(t, []string{"kinds/all-kinds.yaml", "rbac/bindings.yaml", "lists/rolelist.yaml"}, Options{})
	inv := r.inv

	s := inv.Secret("shop", "db")
	if s == nil || s.Type != corev1.SecretTypeOpaque || !slices.Equal(s.Keys, []string{"password", "user"}) {
		t.Errorf("Secret shop/db = %+v", s)
	}

	role := inv.Role("shop", "read-secrets")
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}}
	if role == nil || !slices.EqualFunc(role.Rules, want, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) && slices.Equal(a.Verbs, b.Verbs)
	}) {
		t.Errorf("Role shop/read-secrets = %+v", role)
	}
	if role.Kind != "Role" || role.APIVersion != "rbac.authorization.k8s.io/v1" {
		t.Errorf("Role type meta = %+v", role.TypeMeta)
	}
	// A typed List's items take their kind from the List.
	if r := inv.Role("lists", "from-list"); r == nil || len(r.Rules) != 1 || r.Kind != "Role" {
		t.Errorf("Role from a RoleList = %+v", r)
	}

	var deploy bool
	for _, w := range inv.Workloads {
		if w.Kind == "Deployment" && w.Name == "api" {
			deploy = true
			spec := w.Template.Spec
			if spec.ServiceAccountName != "api" || len(spec.Containers) != 1 ||
				len(spec.Containers[0].EnvFrom) != 1 || spec.Containers[0].EnvFrom[0].SecretRef.Name != "db" {
				t.Errorf("Deployment template = %+v", spec)
			}
		}
	}
	if !deploy {
		t.Error("Deployment shop/api missing")
	}

	// A bad subject is dropped alone; the binding and its other subjects
	// stay.
	subjects := func(ss []rbacv1.Subject) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Kind+":"+s.Namespace+"/"+s.Name)
		}
		return out
	}
	for _, rb := range inv.RoleBindings {
		if rb.Name == "mixed-subjects" {
			if got := subjects(rb.Subjects); !slices.Equal(got, []string{"ServiceAccount:rbac/good-sa", "User:/alice"}) {
				t.Errorf("mixed-subjects subjects = %v", got)
			}
		}
	}
	for _, crb := range inv.ClusterRoleBindings {
		if crb.Name == "crb-sa-no-namespace" {
			// Kept: it matches no one, which the analysis reports (KH121).
			if got := subjects(crb.Subjects); !slices.Equal(got, []string{"ServiceAccount:/lost", "ServiceAccount:rbac/found"}) {
				t.Errorf("crb-sa-no-namespace subjects = %v", got)
			}
		}
		if crb.Name == "crb-to-role" {
			t.Error("a ClusterRoleBinding to a Role was read")
		}
	}
	if n := len(inv.ClusterRoleBindings); n != 2 { // ops-read and crb-sa-no-namespace
		t.Errorf("%d ClusterRoleBindings, want 2", n)
	}
}

func TestTemplateHint(t *testing.T) {
	writeTree(t, map[string]string{
		"deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: \"{{ .Values.replicas }}\"\n",
	})
	r := load(t, []string{"deploy.yaml"}, Options{})
	diffStrings(t, "problems", r.messages(), []string{
		"deploy.yaml: document 1 (line 1): Deployment/default/x: field spec.replicas (line 5): got a string, want an integer" +
			" (it looks like a template: render it first, e.g. with helm template); not read",
	})
}

// TestImpact checks that every problem says what the analysis lacks.
func TestImpact(t *testing.T) {
	t.Chdir(fixtures)
	r := load(t, []string{"errors", "rbac", "kinds", "json", "lists", "canary"}, Options{})
	for _, p := range r.problems {
		if p.Impact == "" {
			t.Errorf("problem without impact: %s", p.Message)
		}
	}
	for _, p := range r.problems {
		if strings.Contains(p.Message, "\n") {
			t.Errorf("multi-line message: %q", p.Message)
		}
	}
}
