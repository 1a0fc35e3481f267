package analysis

import (
	"cmp"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// Access is the access stage of an analysis: who can obtain which Secret,
// directly through RBAC (the resolved policy and its read index) and
// through indirect paths (the identity graph and every subject's shortest
// chains, paths.Result). NewAccess resolves the policy, indexes it and
// runs the search. RunWith
// runs the rest of the analysis (assessing each Secret, the findings, the
// workload, hygiene, git, audit-read and encryption rules) on an Access,
// so that keyhole serve can reuse one while the cluster changes only in
// what the stage does not read.
//
// The stage reads these objects of the inventory, and of them only these
// fields (rbac.NewPolicy, rbac.NewReadIndex, paths.Analyze):
//   - Roles: namespace, name, rules.
//   - ClusterRoles: name, rules, aggregationRule, and labels, which
//     aggregation selects by.
//   - RoleBindings and ClusterRoleBindings: namespace, name, roleRef,
//     subjects.
//   - ServiceAccounts: namespace, name, automountServiceAccountToken.
//   - Namespaces: names, and the pod-security.kubernetes.io/enforce label.
//   - Pods: namespace, name, spec.nodeName, status.phase, and of the spec
//     the ServiceAccount and its automount, the env, envFrom and volume
//     mounts of containers, sidecars and ephemeral containers, the env and
//     envFrom of other init containers, volumes and imagePullSecrets.
//   - Workloads (Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs,
//     CronJobs, ReplicationControllers): kind, namespace and name, as
//     updating an existing one makes pods; offline, their pod templates
//     too, read as pods.
//   - Nodes: names.
//   - PersistentVolumeClaims: namespace, name, spec.volumeName.
//   - PersistentVolumes: name, the claimRef's namespace, and the Secret
//     references of their sources.
//   - Secrets: which exist (namespace and name: a namespace's Secrets are
//     what pod creation reaches, and patching one by name needs it to
//     exist), their type and their kubernetes.io/service-account.name
//     annotation (legacy tokens).
//
// Besides, it depends on the input's Aggregation and on Options.Paths.
// It reads nothing else: not ConfigMaps or Ingresses; of Secrets, not
// their labels, other annotations, keys, owners or times; of any object,
// not where it was read or its keyhole.io/ annotations. Reusing an Access
// for an input is correct only when none of the above changed: Stale
// checks that.
//
// A kept Access keeps alive the inventory it was built from, the policy,
// the index and the search's hits (up to the search's budget of them),
// but no reader list: RunWith assembles those on forks of the search
// (paths.Result.Fork) and drops them once assessed. It is not safe for
// concurrent use: calls of RunWith on one Access must not overlap.
type Access struct {
	aggregation rbac.AggregationMode
	paths       paths.Options
	policy      *rbac.Policy
	index       *rbac.ReadIndex
	result      *paths.Result
}

// NewAccess runs the access stage on the input.
func NewAccess(in Input, opts Options) *Access {
	policy := rbac.NewPolicy(in.Inventory, in.Aggregation)
	ix := rbac.NewReadIndex(policy)
	po := pathOptions(in, opts)
	return &Access{aggregation: in.Aggregation, paths: po, policy: policy, index: ix, result: paths.Analyze(policy, ix, po)}
}

// pathOptions are the indirect-path options of an analysis of in.
func pathOptions(in Input, opts Options) paths.Options {
	po := opts.Paths
	// Computed aggregation means the input is manifests, not a cluster.
	po.Offline = in.Aggregation == rbac.AggregationComputed
	return po
}

// AccessReads reports whether the access stage reads objects of an
// inventory kind ("Pod", "Deployment", "ConfigMap"). A kind it does not
// know is read: a kind new to the inventory is taken to matter until
// someone has checked that the stage ignores it.
func AccessReads(kind string) bool {
	switch kind {
	case "ConfigMap", "Ingress":
		return false
	}
	return true
}

// Stale says why acc cannot stand for the access stage of in under opts,
// naming the first difference found ("RoleBinding/ci/deployer changed"),
// or returns "" when it can: in has the same aggregation mode and path
// options as acc's input, and the same objects of the kinds the stage
// reads (Access), each the same but for what the stage does not read of a
// Secret. Objects are compared whole, which is stricter than the stage
// needs; an object with the resource version it had is taken to be the
// same, as the API server promises. It costs a walk of both inventories.
func (acc *Access) Stale(in Input, opts Options) string {
	if in.Aggregation != acc.aggregation {
		return "the aggregation mode changed"
	}
	if pathOptions(in, opts) != acc.paths {
		return "the path options changed"
	}
	old, cur := acc.policy.Inventory(), in.Inventory
	if old == cur {
		return ""
	}
	// Every list is walked even after a difference: the walks are cheap,
	// and Stale is mostly asked when nothing differs.
	return cmp.Or(
		diffObjects(old.Namespaces, cur.Namespaces, kindIs[*corev1.Namespace]("Namespace")),
		diffObjects(old.ServiceAccounts, cur.ServiceAccounts, kindIs[*corev1.ServiceAccount]("ServiceAccount")),
		diffObjects(old.Roles, cur.Roles, kindIs[*rbacv1.Role]("Role")),
		diffObjects(old.ClusterRoles, cur.ClusterRoles, kindIs[*rbacv1.ClusterRole]("ClusterRole")),
		diffObjects(old.RoleBindings, cur.RoleBindings, kindIs[*rbacv1.RoleBinding]("RoleBinding")),
		diffObjects(old.ClusterRoleBindings, cur.ClusterRoleBindings, kindIs[*rbacv1.ClusterRoleBinding]("ClusterRoleBinding")),
		diffObjects(old.Pods, cur.Pods, kindIs[*corev1.Pod]("Pod")),
		diffObjects(old.Workloads, cur.Workloads, func(w *inventory.Workload) string { return w.Kind }),
		diffObjects(old.Nodes, cur.Nodes, kindIs[*corev1.Node]("Node")),
		diffObjects(old.PersistentVolumeClaims, cur.PersistentVolumeClaims, kindIs[*corev1.PersistentVolumeClaim]("PersistentVolumeClaim")),
		diffObjects(old.PersistentVolumes, cur.PersistentVolumes, kindIs[*corev1.PersistentVolume]("PersistentVolume")),
		diffSecrets(old.Secrets, cur.Secrets),
	)
}

// kindIs is the kind of every object of a list of one kind.
func kindIs[P any](kind string) func(P) string { return func(P) string { return kind } }

// diffObjects compares two lists sorted as the inventory sorts them and
// names the first object added, deleted or changed, or returns "".
func diffObjects[T any, P interface {
	*T
	metav1.Object
}](old, cur []P, kind func(P) string) string {
	ref := func(o P) inventory.Ref {
		return inventory.Ref{Kind: kind(o), Namespace: o.GetNamespace(), Name: o.GetName()}
	}
	for i := range min(len(old), len(cur)) {
		o, c := old[i], cur[i]
		if o == c {
			continue
		}
		ro, rc := ref(o), ref(c)
		switch {
		case ro.Less(rc):
			return ro.String() + " deleted"
		case rc.Less(ro):
			return rc.String() + " added"
		}
		if rv := o.GetResourceVersion(); rv != "" && rv == c.GetResourceVersion() {
			continue
		}
		// Shallow copies, so that the inventories stay as they are: the
		// resource version also changes when only a field the source
		// dropped did (a pod's conditions).
		a, b := *o, *c
		P(&a).SetResourceVersion("")
		P(&b).SetResourceVersion("")
		if !equality.Semantic.DeepEqual(a, b) {
			return ro.String() + " changed"
		}
	}
	switch {
	case len(old) > len(cur):
		return ref(old[len(cur)]).String() + " deleted"
	case len(cur) > len(old):
		return ref(cur[len(old)]).String() + " added"
	}
	return ""
}

// diffSecrets compares Secrets by what the access stage reads of them:
// which exist, their type and the ServiceAccount they are a token of.
func diffSecrets(old, cur []*inventory.Secret) string {
	for i := range min(len(old), len(cur)) {
		o, c := old[i], cur[i]
		ro, rc := o.Ref(), c.Ref()
		switch {
		case ro.Less(rc):
			return ro.String() + " deleted"
		case rc.Less(ro):
			return rc.String() + " added"
		case o.Type != c.Type:
			return fmt.Sprintf("%s changed type", ro)
		case o.Annotations[corev1.ServiceAccountNameKey] != c.Annotations[corev1.ServiceAccountNameKey]:
			return fmt.Sprintf("%s changed its %s annotation", ro, corev1.ServiceAccountNameKey)
		}
	}
	switch {
	case len(old) > len(cur):
		return old[len(cur)].Ref().String() + " deleted"
	case len(cur) > len(old):
		return cur[len(old)].Ref().String() + " added"
	}
	return ""
}
