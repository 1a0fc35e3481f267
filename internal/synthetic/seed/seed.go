// Package seed loads a synthetic world (internal/synthetic) into a live
// cluster, with Secret values of realistic sizes, for the benchmarks that
// measure keyhole against a real kube-apiserver. It owns the loading
// (order, retries, values), not the world's shape.
package seed

import (
	"context"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// workers bounds the concurrent creates: enough to keep a two-core
// apiserver busy, far under its 400 in-flight requests.
const workers = 16

// Stats describe one Load.
type Stats struct {
	Objects int
	// Existed counts objects that were already there (bootstrap
	// ClusterRoles, default namespaces and ServiceAccounts) and were
	// kept as they are.
	Existed int64
	// DataBytes is the size of the Secret values written.
	DataBytes int64
	// Dropped counts ClusterRoleBinding subjects the apiserver would
	// reject (ServiceAccounts without a namespace), left out.
	Dropped int64
	Took    time.Duration
}

func (s Stats) String() string {
	return fmt.Sprintf("%d objects (%.1f MiB of Secret data; %d already existed, %d invalid subjects dropped) loaded in %.1fs (%.0f objects/s)",
		s.Objects, float64(s.DataBytes)/(1<<20), s.Existed, s.Dropped, s.Took.Seconds(), float64(s.Objects)/s.Took.Seconds())
}

type loader struct {
	c                           kubernetes.Interface
	certs                       *certPool
	valueSeed                   uint64
	existed, dataBytes, dropped atomic.Int64
}

// Load creates objs in the cluster cfg reaches: Namespaces first, then the
// ServiceAccounts that token Secrets name (the token controller deletes a
// token Secret whose ServiceAccount it cannot find), then everything else.
// Secret values are pseudo-random from valueSeed and each Secret's index,
// so every run loads the same bytes.
func Load(ctx context.Context, cfg *rest.Config, objs []kruntime.Object, valueSeed uint64) (Stats, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 2000, 4000
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Stats{}, err
	}
	certs, err := newCertPool(8)
	if err != nil {
		return Stats{}, err
	}
	l := &loader{c: c, certs: certs, valueSeed: valueSeed}
	var phases [3][]kruntime.Object
	for _, o := range objs {
		switch o.(type) {
		case *corev1.Namespace:
			phases[0] = append(phases[0], o)
		case *corev1.ServiceAccount:
			phases[1] = append(phases[1], o)
		default:
			phases[2] = append(phases[2], o)
		}
	}
	start := time.Now()
	for _, p := range phases {
		if err := l.createAll(ctx, p); err != nil {
			return Stats{}, fmt.Errorf("loading the synthetic world: %w", err)
		}
	}
	return Stats{Objects: len(objs), Existed: l.existed.Load(), DataBytes: l.dataBytes.Load(),
		Dropped: l.dropped.Load(), Took: time.Since(start)}, nil
}

