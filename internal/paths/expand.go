package paths

import (
	"slices"
	"strconv"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// Scopes of a grant: a namespace, clusterScope ("": every namespace and
// cluster-scoped objects), or everyNamespace ("*": every namespace, but
// no cluster-scoped object: a ClusterRole that rbac-bind can bind with a
// RoleBinding in any namespace).
const (
	clusterScope   = ""
	everyNamespace = "*"
)

// source is one grant an identity holds: a role in a scope.
type source struct {
	scope string
	caps  *capabilities
	via   rbac.Via
}

// covers reports whether a grant in scope applies to objects of ns ("" for
// cluster-scoped objects).
func covers(scope, ns string) bool {
	switch scope {
	case clusterScope:
		return true
	case everyNamespace:
		return ns != ""
	}
	return scope == ns
}

// sources returns the grants an identity holds, and whether it is
// omniscient (reads every Secret of the cluster).
func (g *graph) sources(id *identity) ([]source, bool) {
	if id.kind == idGrant {
		rg := id.grant
		role := rg.role
		s := source{scope: rg.scope, caps: rg.caps, via: rbac.Via{Role: &role}}
		return []source{s}, rg.scope == clusterScope && rg.caps.readAll != 0
	}
	var out []source
	omniscient := false
	seen := map[*rbac.Binding]bool{}
	for _, subj := range id.effective {
		if subj == rbac.Superuser.Subject {
			omniscient = true
		}
		for _, b := range g.policy.BindingsOf(subj) {
			if !b.RoleFound || seen[b] {
				continue
			}
			seen[b] = true
			// A role that grants nothing followed here is kept: escalate
			// can rewrite it.
			caps := g.caps.get(roleKey{b.Role.Kind, b.Role.Namespace, b.Role.Name}, b.Rules)
			binding, role := b.Ref, b.Role
			out = append(out, source{scope: b.Namespace, caps: caps, via: rbac.Via{Binding: &binding, Role: &role}})
			if b.Namespace == clusterScope && caps.readAll != 0 {
				omniscient = true
			}
		}
	}
	return out, omniscient
}

// held is one grant of a request: its scope, names and grant.
type held struct {
	scope string
	names rbac.Names
	via   rbac.Via
}

func heldFor(srcs []source, req int) []held {
	var out []held
	for _, s := range srcs {
		if n := s.caps.names[req]; !n.Empty() {
			out = append(out, held{scope: s.scope, names: n, via: s.via})
		}
	}
	return out
}

// holds reports whether some grant allows req on name in ns.
func holds(hs []held, ns, name string) (rbac.Via, bool) {
	for _, h := range hs {
		if covers(h.scope, ns) && h.names.Has(name) {
			return h.via, true
		}
	}
	return rbac.Via{}, false
}

// expander builds one identity's edges.
type expander struct {
	g     *graph
	id    *identity
	self  Node
	srcs  []source
	edges []edge
	// index dedups edges by target: the first edge to a target wins; a
	// later one with the same kind and permission adds its grant.
	index map[edgeKey]int
}

type edgeKey struct {
	to   int32
	term bool
}

func (g *graph) expand(idx int32) []edge {
	id := g.ids[idx]
	if id.expanded {
		return id.edges
	}
	id.expanded = true
	srcs, omniscient := g.sources(id)
	id.omniscient = omniscient
	if omniscient {
		return nil
	}
	e := &expander{g: g, id: id, self: id.display(), srcs: srcs, index: map[edgeKey]int{}}
	if id.kind == idPods {
		switch id.cap {
		case capCreate:
			e.podsCapability()
		case capExec:
			e.execCapability()
		case capEphemeral:
			e.ephemeralCapability()
		}
		id.setEdges(g, e.edges)
		return id.edges
	}
	e.podCreation()
	e.podExec()
	e.nodeProxy()
	e.secretPatch()
	e.tokenMint()
	e.impersonation()
	e.roleBinding()
	e.escalation()
	if id.kind == idNode {
		e.nodeAuthorizer()
	}
	e.legacyTokens()
	if id.kind == idSubject && !g.noShortcuts {
		e.dropGroupEdges()
	}
	id.setEdges(g, e.edges)
	return id.edges
}

// setEdges sets the identity's edges, and the ones a search takes when
// no step is left to act as another identity with: to terminals, and to
// the shared pod capabilities, whose steps complete the one that reaches
// them.
func (id *identity) setEdges(g *graph, edges []edge) {
	id.edges = edges
	for _, e := range edges {
		if e.term || g.ids[e.to].kind == idPods {
			id.last = append(id.last, e)
		}
	}
}

// dropGroupEdges removes the edges one group the subject belongs to takes
// by itself: every grant of the step is a binding naming a subject of that
// group's effective set. Wherever a search reaches the subject it reaches
// its groups in as many steps, and they take those edges; only a step that
// needs the grants of two of them, or the subject's own, stays. (A source
// does not walk its searched groups at all: their entries cover it.)
func (e *expander) dropGroupEdges() {
	groups := e.id.members
	if len(groups) == 0 {
		return
	}
	kept := e.edges[:0]
	for _, ed := range e.edges {
		st := ed.step
		group := false
		if len(st.Via) > 0 && !st.NodeAuthorizer {
			for _, gid := range groups {
				if e.g.grantsAllFrom(st.Via, e.g.ids[gid].effective) {
					group = true
					break
				}
			}
		}
		if !group {
			kept = append(kept, ed)
		}
	}
	e.edges = kept
}

// grantsAllFrom reports whether every grant is a binding that names one
// of subjects.
func (g *graph) grantsAllFrom(vias []rbac.Via, subjects []rbac.Subject) bool {
	for _, v := range vias {
		if v.Binding == nil {
			return false
		}
		b := g.bindingsByRef[*v.Binding]
		if b == nil || !slices.ContainsFunc(b.Subjects, func(s rbac.Subject) bool { return slices.Contains(subjects, s) }) {
			return false
		}
	}
	return true
}

func (e *expander) add(to int32, term bool, s Step) {
	k := edgeKey{to, term}
	if i, ok := e.index[k]; ok {
		prev := e.edges[i].step
		if prev.Kind == s.Kind && prev.Permission == s.Permission && len(s.Via) == 1 && !containsVia(prev.Via, s.Via[0]) {
			prev.Via = append(prev.Via, s.Via[0])
		}
		return
	}
	s.Subject = e.self
	if e.id.kind == idGrant && e.id.grant.escalated && s.Detail == "" {
		s.Detail = escalatedDetail
	}
	if !term {
		s.Reaches = e.g.ids[to].display()
	}
	e.index[k] = len(e.edges)
	si := index(len(e.g.steps))
	e.g.steps = append(e.g.steps, &s)
	e.g.stepRank = append(e.g.stepRank, int8(s.Kind.order())) //nolint:gosec // G115: a kind's index
	e.edges = append(e.edges, edge{to: to, term: term, step: &s, si: si})
}

// vias lists the grants a step needs, each once: two permissions often
// come from one binding.
func vias(vs ...rbac.Via) []rbac.Via {
	out := make([]rbac.Via, 0, len(vs))
	for _, v := range vs {
		if !containsVia(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func containsVia(vs []rbac.Via, v rbac.Via) bool {
	for _, x := range vs {
		if viaEqual(x, v) {
			return true
		}
	}
	return false
}

func viaEqual(a, b rbac.Via) bool {
	eq := func(x, y *inventory.Ref) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Superuser == b.Superuser && eq(a.Binding, b.Binding) && eq(a.Role, b.Role)
}

func (e *expander) term(t terminal, s Step) { e.add(e.g.termID(t), true, s) }

func (e *expander) to(id int32, s Step) { e.add(id, false, s) }

// namespacesOf lists the namespaces a grant scope reaches objects in;
// clusterScope and everyNamespace give every namespace of the graph.
func (e *expander) namespacesOf(scope string) []string {
	if scope == clusterScope || scope == everyNamespace {
		return e.g.namespaces
	}
	return []string{scope}
}

// termNS is the namespace a terminal for a grant in scope stands for.
func termNS(scope string) string {
	if scope == everyNamespace {
		return clusterScope
	}
	return scope
}

func perm(req int, ns, name string) Permission {
	r := requests[req]
	resource := r.Resource
	if r.Subresource != "" {
		resource += "/" + r.Subresource
	}
	return Permission{Verb: r.Verb, APIGroup: r.APIGroup, Resource: resource, Namespace: ns, Name: name}
}

// podCreation: pod-create, run-as-sa and node-escape.
func (e *expander) podCreation() {
	for _, h := range heldFor(e.srcs, reqCreatePods) {
		if h.names.Has("") {
			e.podCreate(h.scope, perm(reqCreatePods, termNS(h.scope), ""), h.via)
		}
	}
	for k, w := range workloadKinds {
		for v := range workloadVerbs {
			req := workloadReq(k, v)
			for _, h := range heldFor(e.srcs, req) {
				if v == 0 {
					if h.names.Has("") {
						e.podCreate(h.scope, perm(req, termNS(h.scope), ""), h.via)
					}
					continue
				}
				if !w.templateMutable || w.kind == "" {
					continue
				}
				e.workloadUpdate(w, req, h)
			}
		}
	}
	for _, req := range []int{reqUpdateEphemeral, reqPatchEphemeral} {
		for _, h := range heldFor(e.srcs, req) {
			for _, ns := range e.namespacesOf(h.scope) {
				if h.names.All {
					e.ephemeralAll(ns, perm(req, ns, ""), h.via)
					continue
				}
				for _, name := range h.names.Some {
					if p := e.g.podByName[nsName{ns, name}]; p != nil {
						e.ephemeral(p, perm(req, ns, name), h.via)
					}
				}
			}
		}
	}
}

// ephemeralAll records the half-step to what ephemeral containers in
// every pod of ns yield (ephemeralCapability).
func (e *expander) ephemeralAll(ns string, pm Permission, via rbac.Via) {
	e.to(e.g.podsID(capEphemeral, ns), Step{Permission: pm, Via: []rbac.Via{via}})
}

// ephemeralCapability completes the steps into ephemeralAll: what an
// ephemeral container yields, from each distinct ServiceAccount and node
// of the namespace once.
func (e *expander) ephemeralCapability() {
	for _, p := range e.g.ephemeralTargets(e.id.scope) {
		for _, y := range e.g.ephemeralYields(p) {
			e.add(y.to, y.term, Step{Kind: y.kind, completes: true, Detail: y.detail})
		}
	}
}

// ephemeralTargets returns one pod of ns per distinct ServiceAccount,
// token and node: what an ephemeral container in any pod of ns can yield.
// Templates have no pod to add a container to.
func (g *graph) ephemeralTargets(ns string) []*pod {
	if out, ok := g.ephemeralPods[ns]; ok {
		return out
	}
	var out []*pod
	seen := map[string]bool{}
	for _, p := range g.podsByNS[ns] {
		if p.name == "" {
			continue
		}
		key := p.serviceAccount + "\x00" + strconv.FormatBool(p.token) + "\x00" + p.node
		if !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	g.ephemeralPods[ns] = out
	return out
}

func (e *expander) workloadUpdate(w workloadKind, req int, h held) {
	if h.names.All {
		for _, ns := range e.namespacesOf(h.scope) {
			if e.g.anyWorkload[w.kind][ns] {
				e.podCreate(ns, perm(req, ns, ""), h.via)
			}
		}
		return
	}
	for _, ns := range e.namespacesOf(h.scope) {
		for _, name := range h.names.Some {
			if e.g.workloads[w.kind][nsName{ns, name}] {
				e.podCreate(ns, perm(req, ns, name), h.via)
			}
		}
	}
}

// podCreate records the first half of the steps that creating a pod in
// scope opens: an edge to the shared capability, whose edges
// (podsCapability) complete them.
func (e *expander) podCreate(scope string, p Permission, via rbac.Via) {
	e.to(e.g.podsID(capCreate, termNS(scope)), Step{Permission: p, Via: []rbac.Via{via}})
}

// podsCapability records what a pod created in ns ("" for every
// namespace) yields: every Secret of the namespace, any of its
// ServiceAccounts, and any node when Pod Security allows privileged pods.
// Each edge completes the step of whoever reached the capability.
func (e *expander) podsCapability() {
	ns := e.id.scope
	scope := ns
	e.term(terminal{kind: tPodCreate, ns: ns}, Step{Kind: PodCreate, completes: true})
	for _, n := range e.namespacesOf(scope) {
		for _, sa := range e.g.interestingServiceAccounts(n) {
			e.to(e.g.subjectID(sa), Step{Kind: RunAsSA, completes: true,
				Detail: "a pod created in namespace " + n + " can run as any of its ServiceAccounts"})
		}
	}
	why, ok := e.g.privileged[ns], false
	if ns == clusterScope {
		ok = e.g.allPrivileged != ""
		why = e.g.privileged[e.g.allPrivileged]
	} else {
		_, ok = e.g.privileged[ns]
	}
	if ok && len(e.g.nodes) > 0 || ok && e.g.opts.Offline {
		e.to(e.g.nodeID(anyNode), Step{Kind: NodeEscape, completes: true,
			Detail: why + ": a privileged or hostPath pod with spec.nodeName set takes over any node"})
	}
}

// ephemeral records what an ephemeral container in pod p yields: env
// from any Secret of its namespace, the pod's token, and its node when
// the namespace allows privileged containers.
func (e *expander) ephemeral(p *pod, pm Permission, via rbac.Via) {
	grants := []rbac.Via{via}
	for _, y := range e.g.ephemeralYields(p) {
		e.add(y.to, y.term, Step{Kind: y.kind, Permission: pm, Via: grants, Detail: y.detail})
	}
}

// yield is what a step into a pod gives: an identity or a terminal, with
// the step's kind and why.
type yield struct {
	to     int32
	term   bool
	kind   Kind
	detail string
}

// ephemeralYields lists what an ephemeral container in pod p yields.
func (g *graph) ephemeralYields(p *pod) []yield {
	out := []yield{{to: g.termID(terminal{kind: tPodCreate, ns: p.namespace}), term: true, kind: PodCreate}}
	if p.token {
		out = append(out, yield{to: g.subjectID(serviceAccount(p.namespace, p.serviceAccount)), kind: RunAsSA,
			detail: "an ephemeral container runs as the pod's ServiceAccount and can mount its token"})
	}
	if why, ok := g.privileged[p.namespace]; ok && p.node != "" {
		out = append(out, yield{to: g.nodeID(p.node), kind: NodeEscape,
			detail: why + ": a privileged ephemeral container takes over the pod's node"})
	}
	return out
}

func serviceAccount(ns, name string) rbac.Subject {
	return rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: ns, Name: name}
}

// interestingServiceAccounts are the ServiceAccounts of ns worth an edge:
// those with grants of their own, plus one that stands for the
// namespace's groups when those hold grants. Made once per namespace:
// every identity that may mint tokens, impersonate or create pods there
// asks again.
func (g *graph) interestingServiceAccounts(ns string) []rbac.Subject {
	if out, ok := g.interestingSAs[ns]; ok {
		return out
	}
	out := g.findInterestingServiceAccounts(ns)
	g.interestingSAs[ns] = out
	return out
}

func (g *graph) findInterestingServiceAccounts(ns string) []rbac.Subject {
	var out []rbac.Subject
	groupGrants := len(g.policy.BindingsOf(rbac.Subject{Kind: rbac.KindGroup, Name: rbac.GroupServiceAccountsPrefix + ns})) > 0 ||
		len(g.policy.BindingsOf(rbac.Subject{Kind: rbac.KindGroup, Name: rbac.GroupServiceAccounts})) > 0
	for i, name := range g.saByNS[ns] {
		sa := serviceAccount(ns, name)
		if len(g.policy.BindingsOf(sa)) > 0 || g.tokenOwner[nsName{ns, name}] {
			out = append(out, sa)
		} else if groupGrants && (name == "default" || i == 0) {
			out = append(out, sa)
			groupGrants = false
		}
	}
	return out
}

// podExec: pod-exec, through exec, attach or a new image.
func (e *expander) podExec() {
	for _, req := range []int{reqCreateExec, reqGetExec, reqCreateAttach, reqGetAttach, reqPatchPods, reqUpdatePods} {
		for _, h := range heldFor(e.srcs, req) {
			if h.names.All {
				ns := termNS(h.scope)
				e.to(e.g.podsID(capExec, ns), Step{Permission: perm(req, ns, ""), Via: []rbac.Via{h.via}})
				continue
			}
			for _, n := range e.namespacesOf(h.scope) {
				for _, name := range h.names.Some {
					p := e.g.podByName[nsName{n, name}]
					if p == nil {
						continue
					}
					pm := perm(req, n, name)
					e.term(terminal{kind: tExec, ns: n, name: name}, Step{Kind: PodExec, Permission: pm, Via: []rbac.Via{h.via}})
					e.podIdentity(p, PodExec, pm, h.via)
				}
			}
		}
	}
}

// podIdentity records the ServiceAccount and the legacy tokens a pod's
// containers hold.
func (e *expander) podIdentity(p *pod, kind Kind, pm Permission, via rbac.Via) {
	for _, t := range e.g.podTargets(p) {
		e.to(t.id, Step{Kind: kind, Permission: pm, Via: []rbac.Via{via}, Detail: t.detail})
	}
}

// execCapability completes the steps into exec in every running pod of
// a namespace (or of the cluster): what their containers show, and every
// identity they hold.
func (e *expander) execCapability() {
	ns := e.id.scope
	e.add(e.g.termID(terminal{kind: tExecAll, ns: ns}), true, Step{Kind: PodExec, completes: true})
	pods := e.g.podsByNS[ns]
	if ns == clusterScope {
		pods = e.g.runningPods
	}
	for _, t := range e.g.groupTargetsOf(podGroup{ns: ns, all: ns == clusterScope}, pods) {
		e.to(t.id, Step{Kind: PodExec, completes: true, Detail: t.detail})
	}
}

// podIdentities records what the pods of a group hold: every identity
// once, computed once per group.
func (e *expander) podIdentities(key podGroup, pods []*pod, kind Kind, pm Permission, via rbac.Via) {
	for _, t := range e.g.groupTargetsOf(key, pods) {
		e.to(t.id, Step{Kind: kind, Permission: pm, Via: []rbac.Via{via}, Detail: t.detail})
	}
}

// groupTargetsOf returns the identities the pods of a group hold, each
// once, computed once per group.
func (g *graph) groupTargetsOf(key podGroup, pods []*pod) []podTarget {
	targets, ok := g.groupTargets[key]
	if !ok {
		seen := map[int32]bool{}
		for _, p := range pods {
			for _, t := range g.podTargets(p) {
				if !seen[t.id] {
					seen[t.id] = true
					targets = append(targets, t)
				}
			}
		}
		g.groupTargets[key] = targets
	}
	return targets
}

// podGroup names a set of pods: a namespace's, a node's, or all.
type podGroup struct {
	ns, node string
	all      bool
}

// podTarget is an identity a pod's containers hold, and how.
type podTarget struct {
	id     int32
	detail string
}

// podTargets returns the ServiceAccount whose token a pod mounts, and the
// ServiceAccounts of the legacy tokens it holds.
func (g *graph) podTargets(p *pod) []podTarget {
	if p.targetsDone {
		return p.targets
	}
	p.targetsDone = true
	where := "pod " + p.namespace + "/" + p.name
	if p.name == "" {
		where = "a pod of namespace " + p.namespace
	}
	if p.token {
		p.targets = append(p.targets, podTarget{g.subjectID(serviceAccount(p.namespace, p.serviceAccount)), where + " mounts the token of its ServiceAccount"})
	}
	for _, s := range p.visible {
		if t := g.tokenByName[nsName{p.namespace, s}]; t != nil {
			p.targets = append(p.targets, podTarget{g.subjectID(serviceAccount(t.namespace, t.serviceAccount)), where + " holds " + tokenDetail(t)})
		}
	}
	return p.targets
}

func tokenDetail(t *tokenSecret) string {
	return "Secret " + t.namespace + "/" + t.name + ", a legacy token of ServiceAccount " + t.namespace + "/" + t.serviceAccount
}

// nodeProxy: node-proxy, the kubelet API on a node.
func (e *expander) nodeProxy() {
	for _, req := range []int{reqGetNodeProxy, reqCreateNodeProxy} {
		for _, h := range heldFor(e.srcs, req) {
			if h.scope != clusterScope {
				continue // nodes are cluster-scoped
			}
			if h.names.All {
				pm := perm(req, "", "")
				e.term(terminal{kind: tKubelet, name: anyNode}, Step{Kind: NodeProxy, Permission: pm, Via: []rbac.Via{h.via}})
				e.podIdentities(podGroup{node: anyNode}, e.g.boundRunningPods, NodeProxy, pm, h.via)
				continue
			}
			for _, n := range h.names.Some {
				pods, ok := e.g.podsByNode[n]
				if !ok {
					continue
				}
				pm := perm(req, "", n)
				e.term(terminal{kind: tKubelet, name: n}, Step{Kind: NodeProxy, Permission: pm, Via: []rbac.Via{h.via}})
				e.podIdentities(podGroup{node: n}, pods, NodeProxy, pm, h.via)
			}
		}
	}
}

// secretPatch: secret-patch.
func (e *expander) secretPatch() {
	for _, h := range heldFor(e.srcs, reqPatchSecrets) {
		if h.names.All {
			ns := termNS(h.scope)
			e.term(terminal{kind: tPatchAll, ns: ns}, Step{Kind: SecretPatch, Permission: perm(reqPatchSecrets, ns, ""), Via: []rbac.Via{h.via}})
			continue
		}
		for _, name := range h.names.Some {
			for _, ns := range e.namespacesOf(h.scope) {
				if e.g.inv.Secret(ns, name) != nil {
					e.term(terminal{kind: tPatch, ns: ns, name: name}, Step{Kind: SecretPatch, Permission: perm(reqPatchSecrets, ns, name), Via: []rbac.Via{h.via}})
				}
			}
		}
	}
}

// tokenMint: token-mint.
func (e *expander) tokenMint() {
	for _, h := range heldFor(e.srcs, reqCreateToken) {
		for _, ns := range e.namespacesOf(h.scope) {
			if h.names.All {
				for _, sa := range e.g.interestingServiceAccounts(ns) {
					e.to(e.g.subjectID(sa), Step{Kind: TokenMint, Permission: perm(reqCreateToken, ns, sa.Name), Via: []rbac.Via{h.via}})
				}
				continue
			}
			for _, name := range h.names.Some {
				if e.g.saExists[nsName{ns, name}] {
					e.to(e.g.subjectID(serviceAccount(ns, name)), Step{Kind: TokenMint, Permission: perm(reqCreateToken, ns, name), Via: []rbac.Via{h.via}})
				}
			}
		}
	}
}

// impersonation: impersonate users, groups, ServiceAccounts, and nodes.
func (e *expander) impersonation() {
	users := clusterHeld(heldFor(e.srcs, reqImpersonateUsers))
	groups := clusterHeld(heldFor(e.srcs, reqImpersonateGroups))
	sas := heldFor(e.srcs, reqImpersonateServiceAccounts)
	for _, h := range sas {
		for _, ns := range e.namespacesOf(h.scope) {
			if h.names.All {
				for _, sa := range e.g.interestingServiceAccounts(ns) {
					e.to(e.g.subjectID(sa), Step{Kind: Impersonate, Permission: perm(reqImpersonateServiceAccounts, ns, sa.Name), Via: []rbac.Via{h.via}})
				}
				for _, sa := range e.g.boundSAs[ns] {
					e.to(e.g.subjectID(sa), Step{Kind: Impersonate, Permission: perm(reqImpersonateServiceAccounts, ns, sa.Name), Via: []rbac.Via{h.via}})
				}
				continue
			}
			for _, name := range h.names.Some {
				e.to(e.g.subjectID(serviceAccount(ns, name)), Step{Kind: Impersonate, Permission: perm(reqImpersonateServiceAccounts, ns, name), Via: []rbac.Via{h.via}})
			}
		}
	}
	for _, h := range users {
		targets := e.g.users
		if !h.names.All {
			targets = nil
			for _, name := range h.names.Some {
				if _, _, isSA := rbac.SplitServiceAccountUsername(name); !isSA {
					targets = append(targets, rbac.Subject{Kind: rbac.KindUser, Name: name})
				}
			}
		}
		for _, u := range targets {
			e.to(e.g.subjectID(u), Step{Kind: Impersonate, Permission: perm(reqImpersonateUsers, "", u.Name), Via: []rbac.Via{h.via}})
		}
	}
	// A group is impersonated alongside a user or a ServiceAccount.
	if len(users) == 0 && len(sas) == 0 {
		return
	}
	for _, h := range groups {
		targets := e.g.groups
		if !h.names.All {
			targets = nil
			for _, name := range h.names.Some {
				targets = append(targets, rbac.Subject{Kind: rbac.KindGroup, Name: name})
			}
		}
		for _, gr := range targets {
			e.to(e.g.subjectID(gr), Step{Kind: Impersonate, Permission: perm(reqImpersonateGroups, "", gr.Name), Via: []rbac.Via{h.via}})
		}
		if !h.names.Has(rbac.GroupNodes) {
			continue
		}
		// User system:node:NODE in group system:nodes is the kubelet.
		for _, u := range users {
			if u.names.All {
				e.to(e.g.nodeID(anyNode), Step{Kind: Impersonate, Permission: perm(reqImpersonateUsers, "", nodeUserPrefix+anyNode), Via: vias(u.via, h.via),
					Detail: "impersonating a node's user with group " + rbac.GroupNodes + " passes the Node authorizer"})
				continue
			}
			for _, name := range u.names.Some {
				if node, ok := isNodeUser(rbac.Subject{Kind: rbac.KindUser, Name: name}); ok && node != "" {
					e.to(e.g.nodeID(node), Step{Kind: Impersonate, Permission: perm(reqImpersonateUsers, "", name), Via: vias(u.via, h.via),
						Detail: "impersonating " + name + " with group " + rbac.GroupNodes + " passes the Node authorizer"})
				}
			}
		}
	}
}

func clusterHeld(hs []held) []held {
	out := hs[:0:0]
	for _, h := range hs {
		if h.scope == clusterScope {
			out = append(out, h)
		}
	}
	return out
}

// roleBinding: rbac-bind.
func (e *expander) roleBinding() {
	binds := heldFor(e.srcs, reqBindRoles)
	bindCRs := heldFor(e.srcs, reqBindClusterRoles)
	if len(binds) == 0 && len(bindCRs) == 0 {
		return
	}
	// New RoleBindings: where the subject may both create one and bind
	// the role.
	for _, hc := range heldFor(e.srcs, reqCreateRoleBindings) {
		if !hc.names.Has("") {
			continue
		}
		for _, hb := range binds {
			scope, ok := intersect(hc.scope, hb.scope)
			if !ok {
				continue
			}
			pm := perm(reqCreateRoleBindings, termNS(scope), "")
			for _, r := range e.g.bindableRoles(scope) {
				if hb.names.Has(r.ref.Name) {
					e.grant(r, r.ref.Namespace, pm, hc.via, hb.via)
				}
			}
		}
		for _, hb := range bindCRs {
			scope, ok := intersect(hc.scope, hb.scope)
			if !ok || e.holdsEverything(scope) {
				continue
			}
			pm := perm(reqCreateRoleBindings, termNS(scope), "")
			for _, cr := range e.g.bindableClusterRoles() {
				if hb.names.Has(cr.ref.Name) {
					e.grant(cr, scope, pm, hc.via, hb.via)
				}
			}
		}
	}
	// New ClusterRoleBindings.
	for _, hc := range clusterHeld(heldFor(e.srcs, reqCreateClusterRoleBindings)) {
		if !hc.names.Has("") {
			continue
		}
		pm := perm(reqCreateClusterRoleBindings, "", "")
		if e.holdsEverything(clusterScope) {
			continue
		}
		for _, hb := range clusterHeld(bindCRs) {
			for _, cr := range e.g.bindableClusterRoles() {
				if hb.names.Has(cr.ref.Name) {
					e.grant(cr, clusterScope, pm, hc.via, hb.via)
				}
			}
		}
	}
	// Existing bindings: roleRef is immutable, so a binding can only be
	// made to name the subject, which still needs bind on its role.
	for _, req := range []int{reqUpdateRoleBindings, reqPatchRoleBindings, reqUpdateClusterRoleBindings, reqPatchClusterRoleBindings} {
		cluster := req == reqUpdateClusterRoleBindings || req == reqPatchClusterRoleBindings
		for _, h := range heldFor(e.srcs, req) {
			if cluster && h.scope != clusterScope {
				continue
			}
			for _, b := range e.g.bindingsIn(h.scope, cluster) {
				if !b.RoleFound || !h.names.Has(b.Ref.Name) {
					continue
				}
				hs := bindCRs
				if b.Role.Kind == "Role" {
					hs = binds
				}
				if cluster {
					hs = clusterHeld(hs)
				}
				if via, ok := holds(hs, b.Namespace, b.Role.Name); ok {
					e.grant(e.g.bindable(b.Role, b.Rules), b.Namespace, perm(req, b.Namespace, b.Ref.Name), h.via, via)
				}
			}
		}
	}
}

// intersect returns the scope two grants share: a namespace, or
// everyNamespace when both reach every namespace.
func intersect(a, b string) (string, bool) {
	wide := func(s string) bool { return s == clusterScope || s == everyNamespace }
	switch {
	case wide(a) && wide(b):
		return everyNamespace, true
	case wide(a):
		return b, true
	case wide(b) || a == b:
		return a, true
	}
	return "", false
}

// holdsEverything reports whether the identity may already do anything
// in scope (a namespace, or everyNamespace): binding or escalating a role
// there gains it nothing, and every chain through that role is one
// through the identity, shorter.
func (e *expander) holdsEverything(scope string) bool {
	for _, s := range e.srcs {
		if s.caps.everything && (s.scope == clusterScope || s.scope == scope) {
			return true
		}
	}
	return false
}

// bindable is a role an rbac-bind step may bind: its rules, and what
// they grant that the graph follows.
type bindable struct {
	ref   inventory.Ref
	rules []rbacv1.PolicyRule
	caps  *capabilities
}

// follows reports whether binding the role gains anything the graph
// follows.
func (r bindable) follows() bool { return r.caps.any || r.caps.reads() }

func (g *graph) bindable(ref inventory.Ref, rules []rbacv1.PolicyRule) bindable {
	return bindable{ref: ref, rules: rules, caps: g.caps.get(roleKey{ref.Kind, ref.Namespace, ref.Name}, rules)}
}

// bindableClusterRoles returns the ClusterRoles whose binding gains
// something the graph follows, in the inventory's order, made once: every
// identity that may bind any ClusterRole would otherwise look up every
// ClusterRole's rules and capabilities again.
func (g *graph) bindableClusterRoles() []bindable {
	if g.bindableCRs == nil {
		g.bindableCRs = []bindable{}
		for _, cr := range g.inv.ClusterRoles {
			rules, _ := g.policy.ClusterRoleRules(cr.Name)
			if r := g.bindable(inventory.Ref{Kind: "ClusterRole", Name: cr.Name}, rules); r.follows() {
				g.bindableCRs = append(g.bindableCRs, r)
			}
		}
	}
	return g.bindableCRs
}

// bindableRoles returns the Roles of rolesIn(scope) whose binding gains
// something the graph follows, in the same order, made once per scope.
func (g *graph) bindableRoles(scope string) []bindable {
	if out, ok := g.bindableRolesIn[scope]; ok {
		return out
	}
	out := []bindable{}
	for _, r := range g.rolesIn(scope) {
		if b := g.bindable(inventory.Ref{Kind: "Role", Namespace: r.Namespace, Name: r.Name}, r.Rules); b.follows() {
			out = append(out, b)
		}
	}
	g.bindableRolesIn[scope] = out
	return out
}

// grant records an rbac-bind edge to role bound in scope, when the role
// grants something the graph follows and the subject does not hold it all
// already.
func (e *expander) grant(r bindable, scope string, pm Permission, grants ...rbac.Via) {
	if !r.follows() || e.holdsEverything(scope) {
		return
	}
	role, rules := r.ref, r.rules
	detail := "binds " + role.String() + " to the subject"
	if scope == everyNamespace {
		detail += " in any namespace"
	} else if scope != clusterScope {
		detail += " in namespace " + scope
	}
	e.to(e.g.grantID(grantKey{role: role, scope: scope}, rules), Step{Kind: RBACBind, Permission: pm, Via: vias(grants...), Detail: detail})
}

// escalatedDetail explains a step taken as a role rewritten by escalate.
const escalatedDetail = "the role, rewritten through escalate, holds every permission"

// everything is the rule set escalate lets a subject write into its role.
var everything = []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}

// escalation: rbac-escalate, on a role bound to the identity.
func (e *expander) escalation() {
	if e.id.kind == idGrant {
		return
	}
	escR, escCR := heldFor(e.srcs, reqEscalateRoles), clusterHeld(heldFor(e.srcs, reqEscalateClusterRoles))
	if len(escR) == 0 && len(escCR) == 0 {
		return
	}
	updR := append(heldFor(e.srcs, reqUpdateRoles), heldFor(e.srcs, reqPatchRoles)...)
	updCR := clusterHeld(append(heldFor(e.srcs, reqUpdateClusterRoles), heldFor(e.srcs, reqPatchClusterRoles)...))
	for _, s := range e.srcs {
		b := s.via
		if b.Binding == nil {
			continue
		}
		role := *b.Role
		esc, upd, verb := escCR, updCR, reqEscalateClusterRoles
		if role.Kind == "Role" {
			esc, upd, verb = escR, updR, reqEscalateRoles
		}
		v1, ok1 := holds(esc, role.Namespace, role.Name)
		v2, ok2 := holds(upd, role.Namespace, role.Name)
		scope := s.scope
		if !ok1 || !ok2 || e.holdsEverything(scope) {
			continue
		}
		e.to(e.g.grantID(grantKey{role: role, scope: scope, escalated: true}, everything), Step{
			Kind: RBACEscalate, Permission: perm(verb, role.Namespace, role.Name), Via: vias(v1, v2),
			Detail: "adds every permission to " + role.String() + ", which " + b.Binding.String() + " binds to the subject"})
	}
}

// nodeAuthorizer: what the Node authorizer gives a kubelet.
func (e *expander) nodeAuthorizer() {
	node := e.id.node
	e.term(terminal{kind: tNodeReads, name: node}, Step{Kind: NodeAuthorizer, NodeAuthorizer: true,
		Permission: Permission{Verb: "get", Resource: "secrets"}})
	for _, p := range e.g.nodePods(node) {
		e.to(e.g.subjectID(serviceAccount(p.namespace, p.serviceAccount)), Step{Kind: NodeAuthorizer, NodeAuthorizer: true,
			Permission: perm(reqCreateToken, p.namespace, p.serviceAccount),
			Detail:     "the Node authorizer lets a node mint tokens for the ServiceAccounts of its pods"})
		for _, ref := range p.nodeReads {
			if t := e.g.tokenByName[nsName{ref.Namespace, ref.Name}]; t != nil {
				e.to(e.g.subjectID(serviceAccount(t.namespace, t.serviceAccount)), Step{Kind: NodeAuthorizer, NodeAuthorizer: true,
					Permission: Permission{Verb: "get", Resource: "secrets", Namespace: t.namespace, Name: t.name},
					Detail:     "a pod on the node uses " + tokenDetail(t)})
			}
		}
	}
}

// legacyTokens: legacy-token, for token Secrets the identity reads or
// patches itself.
func (e *expander) legacyTokens() {
	if len(e.g.tokens) == 0 {
		return
	}
	patch := heldFor(e.srcs, reqPatchSecrets)
	for _, s := range e.srcs {
		if !s.caps.reads() {
			continue
		}
		for _, t := range e.g.tokensIn(s.scope) {
			v := s.caps.readAll | s.caps.readNames[t.name]
			if v == 0 {
				continue
			}
			e.to(e.g.subjectID(serviceAccount(t.namespace, t.serviceAccount)), Step{Kind: LegacyToken,
				Permission: Permission{Verb: v.Names()[0], Resource: "secrets", Namespace: t.namespace, Name: t.name},
				Via:        []rbac.Via{s.via}, Detail: tokenDetail(t)})
		}
	}
	for _, h := range patch {
		for _, t := range e.g.tokensIn(h.scope) {
			if h.names.Has(t.name) {
				e.to(e.g.subjectID(serviceAccount(t.namespace, t.serviceAccount)), Step{Kind: LegacyToken,
					Permission: perm(reqPatchSecrets, t.namespace, t.name), Via: []rbac.Via{h.via},
					Detail: tokenDetail(t) + "; an empty patch returns it"})
			}
		}
	}
}

func (g *graph) tokensIn(scope string) []*tokenSecret {
	if scope == clusterScope || scope == everyNamespace {
		return g.tokens
	}
	return g.tokensByNS[scope]
}
