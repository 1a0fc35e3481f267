// Package synthetic generates deterministic, seeded Kubernetes worlds for
// benchmarks and load tests: Namespaces, Secrets, ServiceAccounts, RBAC,
// Pods and Nodes shaped like a large multi-tenant cluster rather than a
// uniform grid. Secrets are spread unevenly over namespaces; most roles
// grant nothing on Secrets while some read them by name, by wildcard or
// through ClusterRole aggregation; bindings mix Users, Groups and
// ServiceAccounts, some from other namespaces, and a few point at roles
// that do not exist. A larger world has more namespaces of the same sizes,
// not larger namespaces, and its cluster-wide Secret readers grow with the
// square root of its size. The same seed and Size always give the same
// world, object for object, so benchmark results and generated manifests
// (WriteYAML) can be compared across runs and machines.
//
// Size.Indirect adds what the indirect-exposure analysis follows, at the
// low rates of a real cluster: Pod Security Admission labels on the
// namespaces (most enforce restricted or baseline, a few privileged, some
// have none and so are privileged; kube-system is privileged); pods that
// do not mount a token, mount projected volumes, take a Secret whole as
// environment, pull with a registry Secret or, in privileged namespaces,
// run privileged; legacy token Secrets of existing ServiceAccounts; CSI
// PersistentVolumes whose nodePublishSecretRef names a Secret, claimed
// and mounted by pods; and Roles, ClusterRoles and bindings that grant the
// permissions indirect paths rest on (creating pods and workloads,
// ephemeral containers, exec and attach, node proxy, patching Secrets,
// minting tokens, impersonation, bind, escalate), some restricted to
// names, bound mostly within one namespace to the same mix of subjects.
// All of it comes from a second random source after the first has made
// the world, so a world without Indirect is the same object for object as
// it was before Indirect existed, and an Indirect world is that world with
// some objects changed and the extras (Size.Extras) after it.
//
// Nothing here is a real credential: every Secret value is the same short
// placeholder.
package synthetic

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// Size is how many objects of each kind a world has. Generate honours
// every count exactly.
type Size struct {
	Namespaces          int
	Secrets             int
	Roles               int
	ClusterRoles        int
	RoleBindings        int
	ClusterRoleBindings int
	ServiceAccounts     int
	Pods                int
	Nodes               int
	// Indirect adds what the indirect-exposure analysis follows (see
	// Extras), from a second random source, so that every object the
	// world has without it comes out the same.
	Indirect bool
}

// The reference world, the scale keyhole is expected to audit: 100k
// Secrets in 5k namespaces, 20k roles, 50k bindings and 30k
// ServiceAccounts.
const (
	refSecrets             = 100_000
	refNamespaces          = 5_000
	refRoles               = 18_000
	refClusterRoles        = 2_000
	refRoleBindings        = 48_000
	refClusterRoleBindings = 2_000
	refServiceAccounts     = 30_000
)

// Scale returns a Size proportional to the reference world with the given
// number of Secrets. Pods and Nodes are zero: set them when a benchmark
// needs them.
func Scale(secrets int) Size {
	prop := func(ref int) int {
		return int((int64(ref)*int64(secrets) + refSecrets/2) / refSecrets)
	}
	s := Size{
		Namespaces:          prop(refNamespaces),
		Secrets:             secrets,
		Roles:               prop(refRoles),
		ClusterRoles:        prop(refClusterRoles),
		RoleBindings:        prop(refRoleBindings),
		ClusterRoleBindings: prop(refClusterRoleBindings),
		ServiceAccounts:     prop(refServiceAccounts),
	}
	if secrets > 0 && s.Namespaces == 0 {
		s.Namespaces = 1
	}
	return s
}

// Build generates the world and returns it as an inventory.
func Build(seed int64, size Size) *inventory.Inventory {
	b := inventory.NewBuilder()
	for _, o := range Generate(seed, size) {
		if _, _, err := b.Add(o, inventory.Location{Layer: "synthetic"}); err != nil {
			// Generate only emits kinds the inventory reads.
			panic(fmt.Sprintf("synthetic: %T: %v", o, err))
		}
	}
	return b.Build()
}

