package migrate

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// listPage is the page size of FromSelector's LIST: Secrets can be up to
// 1 MiB each, so pages stay small.
const listPage = 100

// FromCluster reads one live Secret, ref being "NAMESPACE/NAME". The
// Secret is cleaned; its UID and resourceVersion are kept in Origin. A
// forbidden read names the permission needed.
func FromCluster(ctx context.Context, client kubernetes.Interface, ref string) (*Batch, error) {
	ns, name, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	s, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, APIError(err, "get", "secrets", ns, name)
	}
	return &Batch{Secrets: []Secret{live(s)}}, nil
}

// FromSelector reads the live Secrets of namespace ("" for all namespaces)
// that match labelSelector ("" for all), sorted by namespace and name.
func FromSelector(ctx context.Context, client kubernetes.Interface, namespace, labelSelector string) (*Batch, error) {
	if _, err := labels.Parse(labelSelector); err != nil {
		return nil, fmt.Errorf("label selector %q: %w", labelSelector, err)
	}
	b := &Batch{}
	opts := metav1.ListOptions{LabelSelector: labelSelector, Limit: listPage}
	for {
		list, err := client.CoreV1().Secrets(namespace).List(ctx, opts)
		if err != nil {
			return nil, APIError(err, "list", "secrets", namespace, "")
		}
		for i := range list.Items {
			b.Secrets = append(b.Secrets, live(&list.Items[i]))
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	sort.Slice(b.Secrets, func(i, j int) bool {
		a, c := b.Secrets[i].Secret, b.Secrets[j].Secret
		if a.Namespace != c.Namespace {
			return a.Namespace < c.Namespace
		}
		return a.Name < c.Name
	})
	return b, nil
}

func live(s *corev1.Secret) Secret {
	o := Origin{Live: true, UID: string(s.UID), ResourceVersion: s.ResourceVersion, ControlledBy: controllerOf(s)}
	s = s.DeepCopy()
	s.APIVersion, s.Kind = "v1", "Secret"
	Clean(s)
	return Secret{Secret: s, Origin: o}
}

// APIError turns an API error about verb on resource (namespace "" is all
// namespaces, or a cluster-scoped resource; name "" is the collection) into
// one line naming the object and, when forbidden, the permission needed.
// The API server's messages name users and resources, never values.
func APIError(err error, verb, resource, namespace, name string) error {
	what := resource
	if name != "" {
		what += "/" + name
	}
	where := "in namespace " + namespace
	if namespace == "" {
		where = "in all namespaces"
	}
	obj := what
	if namespace != "" {
		obj = resource + "/" + namespace
		if name != "" {
			obj += "/" + name
		}
	}
	switch {
	case apierrors.IsForbidden(err):
		kubectl := fmt.Sprintf("kubectl auth can-i %s %s", verb, resource)
		if namespace != "" {
			kubectl += " -n " + namespace
		} else {
			kubectl += " -A"
		}
		return fmt.Errorf("%s: forbidden: keyhole needs %q on %s %s (check with `%s`): %w", obj, verb, resource, where, kubectl, err)
	case apierrors.IsNotFound(err) && name != "":
		return fmt.Errorf("%s: not found: %w", obj, err)
	}
	return fmt.Errorf("%s %s: %w", verb, obj, err)
}
