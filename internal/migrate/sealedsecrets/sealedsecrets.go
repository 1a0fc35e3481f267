// Package sealedsecrets turns Secrets into SealedSecrets for the Sealed
// Secrets controller (github.com/bitnami-labs/sealed-secrets v0.27.1): it
// reads the controller's certificate from a file or fetches it the way
// kubeseal does (through the API server's service proxy), seals with the
// project's own packages, writes the manifests, and performs the
// hand-over of a live Secret to the controller: annotate the live Secret
// as managed, then apply the SealedSecret.
//
// Values come from internal/migrate and leave this package only as
// ciphertext. Errors name objects, keys, resources and the RBAC needed,
// never a value.
package sealedsecrets

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	"github.com/bitnami-labs/sealed-secrets/pkg/kubeseal"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/migrate"
)

// ManagedAnnotation is the annotation that lets the controller take over
// an existing Secret. It counts only on the live Secret: in a SealedSecret's
// template it does nothing for the hand-over.
const ManagedAnnotation = ssv1alpha1.SealedSecretManagedAnnotation

// Resource is the SealedSecret resource.
var Resource = schema.GroupVersionResource{Group: ssv1alpha1.GroupName, Version: "v1alpha1", Resource: ssv1alpha1.SealedSecretPlural}

// maxCertSize bounds a certificate read from a file or the controller.
const maxCertSize = 1 << 20

// ParseScope parses --scope: strict, namespace-wide or cluster-wide.
func ParseScope(s string) (ssv1alpha1.SealingScope, error) {
	if s == "" {
		return 0, errors.New(`scope is empty (want strict, namespace-wide or cluster-wide)`)
	}
	var scope ssv1alpha1.SealingScope
	if err := scope.Set(s); err != nil {
		return 0, fmt.Errorf("scope %q: %w", s, err)
	}
	return scope, nil
}

// ScopeName is the flag spelling of scope.
func ScopeName(scope ssv1alpha1.SealingScope) string { return scope.String() }

// Cert is a controller's sealing certificate.
type Cert struct {
	// Key is the public key secrets are sealed with.
	Key *rsa.PublicKey
	// Source says where the certificate came from, for messages.
	Source string
	// NotAfter is when the certificate expires.
	NotAfter time.Time
}

// ParseCert parses a PEM certificate as kubeseal does (kubeseal.ParseKey:
// the first certificate, an RSA key, not expired). source names it in
// errors.
func ParseCert(data []byte, source string) (*Cert, error) {
	key, err := kubeseal.ParseKey(strings.NewReader(string(data)))
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", source, err)
	}
	c := &Cert{Key: key, Source: source}
	if block, _ := pem.Decode(data); block != nil {
		if x, err := x509.ParseCertificate(block.Bytes); err == nil {
			c.NotAfter = x.NotAfter
		}
	}
	return c, nil
}

// CertFromFile reads the certificate in a PEM file (--cert).
func CertFromFile(path string) (*Cert, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCertSize))
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, unwrapPath(err))
	}
	return ParseCert(data, path)
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// FetchCert fetches the controller's certificate as kubeseal does: GET
// /v1/cert.pem on the first port of the controller's Service, through the
// API server's service proxy. That needs get on services and on
// services/proxy in the controller's namespace; a forbidden answer says
// so.
func FetchCert(ctx context.Context, client kubernetes.Interface, namespace, name string) (*Cert, error) {
	source := fmt.Sprintf("of service/%s/%s", namespace, name)
	svc, err := client.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, certFetchError(err, namespace, name, "services")
	}
	if len(svc.Spec.Ports) == 0 {
		return nil, fmt.Errorf("fetching the certificate %s: the Service has no ports", source)
	}
	// kubeseal proxies to the port by name; an unnamed port (allowed when
	// it is the only one) goes by number.
	port := svc.Spec.Ports[0].Name
	if port == "" {
		port = strconv.Itoa(int(svc.Spec.Ports[0].Port))
	}
	body, err := client.CoreV1().Services(namespace).ProxyGet("http", name, port, "/v1/cert.pem", nil).DoRaw(ctx)
	if err != nil {
		return nil, certFetchError(err, namespace, name, "services/proxy")
	}
	if len(body) > maxCertSize {
		return nil, fmt.Errorf("fetching the certificate %s: answer larger than %d bytes", source, maxCertSize)
	}
	return ParseCert(body, source)
}

