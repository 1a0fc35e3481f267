package workload

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// secretRef is one reference to a Secret by name.
type secretRef struct {
	namespace, name string
	// key is set for a reference to one key (env secretKeyRef, a volume's
	// items).
	key string
	// optional references do not stop a pod when the Secret is missing.
	optional bool
	// where says which field refers, for people: "env DB_PASSWORD of
	// container api", "volume creds".
	where string
}

func isOptional(b *bool) bool { return b != nil && *b }

// podSpecRefs returns every Secret reference of a pod specification:
// environment (secretKeyRef, envFrom), volumes (secret, projected, CSI
// and every in-tree driver's secretRef) and imagePullSecrets.
func podSpecRefs(ns string, spec *corev1.PodSpec) []secretRef {
	var out []secretRef
	add := func(name, key string, optional bool, where string) {
		if name != "" {
			out = append(out, secretRef{namespace: ns, name: name, key: key, optional: optional, where: where})
		}
	}
	for _, c := range containers(spec) {
		for _, e := range c.env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				r := e.ValueFrom.SecretKeyRef
				add(r.Name, r.Key, isOptional(r.Optional), "env "+e.Name+" of "+c.String())
			}
		}
		for _, from := range c.envFrom {
			if from.SecretRef != nil {
				add(from.SecretRef.Name, "", isOptional(from.SecretRef.Optional), "envFrom of "+c.String())
			}
		}
	}
	for _, v := range spec.Volumes {
		where := "volume " + v.Name
		switch {
		case v.Secret != nil:
			for _, it := range v.Secret.Items {
				add(v.Secret.SecretName, it.Key, isOptional(v.Secret.Optional), where)
			}
			if len(v.Secret.Items) == 0 {
				add(v.Secret.SecretName, "", isOptional(v.Secret.Optional), where)
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret == nil {
					continue
				}
				for _, it := range src.Secret.Items {
					add(src.Secret.Name, it.Key, isOptional(src.Secret.Optional), where)
				}
				if len(src.Secret.Items) == 0 {
					add(src.Secret.Name, "", isOptional(src.Secret.Optional), where)
				}
			}
		case v.CSI != nil && v.CSI.NodePublishSecretRef != nil:
			add(v.CSI.NodePublishSecretRef.Name, "", false, where)
		case v.CephFS != nil && v.CephFS.SecretRef != nil:
			add(v.CephFS.SecretRef.Name, "", false, where)
		case v.RBD != nil && v.RBD.SecretRef != nil:
			add(v.RBD.SecretRef.Name, "", false, where)
		case v.ISCSI != nil && v.ISCSI.SecretRef != nil:
			add(v.ISCSI.SecretRef.Name, "", false, where)
		case v.AzureFile != nil:
			add(v.AzureFile.SecretName, "", false, where)
		case v.FlexVolume != nil && v.FlexVolume.SecretRef != nil:
			add(v.FlexVolume.SecretRef.Name, "", false, where)
		case v.ScaleIO != nil && v.ScaleIO.SecretRef != nil:
			add(v.ScaleIO.SecretRef.Name, "", false, where)
		case v.StorageOS != nil && v.StorageOS.SecretRef != nil:
			add(v.StorageOS.SecretRef.Name, "", false, where)
		case v.Cinder != nil && v.Cinder.SecretRef != nil:
			add(v.Cinder.SecretRef.Name, "", false, where)
		}
	}
	for _, p := range spec.ImagePullSecrets {
		add(p.Name, "", false, "imagePullSecrets")
	}
	return out
}

