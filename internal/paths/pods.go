package paths

import (
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// pod is what the graph needs of one pod, or, offline, of one workload
// template standing for the pods it will create.
type pod struct {
	namespace string
	// name is empty for a workload template: its pods' names are not
	// known, so only grants on every name reach them.
	name string
	// node is the node the pod is bound to; empty when unbound.
	node           string
	serviceAccount string
	// token is set when a container can read an API token of the pod's
	// ServiceAccount: automounted, or a projected serviceAccountToken.
	token bool
	// running is set when its containers can be exec'd into: not
	// Succeeded or Failed.
	running bool
	// visible are the Secrets its containers see: env, envFrom, and
	// secret or projected volumes a container mounts.
	visible []string
	// nodeReads are the Secrets the Node authorizer lets its node read:
	// every Secret the pod spec names, and those of the
	// PersistentVolumes its claims are bound to.
	nodeReads []inventory.Ref

	// targets are the identities its containers hold (graph.podTargets).
	targets     []podTarget
	targetsDone bool
}

// podsOf collects the pods of the inventory and, offline, the workload
// templates.
func podsOf(inv *inventory.Inventory, offline bool) []*pod {
	w := newPodReader(inv)
	out := make([]*pod, 0, len(inv.Pods))
	for _, p := range inv.Pods {
		running := p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
		out = append(out, w.read(p.Namespace, p.Name, p.Spec.NodeName, running, &p.Spec))
	}
	if offline {
		for _, wl := range inv.Workloads {
			out = append(out, w.read(wl.Namespace, "", "", true, &wl.Template.Spec))
		}
	}
	return out
}

type podReader struct {
	automount map[nsName]*bool
	claims    map[nsName]string // PVC -> bound PV
	volumes   map[string]*corev1.PersistentVolume
}

type nsName struct{ namespace, name string }

func newPodReader(inv *inventory.Inventory) *podReader {
	r := &podReader{automount: map[nsName]*bool{}, claims: map[nsName]string{}, volumes: map[string]*corev1.PersistentVolume{}}
	for _, sa := range inv.ServiceAccounts {
		r.automount[nsName{sa.Namespace, sa.Name}] = sa.AutomountServiceAccountToken
	}
	for _, c := range inv.PersistentVolumeClaims {
		if c.Spec.VolumeName != "" {
			r.claims[nsName{c.Namespace, c.Name}] = c.Spec.VolumeName
		}
	}
	for _, v := range inv.PersistentVolumes {
		r.volumes[v.Name] = v
	}
	return r
}

func (r *podReader) read(ns, name, node string, running bool, spec *corev1.PodSpec) *pod {
	p := &pod{namespace: ns, name: name, node: node, running: running, serviceAccount: spec.ServiceAccountName}
	if p.serviceAccount == "" {
		p.serviceAccount = "default"
	}
	mounted := map[string]bool{}
	visible := map[string]bool{}
	for _, c := range runnableContainers(spec) {
		for _, m := range c.mounts {
			mounted[m.Name] = true
		}
		for _, e := range c.env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name != "" {
				visible[e.ValueFrom.SecretKeyRef.Name] = true
			}
		}
		for _, f := range c.envFrom {
			if f.SecretRef != nil && f.SecretRef.Name != "" {
				visible[f.SecretRef.Name] = true
			}
		}
	}
	automount := true
	if a := r.automount[nsName{ns, p.serviceAccount}]; a != nil {
		automount = *a
	}
	if spec.AutomountServiceAccountToken != nil {
		automount = *spec.AutomountServiceAccountToken
	}
	// An automounted token is a projected volume the admission plugin
	// adds and mounts into every container.
	p.token = automount
	for _, v := range spec.Volumes {
		if !mounted[v.Name] {
			continue
		}
		switch {
		case v.Secret != nil && v.Secret.SecretName != "":
			visible[v.Secret.SecretName] = true
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && src.Secret.Name != "" {
					visible[src.Secret.Name] = true
				}
				if src.ServiceAccountToken != nil {
					p.token = true
				}
			}
		}
	}
	for s := range visible {
		p.visible = append(p.visible, s)
	}
	slices.Sort(p.visible)
	p.nodeReads = r.nodeReads(ns, spec)
	return p
}

