package vault

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// demoDeploymentObject is shop/api: an init container taking the TLS
// Secret with envFrom, and a container taking db's password and username
// as env, besides a plain variable and a variable from another Secret,
// with an existing volume.
func demoDeploymentObject() *appsv1.Deployment {
	ref := func(secret, key string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}, Annotations: map[string]string{"team": "payments"}},
				Spec: corev1.PodSpec{
					InitContainers: []corev1.Container{{
						Name: "init", Image: "busybox",
						EnvFrom: []corev1.EnvFromSource{{Prefix: "TLS_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "api-tls"}}}},
					}},
					Containers: []corev1.Container{{
						Name: "api", Image: "shop/api",
						Args: []string{"--db-user=$(DB_USER)"},
						Env: []corev1.EnvVar{
							{Name: "DB_PASSWORD", ValueFrom: ref("db", "password")},
							{Name: "MODE", Value: "prod"},
							{Name: "DB_USER", ValueFrom: ref("db", "username")},
							{Name: "OTHER", ValueFrom: ref("not-migrated", "x")},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}},
					}},
					Volumes: []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		},
	}
}

func demoDeployment() Workload {
	d := demoDeploymentObject()
	return Workload{Kind: "Deployment", Namespace: d.Namespace, Name: d.Name, Template: &d.Spec.Template, base: "/spec/template"}
}

// applyPatch applies the plan's patch of the demo Deployment to it, as
// the API server would a JSON patch.
func applyPatch(t *testing.T, p *Plan) *appsv1.Deployment {
	t.Helper()
	if len(p.Workloads) != 1 || p.Workloads[0].PatchFile == "" {
		t.Fatalf("workload changes %+v, want one patch of the Deployment", p.Workloads)
	}
	doc, err := json.Marshal(demoDeploymentObject())
	if err != nil {
		t.Fatal(err)
	}
	files, err := p.Files()
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(fileByPath(t, files, p.Workloads[0].PatchFile).Data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply(doc)
	if err != nil {
		t.Fatalf("applying the patch: %v", err)
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func envNames(c corev1.Container) string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	return strings.Join(names, ",")
}

func TestWorkloadPatchMountsSecrets(t *testing.T) {
	for _, c := range []Consumer{ConsumerESO, ConsumerVSO} {
		t.Run(string(c), func(t *testing.T) {
			p := demoPlan(t, c)
			d := applyPatch(t, p)
			spec := d.Spec.Template.Spec
			if got := envNames(spec.Containers[0]); got != "MODE,OTHER" {
				t.Errorf("env after the patch: %s, want MODE,OTHER", got)
			}
			if len(spec.InitContainers[0].EnvFrom) != 0 {
				t.Errorf("envFrom after the patch: %+v", spec.InitContainers[0].EnvFrom)
			}
			vols := map[string]string{}
			for _, v := range spec.Volumes {
				if v.Secret != nil {
					vols[v.Name] = v.Secret.SecretName
				}
			}
			if vols["keyhole-db"] != "db" || vols["keyhole-api-tls"] != "api-tls" || len(spec.Volumes) != 3 {
				t.Errorf("volumes after the patch: %+v", spec.Volumes)
			}
			mounts := func(c corev1.Container) map[string]string {
				m := map[string]string{}
				for _, vm := range c.VolumeMounts {
					if !vm.ReadOnly && vm.Name != "cache" {
						t.Errorf("mount %s is not read-only", vm.Name)
					}
					m[vm.Name] = vm.MountPath
				}
				return m
			}
			if m := mounts(spec.Containers[0]); m["keyhole-db"] != "/etc/secrets/db" || m["cache"] != "/cache" || len(m) != 2 {
				t.Errorf("api mounts %v", m)
			}
			if m := mounts(spec.InitContainers[0]); m["keyhole-api-tls"] != "/etc/secrets/api-tls" || len(m) != 1 {
				t.Errorf("init mounts %v", m)
			}
			w := p.Workloads[0]
			var uses []string
			for _, u := range w.Uses {
				uses = append(uses, u.Container+":"+u.Variable+"="+u.File)
			}
			want := "api:DB_PASSWORD=/etc/secrets/db/password api:DB_USER=/etc/secrets/db/username init:=/etc/secrets/api-tls"
			if strings.Join(uses, " ") != want {
				t.Errorf("uses %v, want %s", uses, want)
			}
			if len(w.Warnings) != 1 || !strings.Contains(w.Warnings[0], "expands $(DB_USER) in args") {
				t.Errorf("warnings %q, want one about $(DB_USER) in args", w.Warnings)
			}
		})
	}
}

func TestWorkloadPatchAgent(t *testing.T) {
	p := demoPlan(t, ConsumerAgent)
	d := applyPatch(t, p)
	spec := d.Spec.Template.Spec
	if got := envNames(spec.Containers[0]); got != "MODE,OTHER" {
		t.Errorf("env after the patch: %s, want MODE,OTHER", got)
	}
	if len(spec.Volumes) != 1 {
		t.Errorf("the agent needs no Secret volume: %+v", spec.Volumes)
	}
	ann := d.Spec.Template.Annotations
	// The init container read api-tls: the agent must run before it.
	if ann["team"] != "payments" || ann["vault.hashicorp.com/agent-inject"] != "true" || ann["vault.hashicorp.com/agent-init-first"] != "true" {
		t.Errorf("annotations after the patch: %v", ann)
	}
	// Only the keys the workload used: db's password and username (not
	// keystore.p12), and every key of api-tls (envFrom).
	for _, id := range []string{"db-password", "db-username", "api-tls-tls.crt", "api-tls-tls.key"} {
		if ann["vault.hashicorp.com/agent-inject-secret-"+id] == "" || ann["vault.hashicorp.com/agent-inject-template-"+id] == "" {
			t.Errorf("no annotations for %s: %v", id, ann)
		}
	}
	if _, ok := ann["vault.hashicorp.com/agent-inject-secret-db-keystore.p12"]; ok {
		t.Errorf("keystore.p12 is not used by the workload, yet injected")
	}
	if f := p.Workloads[0].Uses[0].File; f != "/vault/secrets/db-password" {
		t.Errorf("file %s", f)
	}
}

// TestWorkloadPatchRefusesDrift applies a patch to a Deployment changed
// since it was read: the test operations make it fail whole.
func TestWorkloadPatchRefusesDrift(t *testing.T) {
	p, files := demoFiles(t, ConsumerESO)
	d := demoDeploymentObject()
	env := d.Spec.Template.Spec.Containers[0].Env
	d.Spec.Template.Spec.Containers[0].Env = append([]corev1.EnvVar{{Name: "NEW", Value: "x"}}, env...)
	doc, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(fileByPath(t, files, p.Workloads[0].PatchFile).Data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := patch.Apply(doc); err == nil {
		t.Fatal("a patch of a changed Deployment applied")
	}
}

func TestWorkloadImmutable(t *testing.T) {
	p := demoPlan(t, ConsumerESO)
	d := demoDeploymentObject()
	p.Workloads = nil
	p.AddWorkloads([]Workload{{Kind: "Pod", Namespace: "shop", Name: "debug", Template: &d.Spec.Template, immutable: "a Pod's containers cannot be changed: recreate it with the change"}}, nil)
	if len(p.Workloads) != 1 || p.Workloads[0].PatchFile != "" || p.Workloads[0].Manual == "" || len(p.Workloads[0].Uses) != 3 {
		t.Fatalf("bare Pod: %+v, want a manual change and no patch", p.Workloads)
	}
}
