package synthetic_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
)

// digest hashes the JSON of every object, in order.
func digest(t testing.TB, objs []runtime.Object) string {
	t.Helper()
	h := sha256.New()
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestWorldsWithoutIndirectUnchanged holds worlds without Size.Indirect
// to the digests they had before Indirect existed: the direct-reader
// benchmarks and docs/benchmarks.md rest on them. A change here changes
// every published number; it needs a reason, new digests and new
// measurements. (The digests also cover the JSON encoding of the
// k8s.io/api types, so a dependency upgrade that changes it breaks them
// too: check that the objects are the same before updating.)
func TestWorldsWithoutIndirectUnchanged(t *testing.T) {
	withPods := synthetic.Scale(2000)
	withPods.Pods, withPods.Nodes = 2000, 20
	big := synthetic.Scale(100_000)
	big.Pods, big.Nodes = 100_000, 1_000
	for _, c := range []struct {
		name    string
		seed    int64
		size    synthetic.Size
		objects int
		digest  string
		long    bool
	}{
		{"scale 10k", 1, synthetic.Scale(10_000), 20500, "3c235509ead7506e96b3eeb7a8c0c55d18fe23b435f2be7c2dbcf9c5198098a9", false},
		{"scale 2k with pods", 42, withPods, 6120, "fe6a39e11d43a655402db7108b8f6ea6111ab3a8c6d8a32e0c6742ed58166565", false},
		{"no namespaces", 7, synthetic.Size{Secrets: 50, Roles: 10, ClusterRoles: 20, RoleBindings: 30, ClusterRoleBindings: 5, ServiceAccounts: 4, Pods: 3},
			122, "7ef7cce3d5fd1605a167b966bb19100295c717cd54d13a41ffc7c29e6728d168", false},
		{"scale 100k", 1, synthetic.Scale(100_000), 205000, "22851fc8e704befa4d040c518ef31b1b440ad5a1c1c781e5d2f687bbd5a6cd48", true},
		{"scale 100k with pods", 1, big, 306000, "e674304884891ae1dd7c54a0ee5f3958281e8ea806c822628bc940e3850553f3", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.long && testing.Short() {
				t.Skip("a few seconds; skipped with -short")
			}
			objs := synthetic.Generate(c.seed, c.size)
			if len(objs) != c.objects {
				t.Errorf("%d objects, want %d", len(objs), c.objects)
			}
			if got := digest(t, objs); got != c.digest {
				t.Errorf("digest %s, want %s: the world changed", got, c.digest)
			}
		})
	}
}

func refOf(t *testing.T, o runtime.Object) string {
	t.Helper()
	m, err := meta.Accessor(o)
	if err != nil {
		t.Fatal(err)
	}
	return o.GetObjectKind().GroupVersionKind().Kind + "/" + m.GetNamespace() + "/" + m.GetName()
}

// TestIndirectKeepsWorld checks that an Indirect world is the world
// without it, object for object, with only Namespaces (labels),
// ServiceAccounts and Pods changed, and the extras after it.
func TestIndirectKeepsWorld(t *testing.T) {
	size := synthetic.Scale(5000)
	size.Pods, size.Nodes = 3000, 30
	plain := synthetic.Generate(3, size)
	indirect := size
	indirect.Indirect = true
	objs := synthetic.Generate(3, indirect)
	if !apiequality.Semantic.DeepEqual(plain, synthetic.Generate(3, size)) {
		t.Fatal("generating an Indirect world changed the world without it")
	}
	if len(objs) <= len(plain) {
		t.Fatalf("%d objects with Indirect, %d without", len(objs), len(plain))
	}
	changed := map[string]int{}
	for i, o := range plain {
		if refOf(t, o) != refOf(t, objs[i]) {
			t.Fatalf("object %d is %s with Indirect, %s without", i, refOf(t, objs[i]), refOf(t, o))
		}
		if !apiequality.Semantic.DeepEqual(o, objs[i]) {
			changed[o.GetObjectKind().GroupVersionKind().Kind]++
		}
	}
	for kind := range changed {
		if kind != "Namespace" && kind != "ServiceAccount" && kind != "Pod" {
			t.Errorf("%d %s objects changed", changed[kind], kind)
		}
	}
	if changed["Namespace"] == 0 || changed["Pod"] == 0 || changed["ServiceAccount"] == 0 {
		t.Errorf("changed: %v; want Namespaces, ServiceAccounts and Pods", changed)
	}
	ex := indirect.Extras()
	if n := len(objs) - len(plain); n != ex.Secrets+ex.Roles+ex.ClusterRoles+ex.RoleBindings+ex.ClusterRoleBindings+ex.PersistentVolumeClaims+ex.PersistentVolumes {
		t.Errorf("%d extra objects, Extras() = %+v", n, ex)
	}
}

