package vault

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Workload is an object with a pod template, as read from the cluster.
type Workload struct {
	Kind, Namespace, Name string
	Template              *corev1.PodTemplateSpec
	// base is the JSON pointer of Template in the object: "/spec/template"
	// for a Deployment, "/spec/jobTemplate/spec/template" for a CronJob.
	base string
	// immutable says why the template cannot be patched (a Job, a bare
	// Pod), or is empty.
	immutable string
}

// ListWorkloads reads the workloads of each namespace: Deployments,
// StatefulSets, DaemonSets, CronJobs, Jobs that no CronJob owns, and Pods
// that no workload controller owns. A list the client may not do is not
// an error: it comes back as a problem naming the resource, and the plan
// says its workloads were not checked.
func ListWorkloads(ctx context.Context, client kubernetes.Interface, namespaces []string) (ws []Workload, problems []string, err error) {
	type lister struct {
		resource string
		list     func(ns string) ([]Workload, error)
	}
	opts := metav1.ListOptions{}
	listers := []lister{
		{"deployments.apps", func(ns string) ([]Workload, error) {
			l, err := client.AppsV1().Deployments(ns).List(ctx, opts)
			if err != nil {
				return nil, err
			}
			return collect(l.Items, func(o *appsv1.Deployment) (Workload, bool) {
				return Workload{Kind: "Deployment", Namespace: o.Namespace, Name: o.Name, Template: &o.Spec.Template, base: "/spec/template"}, true
			}), nil
		}},
		{"statefulsets.apps", func(ns string) ([]Workload, error) {
			l, err := client.AppsV1().StatefulSets(ns).List(ctx, opts)
			if err != nil {
				return nil, err
			}
			return collect(l.Items, func(o *appsv1.StatefulSet) (Workload, bool) {
				return Workload{Kind: "StatefulSet", Namespace: o.Namespace, Name: o.Name, Template: &o.Spec.Template, base: "/spec/template"}, true
			}), nil
		}},
		{"daemonsets.apps", func(ns string) ([]Workload, error) {
			l, err := client.AppsV1().DaemonSets(ns).List(ctx, opts)
			if err != nil {
				return nil, err
			}
			return collect(l.Items, func(o *appsv1.DaemonSet) (Workload, bool) {
				return Workload{Kind: "DaemonSet", Namespace: o.Namespace, Name: o.Name, Template: &o.Spec.Template, base: "/spec/template"}, true
			}), nil
		}},
		{"cronjobs.batch", func(ns string) ([]Workload, error) {
			l, err := client.BatchV1().CronJobs(ns).List(ctx, opts)
			if err != nil {
				return nil, err
			}
			return collect(l.Items, func(o *batchv1.CronJob) (Workload, bool) {
				return Workload{Kind: "CronJob", Namespace: o.Namespace, Name: o.Name, Template: &o.Spec.JobTemplate.Spec.Template, base: "/spec/jobTemplate/spec/template"}, true
			}), nil
		}},
		{"jobs.batch", func(ns string) ([]Workload, error) {
			l, err := client.BatchV1().Jobs(ns).List(ctx, opts)
			if err != nil {
				return nil, err
			}
			return collect(l.Items, func(o *batchv1.Job) (Workload, bool) {
				if c := metav1.GetControllerOf(o); c != nil && c.Kind == "CronJob" {
					return Workload{}, false // the CronJob's template is patched
				}
				return Workload{Kind: "Job", Namespace: o.Namespace, Name: o.Name, Template: &o.Spec.Template,
					immutable: "a Job's pod template cannot be changed: recreate the Job with the change"}, true
			}), nil
		}},
		{"pods", func(ns string) ([]Workload, error) {
			l, err := client.CoreV1().Pods(ns).List(ctx, opts)
			if err != nil {
				return nil, err
			}
			return collect(l.Items, func(o *corev1.Pod) (Workload, bool) {
				w := Workload{Kind: "Pod", Namespace: o.Namespace, Name: o.Name,
					Template:  &corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec},
					immutable: "a Pod's containers cannot be changed: recreate it with the change"}
				if c := metav1.GetControllerOf(o); c != nil {
					switch c.Kind {
					case "ReplicaSet", "StatefulSet", "DaemonSet", "Job":
						return Workload{}, false // its controller's template is what to change
					default:
						w.immutable = fmt.Sprintf("a Pod of %s %s: change that controller's pod template", c.Kind, c.Name)
					}
				}
				return w, true
			}), nil
		}},
	}
	for _, ns := range namespaces {
		for _, l := range listers {
			got, err := l.list(ns)
			switch {
			case err == nil:
				ws = append(ws, got...)
			case apierrors.IsForbidden(err):
				problems = append(problems, fmt.Sprintf("cannot list %s in namespace %s (forbidden: needs list on %s): its workloads were not checked for environment variables", l.resource, ns, l.resource))
			case apierrors.IsNotFound(err):
				problems = append(problems, fmt.Sprintf("cannot list %s in namespace %s: the API server does not serve it", l.resource, ns))
			default:
				return nil, nil, fmt.Errorf("listing %s in namespace %s: %w", l.resource, ns, err)
			}
		}
	}
	return ws, problems, nil
}

