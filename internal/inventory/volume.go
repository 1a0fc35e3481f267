package inventory

import corev1 "k8s.io/api/core/v1"

// VolumeSecret is a Secret a volume names, and the field that names it.
type VolumeSecret struct {
	Namespace, Name string
	// Where is the field, for people: "csi.nodePublishSecretRef".
	Where string
}

// PersistentVolumeSecrets returns the Secrets a PersistentVolume's driver
// is given: what keeps them in use, and what the Node authorizer lets a
// node read for a pod that mounts a claim bound to the volume. A reference
// without a namespace is taken to be in the namespace of the claim the
// volume is bound to, as azureFile does, else "default".
func PersistentVolumeSecrets(pv *corev1.PersistentVolume) []VolumeSecret {
	def := "default"
	if pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace != "" {
		def = pv.Spec.ClaimRef.Namespace
	}
	var out []VolumeSecret
	add := func(ns, name, where string) {
		if name == "" {
			return
		}
		if ns == "" {
			ns = def
		}
		out = append(out, VolumeSecret{Namespace: ns, Name: name, Where: where})
	}
	ref := func(r *corev1.SecretReference, where string) {
		if r != nil {
			add(r.Namespace, r.Name, where)
		}
	}
	src := pv.Spec.PersistentVolumeSource
	if c := src.CSI; c != nil {
		ref(c.NodePublishSecretRef, "csi.nodePublishSecretRef")
		ref(c.ControllerPublishSecretRef, "csi.controllerPublishSecretRef")
		ref(c.NodeStageSecretRef, "csi.nodeStageSecretRef")
		ref(c.ControllerExpandSecretRef, "csi.controllerExpandSecretRef")
		ref(c.NodeExpandSecretRef, "csi.nodeExpandSecretRef")
	}
	if c := src.CephFS; c != nil {
		ref(c.SecretRef, "cephfs.secretRef")
	}
	if c := src.RBD; c != nil {
		ref(c.SecretRef, "rbd.secretRef")
	}
	if c := src.ISCSI; c != nil {
		ref(c.SecretRef, "iscsi.secretRef")
	}
	if c := src.FlexVolume; c != nil {
		ref(c.SecretRef, "flexVolume.secretRef")
	}
	if c := src.ScaleIO; c != nil {
		ref(c.SecretRef, "scaleIO.secretRef")
	}
	if c := src.Cinder; c != nil {
		ref(c.SecretRef, "cinder.secretRef")
	}
	if c := src.AzureFile; c != nil {
		ns := ""
		if c.SecretNamespace != nil {
			ns = *c.SecretNamespace
		}
		add(ns, c.SecretName, "azureFile.secretName")
	}
	if c := src.StorageOS; c != nil && c.SecretRef != nil {
		add(c.SecretRef.Namespace, c.SecretRef.Name, "storageos.secretRef")
	}
	return out
}
