package synthetic

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// indirectStream is the stream of the second random source, "indirect" in
// ASCII. Everything Size.Indirect adds or changes draws from it, after the
// first source has made the whole world without it, so the objects both
// worlds share come out of the first source exactly as they would without
// the flag.
const indirectStream = 0x696e646972656374

// The Pod Security Admission labels of a namespace.
const (
	LabelPodSecurityEnforce        = "pod-security.kubernetes.io/enforce"
	LabelPodSecurityEnforceVersion = "pod-security.kubernetes.io/enforce-version"
	LabelPodSecurityWarn           = "pod-security.kubernetes.io/warn"
	LabelPodSecurityAudit          = "pod-security.kubernetes.io/audit"
)

// Extras counts what Size.Indirect adds to a world, on top of Size's own
// counts, which stay exact. Each count follows from the Size, so that
// Generate honours them exactly too.
type Extras struct {
	// Secrets are legacy ServiceAccount token Secrets of existing
	// ServiceAccounts.
	Secrets             int
	Roles               int
	ClusterRoles        int
	RoleBindings        int
	ClusterRoleBindings int
	// PersistentVolumeClaims are each bound to their own
	// PersistentVolume, a CSI volume with a nodePublishSecretRef.
	PersistentVolumeClaims int
	PersistentVolumes      int
}

// Extras returns what Indirect adds to a world of this Size: nothing when
// Indirect is off. Extra roles are a tenth of the plain ones (at least
// one granting each indirect permission); extra RoleBindings a sixteenth
// of the plain ones; the extra ClusterRoleBindings, which grant an
// indirect permission cluster-wide, are 20 at the reference scale and
// grow with the square root of the world, like the cluster-wide Secret
// readers; a ServiceAccount in 60 has a legacy token Secret; and there is
// a CSI volume with a Secret reference per 1000 Secrets.
func (s Size) Extras() Extras {
	if !s.Indirect {
		return Extras{}
	}
	var e Extras
	if s.ServiceAccounts > 0 {
		e.Secrets = max(1, s.ServiceAccounts/60)
	}
	if s.Roles > 0 {
		e.Roles = max(countKinds(false), s.Roles/10)
	}
	if s.ClusterRoles > 0 {
		e.ClusterRoles = max(countKinds(true), s.ClusterRoles/10)
	}
	if s.RoleBindings > 0 && e.Roles+e.ClusterRoles > 0 {
		e.RoleBindings = max(1, s.RoleBindings/16)
	}
	if s.ClusterRoleBindings > 0 && e.ClusterRoles > 0 {
		e.ClusterRoleBindings = max(1, int(math.Round(20*math.Sqrt(float64(s.ClusterRoleBindings)/refClusterRoleBindings))))
	}
	if s.Secrets > 0 {
		e.PersistentVolumeClaims = max(1, s.Secrets/1000)
		e.PersistentVolumes = e.PersistentVolumeClaims
	}
	return e
}

// permKind is one indirect permission an extra role grants, with its
// weight among extra Roles and among extra ClusterRoles (0: never).
type permKind struct {
	slug                 string
	roleWeight, crWeight int
}

const (
	kindPodCreate = iota
	kindWorkloads
	kindEphemeral
	kindExec
	kindSecretPatch
	kindTokenMint
	kindImpersonate
	kindImpersonateAll
	kindBind
	kindEscalate
	kindNodeProxy
)

// permKinds is indexed by the kind constants. The slugs go into role
// names, which keeps them apart from the plain roles' names.
var permKinds = []permKind{
	kindPodCreate:      {"pods", 18, 12},
	kindWorkloads:      {"workloads", 27, 18},
	kindEphemeral:      {"debug", 5, 2},
	kindExec:           {"exec", 15, 10},
	kindSecretPatch:    {"secret-patch", 8, 8},
	kindTokenMint:      {"token", 10, 10},
	kindImpersonate:    {"impersonate", 5, 12},
	kindImpersonateAll: {"impersonate-all", 0, 1},
	kindBind:           {"binder", 7, 8},
	kindEscalate:       {"escalate", 5, 5},
	kindNodeProxy:      {"node-proxy", 0, 14},
}

func (k permKind) weight(cluster bool) int {
	if cluster {
		return k.crWeight
	}
	return k.roleWeight
}