// Generate returns the world as typed API objects with their TypeMeta set,
// grouped by kind: Namespaces, ServiceAccounts, Secrets, ClusterRoles,
// Roles, ClusterRoleBindings, RoleBindings, Nodes, Pods; then, with
// Size.Indirect, the extras: Secrets, PersistentVolumes,
// PersistentVolumeClaims, ClusterRoles, Roles, ClusterRoleBindings,
// RoleBindings. Names are unique, so adding them all to an inventory
// replaces nothing.
//
// With Size.Namespaces zero, namespaced objects go to "default" and no
// Namespace object is emitted, as in manifests that omit their namespaces.
func Generate(seed int64, size Size) []runtime.Object {
	g := &gen{
		r:    rand.New(rand.NewPCG(uint64(seed), 0x6b6579686f6c65)), // "keyhole"
		size: size,
	}
	g.namespaces()
	g.secrets()
	g.serviceAccounts()
	g.clusterRoles()
	g.roles()
	g.clusterRoleBindings()
	g.roleBindings()
	g.nodes()
	g.pods()
	if size.Indirect {
		g.indirect(seed)
	}

	out := make([]runtime.Object, 0, len(g.nsObjs)+len(g.saObjs)+len(g.secretObjs)+len(g.crObjs)+
		len(g.roleObjs)+len(g.crbObjs)+len(g.rbObjs)+len(g.nodeObjs)+len(g.podObjs)+
		len(g.xSecretObjs)+len(g.xPVObjs)+len(g.xPVCObjs)+len(g.xCRObjs)+len(g.xRoleObjs)+len(g.xCRBObjs)+len(g.xRBObjs))
	for _, o := range g.nsObjs {
		out = append(out, o)
	}
	for _, o := range g.saObjs {
		out = append(out, o)
	}
	for _, o := range g.secretObjs {
		out = append(out, o)
	}
	for _, o := range g.crObjs {
		out = append(out, o)
	}
	for _, o := range g.roleObjs {
		out = append(out, o)
	}
	for _, o := range g.crbObjs {
		out = append(out, o)
	}
	for _, o := range g.rbObjs {
		out = append(out, o)
	}
	for _, o := range g.nodeObjs {
		out = append(out, o)
	}
	for _, o := range g.podObjs {
		out = append(out, o)
	}
	for _, o := range g.xSecretObjs {
		out = append(out, o)
	}
	for _, o := range g.xPVObjs {
		out = append(out, o)
	}
	for _, o := range g.xPVCObjs {
		out = append(out, o)
	}
	for _, o := range g.xCRObjs {
		out = append(out, o)
	}
	for _, o := range g.xRoleObjs {
		out = append(out, o)
	}
	for _, o := range g.xCRBObjs {
		out = append(out, o)
	}
	for _, o := range g.xRBObjs {
		out = append(out, o)
	}
	return out
}

// ns is one namespace under construction. Everything that needs to refer
// to existing objects (resourceNames, roleRefs, subjects, volumes) picks
// from these slices, never from a map, so output order depends only on the
// seed.
type ns struct {
	index   int
	name    string
	weight  uint64 // relative share of Secrets, ServiceAccounts and pods
	secrets []string
	sas     []string
	roles   []string

	// Set for Indirect worlds only.
	psa        string // Pod Security enforce level, "" when unlabelled
	pods       []*corev1.Pod
	registries []string // names of its dockerconfigjson Secrets
}

type clusterRole struct {
	obj        *rbacv1.ClusterRole
	aggKey     string // the label its selector selects, when aggregated
	readsOwn   bool   // its own rules read Secrets
	reads      bool   // reads Secrets, counting aggregation
	aggregated bool
	fixed      bool
}

