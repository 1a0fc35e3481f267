package analysis

import (
	"strings"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// The managers a report Secret's ManagedBy names: the tool that writes the
// Secret, so that a fix is made where the value comes from (the SealedSecret,
// the ExternalSecret, the Vault path, the chart) and not on the Secret,
// which the manager would overwrite.
const (
	ManagerSealedSecrets        = "sealed-secrets"
	ManagerExternalSecrets      = "external-secrets"
	ManagerVaultSecretsOperator = "vault-secrets-operator"
	ManagerHelm                 = "helm"
)

// Managers returns every value ManagedBy takes besides "" (no known
// manager).
func Managers() []string {
	return []string{ManagerSealedSecrets, ManagerExternalSecrets, ManagerVaultSecretsOperator, ManagerHelm}
}

// groupKind is an owner's API group and kind; the version does not matter,
// as every version of these resources writes the same Secrets.
type groupKind struct{ group, kind string }

// ownerManagers are the owner kinds whose controllers write the Secrets
// they own, each setting an ownerReference on it:
//   - the sealed-secrets controller on the Secret it unseals, unless the
//     template asks it not to (see managedBy);
//   - external-secrets on the target of an ExternalSecret whose
//     creationPolicy is Owner (PushSecret only reads its Secret);
//   - the Vault Secrets Operator on a destination it creates
//     (destination.create), for each of its syncable kinds.
var ownerManagers = map[groupKind]string{
	{"bitnami.com", "SealedSecret"}:                 ManagerSealedSecrets,
	{"external-secrets.io", "ExternalSecret"}:       ManagerExternalSecrets,
	{"secrets.hashicorp.com", "VaultStaticSecret"}:  ManagerVaultSecretsOperator,
	{"secrets.hashicorp.com", "VaultDynamicSecret"}: ManagerVaultSecretsOperator,
	{"secrets.hashicorp.com", "VaultPKISecret"}:     ManagerVaultSecretsOperator,
	{"secrets.hashicorp.com", "HCPVaultSecretsApp"}: ManagerVaultSecretsOperator,
}

// Labels and annotations the managers write on the Secrets they manage.
// They catch what owner references miss: an ExternalSecret with
// creationPolicy Orphan or Merge, a SealedSecret told not to set an owner,
// a Secret whose ownerReferences a backup restore dropped.
const (
	// external-secrets labels every Secret an ExternalSecret manages.
	esoManagedLabel = "reconcile.external-secrets.io/managed"
	// The managed-by value the Vault Secrets Operator sets, with its
	// ownerReference, on the destinations it creates.
	vsoManagedBy = "hashicorp-vso"
	// sealed-secrets: "managed" hands an existing Secret to the
	// controller; "skip-set-owner-references" comes from the SealedSecret's
	// template, which the controller copies onto the Secret, and is exactly
	// the case where it sets no ownerReference.
	sealedManagedAnnotation   = "sealedsecrets.bitnami.com/managed"
	sealedSkipOwnerAnnotation = "sealedsecrets.bitnami.com/skip-set-owner-references"
	// Helm sets app.kubernetes.io/managed-by=Helm on every object it
	// installs, and stores each release in a Secret of its own type,
	// labelled owner=helm.
	managedByLabel  = "app.kubernetes.io/managed-by"
	helmManagedBy   = "Helm"
	helmReleaseType = "helm.sh/release.v1"
	helmOwnerLabel  = "owner"
	helmOwner       = "helm"
)

// managedBy names the tool that writes s, or "" when none is known. An
// operator's own evidence wins over Helm's: a chart that installs a
// SealedSecret or an ExternalSecret often labels the template it carries
// with managed-by=Helm, yet the operator writes the Secret.
func managedBy(s *inventory.Secret) string {
	for _, ref := range s.OwnerReferences {
		group, _, _ := strings.Cut(ref.APIVersion, "/")
		if m, ok := ownerManagers[groupKind{group, ref.Kind}]; ok {
			return m
		}
	}
	switch {
	case s.Labels[esoManagedLabel] == "true":
		return ManagerExternalSecrets
	case s.Labels[managedByLabel] == vsoManagedBy:
		return ManagerVaultSecretsOperator
	case s.Annotations[sealedManagedAnnotation] == "true", s.Annotations[sealedSkipOwnerAnnotation] == "true":
		return ManagerSealedSecrets
	case s.Labels[managedByLabel] == helmManagedBy,
		string(s.Type) == helmReleaseType && s.Labels[helmOwnerLabel] == helmOwner:
		return ManagerHelm
	}
	return ""
}
