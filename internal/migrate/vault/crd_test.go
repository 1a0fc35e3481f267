package vault

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/testenv"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// resources maps the kinds keyhole emits to their resources.
var resources = map[string]string{
	"ExternalSecret":     "externalsecrets",
	"ClusterSecretStore": "clustersecretstores",
	"VaultStaticSecret":  "vaultstaticsecrets",
	"VaultAuth":          "vaultauths",
	"VaultConnection":    "vaultconnections",
}

// installCRDs creates the minimal CRDs of testdata/crds and waits until
// the API server serves them.
func installCRDs(ctx context.Context, t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "crds", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no CRDs in testdata/crds: %v", err)
	}
	var names []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, crd := range decodeAll(t, File{Path: p, Data: data}) {
			if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
				t.Fatalf("%s: creating CRD %s: %v", p, crd.GetName(), err)
			}
			names = append(names, crd.GetName())
		}
	}
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, name := range names {
		for {
			crd, err := dyn.Resource(crdGVR).Get(wait, name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("CRD %s: %v", name, err)
			}
			if established(crd) {
				break
			}
			select {
			case <-wait.Done():
				t.Fatalf("CRD %s never became established", name)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// dryRunCreate creates o with a server-side dry run and strict field
// validation: an unknown or misplaced field is an error.
func dryRunCreate(ctx context.Context, dyn dynamic.Interface, o *unstructured.Unstructured) error {
	gv, err := schema.ParseGroupVersion(o.GetAPIVersion())
	if err != nil {
		return err
	}
	gvr := gv.WithResource(resources[o.GetKind()])
	var ri dynamic.ResourceInterface = dyn.Resource(gvr)
	if ns := o.GetNamespace(); ns != "" {
		ri = dyn.Resource(gvr).Namespace(ns)
	}
	_, err = ri.Create(ctx, o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict})
	return err
}

// TestManifestsServerSide validates every manifest of the demo plan, for
// each consumer, with a server-side dry run against CRDs that declare the
// operators' fields, and applies every workload patch (dry run) to the
// demo Deployment on the real API server.
func TestManifestsServerSide(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{NoControllerManager: true})
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(ctx, t, dyn)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dep := demoDeploymentObject()
	dep.TypeMeta = metav1.TypeMeta{}
	if _, err := client.AppsV1().Deployments("shop").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, c := range Consumers {
		t.Run(string(c), func(t *testing.T) {
			_, files := demoFiles(t, c)
			checked := 0
			for _, f := range files {
				switch {
				case strings.HasPrefix(f.Path, "workloads/"):
					if _, err := client.AppsV1().Deployments("shop").Patch(ctx, "api", types.JSONPatchType, f.Data, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}); err != nil {
						t.Errorf("%s: %v", f.Path, err)
					}
					checked++
				case strings.HasPrefix(f.Path, "agent/"):
					js, err := yaml.YAMLToJSON(f.Data)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := client.AppsV1().Deployments("shop").Patch(ctx, "api", types.StrategicMergePatchType, js, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}); err != nil {
						t.Errorf("%s: %v", f.Path, err)
					}
					checked++
				case strings.HasSuffix(f.Path, ".yaml"):
					for _, o := range decodeAll(t, f) {
						if err := dryRunCreate(ctx, dyn, o); err != nil {
							t.Errorf("%s: %s %s: %v", f.Path, o.GetKind(), o.GetName(), err)
						}
						checked++
					}
				}
			}
			if checked < 3 {
				t.Errorf("only %d manifests checked", checked)
			}
		})
	}

	// The check can fail: a field the operator does not have is refused.
	p := demoPlan(t, ConsumerESO)
	es := &unstructured.Unstructured{Object: esoExternalSecret(p, p.Entries[0])}
	if err := unstructured.SetNestedField(es.Object, "Owner", "spec", "target", "creationPolicyy"); err != nil {
		t.Fatal(err)
	}
	if err := dryRunCreate(ctx, dyn, es); err == nil || !strings.Contains(err.Error(), "creationPolicyy") {
		t.Errorf("an ExternalSecret with an unknown field: %v, want it refused", err)
	}
}
