package cluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source"
)

// valuesPageSize is the LIST limit when values are read. Smaller than
// DefaultPageSize: a page holds every value of its Secrets (up to 1 MiB
// each) until it is hashed, and that is the memory this mode costs.
const valuesPageSize = 100

// ValuesImpact is what an audit lacks when the live values cannot be read.
const ValuesImpact = "live Secret values not compared with git: KH412 not checked"

// SecretValueDigests lists every Secret of the cluster with its values,
// which is what `keyhole audit --correlate` alone does and why it needs
// get and list on Secrets: each data value is replaced by hash(value) as
// its page arrives, and the page is then cleared and dropped, so no value
// outlives the page it came in. Helm release records are skipped: their
// payload is the chart's rendered state, not a credential. The result maps
// each Secret (Kind Secret) to its key names and digests.
//
// A LIST that fails (forbidden, or the list cannot be completed) is a
// Problem for the resource "secrets", and the map is then nil; the error is
// non-nil only when ctx ends or cfg cannot be used. client-go never logs a
// response here, whatever the klog verbosity.
func SecretValueDigests(ctx context.Context, cfg *rest.Config, hash func([]byte) []byte) (map[inventory.Ref]map[string][]byte, []source.Problem, error) {
	cs, err := clientset(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot use the Kubernetes API at %s: %s", serverURL(cfg), OneLine(err.Error()))
	}
	objs, err := listAll(withoutLogging(ctx), digestPages(cs, hash), valuesPageSize)
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("reading Secret values at %s: %w", serverURL(cfg), ctx.Err())
	}
	if err != nil {
		return nil, []source.Problem{{
			Source: "cluster", Location: Location, Resource: "secrets",
			Message: "list secrets with their values (--correlate): " + listReason(err, true),
			Impact:  ValuesImpact,
		}}, nil
	}
	out := make(map[inventory.Ref]map[string][]byte, len(objs))
	for _, o := range objs {
		d := o.(secretDigests)
		out[d.ref] = d.keys
	}
	return out, nil, nil
}

// secretDigests is one Secret as SecretValueDigests keeps it.
type secretDigests struct {
	ref  inventory.Ref
	keys map[string][]byte
}

// digestPages lists one page of whole Secrets and hashes it at once.
func digestPages(c kubernetes.Interface, hash func([]byte) []byte) pageFunc {
	return func(ctx context.Context, limit int64, cont string) ([]any, string, error) {
		l, err := c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{Limit: limit, Continue: cont})
		if err != nil {
			return nil, "", err
		}
		out := make([]any, 0, len(l.Items))
		for i := range l.Items {
			out = append(out, digestSecret(&l.Items[i], hash))
		}
		return out, l.Continue, nil
	}
}

// digestSecret hashes s's values and clears them: the page's bytes are
// garbage from here on, and overwritten in case they linger.
func digestSecret(s *corev1.Secret, hash func([]byte) []byte) secretDigests {
	d := secretDigests{
		ref:  inventory.Ref{Kind: "Secret", Namespace: s.Namespace, Name: s.Name},
		keys: make(map[string][]byte, len(s.Data)),
	}
	for k, v := range s.Data {
		if s.Type != helmReleaseType {
			d.keys[k] = hash(v)
		}
		clear(v)
	}
	s.Data = nil
	// Only a request that set it holds it, but an apiserver may echo it.
	s.StringData = nil
	return d
}

const helmReleaseType corev1.SecretType = "helm.sh/release.v1"