// certFetchError names the RBAC the fetch needs: kubeseal needs both get
// on the Service (to find its port) and get on services/proxy.
func certFetchError(err error, namespace, name, resource string) error {
	obj := fmt.Sprintf("service/%s/%s", namespace, name)
	need := fmt.Sprintf(`fetching the certificate needs "get" on services and on services/proxy in namespace %s`, namespace)
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("fetching the certificate of %s: forbidden to get %s: %s (check with `kubectl auth can-i get %s -n %s`), or pass --cert: %w",
			obj, resource, need, resource, namespace, err)
	case apierrors.IsNotFound(err) && resource == "services":
		return fmt.Errorf("fetching the certificate: %s not found: is the controller installed there? Set --controller-namespace and --controller-name, or pass --cert", obj)
	case apierrors.IsServiceUnavailable(err) || apierrors.IsNotFound(err):
		return fmt.Errorf("fetching the certificate of %s through the service proxy: the controller did not answer (is it running and ready?): %w", obj, err)
	}
	return fmt.Errorf("fetching the certificate of %s (%s): %w", obj, resource, err)
}

// Seal seals a (cleaned) Secret for scope with the certificate's key. The
// input is not modified. Strict and namespace-wide scopes bind the
// ciphertext to the namespace, so the Secret must have one; cluster-wide
// does not.
func Seal(s *corev1.Secret, cert *Cert, scope ssv1alpha1.SealingScope) (*ssv1alpha1.SealedSecret, error) {
	ref := s.Name
	if s.Namespace != "" {
		ref = s.Namespace + "/" + s.Name
	}
	if s.Name == "" {
		return nil, errors.New("secret has no name")
	}
	if s.Namespace == "" && scope != ssv1alpha1.ClusterWideScope {
		return nil, fmt.Errorf("secret/%s has no namespace: the %s scope seals it for one namespace, so set metadata.namespace (or use --scope cluster-wide)", ref, scope.String())
	}
	in := s.DeepCopy()
	migrate.Clean(in) // the loaders did already; sealing must not depend on it
	in.Annotations = ssv1alpha1.UpdateScopeAnnotations(in.Annotations, scope)
	ss, err := ssv1alpha1.NewSealedSecret(scheme.Codecs, cert.Key, in)
	if err != nil {
		return nil, fmt.Errorf("sealing secret/%s: %w", ref, err)
	}
	ss.APIVersion = ssv1alpha1.SchemeGroupVersion.String()
	ss.Kind = "SealedSecret"
	// The hand-over annotation is meaningless in the template: the
	// controller reads it on the live Secret only.
	delete(ss.Spec.Template.Annotations, ManagedAnnotation)
	if len(ss.Spec.Template.Annotations) == 0 {
		ss.Spec.Template.Annotations = nil
	}
	return ss, nil
}

// Marshal renders SealedSecrets as YAML documents separated by "---",
// without the null creationTimestamps the Go types would print.
func Marshal(sss ...*ssv1alpha1.SealedSecret) ([]byte, error) {
	var out []byte
	for i, ss := range sss {
		obj, err := toMap(ss)
		if err != nil {
			return nil, err
		}
		y, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, "---\n"...)
		}
		out = append(out, y...)
	}
	return out, nil
}

// toMap converts a SealedSecret to its JSON map, without empty
// creationTimestamps and status.
func toMap(ss *ssv1alpha1.SealedSecret) (map[string]any, error) {
	j, err := json.Marshal(ss)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	dropNull := func(meta any) {
		if mm, ok := meta.(map[string]any); ok && mm["creationTimestamp"] == nil {
			delete(mm, "creationTimestamp")
		}
	}
	dropNull(m["metadata"])
	if spec, ok := m["spec"].(map[string]any); ok {
		if tmpl, ok := spec["template"].(map[string]any); ok {
			dropNull(tmpl["metadata"])
		}
	}
	delete(m, "status")
	return m, nil
}