// serviceAccountRefs returns a ServiceAccount's references. Its secrets
// list is optional: it only restricts what pods may mount when the
// account enforces mountable secrets, and long outlives the legacy token
// Secrets it names.
func serviceAccountRefs(sa *corev1.ServiceAccount) []secretRef {
	var out []secretRef
	for _, s := range sa.Secrets {
		if s.Name != "" {
			out = append(out, secretRef{namespace: sa.Namespace, name: s.Name, optional: true, where: "secrets"})
		}
	}
	for _, p := range sa.ImagePullSecrets {
		if p.Name != "" {
			out = append(out, secretRef{namespace: sa.Namespace, name: p.Name, where: "imagePullSecrets"})
		}
	}
	return out
}

// ingressSecretAnnotations are ingress-nginx annotations that name a
// Secret, as "name" or "namespace/name".
var ingressSecretAnnotations = []string{
	"nginx.ingress.kubernetes.io/auth-secret",
	"nginx.ingress.kubernetes.io/auth-tls-secret",
	"nginx.ingress.kubernetes.io/proxy-ssl-secret",
}

func ingressRefs(ing *networkingv1.Ingress) []secretRef {
	var out []secretRef
	for _, t := range ing.Spec.TLS {
		if t.SecretName != "" {
			out = append(out, secretRef{namespace: ing.Namespace, name: t.SecretName, where: "tls"})
		}
	}
	for _, a := range ingressSecretAnnotations {
		v := ing.Annotations[a]
		if v == "" {
			continue
		}
		ns, name := ing.Namespace, v
		if before, after, ok := strings.Cut(v, "/"); ok {
			ns, name = before, after
		}
		out = append(out, secretRef{namespace: ns, name: name, where: "annotation " + a})
	}
	return out
}

// persistentVolumeRefs returns the Secrets a volume driver is given.
func persistentVolumeRefs(pv *corev1.PersistentVolume) []secretRef {
	var out []secretRef
	for _, r := range inventory.PersistentVolumeSecrets(pv) {
		out = append(out, secretRef{namespace: r.Namespace, name: r.Name, where: r.Where})
	}
	return out
}

// namespaceKnown reports whether the Secrets of a namespace are known to
// be in the inventory: always for a complete inventory; for manifests,
// when they hold at least one Secret of the namespace. A repository that
// holds none usually creates them elsewhere (a secrets manager, a
// separate repository, an operator), so their absence proves nothing.
func (a *analyzer) namespaceKnown(ns string) bool {
	return a.opts.Complete || len(a.inv.SecretsIn(ns)) > 0
}