// collect turns the items of a list into workloads, keeping those fn
// accepts.
func collect[T any](items []T, fn func(*T) (Workload, bool)) []Workload {
	var out []Workload
	for i := range items {
		if w, ok := fn(&items[i]); ok {
			out = append(out, w)
		}
	}
	return out
}

// EnvUse is one injection of a migrated Secret as environment variables,
// and the file that replaces it.
type EnvUse struct {
	Container string `json:"container"`
	// Variable is the variable of an env entry; empty for envFrom, which
	// takes every key (Prefix prepended).
	Variable string `json:"variable,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Secret   string `json:"secret"`
	// Key is the key an env entry takes; empty for envFrom.
	Key string `json:"key,omitempty"`
	// File is where the value is once the patch is applied: the file of
	// Key, or for envFrom the directory holding one file per key.
	File string `json:"file"`
}

// WorkloadChange is a workload that takes migrated Secrets as environment
// variables, and the JSON patch (RFC 6902) that moves them to files.
type WorkloadChange struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Uses      []EnvUse `json:"uses"`
	// PatchFile is the patch's path under the output directory; empty
	// when the workload cannot be patched (see Manual).
	PatchFile string `json:"patchFile,omitempty"`
	// Manual says why the change must be made by hand.
	Manual   string   `json:"manual,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	patch    []patchOp
}

// Ref is "kind/namespace/name".
func (c *WorkloadChange) Ref() string {
	return strings.ToLower(c.Kind) + "/" + c.Namespace + "/" + c.Name
}

// patchOp is one RFC 6902 operation. Value is never a Secret value:
// patches hold names, paths and annotations only.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// pointerEscape escapes one JSON pointer token (RFC 6901).
func pointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// AddWorkloads finds, among ws, those that take a planned Secret as
// environment variables, and plans their change. Problems from
// ListWorkloads become notes.
func (p *Plan) AddWorkloads(ws []Workload, problems []string) {
	entries := map[string]*Entry{}
	for _, e := range p.Entries {
		entries[e.Ref()] = e
	}
	for i := range ws {
		if c := p.workloadChange(&ws[i], entries); c != nil {
			p.Workloads = append(p.Workloads, c)
		}
	}
	sort.Slice(p.Workloads, func(i, j int) bool { return p.Workloads[i].Ref() < p.Workloads[j].Ref() })
	for _, pr := range problems {
		p.Notes = append(p.Notes, "Workloads not checked: "+pr+".")
	}
}

type containerList struct {
	field      string
	containers []corev1.Container
}