type gen struct {
	r    *rand.Rand
	size Size

	ns       []*ns
	cumW     []uint64 // cumulative namespace weights
	secretNS []int32  // namespace index of each Secret, in generation order
	crs      []*clusterRole
	users    int
	groups   int

	nsObjs     []*corev1.Namespace
	secretObjs []*corev1.Secret
	saObjs     []*corev1.ServiceAccount
	roleObjs   []*rbacv1.Role
	crObjs     []*rbacv1.ClusterRole
	rbObjs     []*rbacv1.RoleBinding
	crbObjs    []*rbacv1.ClusterRoleBinding
	nodeObjs   []*corev1.Node
	podObjs    []*corev1.Pod

	// What Size.Indirect adds; the x...Objs in the order Generate emits
	// them.
	nsByName    map[string]*ns
	xRoles      []extraRole
	xCRKinds    []int
	xSecretObjs []*corev1.Secret
	xPVObjs     []*corev1.PersistentVolume
	xPVCObjs    []*corev1.PersistentVolumeClaim
	xCRObjs     []*rbacv1.ClusterRole
	xRoleObjs   []*rbacv1.Role
	xCRBObjs    []*rbacv1.ClusterRoleBinding
	xRBObjs     []*rbacv1.RoleBinding
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

var (
	teams = []string{"payments", "checkout", "search", "identity", "ledger", "billing", "ml", "data",
		"platform", "infra", "web", "mobile", "growth", "ads", "catalog", "shipping", "support", "risk"}
	envs        = []string{"prod", "staging", "dev", "qa", "sandbox"}
	secretBases = []string{"db-credentials", "api-key", "oauth-client", "s3-access", "smtp", "jwt-signing",
		"webhook-token", "redis-auth", "kafka-sasl", "ldap-bind", "stripe", "sentry-dsn", "github-app"}
	opaqueKeys = []string{"username", "password", "token", "url", "key"}
	saBases    = []string{"app", "worker", "ci-deployer", "backup", "metrics", "operator", "migrator", "ingest", "cron", "gateway"}
	roleBases  = []string{"app", "deployer", "debug", "ci", "operator", "oncall", "reader", "config", "jobs", "monitoring"}
	crBases    = []string{"operator", "controller", "exporter", "agent", "webhook", "csi-driver", "ingress", "mesh", "policy", "backup"}
)

// namespaces names the namespaces and gives each a weight. Weights are
// integers so that picking is exact on every platform: most namespaces
// are small, one in ten is several times larger, one in a hundred is huge.
func (g *gen) namespaces() {
	n := g.size.Namespaces
	if n == 0 {
		g.ns = []*ns{{name: "default", weight: 1}}
	}
	for i := range n {
		var name string
		switch i {
		case 0:
			name = "default"
		case 1:
			name = "kube-system"
		default:
			name = fmt.Sprintf("%s-%s-%04d", teams[g.r.IntN(len(teams))], envs[g.r.IntN(len(envs))], i)
		}
		w := uint64(1 + g.r.IntN(8))
		switch {
		case i == 1:
			w *= 40
		case g.chance(0.01):
			w *= uint64(50 + g.r.IntN(150))
		case g.chance(0.1):
			w *= uint64(5 + g.r.IntN(10))
		}
		g.ns = append(g.ns, &ns{index: i, name: name, weight: w})
		o := &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/metadata.name": name}},
		}
		if i > 1 {
			o.Labels["team"] = name[:len(name)-len(fmt.Sprintf("-%04d", i))]
		}
		g.nsObjs = append(g.nsObjs, o)
	}
	var sum uint64
	for _, s := range g.ns {
		sum += s.weight
		g.cumW = append(g.cumW, sum)
	}
}

// weightedNS picks a namespace in proportion to its weight.
func (g *gen) weightedNS() *ns {
	x := g.r.Uint64N(g.cumW[len(g.cumW)-1])
	return g.ns[sort.Search(len(g.cumW), func(i int) bool { return g.cumW[i] > x })]
}

// someNS picks a namespace, half the time uniformly and half by weight:
// RBAC grows with the number of teams more than with the number of
// Secrets.
func (g *gen) someNS() *ns {
	if g.chance(0.5) {
		return g.ns[g.r.IntN(len(g.ns))]
	}
	return g.weightedNS()
}

