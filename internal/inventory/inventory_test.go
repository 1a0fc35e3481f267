package inventory

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const canary = "KEYHOLE-CANARY-inventory"

func managed(t time.Time, fields string) metav1.ManagedFieldsEntry {
	mt := metav1.NewTime(t)
	return metav1.ManagedFieldsEntry{Manager: "m", Operation: metav1.ManagedFieldsOperationUpdate, Time: &mt,
		FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields)}
}

func TestSecretFromAPIKeepsNoValue(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "db",
			Annotations: map[string]string{LastAppliedAnnotation: `{"stringData":{"password":"` + canary + `"}}`, "team": "payments"},
			ManagedFields: []metav1.ManagedFieldsEntry{
				managed(t0, `{"f:data":{"f:password":{}}}`),
				managed(t0.Add(time.Hour), `{"f:metadata":{"f:labels":{}}}`), // not a data write
				managed(t0.Add(-time.Hour), `{"f:stringData":{"f:user":{}}}`),
			}},
		Data:       map[string][]byte{"password": []byte(canary), "b": []byte(canary)},
		StringData: map[string]string{"user": canary, "b": canary},
	}
	s := SecretFromAPI(in)
	if want := []string{"b", "password", "user"}; !reflect.DeepEqual(s.Keys, want) || !s.KeysKnown {
		t.Errorf("keys %v (known %v), want %v", s.Keys, s.KeysKnown, want)
	}
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("empty type not defaulted to Opaque: %q", s.Type)
	}
	if !s.HadLastApplied || s.Annotations["team"] != "payments" {
		t.Errorf("annotations %v, HadLastApplied %v", s.Annotations, s.HadLastApplied)
	}
	if !s.DataWrittenAt.Equal(t0) {
		t.Errorf("DataWrittenAt %v, want %v (newest write to data, not to labels)", s.DataWrittenAt, t0)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), canary) {
		t.Fatalf("the inventory Secret holds a value: %s", b)
	}
	if in.Data["password"] == nil || in.Annotations[LastAppliedAnnotation] == "" {
		t.Error("SecretFromAPI modified its input")
	}
}

func TestDataKeysFromManagedFields(t *testing.T) {
	t0 := time.Now()
	keys, ok := DataKeysFromManagedFields([]metav1.ManagedFieldsEntry{
		managed(t0, `{"f:data":{"f:tls.crt":{},"f:tls.key":{}},"f:type":{}}`),
		managed(t0, `{"f:stringData":{"f:extra":{}}}`),
		managed(t0, `not json`),
	})
	if !ok || !reflect.DeepEqual(keys, []string{"extra", "tls.crt", "tls.key"}) {
		t.Errorf("keys %v ok %v", keys, ok)
	}
	if _, ok := DataKeysFromManagedFields([]metav1.ManagedFieldsEntry{managed(t0, `{"f:metadata":{}}`)}); ok {
		t.Error("no data fields recorded, but ok")
	}
}

func TestBuilderLayersAndSorts(t *testing.T) {
	b := NewBuilder()
	add := func(obj any, path string) (bool, Location) {
		t.Helper()
		replaced, prev, err := b.Add(obj, Location{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		return replaced, prev
	}
	add(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "edit"}}, "bootstrap")
	add(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "z"}}, "x.yaml")
	add(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "y"}}, "x.yaml")
	replaced, prev := add(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "edit", Labels: map[string]string{"mine": "1"}}}, "user.yaml")
	if !replaced || prev.Path != "bootstrap" {
		t.Errorf("replacing edit: replaced %v, previous %+v", replaced, prev)
	}
	if _, _, err := b.Add(&corev1.Service{}, Location{}); err != ErrUnsupportedKind {
		t.Errorf("a Service: err %v, want ErrUnsupportedKind", err)
	}
	inv := b.Build()
	if len(inv.ClusterRoles) != 1 || inv.ClusterRole("edit").Labels["mine"] != "1" {
		t.Error("the later layer did not replace the earlier one")
	}
	if inv.Secrets[0].Namespace != "a" || inv.Secrets[1].Namespace != "b" || inv.Secret("b", "z") == nil {
		t.Error("secrets are not sorted and indexed")
	}
	if got := inv.Location(Ref{Kind: "ClusterRole", Name: "edit"}).Path; got != "user.yaml" {
		t.Errorf("location %q", got)
	}
	if !reflect.DeepEqual(inv.SecretNamespaces(), []string{"a", "b"}) {
		t.Errorf("namespaces %v", inv.SecretNamespaces())
	}
	if inv.Counts()["Secret"] != 2 || inv.Counts()["ClusterRole"] != 1 {
		t.Errorf("counts %v", inv.Counts())
	}
}