// How an extra role's grant is restricted to names: at random, or forced
// one way for the first roles, so that every kind is present both ways.
const (
	namingRandom = iota
	namingNames
	namingAll
)

// nameable reports whether kind k has both a grant restricted to names
// and one on every name. (An extra ClusterRole's impersonation is always
// by name: impersonating any user is its own, rarer kind.)
func nameable(k int, cluster bool) bool {
	switch k {
	case kindExec, kindSecretPatch, kindTokenMint:
		return true
	case kindImpersonate:
		return !cluster
	case kindNodeProxy:
		return cluster
	}
	return false
}

// guaranteed lists the first extra roles' kinds and naming: every kind
// Roles (or ClusterRoles) can grant, by name when it can be, then once more
// on every name each kind that can be restricted.
func guaranteed(cluster bool) [][2]int {
	var out [][2]int
	for k, pk := range permKinds {
		if pk.weight(cluster) == 0 {
			continue
		}
		naming := namingRandom
		if nameable(k, cluster) {
			naming = namingNames
		}
		out = append(out, [2]int{k, naming})
	}
	for k, pk := range permKinds {
		if pk.weight(cluster) > 0 && nameable(k, cluster) {
			out = append(out, [2]int{k, namingAll})
		}
	}
	return out
}

// countKinds is how many extra Roles (or ClusterRoles) a world has at
// least: the guaranteed ones.
func countKinds(cluster bool) int { return len(guaranteed(cluster)) }

// kindAt returns the kind and naming of the i-th extra role: the
// guaranteed ones in order, then by weight.
func (g *gen) kindAt(i int, cluster bool) (kind, naming int) {
	if first := guaranteed(cluster); i < len(first) {
		return first[i][0], first[i][1]
	}
	total := 0
	for _, pk := range permKinds {
		total += pk.weight(cluster)
	}
	x := g.r.IntN(total)
	for k, pk := range permKinds {
		if x < pk.weight(cluster) {
			return k, namingRandom
		}
		x -= pk.weight(cluster)
	}
	panic("unreachable")
}

// restrict decides whether a grant is restricted to names: as forced, or
// with probability p.
func (g *gen) restrict(naming int, p float64) bool {
	switch naming {
	case namingNames:
		return true
	case namingAll:
		return false
	}
	return g.chance(p)
}

// nsFor returns n, or when a grant of kind k must name objects n does not
// have, a namespace that has them.
func (g *gen) nsFor(k int, n *ns) *ns {
	switch {
	case k == kindExec && len(n.pods) == 0 && len(g.podObjs) > 0:
		return g.nsByName[pick(g.r, g.podObjs).Namespace]
	case k == kindSecretPatch && len(n.secrets) == 0 && len(g.secretNS) > 0:
		return g.nsWithSecrets()
	case (k == kindTokenMint || k == kindImpersonate) && len(n.sas) == 0 && len(g.saObjs) > 0:
		return g.nsByName[pick(g.r, g.saObjs).Namespace]
	}
	return n
}

// Pod Security Admission levels, and "" for a namespace without the
// enforce label, which the apiserver treats as privileged.
const (
	psaRestricted = "restricted"
	psaBaseline   = "baseline"
	psaPrivileged = "privileged"
)

type extraRole struct {
	n    *ns
	name string
}

// indirect adds what Size.Indirect asks for, drawing from the second
// random source only: Pod Security labels on the namespaces, changes to
// ServiceAccounts and pods, legacy token Secrets, CSI volumes with a
// Secret reference, and roles and bindings that grant the permissions
// indirect exposure rests on.
func (g *gen) indirect(seed int64) {
	g.r = rand.New(rand.NewPCG(uint64(seed), indirectStream))
	ex := g.size.Extras()
	g.podSecurity()
	g.indexPods()
	g.tuneServiceAccounts()
	g.tunePods()
	g.legacyTokens(ex.Secrets)
	g.volumes(ex.PersistentVolumeClaims)
	g.extraRoles(ex.Roles)
	g.extraClusterRoles(ex.ClusterRoles)
	g.extraClusterRoleBindings(ex.ClusterRoleBindings)
	g.extraRoleBindings(ex.RoleBindings)
}