func (g *gen) secrets() {
	for range g.size.Secrets {
		n := g.weightedNS()
		idx := len(n.secrets)
		s := &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: n.name},
		}
		value := []byte("synthetic")
		switch x := g.r.IntN(100); {
		case x < 70:
			s.Name = fmt.Sprintf("%s-%d", pick(g.r, secretBases), idx)
			s.Type = corev1.SecretTypeOpaque
			s.Data = map[string][]byte{}
			for _, k := range opaqueKeys[:1+g.r.IntN(len(opaqueKeys))] {
				s.Data[k] = value
			}
			s.Labels = map[string]string{"app": pick(g.r, saBases)}
		case x < 82:
			s.Name = fmt.Sprintf("tls-%d", idx)
			s.Type = corev1.SecretTypeTLS
			s.Data = map[string][]byte{corev1.TLSCertKey: value, corev1.TLSPrivateKeyKey: value}
			s.Annotations = map[string]string{"cert-manager.io/issuer-name": "letsencrypt"}
		case x < 90:
			s.Name = fmt.Sprintf("registry-%d", idx)
			s.Type = corev1.SecretTypeDockerConfigJson
			s.Data = map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}
		case x < 95:
			sa := pick(g.r, saBases)
			s.Name = fmt.Sprintf("%s-token-%d", sa, idx)
			s.Type = corev1.SecretTypeServiceAccountToken
			s.Annotations = map[string]string{corev1.ServiceAccountNameKey: sa}
			s.Data = map[string][]byte{"token": value, "ca.crt": value, "namespace": []byte(n.name)}
		default:
			release := pick(g.r, saBases)
			s.Name = fmt.Sprintf("sh.helm.release.v1.%s-%d.v%d", release, idx, 1+g.r.IntN(5))
			s.Type = "helm.sh/release.v1"
			s.Labels = map[string]string{"owner": "helm", "name": release}
			s.Data = map[string][]byte{"release": value}
		}
		n.secrets = append(n.secrets, s.Name)
		g.secretNS = append(g.secretNS, int32(n.index))
		g.secretObjs = append(g.secretObjs, s)
	}
}

// serviceAccounts gives every namespace its "default" ServiceAccount while
// the count lasts, then spreads the rest by weight.
func (g *gen) serviceAccounts() {
	for i := range g.size.ServiceAccounts {
		var n *ns
		if i < len(g.ns) && g.size.Namespaces > 0 {
			n = g.ns[i]
		} else {
			n = g.weightedNS()
		}
		name := "default"
		if len(n.sas) > 0 {
			name = fmt.Sprintf("%s-%d", pick(g.r, saBases), len(n.sas))
		}
		n.sas = append(n.sas, name)
		g.saObjs = append(g.saObjs, &corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Namespace: n.name, Name: name},
		})
	}
	g.users = max(10, g.size.ServiceAccounts/10)
	g.groups = max(5, len(g.ns)/20)
}

// Rules that grant nothing on Secrets, including near misses that a
// careless matcher would count: Secrets in another API group, a Secret
// subresource, and write-only verbs.
var plainRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"services", "endpoints"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "replicasets"}, Verbs: []string{"get", "list", "watch", "patch", "update"}},
	{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: []string{"*"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
	{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "update", "delete"}},
	{APIGroups: []string{"apps", "extensions"}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}},
	{APIGroups: []string{""}, Resources: []string{"secrets/status"}, Verbs: []string{"get"}},
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses", "networkpolicies"}, Verbs: []string{"get", "list"}},
	{APIGroups: []string{"*"}, Resources: []string{"configmaps", "pods"}, Verbs: []string{"*"}},
}

// Cluster-scoped rules that grant nothing on Secrets.
var plainClusterRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"nodes", "nodes/metrics"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
	{NonResourceURLs: []string{"/metrics", "/healthz"}, Verbs: []string{"get"}},
	{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"storageclasses", "csinodes"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, Verbs: []string{"get", "list", "watch", "update"}},
}

