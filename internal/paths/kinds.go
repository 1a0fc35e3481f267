package paths

// The path kinds. Direct is an RBAC read (or system:masters); every other
// kind is the first step of an indirect chain.
const (
	Direct         Kind = "direct"
	PodCreate      Kind = "pod-create"
	PodExec        Kind = "pod-exec"
	NodeProxy      Kind = "node-proxy"
	SecretPatch    Kind = "secret-patch"
	TokenMint      Kind = "token-mint"
	LegacyToken    Kind = "legacy-token"
	Impersonate    Kind = "impersonate"
	RBACBind       Kind = "rbac-bind"
	RBACEscalate   Kind = "rbac-escalate"
	RunAsSA        Kind = "run-as-sa"
	NodeAuthorizer Kind = "node-authorizer"
	NodeEscape     Kind = "node-escape"
)

// KindInfo documents one path kind: the permission that opens it and what
// it reaches. docs/paths.md holds the same table; a test keeps them equal.
type KindInfo struct {
	Kind       Kind
	Permission string
	Reaches    string
}

// Kinds is every path kind, in the order reports group them.
var Kinds = []KindInfo{
	{Direct, "`get`, `list` or `watch` on the Secret (RBAC), or membership of `system:masters`", "that Secret"},
	{PodCreate, "`create` pods; `create`, `update` or `patch` Deployments, ReplicaSets, StatefulSets, DaemonSets (`apps`), CronJobs (`batch`) and ReplicationControllers; `create` Jobs (`batch`); `update` or `patch` `pods/ephemeralcontainers` of an existing pod. Updates need an existing object of that name", "every Secret of the namespace"},
	{PodExec, "`create` or `get` on `pods/exec` or `pods/attach`, or `update` or `patch` on pods (a new image runs in the pod), on a running pod", "the Secrets its containers mount or take as environment variables, and its ServiceAccount when its token is mounted"},
	{NodeProxy, "`get` or `create` on `nodes/proxy` (the kubelet API runs commands in containers)", "what `pod-exec` reaches, for every pod on that node"},
	{SecretPatch, "`patch` on the Secret (an empty merge patch returns its data); `update` does not read", "that Secret"},
	{TokenMint, "`create` on `serviceaccounts/token` for the ServiceAccount (`resourceNames` honoured)", "that ServiceAccount"},
	{LegacyToken, "obtaining a `kubernetes.io/service-account-token` Secret: reading it, patching it, or a pod or node that holds it", "the ServiceAccount the token belongs to"},
	{Impersonate, "`impersonate` on `users`, `groups` (with some user or ServiceAccount to impersonate alongside) or `serviceaccounts` (`resourceNames` honoured); `users` `system:node:NODE` with `groups` `system:nodes` reaches the node", "that User, Group, ServiceAccount or node"},
	{RBACBind, "`create` on RoleBindings (ClusterRoleBindings) in scope, or `update`/`patch` on an existing one, together with `bind` on its role", "the role, bound to the subject in that scope"},
	{RBACEscalate, "`escalate` with `update` or `patch` on a role bound to the subject", "every permission in that binding's scope"},
	{RunAsSA, "pod creation in a namespace (or `pods/ephemeralcontainers` on a pod, which keeps its ServiceAccount)", "every ServiceAccount of the namespace (the pod's)"},
	{NodeAuthorizer, "the kubelet's identity: User `system:node:NODE` in group `system:nodes`", "every Secret a pod bound to that node uses (env, volumes, imagePullSecrets, CSI and PersistentVolume secret references), and tokens for those pods' ServiceAccounts"},
	{NodeEscape, "pod creation in a namespace whose Pod Security level is `privileged` (a privileged or hostPath pod, placed with `spec.nodeName`)", "any node, so what any node's identity reads"},
}

// order ranks kinds as Kinds lists them.
func (k Kind) order() int {
	for i, info := range Kinds {
		if info.Kind == k {
			return i
		}
	}
	return len(Kinds)
}