// podSecurity labels the namespaces: most tenant namespaces enforce
// restricted or baseline, a few privileged, some have no label (and so are
// privileged). kube-system is privileged, "default" unlabelled, and the
// platform and infra teams' namespaces, which run node agents, are
// privileged more often.
func (g *gen) podSecurity() {
	for i, o := range g.nsObjs {
		n := g.ns[i]
		var level string
		switch {
		case i == 0:
		case i == 1:
			level = psaPrivileged
		case (o.Labels["team"] == "platform" || o.Labels["team"] == "infra") && g.chance(0.15):
			level = psaPrivileged
		default:
			switch x := g.r.IntN(100); {
			case x < 62:
				level = psaRestricted
			case x < 97:
				level = psaBaseline
			case x < 98:
				level = psaPrivileged
			}
		}
		n.psa = level
		if level == "" {
			continue
		}
		o.Labels[LabelPodSecurityEnforce] = level
		if g.chance(0.5) {
			o.Labels[LabelPodSecurityEnforceVersion] = "latest"
		}
		if level != psaRestricted && g.chance(0.4) {
			// Warn and audit at the next level up, as a migration does.
			o.Labels[LabelPodSecurityWarn] = psaRestricted
			o.Labels[LabelPodSecurityAudit] = psaRestricted
		}
	}
}

// indexPods records each namespace's pods, in generation order, and its
// registry Secrets.
func (g *gen) indexPods() {
	g.nsByName = make(map[string]*ns, len(g.ns))
	for _, n := range g.ns {
		g.nsByName[n.name] = n
		for _, s := range n.secrets {
			if strings.HasPrefix(s, "registry-") {
				n.registries = append(n.registries, s)
			}
		}
	}
	for _, p := range g.podObjs {
		n := g.nsByName[p.Namespace]
		n.pods = append(n.pods, p)
	}
}

// tuneServiceAccounts turns off token automounting on a few
// ServiceAccounts.
func (g *gen) tuneServiceAccounts() {
	off := false
	for _, sa := range g.saObjs {
		if g.chance(0.05) {
			sa.AutomountServiceAccountToken = &off
		}
	}
}

// tunePods varies the pods: some do not mount a token, some mount a
// projected volume (a token for another audience, sometimes with a
// Secret), some take a whole Secret as environment, some pull with a
// registry Secret, in namespaces labelled privileged some run
// privileged with the host's root mounted, and in namespaces labelled
// restricted all run as that level requires.
func (g *gen) tunePods() {
	for _, p := range g.podObjs {
		n := g.nsByName[p.Namespace]
		c := &p.Spec.Containers[0]
		if g.chance(0.12) {
			off := false
			p.Spec.AutomountServiceAccountToken = &off
		}
		if g.chance(0.10) {
			expiry := int64(3600)
			sources := []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: pick(g.r, []string{"vault", "sts.amazonaws.com", "api://AzureADTokenExchange"}), ExpirationSeconds: &expiry, Path: "token"}}}
			if len(n.secrets) > 0 && g.chance(0.4) {
				sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: pick(g.r, n.secrets)}}})
			}
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "projected",
				VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources}}})
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "projected", MountPath: "/var/run/secrets/projected", ReadOnly: true})
		}
		if len(n.secrets) > 0 && g.chance(0.08) {
			c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: pick(g.r, n.secrets)}}})
		}
		if len(n.registries) > 0 && g.chance(0.10) {
			p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: pick(g.r, n.registries)})
		}
		if n.psa == psaRestricted {
			restrict(p)
		}
		if n.psa == psaPrivileged && g.chance(0.25) {
			privileged := true
			c.SecurityContext = &corev1.SecurityContext{Privileged: &privileged}
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "host-root",
				VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "host-root", MountPath: "/host"})
		}
	}
}

