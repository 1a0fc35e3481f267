package cluster

import (
	"bytes"
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// reverse stands for an HMAC: any function of the value alone does.
func reverse(v []byte) []byte {
	out := make([]byte, len(v))
	for i, b := range v {
		out[len(v)-1-i] = b
	}
	return out
}

// TestSecretValueDigests: every data value is replaced by its digest,
// Helm release payloads are skipped, and the values handed over are
// overwritten once hashed (the live read lives in TestCorrelateLive).
func TestSecretValueDigests(t *testing.T) {
	cs := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "db"}, Data: map[string][]byte{"password": []byte("KEYHOLE-CANARY-1"), "user": []byte("app")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "sh.helm.release.v1.x.v1"}, Type: helmReleaseType, Data: map[string][]byte{"release": []byte("H4sI...")}},
	)
	objs, err := listAll(context.Background(), digestPages(cs, reverse), valuesPageSize)
	if err != nil {
		t.Fatal(err)
	}
	got := map[inventory.Ref]map[string][]byte{}
	for _, o := range objs {
		d := o.(secretDigests)
		got[d.ref] = d.keys
	}
	db := got[inventory.Ref{Kind: "Secret", Namespace: "a", Name: "db"}]
	if len(got) != 2 || len(db) != 2 || string(db["password"]) != "1-YRANAC-ELOHYEK" || string(db["user"]) != "ppa" {
		t.Errorf("digests %q", got)
	}
	if helm := got[inventory.Ref{Kind: "Secret", Namespace: "b", Name: "sh.helm.release.v1.x.v1"}]; len(helm) != 0 {
		t.Errorf("a Helm release was hashed: %q", helm)
	}

	value := []byte("KEYHOLE-CANARY-2")
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "x"}, Data: map[string][]byte{"k": value}}
	digestSecret(s, reverse)
	if !bytes.Equal(value, make([]byte, len(value))) || s.Data != nil {
		t.Errorf("the value is still held after hashing: %q", value)
	}
}