type container struct {
	env     []corev1.EnvVar
	envFrom []corev1.EnvFromSource
	mounts  []corev1.VolumeMount
}

// runnableContainers are the containers one can exec into while the pod
// runs: regular and ephemeral containers, and sidecars (init containers
// that restart always). Other init containers have exited by then.
func runnableContainers(spec *corev1.PodSpec) []container {
	var out []container
	for _, c := range spec.Containers {
		out = append(out, container{c.Env, c.EnvFrom, c.VolumeMounts})
	}
	for _, c := range spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			out = append(out, container{c.Env, c.EnvFrom, c.VolumeMounts})
		}
	}
	for _, c := range spec.EphemeralContainers {
		out = append(out, container{c.Env, c.EnvFrom, c.VolumeMounts})
	}
	return out
}

// nodeReads lists what the Node authorizer's graph links from the pod to
// Secrets: every Secret the spec names (containers of all kinds,
// imagePullSecrets, and the volume sources that take a Secret), and,
// through each PersistentVolumeClaim, the Secrets of the bound volume.
func (r *podReader) nodeReads(ns string, spec *corev1.PodSpec) []inventory.Ref {
	seen := map[inventory.Ref]bool{}
	add := func(namespace, name string) {
		if name != "" {
			seen[inventory.Ref{Kind: "Secret", Namespace: namespace, Name: name}] = true
		}
	}
	all := append(append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...), ephemeral(spec)...)
	for _, c := range all {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				add(ns, e.ValueFrom.SecretKeyRef.Name)
			}
		}
		for _, f := range c.EnvFrom {
			if f.SecretRef != nil {
				add(ns, f.SecretRef.Name)
			}
		}
	}
	for _, p := range spec.ImagePullSecrets {
		add(ns, p.Name)
	}
	for _, v := range spec.Volumes {
		for _, name := range volumeSecrets(&v.VolumeSource) {
			add(ns, name)
		}
		if v.PersistentVolumeClaim != nil {
			if pv := r.volumes[r.claims[nsName{ns, v.PersistentVolumeClaim.ClaimName}]]; pv != nil {
				for _, ref := range inventory.PersistentVolumeSecrets(pv) {
					add(ref.Namespace, ref.Name)
				}
			}
		}
	}
	out := make([]inventory.Ref, 0, len(seen))
	for ref := range seen {
		out = append(out, ref)
	}
	slices.SortFunc(out, func(a, b inventory.Ref) int {
		if a.Less(b) {
			return -1
		}
		if b.Less(a) {
			return 1
		}
		return 0
	})
	return out
}

func ephemeral(spec *corev1.PodSpec) []corev1.Container {
	out := make([]corev1.Container, 0, len(spec.EphemeralContainers))
	for _, c := range spec.EphemeralContainers {
		out = append(out, corev1.Container{Env: c.Env, EnvFrom: c.EnvFrom})
	}
	return out
}

// volumeSecrets names the Secrets a pod volume source takes.
func volumeSecrets(v *corev1.VolumeSource) []string {
	var out []string
	ref := func(r *corev1.LocalObjectReference) {
		if r != nil {
			out = append(out, r.Name)
		}
	}
	switch {
	case v.Secret != nil:
		out = append(out, v.Secret.SecretName)
	case v.Projected != nil:
		for _, s := range v.Projected.Sources {
			if s.Secret != nil {
				out = append(out, s.Secret.Name)
			}
		}
	case v.CSI != nil:
		ref(v.CSI.NodePublishSecretRef)
	case v.CephFS != nil:
		ref(v.CephFS.SecretRef)
	case v.RBD != nil:
		ref(v.RBD.SecretRef)
	case v.ISCSI != nil:
		ref(v.ISCSI.SecretRef)
	case v.AzureFile != nil:
		out = append(out, v.AzureFile.SecretName)
	case v.FlexVolume != nil:
		ref(v.FlexVolume.SecretRef)
	case v.ScaleIO != nil:
		ref(v.ScaleIO.SecretRef)
	case v.StorageOS != nil:
		ref(v.StorageOS.SecretRef)
	case v.Cinder != nil:
		ref(v.Cinder.SecretRef)
	}
	return out
}