// restrict gives a pod the security context the restricted Pod Security
// level requires, so that an API server admits it to a namespace that
// enforces that level, as a real cluster's would be. The analysis does
// not read it.
func restrict(p *corev1.Pod) {
	p.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// tokenAlphabet is what the token controller drew legacy token Secret
// name suffixes from.
const tokenAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// legacyTokens gives count existing ServiceAccounts a legacy token Secret,
// named as the token controller named them.
func (g *gen) legacyTokens(count int) {
	taken := map[string]bool{}
	for range count {
		sa := pick(g.r, g.saObjs)
		var name string
		for {
			suffix := make([]byte, 5)
			for i := range suffix {
				suffix[i] = tokenAlphabet[g.r.IntN(len(tokenAlphabet))]
			}
			name = sa.Name + "-token-" + string(suffix)
			if !taken[sa.Namespace+"/"+name] {
				break
			}
		}
		taken[sa.Namespace+"/"+name] = true
		value := []byte("synthetic")
		g.xSecretObjs = append(g.xSecretObjs, &corev1.Secret{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: sa.Namespace, Name: name,
				Annotations: map[string]string{corev1.ServiceAccountNameKey: sa.Name}},
			Type: corev1.SecretTypeServiceAccountToken,
			Data: map[string][]byte{"token": value, "ca.crt": value, "namespace": []byte(sa.Namespace)},
		})
	}
}

var csiDrivers = []string{"smb.csi.k8s.io", "file.csi.azure.com", "csi.vsphere.vmware.com"}

// volumes makes count claims, each bound to its own CSI PersistentVolume
// whose nodePublishSecretRef names an existing Secret (of the claim's
// namespace, or one in five times of kube-system), mounted by up to three
// pods of the claim's namespace.
func (g *gen) volumes(count int) {
	for k := range count {
		var n *ns
		if len(g.podObjs) > 0 {
			n = g.nsByName[pick(g.r, g.podObjs).Namespace]
		} else {
			n = g.weightedNS()
		}
		secretNS := n
		if len(g.ns) > 1 && len(g.ns[1].secrets) > 0 && g.chance(0.2) {
			secretNS = g.ns[1]
		} else if len(secretNS.secrets) == 0 {
			secretNS = g.nsWithSecrets()
		}
		ref := &corev1.SecretReference{Namespace: secretNS.name, Name: pick(g.r, secretNS.secrets)}
		pvName := fmt.Sprintf("pv-%d", k)
		claim := fmt.Sprintf("data-%d", k)
		class := "shared-files"
		capacity := resource.MustParse(fmt.Sprintf("%dGi", 10*(1+g.r.IntN(10))))
		pv := &corev1.PersistentVolume{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolume"},
			ObjectMeta: metav1.ObjectMeta{Name: pvName},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: capacity},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              class,
				ClaimRef:                      &corev1.ObjectReference{APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: n.name, Name: claim},
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
					Driver:               pick(g.r, csiDrivers),
					VolumeHandle:         fmt.Sprintf("files.example.com/share-%d", k),
					NodePublishSecretRef: ref,
				}},
			},
		}
		if g.chance(0.3) {
			stage := *ref
			pv.Spec.CSI.NodeStageSecretRef = &stage
		}
		pvc := &corev1.PersistentVolumeClaim{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: metav1.ObjectMeta{Namespace: n.name, Name: claim},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: capacity}},
				VolumeName:       pvName,
				StorageClassName: &class,
			},
		}
		g.xPVObjs = append(g.xPVObjs, pv)
		g.xPVCObjs = append(g.xPVCObjs, pvc)
		if len(n.pods) == 0 {
			continue
		}
		for range 1 + g.r.IntN(3) {
			p := pick(g.r, n.pods)
			vol := fmt.Sprintf("pvc-%d", k)
			dup := false
			for _, v := range p.Spec.Volumes {
				dup = dup || v.Name == vol
			}
			if dup {
				continue
			}
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: vol,
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
			c := &p.Spec.Containers[0]
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: vol, MountPath: "/mnt/" + vol})
		}
	}
}

var (
	workloadResources = []struct{ group, resource string }{
		{"apps", "deployments"}, {"apps", "statefulsets"}, {"apps", "daemonsets"}, {"apps", "replicasets"},
		{"batch", "jobs"}, {"batch", "cronjobs"},
	}
	writeVerbSets = [][]string{{"create"}, {"update"}, {"patch"}, {"create", "update", "patch"}, {"update", "patch"}, {"get", "list", "watch", "create", "update", "patch", "delete"}}
	execVerbSets  = [][]string{{"create"}, {"create"}, {"get", "create"}, {"get"}}
)