// indirectPerm is one permission indirect paths rest on, as a set of
// requests any of which grants it; names are ignored.
type indirectPerm struct {
	name     string
	requests []rbac.Attributes
	// restricted is set when the world must also grant it by name.
	restricted bool
}

func requests(verbs []string, group string, resources ...string) []rbac.Attributes {
	var out []rbac.Attributes
	for _, v := range verbs {
		for _, r := range resources {
			res, sub, _ := strings.Cut(r, "/")
			out = append(out, rbac.Attributes{Verb: v, APIGroup: group, Resource: res, Subresource: sub})
		}
	}
	return out
}

var indirectPerms = []indirectPerm{
	{"create pods", requests([]string{"create"}, "", "pods"), false},
	{"write workloads", append(requests([]string{"create", "update", "patch"}, "apps", "deployments", "statefulsets", "daemonsets", "replicasets"),
		requests([]string{"create", "update", "patch"}, "batch", "jobs", "cronjobs")...), false},
	{"patch pods/ephemeralcontainers", requests([]string{"patch"}, "", "pods/ephemeralcontainers"), false},
	{"exec or attach", requests([]string{"create", "get"}, "", "pods/exec", "pods/attach"), true},
	{"get nodes/proxy", requests([]string{"get"}, "", "nodes/proxy"), true},
	{"patch secrets", requests([]string{"patch"}, "", "secrets"), true},
	{"create serviceaccounts/token", requests([]string{"create"}, "", "serviceaccounts/token"), true},
	{"impersonate users", requests([]string{"impersonate"}, "", "users"), true},
	{"impersonate groups", requests([]string{"impersonate"}, "", "groups"), true},
	{"impersonate serviceaccounts", requests([]string{"impersonate"}, "", "serviceaccounts"), true},
	{"create rolebindings", requests([]string{"create"}, rbacv1.GroupName, "rolebindings"), false},
	{"bind", requests([]string{"bind"}, rbacv1.GroupName, "roles", "clusterroles"), true},
	{"escalate", requests([]string{"escalate"}, rbacv1.GroupName, "roles", "clusterroles"), false},
}

// grants reports whether rules allow one of the requests on some name.
func grants(rules []rbacv1.PolicyRule, reqs []rbac.Attributes) (some, every bool) {
	for i := range rules {
		r := &rules[i]
		for _, a := range reqs {
			combined := a.Resource
			if a.Subresource != "" {
				combined += "/" + a.Subresource
			}
			if rbac.VerbMatches(r, a.Verb) && rbac.APIGroupMatches(r, a.APIGroup) && rbac.ResourceMatches(r, combined, a.Subresource) {
				some = true
				every = every || len(r.ResourceNames) == 0
			}
		}
	}
	return some, every
}

