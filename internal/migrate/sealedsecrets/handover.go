package sealedsecrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// FieldManager is keyhole's server-side apply field manager.
const FieldManager = "keyhole"

// The steps of a hand-over, in order. They are journal keys: do not
// rename.
const (
	StepAnnotate = "annotate live Secret managed"
	StepApply    = "apply SealedSecret"
)

// PlanStep is one step of a hand-over plan, for people: what is done to
// which object, and the kubectl command that does the same. Neither holds
// a value.
type PlanStep struct {
	Step    string
	Object  string
	Kubectl string
}

// HandOverPlan is the ordered plan that moves the live Secret
// namespace/name under the SealedSecret written to manifest (a file path,
// or "-" for stdin). The controller only takes over an existing Secret
// that carries ManagedAnnotation on the live object, so the annotation
// comes first; a SealedSecret applied before it would only fail to unseal
// ("already exists and is not managed").
func HandOverPlan(namespace, name, manifest string) []PlanStep {
	return []PlanStep{
		{
			Step:    StepAnnotate,
			Object:  fmt.Sprintf("secret/%s/%s", namespace, name),
			Kubectl: fmt.Sprintf("kubectl annotate secret %s -n %s %s=true --overwrite", name, namespace, ManagedAnnotation),
		},
		{
			Step:    StepApply,
			Object:  fmt.Sprintf("sealedsecret/%s/%s", namespace, name),
			Kubectl: ApplyCommand(manifest),
		},
	}
}

// ApplyCommand is the kubectl command that applies manifest as keyhole's
// --apply does.
func ApplyCommand(manifest string) string {
	return fmt.Sprintf("kubectl apply --server-side --field-manager=%s -f %s", FieldManager, manifest)
}

// errNoLiveSecret is wrapped by Annotate's error when the Secret does not
// exist.
var errNoLiveSecret = errors.New("no such Secret")

// Annotate sets ManagedAnnotation on the live Secret namespace/name with a
// JSON merge patch. With uid set, the patch applies only to that very
// object: a Secret deleted and re-created since it was read is not
// touched. The API server answers a patch with the whole Secret, values
// included; the answer is dropped unread.
func Annotate(ctx context.Context, client kubernetes.Interface, namespace, name, uid string) error {
	meta := map[string]any{"annotations": map[string]string{ManagedAnnotation: "true"}}
	if uid != "" {
		meta["uid"] = uid
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Secrets(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err == nil {
		return nil
	}
	obj := fmt.Sprintf("secret/%s/%s", namespace, name)
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("annotating %s: forbidden: the hand-over needs \"patch\" on secrets in namespace %s (check with `kubectl auth can-i patch secrets -n %s`): %w", obj, namespace, namespace, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("annotating %s: %w (deleted since it was read?)", obj, errNoLiveSecret)
	case apierrors.IsConflict(err) || apierrors.IsInvalid(err) && uid != "":
		return fmt.Errorf("annotating %s: the Secret was deleted and re-created since it was read (its uid is no longer %s): run again to migrate the new one", obj, uid)
	}
	return fmt.Errorf("annotating %s: %w", obj, err)
}

// Apply creates or updates the SealedSecret with server-side apply, as
// field manager FieldManager, taking over fields other managers own.
func Apply(ctx context.Context, client dynamic.Interface, ss *ssv1alpha1.SealedSecret) error {
	obj, err := toMap(ss)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	ns, name := ss.Namespace, ss.Name
	ref := fmt.Sprintf("sealedsecret/%s/%s", ns, name)
	_, err = client.Resource(Resource).Namespace(ns).Apply(ctx, name, u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err == nil {
		return nil
	}
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("applying %s: forbidden: applying needs \"get\", \"create\" and \"patch\" on sealedsecrets.bitnami.com in namespace %s (check with `kubectl auth can-i patch sealedsecrets.bitnami.com -n %s`): %w", ref, ns, ns, err)
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err) && isMissingResource(err):
		return fmt.Errorf("applying %s: the cluster does not serve sealedsecrets.bitnami.com/v1alpha1: is the Sealed Secrets controller (and its CRD) installed?", ref)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("applying %s: namespace %s not found", ref, ns)
	}
	return fmt.Errorf("applying %s: %w", ref, err)
}

// isMissingResource tells a 404 for the resource type (the CRD is not
// installed) from a 404 for the namespace.
func isMissingResource(err error) bool {
	var st apierrors.APIStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		st = s
	}
	if st == nil {
		return false
	}
	d := st.Status().Details
	return d == nil || d.Kind != "namespaces"
}