func (p *Plan) workloadChange(w *Workload, entries map[string]*Entry) *WorkloadChange {
	c := &WorkloadChange{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name, Manual: w.immutable}
	spec := &w.Template.Spec
	base := w.base + "/spec"
	var ops []patchOp
	// usedKeys are the keys each Secret must deliver, for the agent's
	// annotations; initUses is set when an init container reads one.
	usedKeys := map[string]map[string]bool{}
	initUses := false
	volumes := newVolumePlan(spec)
	for _, list := range []containerList{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}} {
		for ci := range list.containers {
			ctr := &list.containers[ci]
			cpath := fmt.Sprintf("%s/%s/%d", base, list.field, ci)
			var removed []string
			needs := map[string]bool{}
			// Remove from the highest index down, so that each test and
			// remove sees the indexes of the object as read.
			for i := len(ctr.Env) - 1; i >= 0; i-- {
				env := ctr.Env[i]
				if env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil {
					continue
				}
				e := entries[w.Namespace+"/"+env.ValueFrom.SecretKeyRef.Name]
				if e == nil {
					continue
				}
				key := env.ValueFrom.SecretKeyRef.Key
				at := fmt.Sprintf("%s/env/%d", cpath, i)
				ops = append(ops,
					patchOp{Op: "test", Path: at + "/name", Value: env.Name},
					patchOp{Op: "test", Path: at + "/valueFrom/secretKeyRef/name", Value: e.Name},
					patchOp{Op: "remove", Path: at})
				removed = append(removed, env.Name)
				needs[e.Name] = true
				addKey(usedKeys, e.Name, key)
				c.Uses = append(c.Uses, EnvUse{Container: ctr.Name, Variable: env.Name, Secret: e.Name, Key: key, File: p.fileOf(volumes, ctr, e, key)})
			}
			for i := len(ctr.EnvFrom) - 1; i >= 0; i-- {
				from := ctr.EnvFrom[i]
				if from.SecretRef == nil {
					continue
				}
				e := entries[w.Namespace+"/"+from.SecretRef.Name]
				if e == nil {
					continue
				}
				at := fmt.Sprintf("%s/envFrom/%d", cpath, i)
				ops = append(ops,
					patchOp{Op: "test", Path: at + "/secretRef/name", Value: e.Name},
					patchOp{Op: "remove", Path: at})
				for _, k := range e.Keys {
					removed = append(removed, from.Prefix+k.Name)
					addKey(usedKeys, e.Name, k.Name)
				}
				needs[e.Name] = true
				c.Uses = append(c.Uses, EnvUse{Container: ctr.Name, Prefix: from.Prefix, Secret: e.Name, File: p.dirOf(volumes, ctr, e)})
			}
			if len(needs) == 0 {
				continue
			}
			initUses = initUses || list.field == "initContainers"
			if p.Consumer != ConsumerAgent {
				ops = append(ops, volumes.mountOps(cpath, ctr, sortedMapKeys(needs))...)
			}
			c.Warnings = append(c.Warnings, expansionWarnings(ctr, removed)...)
		}
	}
	if len(c.Uses) == 0 {
		return nil
	}
	if p.Consumer == ConsumerAgent {
		ops = append(ops, agentOps(w, entries, usedKeys, initUses)...)
	} else {
		ops = append(ops, volumes.volumeOps(base)...)
	}
	sort.SliceStable(c.Uses, func(i, j int) bool {
		a, b := c.Uses[i], c.Uses[j]
		if a.Container != b.Container {
			return a.Container < b.Container
		}
		return a.Variable < b.Variable
	})
	if c.Manual == "" {
		c.patch = ops
		c.PatchFile = path.Join("workloads", w.Namespace, strings.ToLower(w.Kind)+"-"+w.Name+".json-patch.json")
	}
	return c
}

func addKey(m map[string]map[string]bool, secret, key string) {
	if m[secret] == nil {
		m[secret] = map[string]bool{}
	}
	m[secret][key] = true
}

// fileOf is where a key is read from once the patch is applied.
func (p *Plan) fileOf(v *volumePlan, ctr *corev1.Container, e *Entry, key string) string {
	if p.Consumer == ConsumerAgent {
		return agentSecretsDir + "/" + agentFileFor(e.Name, key).name
	}
	return v.mountPath(ctr, e.Name) + "/" + key
}

func (p *Plan) dirOf(v *volumePlan, ctr *corev1.Container, e *Entry) string {
	if p.Consumer == ConsumerAgent {
		return agentSecretsDir + "/" + e.Name + "-<key>"
	}
	return v.mountPath(ctr, e.Name)
}

// volumePlan tracks, for one pod template, the Secret volumes the patch
// reuses or adds.
type volumePlan struct {
	spec *corev1.PodSpec
	// existing maps a Secret to a volume of the template that mounts all
	// of its keys; added lists the volumes the patch adds.
	existing map[string]string
	added    []corev1.Volume
	names    map[string]bool
}

func newVolumePlan(spec *corev1.PodSpec) *volumePlan {
	v := &volumePlan{spec: spec, existing: map[string]string{}, names: map[string]bool{}}
	for _, vol := range spec.Volumes {
		v.names[vol.Name] = true
		if s := vol.Secret; s != nil && len(s.Items) == 0 {
			if _, ok := v.existing[s.SecretName]; !ok {
				v.existing[s.SecretName] = vol.Name
			}
		}
	}
	return v
}