// clusterPalette is what ClusterRoles draw their non-Secret rules from.
var clusterPalette = append(append([]rbacv1.PolicyRule(nil), plainClusterRules...), plainRules...)

var readVerbSets = [][]string{{"get"}, {"get", "list"}, {"get", "list", "watch"}, {"list", "watch"}, {"list"}, {"watch"}, {"get", "watch"}}

// wildcardRules read Secrets through "*" in verbs, groups or resources.
var wildcardRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}},
	{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}},
	{APIGroups: []string{""}, Resources: []string{"*"}, Verbs: []string{"get", "list"}},
	{APIGroups: []string{"*"}, Resources: []string{"secrets", "configmaps"}, Verbs: []string{"watch"}},
}

// plain returns 1 to 3 distinct rules from set.
func (g *gen) plain(set []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	k := 1 + g.r.IntN(3)
	start := g.r.IntN(len(set))
	out := make([]rbacv1.PolicyRule, 0, k)
	for i := range k {
		out = append(out, *set[(start+i)%len(set)].DeepCopy())
	}
	return out
}

func secretRule(verbs []string, names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: append([]string(nil), verbs...), ResourceNames: names}
}

// names picks 1 to 3 distinct Secret names of a namespace, and now and
// then a name that does not exist.
func (g *gen) names(n *ns) []string {
	k := min(1+g.r.IntN(3), len(n.secrets))
	start := g.r.IntN(len(n.secrets))
	out := make([]string, 0, k+1)
	for i := range k {
		out = append(out, n.secrets[(start+i)%len(n.secrets)])
	}
	if g.chance(0.1) {
		out = append(out, "deleted-"+out[0])
	}
	return out
}

// kind of role: what it grants on Secrets.
const (
	grantsNothing = iota
	grantsAll
	grantsNamed
	grantsWildcard
)

func (g *gen) roleKind() int {
	switch x := g.r.IntN(100); {
	case x < 72:
		return grantsNothing
	case x < 88:
		return grantsAll
	case x < 96:
		return grantsNamed
	default:
		return grantsWildcard
	}
}

// rules returns the rules of a role of the given kind; in namespace n for
// names (nil for a ClusterRole, which names Secrets of any namespace).
func (g *gen) rules(kind int, n *ns, plainSet []rbacv1.PolicyRule) (rules []rbacv1.PolicyRule, reads bool) {
	rules = g.plain(plainSet)
	switch kind {
	case grantsAll:
		r := secretRule(pick(g.r, readVerbSets))
		if g.chance(0.3) {
			r.Resources = append(r.Resources, "configmaps")
		}
		rules = append(rules, r)
	case grantsNamed:
		if n == nil {
			n = g.nsWithSecrets()
		}
		if n == nil || len(n.secrets) == 0 {
			return rules, false
		}
		verbs := []string{"get"}
		if g.chance(0.3) {
			verbs = pick(g.r, readVerbSets)
		}
		rules = append(rules, secretRule(verbs, g.names(n)...))
	case grantsWildcard:
		w := pick(g.r, wildcardRules)
		rules = append(rules, *w.DeepCopy())
	default:
		return rules, false
	}
	// Shuffle the read rule into the list so that it is not always last.
	i := g.r.IntN(len(rules))
	rules[i], rules[len(rules)-1] = rules[len(rules)-1], rules[i]
	return rules, true
}

// nsWithSecrets picks a namespace that holds Secrets, in proportion to
// how many it holds.
func (g *gen) nsWithSecrets() *ns {
	if len(g.secretNS) == 0 {
		return nil
	}
	return g.ns[g.secretNS[g.r.IntN(len(g.secretNS))]]
}

