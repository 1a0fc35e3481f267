package rbac

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

// Subject kinds, as RBAC names them.
const (
	KindUser           = rbacv1.UserKind
	KindGroup          = rbacv1.GroupKind
	KindServiceAccount = rbacv1.ServiceAccountKind
)

// Well-known groups the authenticator adds to every request of its kind.
const (
	GroupMasters               = "system:masters"
	GroupAuthenticated         = "system:authenticated"
	GroupUnauthenticated       = "system:unauthenticated"
	GroupServiceAccounts       = "system:serviceaccounts"
	GroupServiceAccountsPrefix = "system:serviceaccounts:"
	GroupNodes                 = "system:nodes"
	UserAnonymous              = "system:anonymous"
	serviceAccountUserPrefix   = "system:serviceaccount:"
)

// Subject is one identity RBAC can grant to, normalised: a User named
// system:serviceaccount:NS:NAME is the ServiceAccount NS/NAME, and a
// ServiceAccount subject always carries its namespace.
type Subject struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

func (s Subject) String() string {
	if s.Kind == KindServiceAccount {
		return "ServiceAccount/" + s.Namespace + "/" + s.Name
	}
	return s.Kind + "/" + s.Name
}

// Less orders subjects by kind, namespace, then name.
func (s Subject) Less(o Subject) bool {
	if s.Kind != o.Kind {
		return s.Kind < o.Kind
	}
	if s.Namespace != o.Namespace {
		return s.Namespace < o.Namespace
	}
	return s.Name < o.Name
}

// Username is the user name the apiserver authenticates this subject as;
// empty for groups.
func (s Subject) Username() string {
	switch s.Kind {
	case KindUser:
		return s.Name
	case KindServiceAccount:
		return serviceAccountUserPrefix + s.Namespace + ":" + s.Name
	}
	return ""
}

// Covers describes, for the well-known groups, who is in them. Membership
// of any other group cannot be known from the API.
func (s Subject) Covers() string {
	if s.Kind == KindUser && s.Name == UserAnonymous {
		return "every unauthenticated request"
	}
	if s.Kind != KindGroup {
		return ""
	}
	switch s.Name {
	case GroupAuthenticated:
		return "every authenticated user and ServiceAccount"
	case GroupUnauthenticated:
		return "every unauthenticated request"
	case GroupServiceAccounts:
		return "every ServiceAccount in every namespace"
	case GroupMasters:
		return "cluster superusers (RBAC is bypassed)"
	case GroupNodes:
		return "every node's kubelet"
	}
	if ns, ok := strings.CutPrefix(s.Name, GroupServiceAccountsPrefix); ok && ns != "" {
		return "every ServiceAccount in namespace " + ns
	}
	return ""
}

// IsEveryone reports whether the subject stands for everyone who can reach
// the apiserver, or every workload in the cluster.
func (s Subject) IsEveryone() bool {
	switch s.Kind {
	case KindGroup:
		return s.Name == GroupAuthenticated || s.Name == GroupUnauthenticated || s.Name == GroupServiceAccounts
	case KindUser:
		return s.Name == UserAnonymous
	}
	return false
}

// SubjectError says why a binding subject grants nothing.
type SubjectError struct {
	Reason string
}

func (e *SubjectError) Error() string { return e.Reason }

// NormalizeSubject turns a binding subject into a Subject. bindingNamespace
// is the RoleBinding's namespace, or "" for a ClusterRoleBinding. A
// ServiceAccount subject without a namespace means the RoleBinding's
// namespace, and matches no one in a ClusterRoleBinding: that, and an
// unknown kind, return a *SubjectError.
func NormalizeSubject(in rbacv1.Subject, bindingNamespace string) (Subject, error) {
	switch in.Kind {
	case KindUser:
		if ns, name, ok := SplitServiceAccountUsername(in.Name); ok {
			return Subject{Kind: KindServiceAccount, Namespace: ns, Name: name}, nil
		}
		return Subject{Kind: KindUser, Name: in.Name}, nil
	case KindGroup:
		return Subject{Kind: KindGroup, Name: in.Name}, nil
	case KindServiceAccount:
		ns := in.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		if ns == "" {
			return Subject{}, &SubjectError{Reason: "ServiceAccount subject " + in.Name + " has no namespace in a ClusterRoleBinding, so it matches no one"}
		}
		return Subject{Kind: KindServiceAccount, Namespace: ns, Name: in.Name}, nil
	}
	return Subject{}, &SubjectError{Reason: "subject kind " + quote(in.Kind) + " is not User, Group or ServiceAccount"}
}

// SplitServiceAccountUsername parses system:serviceaccount:NS:NAME the way
// the apiserver does, validating the namespace and name.
func SplitServiceAccountUsername(user string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(user, serviceAccountUserPrefix)
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 2 {
		return "", "", false
	}
	namespace, name = parts[0], parts[1]
	if len(utilvalidation.IsDNS1123Label(namespace)) != 0 {
		return "", "", false
	}
	if len(utilvalidation.IsDNS1123Subdomain(name)) != 0 || len(content.IsPathSegmentName(name)) != 0 {
		return "", "", false
	}
	return namespace, name, true
}

func quote(s string) string { return "\"" + s + "\"" }
