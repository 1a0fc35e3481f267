package cluster

// The Watcher's informers keep every object of the cluster for as long as
// the daemon runs, so each is trimmed, as it enters the cache, to what the
// analysis reads. What is kept was found by reading the analysis
// (inventory.WorkloadFromAPI and PersistentVolumeSecrets, internal/workload,
// internal/paths, internal/rbac, internal/analysis); TestWatcherDifferential
// holds it to the analysis of Load's untrimmed objects. An analyzer that
// starts reading a field dropped here must keep it here, and should extend
// that test's world to prove it.
//
// Every kind keeps its whole metadata, but for managedFields (which the
// analysis reads only on Secrets, already reduced there to key names and
// the last data write) and kubectl's last-applied annotation (a copy of the
// object; on a Secret, of its values). Labels and annotations stay: the
// analysis reads keyhole.io/ annotations on every kind, and a manager's
// labels on Secrets.

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// trimmer returns the informer transform of one kind: trimMeta, then
// trim when not nil. Objects are trimmed in place, which client-go allows
// since the transform sees them first. Trimming is idempotent, as client-go
// asks of transforms. Any other type is refused rather than cached whole.
func trimmer[P metav1.Object](trim func(P)) cache.TransformFunc {
	return func(obj any) (any, error) {
		o, ok := obj.(P)
		if !ok {
			var want P
			return nil, fmt.Errorf("informer transform: got a %T, want a %T", obj, want)
		}
		trimMeta(o)
		if trim != nil {
			trim(o)
		}
		return o, nil
	}
}

// transformSecret is the Secrets informer's transform. The ListerWatcher
// already delivers secretMetas; a whole Secret, should one ever come, is
// converted before it is stored.
func transformSecret(obj any) (any, error) {
	switch o := obj.(type) {
	case *secretMeta:
		return o, nil
	case *corev1.Secret:
		return secretMetaFromAPI(o), nil
	}
	return nil, fmt.Errorf("informer transform: got a %T, want a Secret", obj)
}

func trimMeta(o metav1.Object) {
	o.SetManagedFields(nil)
	if a := o.GetAnnotations(); a != nil {
		if _, ok := a[inventory.LastAppliedAnnotation]; ok {
			o.SetAnnotations(withoutKey(a, inventory.LastAppliedAnnotation))
		}
	}
}

// trimPodSpec keeps what says which Secrets a pod takes and how: the
// containers' env (literal values too: they are scanned for hard-coded
// credentials), envFrom and the names of the volumes they mount; the
// volumes, as trimVolume leaves them; imagePullSecrets; the ServiceAccount
// and whether its token is mounted; and the node. Images, commands,
// resources, probes, security contexts, scheduling, mount paths and the
// rest are dropped.
func trimPodSpec(s *corev1.PodSpec) {
	for i := range s.InitContainers {
		c := &s.InitContainers[i]
		// An init container that restarts always is a sidecar: it runs
		// beside the others and can be exec'd into.
		*c = corev1.Container{Name: c.Name, Env: c.Env, EnvFrom: c.EnvFrom, VolumeMounts: trimMounts(c.VolumeMounts), RestartPolicy: c.RestartPolicy}
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		*c = corev1.Container{Name: c.Name, Env: c.Env, EnvFrom: c.EnvFrom, VolumeMounts: trimMounts(c.VolumeMounts)}
	}
	for i := range s.EphemeralContainers {
		c := &s.EphemeralContainers[i].EphemeralContainerCommon
		*c = corev1.EphemeralContainerCommon{Name: c.Name, Env: c.Env, EnvFrom: c.EnvFrom, VolumeMounts: trimMounts(c.VolumeMounts)}
		s.EphemeralContainers[i].TargetContainerName = ""
	}
	for i := range s.Volumes {
		trimVolume(&s.Volumes[i])
	}
	*s = corev1.PodSpec{
		Volumes:                      s.Volumes,
		InitContainers:               s.InitContainers,
		Containers:                   s.Containers,
		EphemeralContainers:          s.EphemeralContainers,
		ServiceAccountName:           s.ServiceAccountName,
		DeprecatedServiceAccount:     s.DeprecatedServiceAccount,
		AutomountServiceAccountToken: s.AutomountServiceAccountToken,
		NodeName:                     s.NodeName,
		ImagePullSecrets:             s.ImagePullSecrets,
	}
}

// trimMounts keeps of each mount the volume's name: which volumes a
// container mounts is what the analysis reads, not where.
func trimMounts(ms []corev1.VolumeMount) []corev1.VolumeMount {
	for i := range ms {
		ms[i] = corev1.VolumeMount{Name: ms[i].Name}
	}
	return ms
}

