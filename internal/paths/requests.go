package paths

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// The requests the path kinds rest on. Each is asked of a role's rules
// once, for every name at once (rbac.Allowed).
const (
	reqCreatePods = iota
	reqUpdatePods
	reqPatchPods
	reqUpdateEphemeral
	reqPatchEphemeral
	reqCreateExec
	reqGetExec
	reqCreateAttach
	reqGetAttach
	reqGetNodeProxy
	reqCreateNodeProxy
	reqPatchSecrets
	reqCreateToken
	reqImpersonateUsers
	reqImpersonateGroups
	reqImpersonateServiceAccounts
	reqCreateRoleBindings
	reqUpdateRoleBindings
	reqPatchRoleBindings
	reqCreateClusterRoleBindings
	reqUpdateClusterRoleBindings
	reqPatchClusterRoleBindings
	reqBindRoles
	reqBindClusterRoles
	reqEscalateRoles
	reqEscalateClusterRoles
	reqUpdateRoles
	reqPatchRoles
	reqUpdateClusterRoles
	reqPatchClusterRoles
	reqWorkloads // the workload requests follow, three verbs per kind
)

// workloadKind is a controller whose pod template its writer controls.
type workloadKind struct {
	group, resource string
	// kind is the inventory's Workload kind; empty when the inventory
	// does not hold the kind, so that updates cannot be checked against
	// an existing object and are not counted.
	kind string
	// templateMutable is false when updates cannot change the pod
	// template (a Job's is immutable once created).
	templateMutable bool
}

var workloadKinds = []workloadKind{
	{"apps", "deployments", "Deployment", true},
	{"apps", "replicasets", "ReplicaSet", true},
	{"apps", "statefulsets", "StatefulSet", true},
	{"apps", "daemonsets", "DaemonSet", true},
	{"batch", "cronjobs", "CronJob", true},
	{"batch", "jobs", "Job", false},
	{"", "replicationcontrollers", "", true},
}

var workloadVerbs = [...]string{"create", "update", "patch"}

func workloadReq(kind, verb int) int { return reqWorkloads + kind*len(workloadVerbs) + verb }

