package analysis

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestManagedBy: each manager is recognised by what it writes on the
// Secret, the report carries it, and look-alikes are not taken for it.
func TestManagedBy(t *testing.T) {
	owner := func(apiVersion, kind string) []metav1.OwnerReference {
		yes := true
		return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: "x", UID: "u", Controller: &yes}}
	}
	for _, tt := range []struct {
		name        string
		typ         corev1.SecretType
		labels      map[string]string
		annotations map[string]string
		owners      []metav1.OwnerReference
		want        string
	}{
		{name: "SealedSecret owner", owners: owner("bitnami.com/v1alpha1", "SealedSecret"), want: ManagerSealedSecrets},
		{name: "sealed-secrets takes over an existing Secret", annotations: map[string]string{"sealedsecrets.bitnami.com/managed": "true"}, want: ManagerSealedSecrets},
		{name: "SealedSecret told not to set an owner", annotations: map[string]string{"sealedsecrets.bitnami.com/skip-set-owner-references": "true"}, want: ManagerSealedSecrets},
		{name: "ExternalSecret owner", owners: owner("external-secrets.io/v1", "ExternalSecret"), want: ManagerExternalSecrets},
		{name: "ExternalSecret owner, older version", owners: owner("external-secrets.io/v1beta1", "ExternalSecret"), want: ManagerExternalSecrets},
		{name: "ExternalSecret label without owner (creationPolicy Orphan)", labels: map[string]string{"reconcile.external-secrets.io/managed": "true"}, want: ManagerExternalSecrets},
		{name: "VaultStaticSecret owner", owners: owner("secrets.hashicorp.com/v1beta1", "VaultStaticSecret"), want: ManagerVaultSecretsOperator},
		{name: "VaultDynamicSecret owner", owners: owner("secrets.hashicorp.com/v1beta1", "VaultDynamicSecret"), want: ManagerVaultSecretsOperator},
		{name: "VaultPKISecret owner", owners: owner("secrets.hashicorp.com/v1beta1", "VaultPKISecret"), want: ManagerVaultSecretsOperator},
		{name: "HCPVaultSecretsApp owner", owners: owner("secrets.hashicorp.com/v1beta1", "HCPVaultSecretsApp"), want: ManagerVaultSecretsOperator},
		{name: "VSO labels without owner", labels: map[string]string{"app.kubernetes.io/managed-by": "hashicorp-vso"}, want: ManagerVaultSecretsOperator},
		{name: "chart Secret", labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"}, want: ManagerHelm},
		{name: "Helm release record", typ: "helm.sh/release.v1", labels: map[string]string{"owner": "helm", "name": "r", "status": "deployed", "version": "1"}, want: ManagerHelm},
		{name: "chart-installed SealedSecret: the operator writes it", owners: owner("bitnami.com/v1alpha1", "SealedSecret"),
			labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"}, want: ManagerSealedSecrets},
		{name: "chart-templated ExternalSecret target", labels: map[string]string{"app.kubernetes.io/managed-by": "Helm", "reconcile.external-secrets.io/managed": "true"}, want: ManagerExternalSecrets},

		{name: "plain Secret"},
		{name: "other owner", owners: owner("cert-manager.io/v1", "Certificate")},
		{name: "SealedSecret kind from another group", owners: owner("example.com/v1", "SealedSecret")},
		{name: "ExternalSecret kind in the core group", owners: owner("v1", "ExternalSecret")},
		{name: "PushSecret only reads its Secret", owners: owner("external-secrets.io/v1alpha1", "PushSecret")},
		{name: "ESO label not true", labels: map[string]string{"reconcile.external-secrets.io/managed": "false"}},
		{name: "sealed annotation not true", annotations: map[string]string{"sealedsecrets.bitnami.com/managed": "false"}},
		{name: "other managed-by", labels: map[string]string{"app.kubernetes.io/managed-by": "kustomize"}},
		{name: "Helm release type without Helm's owner label", typ: "helm.sh/release.v1"},
		{name: "owner=helm on an ordinary Secret", labels: map[string]string{"owner": "helm"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := meta("a", "db")
			m.Labels, m.Annotations, m.OwnerReferences = tt.labels, tt.annotations, tt.owners
			r := Run(Input{Inventory: build(t, []any{&corev1.Secret{ObjectMeta: m, Type: tt.typ}})}, Options{})
			if len(r.Secrets) != 1 {
				t.Fatalf("%d Secrets in the report, want 1", len(r.Secrets))
			}
			if got := r.Secrets[0].ManagedBy; got != tt.want {
				t.Errorf("managedBy %q, want %q", got, tt.want)
			}
		})
	}
}
