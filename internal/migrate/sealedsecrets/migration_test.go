package sealedsecrets

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/keyhole-sec/keyhole/internal/migrate"
)

func secretAt(ns, name, path string, doc int) migrate.Secret {
	return migrate.Secret{
		Secret: &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Data:       map[string][]byte{"pw": []byte(canary)},
		},
		Origin: migrate.Origin{Path: path, Doc: doc},
	}
}

func TestPrepare(t *testing.T) {
	_, certPEM := keyPair(t)
	cert, err := ParseCert(certPEM, "test")
	if err != nil {
		t.Fatal(err)
	}
	sa := secretAt("a", "token", "x.yaml", 5)
	sa.Secret.Type = corev1.SecretTypeServiceAccountToken
	owned := secretAt("a", "owned", "x.yaml", 6)
	owned.Origin.ControlledBy = "SealedSecret/owned"
	eso := secretAt("a", "eso", "x.yaml", 7)
	eso.Origin.ControlledBy = "ExternalSecret/eso"
	batch := &migrate.Batch{Secrets: []migrate.Secret{
		secretAt("a", "one", "dir/x.yaml", 1),
		secretAt("a", "two", "dir/x.yaml", 2),
		secretAt("", "nons", "y.yaml", 1),
		secretAt("b", "one", "z.yaml", 1),
		secretAt("a", "one", "w.yaml", 1), // the same Secret in another file
		sa, owned, eso,
	}}

	t.Run("per secret", func(t *testing.T) {
		m := Prepare(batch, Options{Cert: cert, Scope: ssv1alpha1.StrictScope, Layout: PerSecret})
		var got []string
		for _, it := range m.Items {
			s := it.File
			if it.Err != nil {
				s += " ERR " + it.Err.Error()
			}
			got = append(got, s)
		}
		want := []string{
			"a/one.yaml",
			"a/two.yaml",
			"nons.yaml ERR secret/nons has no namespace: the strict scope seals it for one namespace, so set metadata.namespace (or use --scope cluster-wide)",
			"b/one.yaml",
			"a/one.yaml ERR secret/a/one appears twice in the input (also dir/x.yaml document 1): migrate one of them",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("items:\n got %q\nwant %q", got, want)
		}
		var skipped []string
		for _, s := range m.Skipped {
			skipped = append(skipped, s.String())
		}
		wantSkipped := []string{
			"x.yaml document 5 (Secret a/token): skipped: type kubernetes.io/service-account-token: a service account token, which the token controller writes",
			"x.yaml document 6 (Secret a/owned): skipped: already unsealed from SealedSecret/owned",
			"x.yaml document 7 (Secret a/eso): skipped: written by its controller ExternalSecret/eso: change the value at that object's source instead",
		}
		if !reflect.DeepEqual(skipped, wantSkipped) {
			t.Errorf("skipped:\n got %q\nwant %q", skipped, wantSkipped)
		}
		if !m.Failed() {
			t.Error("Failed() = false")
		}
	})

	t.Run("mirror", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		out, err := migrate.OpenOut(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		m := Prepare(batch, Options{Cert: cert, Scope: ssv1alpha1.StrictScope, Layout: Mirror, Out: out})
		var steps []string
		for _, task := range m.Tasks() {
			err := task.Do(context.Background())
			s := task.Ref + " " + task.Step
			if err != nil {
				s += " ERR"
			}
			steps = append(steps, s)
		}
		// No client: writes only. y.yaml holds the Secret without a
		// namespace, which cannot be sealed strictly.
		want := []string{"dir/x.yaml write", "y.yaml write ERR", "z.yaml write", "w.yaml write"}
		if !reflect.DeepEqual(steps, want) {
			t.Errorf("tasks %q, want %q", steps, want)
		}
		data, err := os.ReadFile(filepath.Join(dir, "dir", "x.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(data), "kind: SealedSecret"); n != 2 {
			t.Errorf("dir/x.yaml holds %d SealedSecrets, want 2", n)
		}
		if _, err := os.Stat(filepath.Join(dir, "y.yaml")); !os.IsNotExist(err) {
			t.Errorf("y.yaml written although a Secret in it was not sealed: %v", err)
		}
		var plan strings.Builder
		m.WritePlan(&plan, "unused")
		for _, w := range []string{
			filepath.Join(dir, "dir", "x.yaml") + ":\n  sealedsecret/a/one (scope strict; keys: pw) from secret/a/one in dir/x.yaml document 1\n  sealedsecret/a/two",
			"  1. kubectl annotate secret one -n a sealedsecrets.bitnami.com/managed=true --overwrite   # if it exists in the cluster\n  2. kubectl annotate secret two -n a",
			"  3. kubectl apply --server-side --field-manager=keyhole -f " + filepath.Join(dir, "dir", "x.yaml") + "\n",
			"  secret/nons from y.yaml document 1: NOT SEALED: secret/nons has no namespace",
		} {
			if !strings.Contains(plan.String(), w) {
				t.Errorf("plan lacks %q:\n%s", w, plan.String())
			}
		}
		if strings.Contains(plan.String(), canary) {
			t.Error("the plan holds a value")
		}
	})
}

// TestTasksHandOver checks the order of the steps on the cluster and that
// a Secret read from a file with no live counterpart has nothing to hand
// over, while a live Secret that vanished is an error.
func TestTasksHandOver(t *testing.T) {
	_, certPEM := keyPair(t)
	cert, err := ParseCert(certPEM, "test")
	if err != nil {
		t.Fatal(err)
	}
	existing := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "exists", Namespace: "a"}}
	client := fake.NewClientset(existing)
	gone := secretAt("a", "gone", "", 0)
	gone.Origin = migrate.Origin{Live: true, UID: "u"}
	batch := &migrate.Batch{Secrets: []migrate.Secret{secretAt("a", "exists", "f.yaml", 1), secretAt("a", "new", "f.yaml", 2), gone}}
	m := Prepare(batch, Options{Cert: cert, Scope: ssv1alpha1.StrictScope, Client: client})
	var got []string
	for _, task := range m.Tasks() {
		if task.Step != StepAnnotate {
			got = append(got, task.Ref+" "+task.Step)
			continue
		}
		s := task.Ref + " " + task.Step
		if err := task.Do(context.Background()); err != nil {
			s += " ERR " + err.Error()
		}
		got = append(got, s)
	}
	want := []string{
		"a/exists " + StepAnnotate, "a/exists " + StepApply,
		"a/new " + StepAnnotate, "a/new " + StepApply,
		"a/gone " + StepAnnotate + " ERR annotating secret/a/gone: no such Secret (deleted since it was read?)", "a/gone " + StepApply,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tasks:\n got %q\nwant %q", got, want)
	}
	s, err := client.CoreV1().Secrets("a").Get(context.Background(), "exists", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Annotations[ManagedAnnotation] != "true" {
		t.Errorf("annotations after the hand-over: %v", s.Annotations)
	}
}