// trimVolume keeps a volume's name and any source that can name a Secret
// or carry a token (secret, the in-tree and CSI drivers' secret
// references, a claim whose volume may name one). Of a projected volume
// it keeps the Secret and ServiceAccount token sources: the ConfigMap and
// downward API sources of every pod's automounted kube-api-access volume
// are most of what pods hold otherwise. Sources that never name a Secret
// (configMap, downwardAPI, emptyDir, hostPath) are dropped whole.
func trimVolume(v *corev1.Volume) {
	src := &v.VolumeSource
	switch {
	case src.Projected != nil:
		var keep []corev1.VolumeProjection
		for _, p := range src.Projected.Sources {
			if p.Secret != nil || p.ServiceAccountToken != nil {
				keep = append(keep, corev1.VolumeProjection{Secret: p.Secret, ServiceAccountToken: p.ServiceAccountToken})
			}
		}
		*src = corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: keep}}
	case src.ConfigMap != nil || src.DownwardAPI != nil || src.EmptyDir != nil || src.HostPath != nil:
		*src = corev1.VolumeSource{}
	}
}

// trimTemplate keeps a pod template's spec as trimPodSpec does, and of its
// metadata only labels and annotations (where injectors such as Vault's
// agent are configured).
func trimTemplate(t *corev1.PodTemplateSpec) {
	t.ObjectMeta = metav1.ObjectMeta{Labels: t.Labels, Annotations: t.Annotations}
	trimPodSpec(&t.Spec)
}

// trimPod also keeps the phase: a pod that has ended cannot be exec'd
// into. The rest of the status, rewritten at every probe, is dropped.
func trimPod(p *corev1.Pod) {
	trimPodSpec(&p.Spec)
	p.Status = corev1.PodStatus{Phase: p.Status.Phase}
}

// Workloads keep their pod template and nothing else of spec or status.

func trimDeployment(d *appsv1.Deployment) {
	d.Spec, d.Status = appsv1.DeploymentSpec{Template: d.Spec.Template}, appsv1.DeploymentStatus{}
	trimTemplate(&d.Spec.Template)
}

func trimReplicaSet(r *appsv1.ReplicaSet) {
	r.Spec, r.Status = appsv1.ReplicaSetSpec{Template: r.Spec.Template}, appsv1.ReplicaSetStatus{}
	trimTemplate(&r.Spec.Template)
}

func trimStatefulSet(s *appsv1.StatefulSet) {
	s.Spec, s.Status = appsv1.StatefulSetSpec{Template: s.Spec.Template}, appsv1.StatefulSetStatus{}
	trimTemplate(&s.Spec.Template)
}

func trimDaemonSet(d *appsv1.DaemonSet) {
	d.Spec, d.Status = appsv1.DaemonSetSpec{Template: d.Spec.Template}, appsv1.DaemonSetStatus{}
	trimTemplate(&d.Spec.Template)
}

func trimJob(j *batchv1.Job) {
	j.Spec, j.Status = batchv1.JobSpec{Template: j.Spec.Template}, batchv1.JobStatus{}
	trimTemplate(&j.Spec.Template)
}

func trimCronJob(c *batchv1.CronJob) {
	template := c.Spec.JobTemplate.Spec.Template
	c.Spec, c.Status = batchv1.CronJobSpec{}, batchv1.CronJobStatus{}
	c.Spec.JobTemplate.Spec.Template = template
	trimTemplate(&c.Spec.JobTemplate.Spec.Template)
}

func trimReplicationController(r *corev1.ReplicationController) {
	r.Spec, r.Status = corev1.ReplicationControllerSpec{Template: r.Spec.Template}, corev1.ReplicationControllerStatus{}
	if r.Spec.Template != nil {
		trimTemplate(r.Spec.Template)
	}
}

// Namespaces and Nodes are read for their names and labels (Pod Security
// levels); a Node's status, with its image list, is the bulk of it.

func trimNamespace(n *corev1.Namespace) {
	n.Spec, n.Status = corev1.NamespaceSpec{}, corev1.NamespaceStatus{}
}

func trimNode(n *corev1.Node) {
	n.Spec, n.Status = corev1.NodeSpec{}, corev1.NodeStatus{}
}

// trimIngress keeps the TLS Secrets; the Secrets ingress controllers take
// from annotations stay with the metadata.
func trimIngress(i *networkingv1.Ingress) {
	i.Spec, i.Status = networkingv1.IngressSpec{TLS: i.Spec.TLS}, networkingv1.IngressStatus{}
}

// trimPersistentVolumeClaim keeps the volume a claim is bound to.
func trimPersistentVolumeClaim(c *corev1.PersistentVolumeClaim) {
	c.Spec, c.Status = corev1.PersistentVolumeClaimSpec{VolumeName: c.Spec.VolumeName}, corev1.PersistentVolumeClaimStatus{}
}

// trimPersistentVolume keeps the driver's source, which names its Secrets,
// and the claim the volume is bound to, whose namespace is theirs when
// they name none.
func trimPersistentVolume(v *corev1.PersistentVolume) {
	v.Spec = corev1.PersistentVolumeSpec{PersistentVolumeSource: v.Spec.PersistentVolumeSource, ClaimRef: v.Spec.ClaimRef}
	v.Status = corev1.PersistentVolumeStatus{}
}