// podNames picks 1 to 3 pod names of namespace n.
func (g *gen) podNames(n *ns) []string {
	k := min(1+g.r.IntN(3), len(n.pods))
	start := g.r.IntN(len(n.pods))
	out := make([]string, 0, k)
	for i := range k {
		out = append(out, n.pods[(start+i)%len(n.pods)].Name)
	}
	return out
}

// saNames picks 1 or 2 ServiceAccount names of namespace n.
func (g *gen) saNames(n *ns) []string {
	k := min(1+g.r.IntN(2), len(n.sas))
	start := g.r.IntN(len(n.sas))
	out := make([]string, 0, k)
	for i := range k {
		out = append(out, n.sas[(start+i)%len(n.sas)])
	}
	return out
}

// permRules returns the rules of an extra role of kind k: the indirect
// permission, sometimes after a few plain rules. n is the role's
// namespace, or for a ClusterRole a namespace to draw names from.
func (g *gen) permRules(k, naming int, n *ns, cluster bool) []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	if g.chance(0.5) {
		if cluster {
			rules = g.plain(clusterPalette)
		} else {
			rules = g.plain(plainRules)
		}
	}
	core := func(resource string, verbs []string, names ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{resource}, Verbs: append([]string(nil), verbs...), ResourceNames: names}
	}
	rbacRule := func(resources []string, verbs []string, names ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: resources, Verbs: verbs, ResourceNames: names}
	}
	switch k {
	case kindPodCreate:
		verbs := []string{"create"}
		if g.chance(0.5) {
			verbs = []string{"get", "list", "watch", "create", "delete"}
		}
		rules = append(rules, core("pods", verbs))
	case kindWorkloads:
		start := g.r.IntN(len(workloadResources))
		byGroup := map[string]*rbacv1.PolicyRule{}
		var order []string
		verbs := pick(g.r, writeVerbSets)
		for i := range 1 + g.r.IntN(3) {
			wr := workloadResources[(start+i)%len(workloadResources)]
			r, ok := byGroup[wr.group]
			if !ok {
				r = &rbacv1.PolicyRule{APIGroups: []string{wr.group}, Verbs: append([]string(nil), verbs...)}
				byGroup[wr.group] = r
				order = append(order, wr.group)
			}
			r.Resources = append(r.Resources, wr.resource)
		}
		for _, group := range order {
			rules = append(rules, *byGroup[group])
		}
	case kindEphemeral:
		verbs := []string{"patch"}
		if g.chance(0.3) {
			verbs = []string{"update", "patch"}
		}
		rules = append(rules, core("pods", []string{"get", "list"}), core("pods/ephemeralcontainers", verbs))
	case kindExec:
		var names []string
		if len(n.pods) > 0 && g.restrict(naming, 0.4) {
			names = g.podNames(n)
		}
		verbs := pick(g.r, execVerbSets)
		var resources []string
		switch x := g.r.IntN(100); {
		case x < 60:
			resources = []string{"pods/exec"}
		case x < 75:
			resources = []string{"pods/attach"}
		default:
			resources = []string{"pods/exec", "pods/attach"}
		}
		rules = append(rules, core("pods", []string{"get", "list"}),
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: resources, Verbs: append([]string(nil), verbs...), ResourceNames: names})
	case kindSecretPatch:
		var names []string
		if len(n.secrets) > 0 && g.restrict(naming, 0.5) {
			names = g.names(n)
		}
		rules = append(rules, core("secrets", []string{"patch"}, names...))
	case kindTokenMint:
		var names []string
		if len(n.sas) > 0 && g.restrict(naming, 0.5) {
			names = g.saNames(n)
		}
		rules = append(rules, core("serviceaccounts/token", []string{"create"}, names...))
	case kindImpersonate:
		// The cases draw from the generator in order, as an if-else chain
		// would.
		switch {
		case !cluster || g.chance(0.3):
			// Namespaced ServiceAccounts, mostly by name.
			var names []string
			if len(n.sas) > 0 && (cluster || g.restrict(naming, 0.7)) {
				names = g.saNames(n)
			}
			rules = append(rules, core("serviceaccounts", []string{"impersonate"}, names...))
		case g.chance(0.6):
			names := []string{g.user().Name}
			if g.chance(0.3) {
				names = append(names, g.user().Name)
			}
			rules = append(rules, core("users", []string{"impersonate"}, names...))
		default:
			rules = append(rules, core("groups", []string{"impersonate"}, g.group().Name))
		}
	case kindImpersonateAll:
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"users", "groups", "serviceaccounts"}, Verbs: []string{"impersonate"}})
	case kindBind:
		rules = append(rules, rbacRule([]string{"rolebindings"}, []string{"get", "list", "create", "delete"}))
		if !cluster && len(n.roles) > 0 && g.chance(0.5) {
			rules = append(rules, rbacRule([]string{"roles"}, []string{"bind"}, pick(g.r, n.roles)))
		} else {
			name := pick(g.r, []string{"admin", "edit", "view"})
			if len(g.crs) > 0 && g.chance(0.4) {
				name = pick(g.r, g.crs).obj.Name
			}
			rules = append(rules, rbacRule([]string{"clusterroles"}, []string{"bind"}, name))
		}
	case kindEscalate:
		resources := []string{"roles"}
		if cluster {
			resources = []string{"roles", "clusterroles"}
		}
		rules = append(rules, rbacRule(resources, []string{"get", "list", "escalate", "update"}))
	case kindNodeProxy:
		var names []string
		if len(g.nodeObjs) > 0 && g.restrict(naming, 0.3) {
			for range 1 + g.r.IntN(3) {
				names = append(names, pick(g.r, g.nodeObjs).Name)
			}
		}
		rules = append(rules, core("nodes", []string{"get", "list"}), core("nodes/proxy", []string{"get"}, names...))
	}
	return rules
}