// createAll creates objs with a bounded pool of workers. Objects that
// already exist (the bootstrap ClusterRoles, default namespaces and
// ServiceAccounts the controller got to first) are kept as they are.
func (l *loader) createAll(ctx context.Context, objs []kruntime.Object) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range work {
				err := l.create(ctx, objs[i], i)
				if apierrors.IsAlreadyExists(err) {
					l.existed.Add(1)
					err = nil
				}
				if err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range objs {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func (l *loader) create(ctx context.Context, o kruntime.Object, i int) error {
	c := l.c
	opts := metav1.CreateOptions{}
	var err error
	// A server under load answers 429 or times out now and then; retry
	// those rather than fail the whole load.
	for attempt := 0; attempt < 5; attempt++ {
		switch o := o.(type) {
		case *corev1.Namespace:
			_, err = c.CoreV1().Namespaces().Create(ctx, o, opts)
		case *corev1.ServiceAccount:
			_, err = c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
		case *corev1.Secret:
			s := withValues(o, l.valueSeed, i, l.certs)
			_, err = c.CoreV1().Secrets(o.Namespace).Create(ctx, s, opts)
			if err == nil {
				l.dataBytes.Add(dataBytes(s))
			}
		case *rbacv1.ClusterRole:
			_, err = c.RbacV1().ClusterRoles().Create(ctx, o, opts)
		case *rbacv1.Role:
			_, err = c.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
		case *rbacv1.ClusterRoleBinding:
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, storable(o, &l.dropped), opts)
		case *rbacv1.RoleBinding:
			_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
		case *corev1.Node:
			_, err = c.CoreV1().Nodes().Create(ctx, o, opts)
		case *corev1.Pod:
			_, err = c.CoreV1().Pods(o.Namespace).Create(ctx, o, opts)
		case *corev1.PersistentVolume:
			_, err = c.CoreV1().PersistentVolumes().Create(ctx, o, opts)
		case *corev1.PersistentVolumeClaim:
			_, err = c.CoreV1().PersistentVolumeClaims(o.Namespace).Create(ctx, o, opts)
		default:
			return fmt.Errorf("synthetic object of unexpected type %T", o)
		}
		if !apierrors.IsTooManyRequests(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsTimeout(err) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		m, _ := o.(metav1.Object)
		return fmt.Errorf("create %s %s/%s: %w", o.GetObjectKind().GroupVersionKind().Kind, m.GetNamespace(), m.GetName(), err)
	}
	return err
}

// withValues gives a synthetic Secret values of realistic sizes, so that
// reading Secrets in full costs what it costs in a real cluster: a few
// hundred bytes per key for credentials, ~8 KiB certificate chains and an
// RSA key for TLS, 64 KiB for Helm releases (gzipped, base64'd charts and
// values in real life; random text here, as incompressible). Token
// Secrets are left empty for the token controller to fill, and name the
// namespace's default ServiceAccount, which always exists. Values are
// pseudo-random from i, so every run loads the same bytes.
func withValues(s *corev1.Secret, seed uint64, i int, certs *certPool) *corev1.Secret {
	s = s.DeepCopy()
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	switch s.Type {
	case corev1.SecretTypeTLS:
		// A leaf and its chain, about 8 KiB, and the leaf's key.
		leaf := r.IntN(len(certs.certs))
		var chain []byte
		for k := range 4 {
			chain = append(chain, certs.certs[(leaf+k)%len(certs.certs)]...)
		}
		s.Data[corev1.TLSCertKey] = chain
		s.Data[corev1.TLSPrivateKeyKey] = certs.keys[leaf]
	case corev1.SecretTypeDockerConfigJson:
		s.Data[corev1.DockerConfigJsonKey] = fmt.Appendf(nil, `{"auths":{"registry-%d.example.com":{"auth":"%s"}}}`,
			r.IntN(20), text(r, 120))
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[corev1.ServiceAccountNameKey] = "default"
		s.Data = nil
	case "helm.sh/release.v1":
		s.Data["release"] = text(r, 64<<10)
	default:
		for k := range s.Data {
			s.Data[k] = text(r, 150+r.IntN(100))
		}
	}
	return s
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func text(r *rand.Rand, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = alphabet[r.IntN(len(alphabet))]
	}
	return out
}

// storable drops the ServiceAccount subjects without a namespace that
// synthetic puts in a few ClusterRoleBindings: manifests may hold them,
// but the apiserver rejects them, so no cluster does.
func storable(crb *rbacv1.ClusterRoleBinding, dropped *atomic.Int64) *rbacv1.ClusterRoleBinding {
	var keep []rbacv1.Subject
	for _, sub := range crb.Subjects {
		if sub.Kind == rbacv1.ServiceAccountKind && sub.Namespace == "" {
			dropped.Add(1)
			continue
		}
		keep = append(keep, sub)
	}
	if len(keep) == len(crb.Subjects) {
		return crb
	}
	crb = crb.DeepCopy()
	crb.Subjects = keep
	return crb
}

// certPool is a few real certificates and their keys. TLS Secrets hold
// chains of them: the apiserver warns about a tls.crt that does not parse,
// and real ones are the right size.
type certPool struct {
	certs [][]byte // PEM
	keys  [][]byte // PEM; keys[i] is certs[i]'s
}

// newCertPool makes n self-signed RSA 2048 certificates with 30 DNS names
// each, as an ingress certificate might have: about 2 KiB of PEM each.
func newCertPool(n int) (*certPool, error) {
	p := &certPool{}
	for i := range n {
		key, err := rsa.GenerateKey(crand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 1)),
			Subject:      pkix.Name{CommonName: fmt.Sprintf("bench-%d.example.com", i), Organization: []string{"keyhole bench"}},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(90 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		for k := range 30 {
			tmpl.DNSNames = append(tmpl.DNSNames, fmt.Sprintf("service-%02d.team-%d.apps.example.com", k, i))
		}
		der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		p.certs = append(p.certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		p.keys = append(p.keys, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	}
	return p, nil
}

func dataBytes(s *corev1.Secret) int64 {
	var n int64
	for _, v := range s.Data {
		n += int64(len(v))
	}
	return n
}

// WaitForTokens waits until the token controller has filled every
// ServiceAccount token Secret, so that it does not write while the
// audits run.
func WaitForTokens(ctx context.Context, c kubernetes.Interface) error {
	var pending int
	for {
		l, err := c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{
			FieldSelector: "type=" + string(corev1.SecretTypeServiceAccountToken)})
		if err == nil {
			pending = 0
			for _, s := range l.Items {
				if len(s.Data[corev1.ServiceAccountTokenKey]) == 0 {
					pending++
				}
			}
			if pending == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the token controller: %d token Secret(s) still empty: %w", pending, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// SizeFromEnv reads a world size from the environment variable name, for
// benchmarks sized by their caller; def when it is unset.
func SizeFromEnv(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive number", name, v)
	}
	return n, nil
}