func (g *gen) roles() {
	for i := range g.size.Roles {
		n := g.someNS()
		kind := g.roleKind()
		if kind == grantsNamed && len(n.secrets) == 0 {
			kind = grantsNothing
		}
		rules, _ := g.rules(kind, n, plainRules)
		name := fmt.Sprintf("%s-%d", pick(g.r, roleBases), i)
		n.roles = append(n.roles, name)
		g.roleObjs = append(g.roleObjs, &rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Namespace: n.name, Name: name},
			Rules:      rules,
		})
	}
}

const (
	labelAggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
	labelAggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	labelAggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"
	labelAggregatePrefix  = "synthetic.keyhole.io/aggregate-to-"
)

func aggregated(name string, labels map[string]string, key string) *clusterRole {
	return &clusterRole{
		obj: &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{key: "true"}}}}},
		aggregated: true,
		aggKey:     key,
	}
}

// clusterRoles makes the well-known roles first (cluster-admin, and admin,
// edit and view aggregated as in a real cluster, with the member roles
// that feed them), then custom aggregated roles, then the rest.
func (g *gen) clusterRoles() {
	total := g.size.ClusterRoles
	fixed := []*clusterRole{
		{obj: &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "cluster-admin"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}, {NonResourceURLs: []string{"*"}, Verbs: []string{"*"}}}},
			readsOwn: true},
		aggregated("admin", nil, labelAggregateToAdmin),
		aggregated("edit", map[string]string{labelAggregateToAdmin: "true"}, labelAggregateToEdit),
		aggregated("view", map[string]string{labelAggregateToEdit: "true"}, labelAggregateToView),
		{obj: &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "synthetic:aggregate-to-view", Labels: map[string]string{labelAggregateToView: "true"}},
			Rules: []rbacv1.PolicyRule{*plainRules[0].DeepCopy(), *plainRules[1].DeepCopy(), *plainRules[3].DeepCopy()}}},
		{obj: &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "synthetic:aggregate-to-edit", Labels: map[string]string{labelAggregateToEdit: "true"}},
			Rules: []rbacv1.PolicyRule{secretRule([]string{"get", "list", "watch", "create", "update", "delete"}), *plainRules[4].DeepCopy()}},
			readsOwn: true},
		{obj: &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "synthetic:aggregate-to-admin", Labels: map[string]string{labelAggregateToAdmin: "true"}},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles", "rolebindings"}, Verbs: []string{"*"}}}}},
	}
	for i, cr := range fixed {
		if i >= total {
			break
		}
		cr.fixed = true
		g.crs = append(g.crs, cr)
	}
	// One custom aggregated role per 200, members labelled below.
	nAgg := min(max(1, total/200), total-len(g.crs))
	for i := range nAgg {
		name := fmt.Sprintf("aggregate-%d", i)
		key := labelAggregatePrefix + name
		cr := aggregated(name, nil, key)
		if i%2 == 1 {
			// The same selection, written as an expression.
			cr.obj.AggregationRule.ClusterRoleSelectors[0] = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: key, Operator: metav1.LabelSelectorOpIn, Values: []string{"true", "yes"}}}}
		}
		g.crs = append(g.crs, cr)
	}
	for i := len(g.crs); i < total; i++ {
		rules, reads := g.rules(g.roleKind(), nil, clusterPalette)
		g.crs = append(g.crs, &clusterRole{obj: &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%s-%d", pick(g.r, teams), pick(g.r, crBases), i)},
			Rules:      rules,
		}, readsOwn: reads})
	}
	g.labelMembers()
	for _, cr := range g.crs {
		cr.obj.TypeMeta = metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}
		g.crObjs = append(g.crObjs, cr.obj)
	}
}