func (g *gen) extraRoles(count int) {
	for i := range count {
		k, naming := g.kindAt(i, false)
		n := g.nsFor(k, g.someNS())
		name := fmt.Sprintf("%s-%s-%d", pick(g.r, roleBases), permKinds[k].slug, i)
		g.xRoles = append(g.xRoles, extraRole{n: n, name: name})
		g.xRoleObjs = append(g.xRoleObjs, &rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Namespace: n.name, Name: name},
			Rules:      g.permRules(k, naming, n, false),
		})
	}
}

func (g *gen) extraClusterRoles(count int) {
	for i := range count {
		k, naming := g.kindAt(i, true)
		name := fmt.Sprintf("%s-%s-%s-%d", pick(g.r, teams), pick(g.r, crBases), permKinds[k].slug, i)
		g.xCRKinds = append(g.xCRKinds, k)
		g.xCRObjs = append(g.xCRObjs, &rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules:      g.permRules(k, naming, g.nsFor(k, g.someNS()), true),
		})
	}
}

// extraClusterRoleBindings grant extra ClusterRoles cluster-wide, one
// subject each: the first binds a ClusterRole that impersonates anyone,
// the rest any other extra ClusterRole (operators, CD tools, monitoring).
func (g *gen) extraClusterRoleBindings(count int) {
	var others []int
	all := -1
	for i, k := range g.xCRKinds {
		if k == kindImpersonateAll {
			if all < 0 {
				all = i
			}
		} else {
			others = append(others, i)
		}
	}
	for i := range count {
		var cr int
		switch {
		case i == 0 && all >= 0 || len(others) == 0:
			cr = all
		default:
			cr = pick(g.r, others)
		}
		name := g.xCRObjs[cr].Name
		g.xCRBObjs = append(g.xCRBObjs, &rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{g.clusterSubject()},
		})
	}
}

// extraRoleBindings bind extra Roles in their namespaces (seven in ten)
// and extra ClusterRoles in some namespace, to one or two subjects.
func (g *gen) extraRoleBindings(count int) {
	for i := range count {
		var n *ns
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName}
		if len(g.xRoles) > 0 && (len(g.xCRObjs) == 0 || g.chance(0.7)) {
			r := pick(g.r, g.xRoles)
			n, ref.Kind, ref.Name = r.n, "Role", r.name
		} else {
			n, ref.Kind, ref.Name = g.someNS(), "ClusterRole", pick(g.r, g.xCRObjs).Name
		}
		rb := &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Namespace: n.name, Name: fmt.Sprintf("%s-%d", ref.Name, i)},
			RoleRef:    ref,
		}
		for range 1 + g.r.IntN(2) {
			rb.Subjects = append(rb.Subjects, g.namespacedSubject(n))
		}
		g.xRBObjs = append(g.xRBObjs, rb)
	}
}