// TestIndirectRealistic checks what Indirect adds: present in every
// form the analysis follows, at low rates, pointing at objects that
// exist.
func TestIndirectRealistic(t *testing.T) {
	size := synthetic.Scale(20_000)
	size.Pods, size.Nodes, size.Indirect = 20_000, 200, true
	inv := synthetic.Build(1, size)
	p := rbac.NewPolicy(inv, rbac.AggregationComputed)

	// Pod Security levels.
	levels := map[string]int{}
	privileged := map[string]bool{}
	for _, n := range inv.Namespaces {
		level := n.Labels[synthetic.LabelPodSecurityEnforce]
		levels[level]++
		privileged[n.Name] = level == "" || level == "privileged"
	}
	if got := inv.Namespace("kube-system").Labels[synthetic.LabelPodSecurityEnforce]; got != "privileged" {
		t.Errorf("kube-system enforces %q", got)
	}
	total := len(inv.Namespaces)
	if levels["restricted"] < total/2 || levels["baseline"] < total/5 || levels["privileged"] == 0 || levels[""] == 0 ||
		levels["privileged"]+levels[""] > total/8 {
		t.Errorf("namespaces by level: %v of %d", levels, total)
	}

	// Pods.
	var noToken, projected, envFrom, pullSecrets, privPods, pvcMounts int
	claims := map[string]bool{}
	for _, c := range inv.PersistentVolumeClaims {
		claims[c.Namespace+"/"+c.Name] = true
	}
	for _, pod := range inv.Pods {
		if a := pod.Spec.AutomountServiceAccountToken; a != nil && !*a {
			noToken++
		}
		if len(pod.Spec.ImagePullSecrets) > 0 {
			pullSecrets++
		}
		for _, c := range pod.Spec.Containers {
			if len(c.EnvFrom) > 0 {
				envFrom++
				if inv.Secret(pod.Namespace, c.EnvFrom[0].SecretRef.Name) == nil {
					t.Errorf("pod %s/%s: envFrom names a missing Secret", pod.Namespace, pod.Name)
				}
			}
			if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
				privPods++
				if !privileged[pod.Namespace] {
					t.Errorf("privileged pod %s/%s in a namespace enforcing more", pod.Namespace, pod.Name)
				}
			}
		}
		for _, v := range pod.Spec.Volumes {
			if v.Projected != nil {
				projected++
			}
			if v.PersistentVolumeClaim != nil {
				pvcMounts++
				if !claims[pod.Namespace+"/"+v.PersistentVolumeClaim.ClaimName] {
					t.Errorf("pod %s/%s mounts a missing claim", pod.Namespace, pod.Name)
				}
			}
		}
	}
	n := len(inv.Pods)
	for name, c := range map[string]int{"without a token": noToken, "with a projected volume": projected, "with envFrom": envFrom,
		"with imagePullSecrets": pullSecrets, "privileged": privPods} {
		if c == 0 || c > n/5 {
			t.Errorf("%d of %d pods %s", c, n, name)
		}
	}
	if pvcMounts < len(inv.PersistentVolumeClaims) {
		t.Errorf("%d claim mounts for %d claims", pvcMounts, len(inv.PersistentVolumeClaims))
	}
	for _, pv := range inv.PersistentVolumes {
		ref := pv.Spec.CSI.NodePublishSecretRef
		if inv.Secret(ref.Namespace, ref.Name) == nil {
			t.Errorf("PersistentVolume %s names a missing Secret %s/%s", pv.Name, ref.Namespace, ref.Name)
		}
		if !claims[pv.Spec.ClaimRef.Namespace+"/"+pv.Spec.ClaimRef.Name] {
			t.Errorf("PersistentVolume %s is bound to a missing claim", pv.Name)
		}
	}

	// Legacy tokens name existing ServiceAccounts.
	sas := map[string]bool{}
	for _, sa := range inv.ServiceAccounts {
		sas[sa.Namespace+"/"+sa.Name] = true
	}
	legacy := 0
	for _, s := range inv.Secrets {
		if s.Type == corev1.SecretTypeServiceAccountToken && sas[s.Namespace+"/"+s.Annotations[corev1.ServiceAccountNameKey]] {
			legacy++
		}
	}
	if legacy < size.Extras().Secrets {
		t.Errorf("%d legacy tokens of existing ServiceAccounts, want at least %d", legacy, size.Extras().Secrets)
	}

	// Every indirect permission is granted, by name and to everything;
	// few subjects hold one cluster-wide, and most subjects cannot create
	// pods where Pod Security would let them escape to the node.
	subjects := map[rbac.Subject]bool{}
	type held struct{ some, every, cluster int }
	holders := make([]map[rbac.Subject]bool, len(indirectPerms))
	clusterHolders := map[rbac.Subject]bool{}
	escapers := map[rbac.Subject]bool{}
	stats := make([]held, len(indirectPerms))
	for i := range holders {
		holders[i] = map[rbac.Subject]bool{}
	}
	for _, b := range p.Bindings() {
		for _, s := range b.Subjects {
			subjects[s] = true
		}
		if !b.RoleFound {
			continue
		}
		for i, perm := range indirectPerms {
			some, every := grants(b.Rules, perm.requests)
			if !some {
				continue
			}
			stats[i].some++
			if every {
				stats[i].every++
			}
			if b.Namespace == "" {
				stats[i].cluster++
			}
			for _, s := range b.Subjects {
				holders[i][s] = true
				if b.Namespace == "" && every {
					clusterHolders[s] = true
				}
				if i <= 1 && every && (b.Namespace == "" || privileged[b.Namespace]) {
					escapers[s] = true
				}
			}
		}
	}
	for i, perm := range indirectPerms {
		st := stats[i]
		// Creating pods and workloads is common in the world without
		// Indirect already, as in real clusters.
		common := perm.name == "create pods" || perm.name == "write workloads"
		if st.some == 0 || st.every == 0 || !common && len(holders[i]) > len(subjects)/4 {
			t.Errorf("%s: %d bindings (%d on every name, %d cluster-wide), %d of %d subjects",
				perm.name, st.some, st.every, st.cluster, len(holders[i]), len(subjects))
		}
		if st.some == st.every && perm.restricted {
			t.Errorf("%s: never restricted to names", perm.name)
		}
	}
	// The world without Indirect has some 60 ClusterRoleBindings to roles
	// that create pods or workloads at this size; Indirect adds a few.
	if len(clusterHolders) > len(subjects)/20 {
		t.Errorf("%d of %d subjects hold an indirect permission cluster-wide", len(clusterHolders), len(subjects))
	}
	if len(escapers) > len(subjects)/8 {
		t.Errorf("%d of %d subjects can create pods or workloads in a privileged namespace", len(escapers), len(subjects))
	}
	t.Logf("namespaces by level: %v", levels)
	t.Logf("subjects: %d; cluster-wide indirect: %d; create pods or workloads where privileged: %d", len(subjects), len(clusterHolders), len(escapers))

	// A very few ClusterRoles impersonate anyone.
	unrestricted := 0
	for _, cr := range inv.ClusterRoles {
		for _, r := range cr.Rules {
			if len(r.ResourceNames) == 0 && slices.Contains(r.Resources, "users") && slices.Contains(r.Verbs, "impersonate") {
				unrestricted++
			}
		}
	}
	if unrestricted == 0 || unrestricted > 5 {
		t.Errorf("%d ClusterRoles impersonate any user", unrestricted)
	}
}

