// Package bootstrap embeds the bootstrap RBAC policy of Kubernetes v1.34.4:
// every default ClusterRole and ClusterRoleBinding, and the bootstrap Roles
// and RoleBindings of kube-system and kube-public, exactly as a real
// kube-apiserver stores them once the ClusterRole aggregation controller has
// run. Offline audits layer the user's manifests over it, so their answers
// match a real cluster.
//
// policy.yaml is generated, never edited: `make bootstrap-policy` starts the
// real control plane (internal/testenv) and dumps it with ./gen.
package bootstrap

import (
	_ "embed"
	"fmt"
	"sort"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// KubernetesVersion is the release the policy was dumped from.
const KubernetesVersion = "v1.34.4"

//go:embed policy.yaml
var policyYAML []byte

var (
	once    sync.Once
	objects []runtime.Object
	loadErr error
)

// Objects returns the decoded policy. The objects are shared: callers must
// not modify them.
func Objects() ([]runtime.Object, error) {
	once.Do(func() { objects, loadErr = decode(policyYAML) })
	return objects, loadErr
}

// AddTo adds the policy to b, tagged with the "bootstrap" layer, and
// returns the number of objects per kind.
func AddTo(b *inventory.Builder) (map[string]int, error) {
	objs, err := Objects()
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, o := range objs {
		if _, _, err := b.Add(o, inventory.Location{Layer: "bootstrap"}); err != nil {
			return nil, err
		}
		counts[o.GetObjectKind().GroupVersionKind().Kind]++
	}
	return counts, nil
}

func decode(data []byte) ([]runtime.Object, error) {
	scheme := runtime.NewScheme()
	if err := rbacv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
	var list struct {
		Items []runtime.RawExtension `json:"items"`
	}
	if err := yaml.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("embedded bootstrap policy: %w", err)
	}
	out := make([]runtime.Object, 0, len(list.Items))
	for i, item := range list.Items {
		obj, gvk, err := codecs.UniversalDeserializer().Decode(item.Raw, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("embedded bootstrap policy item %d: %w", i+1, err)
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		if _, ok := obj.(metav1.Object); !ok {
			return nil, fmt.Errorf("embedded bootstrap policy item %d: %s is not an object", i+1, gvk.Kind)
		}
		out = append(out, obj)
	}
	return out, nil
}

// ControlPlaneSubjects returns the subjects that the bootstrap bindings
// name: the control-plane identities (kube-controller-manager and its
// per-controller ServiceAccounts, the scheduler, kube-proxy, ...), whose
// Secret reads are expected. The groups that stand for everyone are left
// out: a binding to them is never expected.
func ControlPlaneSubjects() (map[rbac.Subject]bool, error) {
	all, err := BindingSubjects()
	if err != nil {
		return nil, err
	}
	out := map[rbac.Subject]bool{}
	for _, s := range all {
		if !s.IsEveryone() {
			out[s] = true
		}
	}
	return out, nil
}

// BindingSubjects returns every subject the bootstrap bindings name,
// normalised, sorted and deduplicated.
func BindingSubjects() ([]rbac.Subject, error) {
	objs, err := Objects()
	if err != nil {
		return nil, err
	}
	seen := map[rbac.Subject]bool{}
	var out []rbac.Subject
	add := func(subjects []rbacv1.Subject, ns string) {
		for _, s := range subjects {
			n, err := rbac.NormalizeSubject(s, ns)
			if err == nil && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	for _, o := range objs {
		switch b := o.(type) {
		case *rbacv1.ClusterRoleBinding:
			add(b.Subjects, "")
		case *rbacv1.RoleBinding:
			add(b.Subjects, b.Namespace)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out, nil
}
