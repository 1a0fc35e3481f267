// Package paths finds every way a subject can obtain a Secret's value
// beyond a direct RBAC read: the path kinds, the identity graph whose edges
// mean "can act as" (impersonation, token minting, legacy tokens, exec,
// running a pod as a ServiceAccount, escaping to a node, binding and
// escalating roles), and the shortest chain from each subject to each
// Secret. docs/paths.md is the contract.
package paths

import (
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// Kind is a path kind: the JSON "path" of a reader and "kind" of a step.
type Kind string

// DefaultMaxDepth is the longest chain followed, in steps.
const DefaultMaxDepth = 4

// DefaultMaxHits bounds the search: the (subject, identity or terminal)
// pairs it records, about 20 bytes each besides the chains they share.
// Past it the analysis gives up on indirect paths rather than exhaust the
// machine, and says so (Result.Exceeded).
const DefaultMaxHits = 20_000_000

// Options configure the analysis.
type Options struct {
	// MaxDepth bounds chains, in steps; DefaultMaxDepth when zero.
	MaxDepth int
	// PodSecurityDefault is the Pod Security Admission level of a
	// namespace without the enforce label: "privileged" when empty.
	PodSecurityDefault string
	// Offline is set for manifests: workload templates stand for the pods
	// they will create, and ServiceAccounts not in the inventory are
	// assumed to exist.
	Offline bool
	// MaxHits overrides DefaultMaxHits when positive.
	MaxHits int
}

// Step is one hop of a chain.
type Step struct {
	Kind    Kind
	Subject Node
	// Permission is the request the step makes.
	Permission Permission
	Via        []rbac.Via
	// NodeAuthorizer is set when the Node authorizer, not RBAC, allows it.
	NodeAuthorizer bool
	// Reaches is the identity the step yields; zero for the last step of
	// a reader's path, which reaches the Secret itself.
	Reaches Node
	Detail  string

	// completes is set on the second half of a step split at a shared
	// capability (idPods): it adds no step to a chain, and its Kind,
	// Reaches and Detail complete the first half's.
	completes bool
}

// Permission is a request.
type Permission struct {
	Verb, APIGroup, Resource, Namespace, Name string
}

// String names the request for messages: "create pods in namespace ci",
// "impersonate serviceaccounts ci/deployer", "get nodes/proxy n1". An
// empty name is every name.
func (p Permission) String() string {
	out := p.Verb + " " + p.Resource
	switch {
	case p.Name != "" && p.Namespace != "":
		out += " " + p.Namespace + "/" + p.Name
	case p.Name != "":
		out += " " + p.Name
	case p.Namespace != "":
		out += " in namespace " + p.Namespace
	}
	return out
}

// Node is an identity or an object a step reaches: Kind is User, Group,
// ServiceAccount, Node, Role, ClusterRole or Secret.
type Node struct {
	Kind, Namespace, Name string
}

// Reader is one subject that can obtain a Secret's value, by its shortest
// path. A direct reader has no steps.
type Reader struct {
	Subject rbac.Subject
	Kind    Kind
	// Verbs are the verbs of the last step's request on the Secret: the
	// read verbs, "patch" for secret-patch; empty when a pod or a kubelet
	// delivers the value.
	Verbs []string
	// Via are the grants behind the first permission of the path.
	Via   []rbac.Via
	Steps []Step
}