// volumeName is the volume that mounts secret: an existing one, or the
// one the patch adds.
func (v *volumePlan) volumeName(secret string) string {
	if name, ok := v.existing[secret]; ok {
		return name
	}
	for _, a := range v.added {
		if a.Secret.SecretName == secret {
			return a.Name
		}
	}
	name := dnsLabel("keyhole-", secret)
	for i := 2; v.names[name]; i++ {
		name = dnsLabel("keyhole-", fmt.Sprintf("%s-%d", secret, i))
	}
	v.names[name] = true
	v.added = append(v.added, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}})
	return name
}

// mountPath is where ctr sees secret's files: an existing mount of its
// volume, or /etc/secrets/<secret>.
func (v *volumePlan) mountPath(ctr *corev1.Container, secret string) string {
	vol := v.volumeName(secret)
	for _, m := range ctr.VolumeMounts {
		if m.Name == vol && m.SubPath == "" && m.SubPathExpr == "" {
			return m.MountPath
		}
	}
	return secretMountRoot + "/" + secret
}

// mountOps mounts each Secret into the container unless it already is.
func (v *volumePlan) mountOps(cpath string, ctr *corev1.Container, secrets []string) []patchOp {
	var mounts []corev1.VolumeMount
	for _, s := range secrets {
		vol := v.volumeName(s)
		at := v.mountPath(ctr, s)
		already := false
		for _, m := range ctr.VolumeMounts {
			if m.Name == vol && m.MountPath == at {
				already = true
			}
		}
		if !already {
			mounts = append(mounts, corev1.VolumeMount{Name: vol, MountPath: at, ReadOnly: true})
		}
	}
	return appendOps(cpath+"/volumeMounts", len(ctr.VolumeMounts) > 0, mounts)
}

func (v *volumePlan) volumeOps(base string) []patchOp {
	return appendOps(base+"/volumes", len(v.spec.Volumes) > 0, v.added)
}

// appendOps adds items to the list at ptr: one add per item to "-" when
// the list exists, else one add of the whole list.
func appendOps[T any](ptr string, exists bool, items []T) []patchOp {
	if len(items) == 0 {
		return nil
	}
	if !exists {
		return []patchOp{{Op: "add", Path: ptr, Value: items}}
	}
	ops := make([]patchOp, 0, len(items))
	for _, it := range items {
		ops = append(ops, patchOp{Op: "add", Path: ptr + "/-", Value: it})
	}
	return ops
}

// agentOps adds the injector's annotations for the keys the workload
// used. The injector appends its init container after the pod's own
// unless told otherwise, so when an init container read a value,
// agent-init-first puts the agent before it.
func agentOps(w *Workload, entries map[string]*Entry, usedKeys map[string]map[string]bool, initFirst bool) []patchOp {
	ann := map[string]string{}
	if initFirst {
		ann[agentAnnotation+"agent-init-first"] = "true"
	}
	for _, secret := range sortedMapKeys(usedKeys) {
		e := entries[w.Namespace+"/"+secret]
		var keys []Key
		for _, k := range e.Keys {
			if usedKeys[secret][k.Name] {
				keys = append(keys, k)
			}
		}
		for k, v := range agentAnnotations(e, keys) {
			ann[k] = v
		}
	}
	at := w.base + "/metadata/annotations"
	if len(w.Template.Annotations) == 0 {
		return []patchOp{{Op: "add", Path: at, Value: ann}}
	}
	var ops []patchOp
	for _, k := range sortedMapKeys(ann) {
		ops = append(ops, patchOp{Op: "add", Path: at + "/" + pointerEscape(k), Value: ann[k]})
	}
	return ops
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// expansionWarnings names the places in ctr that expand a removed
// variable with $(NAME): they expand to the literal text once it is gone.
func expansionWarnings(ctr *corev1.Container, removed []string) []string {
	var out []string
	for _, name := range removed {
		ref := "$(" + name + ")"
		var where []string
		for _, e := range ctr.Env {
			if strings.Contains(e.Value, ref) {
				where = append(where, "env "+e.Name)
			}
		}
		for _, s := range ctr.Command {
			if strings.Contains(s, ref) {
				where = append(where, "command")
				break
			}
		}
		for _, s := range ctr.Args {
			if strings.Contains(s, ref) {
				where = append(where, "args")
				break
			}
		}
		if len(where) > 0 {
			out = append(out, fmt.Sprintf("container %s expands $(%s) in %s: change it to read the file", ctr.Name, name, strings.Join(where, ", ")))
		}
	}
	return out
}