// TestRestrictedPodsComply: an API server admits a pod to a namespace that
// enforces the restricted Pod Security level only with the security
// context that level requires, so every pod generated there has it
// (KEYHOLE_BENCH_SERVE_INDIRECT loads these worlds into one).
func TestRestrictedPodsComply(t *testing.T) {
	size := synthetic.Scale(2_000)
	size.Pods, size.Nodes, size.Indirect = 2_000, 20, true
	objs := synthetic.Generate(1, size)
	restricted := map[string]bool{}
	for _, o := range objs {
		if n, ok := o.(*corev1.Namespace); ok && n.Labels[synthetic.LabelPodSecurityEnforce] == "restricted" {
			restricted[n.Name] = true
		}
	}
	checked := 0
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok || !restricted[p.Namespace] {
			continue
		}
		checked++
		sc := p.Spec.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Fatalf("pod %s/%s in a restricted namespace: pod security context %+v", p.Namespace, p.Name, sc)
		}
		for _, c := range p.Spec.Containers {
			csc := c.SecurityContext
			if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
				csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(p.Spec.Volumes) > 0 && hasHostPath(p) {
				t.Fatalf("pod %s/%s in a restricted namespace: container %s security context %+v", p.Namespace, p.Name, c.Name, csc)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no pod in a restricted namespace: the test proves nothing")
	}
}

func hasHostPath(p *corev1.Pod) bool {
	return slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.HostPath != nil })
}