var requests = func() []rbac.Request {
	r := make([]rbac.Request, reqWorkloads+len(workloadKinds)*len(workloadVerbs))
	r[reqCreatePods] = rbac.Request{Verb: "create", Resource: "pods"}
	r[reqUpdatePods] = rbac.Request{Verb: "update", Resource: "pods"}
	r[reqPatchPods] = rbac.Request{Verb: "patch", Resource: "pods"}
	r[reqUpdateEphemeral] = rbac.Request{Verb: "update", Resource: "pods", Subresource: "ephemeralcontainers"}
	r[reqPatchEphemeral] = rbac.Request{Verb: "patch", Resource: "pods", Subresource: "ephemeralcontainers"}
	r[reqCreateExec] = rbac.Request{Verb: "create", Resource: "pods", Subresource: "exec"}
	r[reqGetExec] = rbac.Request{Verb: "get", Resource: "pods", Subresource: "exec"}
	r[reqCreateAttach] = rbac.Request{Verb: "create", Resource: "pods", Subresource: "attach"}
	r[reqGetAttach] = rbac.Request{Verb: "get", Resource: "pods", Subresource: "attach"}
	r[reqGetNodeProxy] = rbac.Request{Verb: "get", Resource: "nodes", Subresource: "proxy"}
	r[reqCreateNodeProxy] = rbac.Request{Verb: "create", Resource: "nodes", Subresource: "proxy"}
	r[reqPatchSecrets] = rbac.Request{Verb: "patch", Resource: "secrets"}
	r[reqCreateToken] = rbac.Request{Verb: "create", Resource: "serviceaccounts", Subresource: "token"}
	r[reqImpersonateUsers] = rbac.Request{Verb: "impersonate", Resource: "users"}
	r[reqImpersonateGroups] = rbac.Request{Verb: "impersonate", Resource: "groups"}
	r[reqImpersonateServiceAccounts] = rbac.Request{Verb: "impersonate", Resource: "serviceaccounts"}
	r[reqCreateRoleBindings] = rbac.Request{Verb: "create", APIGroup: rbacv1.GroupName, Resource: "rolebindings"}
	r[reqUpdateRoleBindings] = rbac.Request{Verb: "update", APIGroup: rbacv1.GroupName, Resource: "rolebindings"}
	r[reqPatchRoleBindings] = rbac.Request{Verb: "patch", APIGroup: rbacv1.GroupName, Resource: "rolebindings"}
	r[reqCreateClusterRoleBindings] = rbac.Request{Verb: "create", APIGroup: rbacv1.GroupName, Resource: "clusterrolebindings"}
	r[reqUpdateClusterRoleBindings] = rbac.Request{Verb: "update", APIGroup: rbacv1.GroupName, Resource: "clusterrolebindings"}
	r[reqPatchClusterRoleBindings] = rbac.Request{Verb: "patch", APIGroup: rbacv1.GroupName, Resource: "clusterrolebindings"}
	r[reqBindRoles] = rbac.Request{Verb: "bind", APIGroup: rbacv1.GroupName, Resource: "roles"}
	r[reqBindClusterRoles] = rbac.Request{Verb: "bind", APIGroup: rbacv1.GroupName, Resource: "clusterroles"}
	r[reqEscalateRoles] = rbac.Request{Verb: "escalate", APIGroup: rbacv1.GroupName, Resource: "roles"}
	r[reqEscalateClusterRoles] = rbac.Request{Verb: "escalate", APIGroup: rbacv1.GroupName, Resource: "clusterroles"}
	r[reqUpdateRoles] = rbac.Request{Verb: "update", APIGroup: rbacv1.GroupName, Resource: "roles"}
	r[reqPatchRoles] = rbac.Request{Verb: "patch", APIGroup: rbacv1.GroupName, Resource: "roles"}
	r[reqUpdateClusterRoles] = rbac.Request{Verb: "update", APIGroup: rbacv1.GroupName, Resource: "clusterroles"}
	r[reqPatchClusterRoles] = rbac.Request{Verb: "patch", APIGroup: rbacv1.GroupName, Resource: "clusterroles"}
	for k, w := range workloadKinds {
		for v, verb := range workloadVerbs {
			r[workloadReq(k, v)] = rbac.Request{Verb: verb, APIGroup: w.group, Resource: w.resource}
		}
	}
	return r
}()

// capabilities is what one rule set allows of every request, and of
// Secret reads.
type capabilities struct {
	names []rbac.Names // by request
	// any is set when some request is allowed on some name.
	any bool
	// everything is set when a rule allows every verb on every resource
	// of every group, by any name: a role bound with it can gain nothing
	// from another role in the same scope.
	everything bool
	readAll    rbac.Verbs
	readNames  map[string]rbac.Verbs
}

func (c *capabilities) reads() bool { return c.readAll != 0 || len(c.readNames) > 0 }

// capsOf evaluates rules against every request.
func capsOf(rules []rbacv1.PolicyRule) *capabilities {
	c := &capabilities{names: make([]rbac.Names, len(requests))}
	for i, req := range requests {
		c.names[i] = rbac.Allowed(rules, req)
		if !c.names[i].Empty() {
			c.any = true
		}
	}
	c.readAll, c.readNames = rbac.SecretReads(rules)
	for i := range rules {
		r := &rules[i]
		if len(r.ResourceNames) == 0 && slices.Contains(r.Verbs, rbacv1.VerbAll) &&
			slices.Contains(r.APIGroups, rbacv1.APIGroupAll) && slices.Contains(r.Resources, rbacv1.ResourceAll) {
			c.everything = true
		}
	}
	return c
}

// capCache evaluates each role once. The analysis runs on one goroutine.
type capCache struct {
	roles map[roleKey]*capabilities
}

type roleKey struct {
	kind, namespace, name string
}

func (c *capCache) get(key roleKey, rules []rbacv1.PolicyRule) *capabilities {
	if caps, ok := c.roles[key]; ok {
		return caps
	}
	caps := capsOf(rules)
	if c.roles == nil {
		c.roles = map[roleKey]*capabilities{}
	}
	c.roles[key] = caps
	return caps
}
