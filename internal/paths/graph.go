package paths

import (
	"math"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// Pod Security Admission.
const (
	enforceLabel         = "pod-security.kubernetes.io/enforce"
	LevelPrivileged      = "privileged"
	tokenSecretNameAnnot = corev1.ServiceAccountNameKey
	nodeUserPrefix       = "system:node:"
	anyNode              = "*"
)

// idKind is the kind of an identity of the graph.
type idKind uint8

const (
	// idSubject is a User, Group or ServiceAccount.
	idSubject idKind = iota
	// idNode is a kubelet's identity; node "*" stands for any node.
	idNode
	// idGrant is a role bound to whoever reached it, in one scope.
	idGrant
	// idPods is not an identity but a capability many share: creating a
	// pod in a namespace (or in every one), exec into any of its pods, or
	// adding an ephemeral container to any of them (capKind). Who reaches
	// it took the half-step of a permission; its edges complete that
	// step, at no further cost, with what such a pod yields. Sharing it
	// saves every holder its own copy of those edges, and the search
	// walks what it yields once (a hub).
	idPods
)

// capKind is what a shared capability (idPods) is.
type capKind uint8

const (
	capCreate    capKind = iota // create a pod
	capExec                     // exec into (or re-image) any running pod
	capEphemeral                // add an ephemeral container to any pod
)

type capKey struct {
	kind capKind
	ns   string
}

// identity is a node of the graph: something a subject can act as.
type identity struct {
	kind    idKind
	subject rbac.Subject
	node    string
	grant   *roleGrant
	// scope is an idPods capability's namespace; "" for every namespace.
	scope string
	cap   capKind

	// members are identities it acts as at no cost: a ServiceAccount's
	// groups, a node's user and group.
	members []int32
	// effective are the subjects whose RBAC grants it holds.
	effective []rbac.Subject
	expanded  bool
	edges     []edge
	// last are the edges to terminals and to shared pod capabilities.
	last []edge
	// omniscient is set when it reads every Secret of the cluster: chains
	// through it reach nothing more, so they are not followed.
	omniscient bool
	// reader is set when it reads some Secret itself (searcher.isReader),
	// once readerKnown.
	reader, readerKnown bool
}

// roleGrant is a role bound by rbac-bind, or every permission gained by
// rbac-escalate, in a namespace ("" for cluster-wide).
type roleGrant struct {
	role  inventory.Ref
	scope string
	rules []rbacv1.PolicyRule
	caps  *capabilities
	// escalated is set for rbac-escalate: rules are "everything".
	escalated bool
}

// display returns the Node a step shows for the identity.
func (id *identity) display() Node {
	switch id.kind {
	case idNode:
		return Node{Kind: "Node", Name: id.node}
	case idGrant:
		return Node{Kind: id.grant.role.Kind, Namespace: id.grant.scope, Name: id.grant.role.Name}
	case idPods:
		return Node{Kind: "Pods", Namespace: id.scope}
	}
	return Node{Kind: id.subject.Kind, Namespace: id.subject.Namespace, Name: id.subject.Name}
}

// termKind is the kind of a terminal: a capability that yields Secrets
// without acting as anyone.
type termKind uint8

const (
	tPodCreate termKind = iota // every Secret of ns ("" every namespace)
	tPatchAll                  // every Secret of ns ("" every namespace)
	tPatch                     // Secret ns/name
	tExec                      // what pod ns/name shows
	tExecAll                   // what every pod of ns shows ("" every namespace)
	tKubelet                   // what every pod on node name shows ("*" any node)
	tNodeReads                 // what the Node authorizer lets node name read ("*" any node)
)

type terminal struct {
	kind     termKind
	ns, name string
}

// shared reports whether many Secrets of a namespace have the terminal in
// common: exec into any pod of the namespace or the cluster, the kubelet
// API or the reads of any node.
func (t terminal) shared() bool {
	switch t.kind {
	case tExecAll:
		return true
	case tKubelet, tNodeReads:
		return t.name == anyNode
	}
	return false
}

// edge is one step out of an identity, to an identity or a terminal.
type edge struct {
	to   int32
	term bool
	step *Step
	// si is the step's index in graph.steps.
	si int32
}

// graph is the identity graph of one inventory.
type graph struct {
	inv    *inventory.Inventory
	policy *rbac.Policy
	ix     *rbac.ReadIndex
	opts   Options
	caps   capCache
	// bindableCRs and bindableRolesIn are bindableClusterRoles' and
	// bindableRoles' lists, made when first asked for.
	bindableCRs     []bindable
	bindableRolesIn map[string][]bindable
	// interestingSAs are interestingServiceAccounts' lists by namespace.
	interestingSAs map[string][]rbac.Subject

	ids       []*identity
	bySubject map[rbac.Subject]int32
	byNode    map[string]int32
	byGrant   map[grantKey]int32
	byPods    map[capKey]int32
	// noShortcuts keeps the edges dropGroupEdges would drop, for the tests
	// that hold the shortcuts to the full search.
	noShortcuts bool
	terms       []terminal
	byTerm      map[terminal]int32
	// steps are the edges' steps, which chains name by index, and
	// stepRank their kinds' order.
	steps    []*Step
	stepRank []int8

	pods          []*pod
	podsByNS      map[string][]*pod
	podsByNode    map[string][]*pod
	podByName     map[nsName]*pod
	nodes         []string
	namespaces    []string
	saByNS        map[string][]string
	saExists      map[nsName]bool
	workloads     map[string]map[nsName]bool // kind -> objects
	anyWorkload   map[string]map[string]bool // kind -> namespaces
	bindingsByRef map[inventory.Ref]*rbac.Binding
	bindingsByNS  map[string][]*rbac.Binding // "" for ClusterRoleBindings
	rolesByNS     map[string][]*rbacv1.Role
	boundSAs      map[string][]rbac.Subject
	tokenOwner    map[nsName]bool
	nodePodsAll   map[string][]*pod // every pod bound to a node, by node
	// runningPods are the pods exec reaches; boundRunningPods those of
	// them on a node.
	runningPods, boundRunningPods []*pod
	groupTargets                  map[podGroup][]podTarget
	ephemeralPods                 map[string][]*pod
	tokens                        []*tokenSecret
	tokensByNS                    map[string][]*tokenSecret
	tokenByName                   map[nsName]*tokenSecret
	// subjectsByKind are the subjects of bindings, per kind, sorted:
	// what impersonating every user or group reaches.
	users, groups []rbac.Subject
	privileged    map[string]string // namespace -> why its level is privileged
	allPrivileged string            // a privileged namespace, for cluster-wide pod creators
}

type grantKey struct {
	role      inventory.Ref
	scope     string
	escalated bool
}

// tokenSecret is a legacy ServiceAccount token Secret.
type tokenSecret struct {
	namespace, name, serviceAccount string
}

func newGraph(p *rbac.Policy, ix *rbac.ReadIndex, opts Options) *graph {
	inv := p.Inventory()
	g := &graph{
		inv: inv, policy: p, ix: ix, opts: opts,
		bySubject: map[rbac.Subject]int32{}, byNode: map[string]int32{}, byGrant: map[grantKey]int32{}, byPods: map[capKey]int32{}, byTerm: map[terminal]int32{},
		podsByNS: map[string][]*pod{}, podsByNode: map[string][]*pod{}, podByName: map[nsName]*pod{},
		saByNS: map[string][]string{}, saExists: map[nsName]bool{},
		workloads: map[string]map[nsName]bool{}, anyWorkload: map[string]map[string]bool{},
		bindingsByRef: map[inventory.Ref]*rbac.Binding{}, bindingsByNS: map[string][]*rbac.Binding{},
		rolesByNS: map[string][]*rbacv1.Role{}, boundSAs: map[string][]rbac.Subject{}, tokenOwner: map[nsName]bool{},
		nodePodsAll: map[string][]*pod{}, groupTargets: map[podGroup][]podTarget{}, ephemeralPods: map[string][]*pod{},
		tokensByNS: map[string][]*tokenSecret{}, tokenByName: map[nsName]*tokenSecret{},
		privileged: map[string]string{}, bindableRolesIn: map[string][]bindable{}, interestingSAs: map[string][]rbac.Subject{},
	}
	namespaces := map[string]bool{}
	g.pods = podsOf(inv, opts.Offline)
	nodes := map[string]bool{}
	for _, n := range inv.Nodes {
		nodes[n.Name] = true
	}
	for _, pd := range g.pods {
		namespaces[pd.namespace] = true
		if pd.node != "" {
			g.nodePodsAll[pd.node] = append(g.nodePodsAll[pd.node], pd)
		}
		if !pd.running {
			continue
		}
		g.runningPods = append(g.runningPods, pd)
		if pd.node != "" {
			g.boundRunningPods = append(g.boundRunningPods, pd)
		}
		g.podsByNS[pd.namespace] = append(g.podsByNS[pd.namespace], pd)
		if pd.name != "" {
			g.podByName[nsName{pd.namespace, pd.name}] = pd
		}
		if pd.node != "" {
			g.podsByNode[pd.node] = append(g.podsByNode[pd.node], pd)
			nodes[pd.node] = true
		}
	}
	for n := range nodes {
		g.nodes = append(g.nodes, n)
	}
	sort.Strings(g.nodes)
	for _, sa := range inv.ServiceAccounts {
		g.addServiceAccount(sa.Namespace, sa.Name)
		namespaces[sa.Namespace] = true
	}
	for _, w := range inv.Workloads {
		if g.workloads[w.Kind] == nil {
			g.workloads[w.Kind] = map[nsName]bool{}
			g.anyWorkload[w.Kind] = map[string]bool{}
		}
		g.workloads[w.Kind][nsName{w.Namespace, w.Name}] = true
		g.anyWorkload[w.Kind][w.Namespace] = true
		namespaces[w.Namespace] = true
	}
	for _, ns := range inv.SecretNamespaces() {
		namespaces[ns] = true
	}
	for _, n := range inv.Namespaces {
		namespaces[n.Name] = true
	}
	users, groups := map[rbac.Subject]bool{}, map[rbac.Subject]bool{}
	bs := p.Bindings()
	for i := range bs {
		b := &bs[i]
		g.bindingsByRef[b.Ref] = b
		g.bindingsByNS[b.Namespace] = append(g.bindingsByNS[b.Namespace], b)
		if b.Namespace != "" {
			namespaces[b.Namespace] = true
		}
		for _, s := range b.Subjects {
			switch s.Kind {
			case rbac.KindUser:
				users[s] = true
			case rbac.KindGroup:
				groups[s] = true
			case rbac.KindServiceAccount:
				g.boundSAs[s.Namespace] = append(g.boundSAs[s.Namespace], s)
				if opts.Offline {
					// Manifests bind ServiceAccounts created elsewhere.
					g.addServiceAccount(s.Namespace, s.Name)
				}
			}
		}
	}
	for ns, sas := range g.boundSAs {
		g.boundSAs[ns] = uniqueSubjects(sas)
	}
	for _, r := range inv.Roles {
		g.rolesByNS[r.Namespace] = append(g.rolesByNS[r.Namespace], r)
	}
	groups[rbac.Superuser.Subject] = true
	g.users, g.groups = sortedSubjects(users), sortedSubjects(groups)
	for ns := range namespaces {
		g.namespaces = append(g.namespaces, ns)
		if opts.Offline {
			// Every namespace has its default ServiceAccount.
			g.addServiceAccount(ns, "default")
		}
		if why, ok := g.privilegedNS(ns); ok {
			g.privileged[ns] = why
		}
	}
	sort.Strings(g.namespaces)
	for _, ns := range g.namespaces {
		if _, ok := g.privileged[ns]; ok {
			g.allPrivileged = ns
			break
		}
	}
	for ns := range g.saByNS {
		sort.Strings(g.saByNS[ns])
	}
	for _, s := range inv.Secrets {
		if s.Type != corev1.SecretTypeServiceAccountToken {
			continue
		}
		sa := s.Annotations[tokenSecretNameAnnot]
		if sa == "" || !g.saExists[nsName{s.Namespace, sa}] {
			// The token controller deletes tokens of missing accounts,
			// and the authenticator rejects them.
			continue
		}
		t := &tokenSecret{namespace: s.Namespace, name: s.Name, serviceAccount: sa}
		g.tokens = append(g.tokens, t)
		g.tokensByNS[s.Namespace] = append(g.tokensByNS[s.Namespace], t)
		g.tokenByName[nsName{s.Namespace, s.Name}] = t
		g.tokenOwner[nsName{s.Namespace, sa}] = true
	}
	return g
}

// rolesIn returns the Roles of ns, or of every namespace.
func (g *graph) rolesIn(scope string) []*rbacv1.Role {
	if scope == clusterScope || scope == everyNamespace {
		return g.inv.Roles
	}
	return g.rolesByNS[scope]
}

// bindingsIn returns the RoleBindings a grant in scope reaches, or the
// ClusterRoleBindings.
func (g *graph) bindingsIn(scope string, cluster bool) []*rbac.Binding {
	if cluster {
		return g.bindingsByNS[clusterScope]
	}
	if scope != clusterScope && scope != everyNamespace {
		return g.bindingsByNS[scope]
	}
	var out []*rbac.Binding
	for _, ns := range g.namespaces {
		out = append(out, g.bindingsByNS[ns]...)
	}
	return out
}

// nodePods returns the pods whose Secrets the Node authorizer gives node
// ("*": any node): those bound to it; offline, any node may run any pod.
func (g *graph) nodePods(node string) []*pod {
	if node != anyNode {
		return g.nodePodsAll[node]
	}
	if g.opts.Offline {
		return g.pods
	}
	var out []*pod
	for _, n := range g.nodes {
		out = append(out, g.nodePodsAll[n]...)
	}
	return out
}

func (g *graph) addServiceAccount(ns, name string) {
	k := nsName{ns, name}
	if !g.saExists[k] {
		g.saExists[k] = true
		g.saByNS[ns] = append(g.saByNS[ns], name)
	}
}

func sortedSubjects(m map[rbac.Subject]bool) []rbac.Subject {
	out := make([]rbac.Subject, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// privilegedNS reports whether Pod Security Admission lets pods of ns be
// privileged, with the reason.
func (g *graph) privilegedNS(ns string) (string, bool) {
	level, labelled := "", false
	if n := g.inv.Namespace(ns); n != nil {
		level, labelled = n.Labels[enforceLabel]
	}
	if !labelled {
		def := g.opts.PodSecurityDefault
		if def == "" {
			def = LevelPrivileged
		}
		return "namespace " + ns + " has no " + enforceLabel + " label, and the cluster default is " + def, def == LevelPrivileged
	}
	return "namespace " + ns + " has " + enforceLabel + "=" + level, level == LevelPrivileged
}

// subjectID returns the identity of a subject, creating it.
func (g *graph) subjectID(s rbac.Subject) int32 {
	if id, ok := g.bySubject[s]; ok {
		return id
	}
	id := g.add(&identity{kind: idSubject, subject: s})
	g.bySubject[s] = id
	ident := g.ids[id]
	ident.effective = []rbac.Subject{s}
	for _, m := range Memberships(s) {
		ident.members = append(ident.members, g.subjectID(m))
		ident.effective = append(ident.effective, m)
	}
	// A group's memberships are its own groups': system:authenticated.
	return id
}

func (g *graph) nodeID(name string) int32 {
	if id, ok := g.byNode[name]; ok {
		return id
	}
	id := g.add(&identity{kind: idNode, node: name})
	g.byNode[name] = id
	// The node's users, then its group.
	users := []rbac.Subject{}
	if name == anyNode {
		for _, n := range g.nodes {
			users = append(users, rbac.Subject{Kind: rbac.KindUser, Name: nodeUserPrefix + n})
		}
	} else {
		users = append(users, rbac.Subject{Kind: rbac.KindUser, Name: nodeUserPrefix + name})
	}
	users = append(users, rbac.Subject{Kind: rbac.KindGroup, Name: rbac.GroupNodes})
	ident := g.ids[id]
	for _, m := range users {
		mid := g.subjectID(m)
		ident.members = append(ident.members, mid)
		ident.effective = append(ident.effective, g.ids[mid].effective...)
	}
	ident.effective = uniqueSubjects(ident.effective)
	return id
}

func (g *graph) grantID(k grantKey, rules []rbacv1.PolicyRule) int32 {
	if id, ok := g.byGrant[k]; ok {
		return id
	}
	rg := &roleGrant{role: k.role, scope: k.scope, rules: rules, escalated: k.escalated}
	rg.caps = capsOf(rules)
	id := g.add(&identity{kind: idGrant, grant: rg})
	g.byGrant[k] = id
	return id
}

// podsID returns a shared capability on the pods of ns ("" for every
// namespace), creating it.
func (g *graph) podsID(kind capKind, ns string) int32 {
	k := capKey{kind, ns}
	if id, ok := g.byPods[k]; ok {
		return id
	}
	id := g.add(&identity{kind: idPods, scope: ns, cap: kind})
	g.byPods[k] = id
	return id
}

func (g *graph) add(id *identity) int32 {
	g.ids = append(g.ids, id)
	return index(len(g.ids) - 1)
}

// index converts a slice index to the graph's int32 ids. A graph holds
// one identity per subject, node and bound role, and one terminal per
// namespace, pod, node and Secret: far below 2^31.
func index(i int) int32 {
	if i > math.MaxInt32 {
		panic("paths: more than 2^31 identities or terminals")
	}
	return int32(i) //nolint:gosec // G115: bounded just above
}

func (g *graph) termID(t terminal) int32 {
	if id, ok := g.byTerm[t]; ok {
		return id
	}
	g.terms = append(g.terms, t)
	id := index(len(g.terms) - 1)
	g.byTerm[t] = id
	return id
}

// Memberships are the groups the authenticator puts a subject in, as far
// as the API tells: a ServiceAccount's three groups, system:authenticated
// for users and for the members of any other group, and
// system:unauthenticated for system:anonymous.
func Memberships(s rbac.Subject) []rbac.Subject {
	authenticated := rbac.Subject{Kind: rbac.KindGroup, Name: rbac.GroupAuthenticated}
	switch s.Kind {
	case rbac.KindServiceAccount:
		return []rbac.Subject{
			{Kind: rbac.KindGroup, Name: rbac.GroupServiceAccounts},
			{Kind: rbac.KindGroup, Name: rbac.GroupServiceAccountsPrefix + s.Namespace},
			authenticated,
		}
	case rbac.KindUser:
		if s.Name == rbac.UserAnonymous {
			return []rbac.Subject{{Kind: rbac.KindGroup, Name: rbac.GroupUnauthenticated}}
		}
		return []rbac.Subject{authenticated}
	case rbac.KindGroup:
		// Members of any other group are authenticated users.
		switch s.Name {
		case rbac.GroupAuthenticated, rbac.GroupUnauthenticated:
			return nil
		}
		return []rbac.Subject{authenticated}
	}
	return nil
}

func uniqueSubjects(in []rbac.Subject) []rbac.Subject {
	sort.Slice(in, func(i, j int) bool { return in[i].Less(in[j]) })
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}

func isNodeUser(s rbac.Subject) (string, bool) {
	if s.Kind != rbac.KindUser {
		return "", false
	}
	return strings.CutPrefix(s.Name, nodeUserPrefix)
}