// missingSecrets reports references to Secrets, or Secret keys, that are
// not in the inventory (KH220), once per object and Secret (or key). The
// severity is the rule's (low) for a required reference in a namespace
// whose Secrets are known; info when the reference is optional, or when
// the namespace's Secrets are not known; and an optional reference into
// an unknown namespace is not reported at all.
func (a *analyzer) missingSecrets() {
	type target struct{ name, key string }
	check := func(obj inventory.Ref, refs []secretRef) {
		where := map[target][]string{}
		required := map[target]bool{}
		var order []target
		for _, r := range refs {
			t := target{name: r.name}
			if s := a.inv.Secret(r.namespace, r.name); s != nil {
				if r.key == "" || !s.KeysKnown || contains(s.Keys, r.key) {
					continue
				}
				t.key = r.key
			}
			if _, seen := where[t]; !seen {
				order = append(order, t)
			}
			where[t] = append(where[t], r.where)
			required[t] = required[t] || !r.optional
		}
		for _, t := range order {
			known := a.namespaceKnown(obj.Namespace)
			if !known && !required[t] {
				continue
			}
			secret := inventory.Ref{Kind: "Secret", Namespace: obj.Namespace, Name: t.name}
			r := finding.Result{Rule: finding.MissingSecretReference, Object: obj, Key: t.key}
			by := listSome(where[t], 3)
			if !required[t] {
				by += ", optional"
			}
			switch {
			case t.key != "":
				r.Message = obj.String() + " refers to key " + t.key + " of " + secret.String() + " (" + by + "), which has no such key"
				r.Discriminator = []string{t.name, t.key}
			case known:
				r.Message = obj.String() + " refers to " + secret.String() + " (" + by + "), which does not exist: whoever creates it decides what the pods receive"
				r.Discriminator = []string{t.name}
			default:
				r.Message = obj.String() + " refers to " + secret.String() + " (" + by + "), which is not in the inputs: no Secret of namespace " + obj.Namespace + " is, so it may be created elsewhere"
				r.Discriminator = []string{t.name}
			}
			if !known || !required[t] {
				r.Severity = severity(finding.Info)
			}
			a.add(r)
		}
	}
	for _, s := range a.specs {
		if s.top {
			check(s.ref, podSpecRefs(s.ref.Namespace, s.spec))
		}
	}
	for _, sa := range a.inv.ServiceAccounts {
		check(inventory.Ref{Kind: "ServiceAccount", Namespace: sa.Namespace, Name: sa.Name}, serviceAccountRefs(sa))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Markers of Secrets that something other than a pod specification
// consumes by convention, which keyhole cannot see.
const (
	helmReleaseType       = "helm.sh/release.v1"
	sealedSecretsKeyLabel = "sealedsecrets.bitnami.com/sealed-secrets-key"
	argoCDSecretTypeLabel = "argocd.argoproj.io/secret-type" //nolint:gosec // G101: a label name, not a credential
	certManagerAnnotation = "cert-manager.io/certificate-name"
)

// selfRotating reports Secrets that expire or rotate by their own
// mechanism, read by the apiserver or a controller rather than by pods:
// ServiceAccount and bootstrap tokens, Helm release records, and the
// Sealed Secrets controller's keys.
func selfRotating(s *inventory.Secret) bool {
	switch s.Type {
	case helmReleaseType, corev1.SecretTypeBootstrapToken, corev1.SecretTypeServiceAccountToken:
		return true
	}
	_, ok := s.Labels[sealedSecretsKeyLabel]
	return ok
}

// unusedSecrets reports Secrets that nothing in the inventory refers to
// (KH410). Secrets whose consumers keyhole cannot see are left out: Helm
// release records, ServiceAccount and bootstrap tokens (read by the
// apiserver), the Sealed Secrets controller's keys, Argo CD's labelled
// Secrets, cert-manager's certificates, and any Secret with an owner
// (its controller manages it). So are the Secrets of a namespace with no
// pod and no workload in an incomplete inventory: its consumers are not
// among the inputs.
func (a *analyzer) unusedSecrets() {
	used := map[nsName]bool{}
	mark := func(refs []secretRef) {
		for _, r := range refs {
			used[nsName{r.namespace, r.name}] = true
		}
	}
	consumers := map[string]bool{}
	for _, s := range a.specs {
		mark(podSpecRefs(s.ref.Namespace, s.spec))
		consumers[s.ref.Namespace] = true
	}
	for _, sa := range a.inv.ServiceAccounts {
		mark(serviceAccountRefs(sa))
	}
	for _, ing := range a.inv.Ingresses {
		mark(ingressRefs(ing))
	}
	for _, pv := range a.inv.PersistentVolumes {
		mark(persistentVolumeRefs(pv))
	}
	for _, s := range a.inv.Secrets {
		if used[nsName{s.Namespace, s.Name}] || consumedByConvention(s) {
			continue
		}
		if !a.opts.Complete && !consumers[s.Namespace] {
			continue
		}
		a.add(finding.Result{
			Rule:    finding.UnusedSecret,
			Object:  s.Ref(),
			Message: s.Ref().String() + " is not referenced by any pod, workload, ServiceAccount, Ingress or PersistentVolume",
		})
	}
}

func consumedByConvention(s *inventory.Secret) bool {
	if selfRotating(s) || len(s.OwnerReferences) > 0 {
		return true
	}
	if _, ok := s.Labels[argoCDSecretTypeLabel]; ok {
		return true
	}
	_, ok := s.Annotations[certManagerAnnotation]
	return ok
}
