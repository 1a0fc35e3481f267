package workload

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// automountedToken reports pods and templates that mount their
// ServiceAccount's token by default when that ServiceAccount can read
// Secrets (KH210): whoever runs code in the pod can then read them.
// The pod's automountServiceAccountToken wins over the ServiceAccount's;
// both unset means mounted. A ServiceAccount that is not in the inventory
// is taken to leave the default.
func (a *analyzer) automountedToken(s podSpec) {
	ns, name := s.ref.Namespace, serviceAccountName(s.spec)
	can, ok := a.secretReader(ns, name)
	if !ok {
		return
	}
	mounted, why := true, "neither the pod nor the ServiceAccount sets automountServiceAccountToken"
	if sa := a.serviceAccounts[nsName{ns, name}]; sa != nil && sa.AutomountServiceAccountToken != nil {
		mounted, why = *sa.AutomountServiceAccountToken, "the ServiceAccount sets automountServiceAccountToken: true"
	}
	if s.spec.AutomountServiceAccountToken != nil {
		mounted, why = *s.spec.AutomountServiceAccountToken, "the pod sets automountServiceAccountToken: true"
	}
	if !mounted {
		return
	}
	sa := inventory.Ref{Kind: "ServiceAccount", Namespace: ns, Name: name}
	a.add(finding.Result{
		Rule:          finding.AutomountedSecretReaderToken,
		Object:        s.ref,
		Message:       s.ref.String() + " mounts the API token of " + sa.String() + ", which " + can + " (" + why + ")",
		Discriminator: []string{name},
	})
}

// Legacy ServiceAccount token Secrets.
const (
	serviceAccountNameAnnotation = "kubernetes.io/service-account.name"
)

// legacyTokens reports Secrets of type kubernetes.io/service-account-token
// (KH402): tokens that never expire, valid until the Secret is deleted.
// One whose ServiceAccount can read Secrets is raised to high.
func (a *analyzer) legacyTokens() {
	for _, s := range a.inv.Secrets {
		if s.Type != corev1.SecretTypeServiceAccountToken {
			continue
		}
		r := finding.Result{Rule: finding.LegacyServiceAccountToken, Object: s.Ref()}
		name := s.Annotations[serviceAccountNameAnnotation]
		if name == "" {
			r.Message = s.Ref().String() + " is a long-lived ServiceAccount token that never expires (it names no ServiceAccount in " + serviceAccountNameAnnotation + ")"
			a.add(r)
			continue
		}
		sa := inventory.Ref{Kind: "ServiceAccount", Namespace: s.Namespace, Name: name}
		r.Message = s.Ref().String() + " is a long-lived token of " + sa.String() + " that never expires"
		if can, ok := a.secretReader(s.Namespace, name); ok {
			r.Severity = severity(finding.High)
			r.Message += "; " + sa.String() + " " + can
		}
		a.add(r)
	}
}
