// Command gen regenerates internal/bootstrap/policy.yaml: the RBAC policy
// that kube-apiserver creates on a fresh cluster (every ClusterRole and
// ClusterRoleBinding, and the Roles and RoleBindings in kube-system and
// kube-public), read from a real control plane after the
// clusterrole-aggregation controller has filled admin, edit and view. It
// owns only the extraction and the file's canonical form; run it through
// `make bootstrap-policy`, which needs the binaries from `make
// control-plane`.
//
// The output is deterministic: volatile metadata is dropped, objects are
// sorted by kind, namespace and name, and rules keep the order the server
// stores. That order is stable because bootstrap roles are written from
// fixed Go tables and a settled aggregation controller concatenates the
// selected roles sorted by name (testenv.WaitForAggregation checks it has
// settled to exactly that).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// policyNamespaces are the namespaces kube-apiserver's bootstrap policy
// puts Roles and RoleBindings in. A Role anywhere else on a fresh control
// plane means this list is out of date, and is an error.
var policyNamespaces = []string{"kube-public", "kube-system"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "internal/bootstrap/policy.yaml", "file to write the policy to")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gen: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := generate(ctx, *out, stdout); err != nil {
		fmt.Fprintf(stderr, "gen: %v\n", err)
		return 1
	}
	return 0
}

func generate(ctx context.Context, out string, stdout io.Writer) (err error) {
	began := time.Now()
	cp, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, cp.Logs())
		}
		if stopErr := cp.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	if err := cp.WaitForAggregation(ctx); err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	version, err := client.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("reading kube-apiserver version: %w", err)
	}
	items, err := readPolicy(ctx, client)
	if err != nil {
		return err
	}
	data, err := render(items, version.GitVersion)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(out, data); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gen: wrote %d objects from kube-apiserver %s to %s in %v\n",
		len(items), version.GitVersion, out, time.Since(began).Round(100*time.Millisecond))
	return nil
}

// object is one policy object with its sort key.
type object struct {
	kindOrder       int
	namespace, name string
	obj             any
}

func readPolicy(ctx context.Context, client kubernetes.Interface) ([]object, error) {
	rbac := client.RbacV1()
	var items []object
	add := func(kindOrder int, kind string, meta *metav1.ObjectMeta, typeMeta *metav1.TypeMeta, obj any) error {
		if err := cleanMeta(kind, meta); err != nil {
			return err
		}
		*typeMeta = metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind}
		items = append(items, object{kindOrder, meta.Namespace, meta.Name, obj})
		return nil
	}

	crs, err := rbac.ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing clusterroles: %w", err)
	}
	for i := range crs.Items {
		o := &crs.Items[i]
		if err := add(0, "ClusterRole", &o.ObjectMeta, &o.TypeMeta, o); err != nil {
			return nil, err
		}
	}
	crbs, err := rbac.ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing clusterrolebindings: %w", err)
	}
	for i := range crbs.Items {
		o := &crbs.Items[i]
		if err := add(1, "ClusterRoleBinding", &o.ObjectMeta, &o.TypeMeta, o); err != nil {
			return nil, err
		}
	}
	// All namespaces, so that policy in a namespace we do not expect is
	// an error rather than silently missing.
	roles, err := rbac.Roles(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	for i := range roles.Items {
		o := &roles.Items[i]
		if err := add(2, "Role", &o.ObjectMeta, &o.TypeMeta, o); err != nil {
			return nil, err
		}
	}
	rbs, err := rbac.RoleBindings(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing rolebindings: %w", err)
	}
	for i := range rbs.Items {
		o := &rbs.Items[i]
		if err := add(3, "RoleBinding", &o.ObjectMeta, &o.TypeMeta, o); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// cleanMeta drops what differs between two runs of the same server.
func cleanMeta(kind string, m *metav1.ObjectMeta) error {
	ref := kind + "/" + m.Name
	if m.Namespace != "" {
		ref = kind + "/" + m.Namespace + "/" + m.Name
		if !contains(policyNamespaces, m.Namespace) {
			return fmt.Errorf("%s: bootstrap policy outside %v; update policyNamespaces", ref, policyNamespaces)
		}
	}
	if len(m.OwnerReferences) > 0 || len(m.Finalizers) > 0 || m.GenerateName != "" || m.DeletionTimestamp != nil {
		return fmt.Errorf("%s: unexpected ownerReferences, finalizers, generateName or deletionTimestamp on a bootstrap object", ref)
	}
	m.UID = ""
	m.ResourceVersion = ""
	m.Generation = 0
	m.CreationTimestamp = metav1.Time{}
	m.ManagedFields = nil
	m.SelfLink = "" //nolint:staticcheck // deprecated, but still cleared in case a server sets it
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var kindNames = []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

func render(items []object, kubeVersion string) ([]byte, error) {
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if a.kindOrder != b.kindOrder {
			return a.kindOrder < b.kindOrder
		}
		if a.namespace != b.namespace {
			return a.namespace < b.namespace
		}
		return a.name < b.name
	})
	counts := make([]int, len(kindNames))
	objs := make([]any, len(items))
	for i, it := range items {
		objs[i] = it.obj
		counts[it.kindOrder]++
	}
	list := struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Items      []any  `json:"items"`
	}{"v1", "List", objs}
	body, err := yaml.Marshal(list)
	if err != nil {
		return nil, fmt.Errorf("encoding policy: %w", err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Code generated by `make bootstrap-policy` from kube-apiserver %s. DO NOT EDIT.\n", kubeVersion)
	fmt.Fprintf(&buf, "# %d ClusterRoles, %d ClusterRoleBindings, %d Roles, %d RoleBindings; aggregated rules as the\n",
		counts[0], counts[1], counts[2], counts[3])
	fmt.Fprintf(&buf, "# clusterrole-aggregation controller leaves them. Regenerate, never edit.\n")
	buf.Write(body)
	return buf.Bytes(), nil
}

// writeFileAtomic replaces path so that a failed run never leaves a
// truncated policy behind.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".policy-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if err := f.Chmod(0o644); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