// labelMembers labels 2 to 6 other ClusterRoles into each custom
// aggregated role, sometimes another aggregated role (so that aggregation
// is transitive), and records which roles end up reading Secrets.
func (g *gen) labelMembers() {
	var custom []*clusterRole
	for _, cr := range g.crs {
		if cr.aggregated && !cr.fixed {
			custom = append(custom, cr)
		}
	}
	for _, a := range custom {
		key := a.aggKey
		for range 2 + g.r.IntN(5) {
			m := g.crs[g.r.IntN(len(g.crs))]
			if m == a || m.fixed {
				continue
			}
			if m.obj.Labels == nil {
				m.obj.Labels = map[string]string{}
			}
			m.obj.Labels[key] = "true"
		}
		// A few plain roles also feed edit, as operators' CRD roles do.
		if g.chance(0.3) {
			m := g.crs[g.r.IntN(len(g.crs))]
			if !m.fixed && !m.aggregated {
				if m.obj.Labels == nil {
					m.obj.Labels = map[string]string{}
				}
				m.obj.Labels[labelAggregateToEdit] = "true"
			}
		}
	}
	// reads is the least fixed point over the member relation.
	for _, cr := range g.crs {
		cr.reads = cr.readsOwn
	}
	for changed := true; changed; {
		changed = false
		for _, a := range g.crs {
			if !a.aggregated || a.reads {
				continue
			}
			for _, m := range g.crs {
				if m != a && m.reads && m.obj.Labels[a.aggKey] == "true" {
					a.reads, changed = true, true
					break
				}
			}
		}
	}
}

func (g *gen) clusterRoleBindings() {
	var reading, plain []string
	for _, cr := range g.crs {
		if cr.reads {
			reading = append(reading, cr.obj.Name)
		} else {
			plain = append(plain, cr.obj.Name)
		}
	}
	total := g.size.ClusterRoleBindings
	// Cluster-wide Secret readers are operators and controllers: 30 at
	// the reference scale (2k ClusterRoleBindings), growing with the
	// square root of the cluster rather than with it, as a cluster ten
	// times larger runs more tenants, not ten times more operators.
	nReading := 0
	if len(reading) > 0 {
		nReading = min(total, max(1, int(math.Round(30*math.Sqrt(float64(total)/refClusterRoleBindings)))))
	}
	for i := range total {
		crb := &rbacv1.ClusterRoleBinding{
			TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole"},
		}
		switch {
		case i < nReading:
			crb.RoleRef.Name = pick(g.r, reading)
			crb.Name = fmt.Sprintf("%s-secrets-%d", crb.RoleRef.Name, i)
		case g.chance(0.01) || len(plain) == 0 && len(reading) == 0:
			crb.RoleRef.Name = fmt.Sprintf("removed-operator-%d", i)
			crb.Name = fmt.Sprintf("removed-operator-%d", i)
		default:
			if len(plain) > 0 {
				crb.RoleRef.Name = pick(g.r, plain)
			} else {
				crb.RoleRef.Name = pick(g.r, reading)
			}
			crb.Name = fmt.Sprintf("%s-%d", crb.RoleRef.Name, i)
		}
		for range 1 + g.r.IntN(3) {
			crb.Subjects = append(crb.Subjects, g.clusterSubject())
		}
		g.crbObjs = append(g.crbObjs, crb)
	}
}

func (g *gen) user() rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: fmt.Sprintf("user-%d@example.com", g.r.IntN(g.users))}
}

func (g *gen) group() rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: fmt.Sprintf("%s-%d", pick(g.r, teams), g.r.IntN(g.groups))}
}

// serviceAccount names a ServiceAccount of namespace n, which exists when n
// has any.
func (g *gen) serviceAccount(n *ns) rbacv1.Subject {
	name := "default"
	if len(n.sas) > 0 {
		name = pick(g.r, n.sas)
	}
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: n.name, Name: name}
}

// clusterSubject is a ClusterRoleBinding subject: mostly controllers'
// ServiceAccounts, then people and teams, rarely every ServiceAccount of
// a namespace, and very rarely a ServiceAccount without a namespace, which
// matches no one.
func (g *gen) clusterSubject() rbacv1.Subject {
	switch x := g.r.IntN(1000); {
	case x < 450:
		return g.serviceAccount(g.someNS())
	case x < 700:
		return g.user()
	case x < 980:
		return g.group()
	case x < 995:
		return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:serviceaccounts:" + g.someNS().name}
	default:
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "default"}
	}
}

// namespacedSubject is a RoleBinding subject in namespace n.
func (g *gen) namespacedSubject(n *ns) rbacv1.Subject {
	switch x := g.r.IntN(1000); {
	case x < 450:
		return g.serviceAccount(n)
	case x < 500:
		s := g.serviceAccount(n)
		s.Namespace = "" // defaults to the binding's namespace
		return s
	case x < 600:
		return g.serviceAccount(g.someNS())
	case x < 850:
		return g.user()
	case x < 980:
		return g.group()
	case x < 995:
		target := n
		if g.chance(0.5) {
			target = g.someNS()
		}
		return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:serviceaccounts:" + target.name}
	default:
		// A ServiceAccount named as a user: the same identity.
		s := g.serviceAccount(g.someNS())
		return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "system:serviceaccount:" + s.Namespace + ":" + s.Name}
	}
}

func (g *gen) roleBindings() {
	common := []string{"admin", "edit", "view"}
	for i := range g.size.RoleBindings {
		n := g.someNS()
		rb := &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Namespace: n.name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName},
		}
		switch x := g.r.IntN(100); {
		case x < 3:
			if g.chance(0.5) {
				rb.RoleRef.Kind, rb.RoleRef.Name = "Role", fmt.Sprintf("removed-%d", i)
			} else {
				rb.RoleRef.Kind, rb.RoleRef.Name = "ClusterRole", fmt.Sprintf("removed-%d", i)
			}
		case x < 58 && len(n.roles) > 0:
			rb.RoleRef.Kind, rb.RoleRef.Name = "Role", pick(g.r, n.roles)
		case len(g.crs) > 0:
			rb.RoleRef.Kind = "ClusterRole"
			if g.chance(0.5) && len(g.crs) > 3 {
				rb.RoleRef.Name = pick(g.r, common)
			} else {
				rb.RoleRef.Name = pick(g.r, g.crs).obj.Name
			}
		default:
			rb.RoleRef.Kind, rb.RoleRef.Name = "ClusterRole", "view"
		}
		rb.Name = fmt.Sprintf("%s-%d", rb.RoleRef.Name, i)
		for range 1 + g.r.IntN(3) {
			rb.Subjects = append(rb.Subjects, g.namespacedSubject(n))
		}
		g.rbObjs = append(g.rbObjs, rb)
	}
}

func (g *gen) nodes() {
	for i := range g.size.Nodes {
		g.nodeObjs = append(g.nodeObjs, &corev1.Node{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i), Labels: map[string]string{
				"kubernetes.io/hostname":      fmt.Sprintf("node-%d", i),
				"topology.kubernetes.io/zone": fmt.Sprintf("zone-%c", 'a'+rune(g.r.IntN(3))),
			}},
		})
	}
}

// pods run as one of their namespace's ServiceAccounts and mount or
// inject up to two of its Secrets.
func (g *gen) pods() {
	for i := range g.size.Pods {
		n := g.weightedNS()
		p := &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Namespace: n.name, Name: fmt.Sprintf("%s-%d", pick(g.r, saBases), i)},
			Spec: corev1.PodSpec{
				ServiceAccountName: g.serviceAccount(n).Name,
				Containers:         []corev1.Container{{Name: "main", Image: "registry.example.com/app:1.0"}},
			},
		}
		if len(g.nodeObjs) > 0 {
			p.Spec.NodeName = pick(g.r, g.nodeObjs).Name
		}
		if len(n.secrets) > 0 {
			for k := range g.r.IntN(3) {
				secret := pick(g.r, n.secrets)
				if g.chance(0.5) {
					vol := fmt.Sprintf("secret-%d", k)
					p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: vol,
						VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}})
					p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts,
						corev1.VolumeMount{Name: vol, MountPath: "/etc/" + vol, ReadOnly: true})
				} else {
					p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{
						Name: fmt.Sprintf("SECRET_%d", k),
						ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: "password"}},
					})
				}
			}
		}
		g.podObjs = append(g.podObjs, p)
	}
}
