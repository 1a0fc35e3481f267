package sealedsecrets

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	"github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const canary = "kh-canary-Sealed-9fQ2"

// keyPair generates a controller key pair the way the controller does
// and returns the private key and the certificate's PEM.
func keyPair(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, cert, err := crypto.GeneratePrivateKeyAndCert(2048, time.Hour, "sealed-secrets-test")
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

func testSecret() *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "db", Namespace: "prod",
			Labels:      map[string]string{"app": "db"},
			Annotations: map[string]string{"team": "payments", "kubectl.kubernetes.io/last-applied-configuration": canary, ManagedAnnotation: "true"},
			UID:         "uid-1", ResourceVersion: "42",
			OwnerReferences: []metav1.OwnerReference{{Kind: "X", Name: "x", UID: "o"}},
		},
		Type: corev1.SecretTypeBasicAuth,
		Data: map[string][]byte{
			"username": []byte("admin"),
			"password": []byte(canary),
			"binary":   {0, 1, 2, 255},
			"empty":    {},
		},
	}
}

// unseal unseals ss as the controller would, under its own name and
// namespace, after a round trip through the YAML keyhole writes.
func unseal(t *testing.T, out []byte, key *rsa.PrivateKey) (*corev1.Secret, error) {
	t.Helper()
	var ss ssv1alpha1.SealedSecret
	if err := yaml.UnmarshalStrict(out, &ss); err != nil {
		t.Fatalf("keyhole's SealedSecret does not decode strictly: %v\n%s", err, out)
	}
	fp, err := crypto.PublicKeyFingerprint(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return ss.Unseal(scheme.Codecs, map[string]*rsa.PrivateKey{fp: key})
}

func TestSealUnsealEveryScope(t *testing.T) {
	key, certPEM := keyPair(t)
	cert, err := ParseCert(certPEM, "test")
	if err != nil {
		t.Fatal(err)
	}
	// elsewhere moves a SealedSecret to another name and/or namespace, as
	// someone copying the manifest would.
	type move struct{ namespace, name string }
	moves := []move{{"prod", "other-name"}, {"staging", "db"}, {"staging", "other-name"}}

	tests := []struct {
		scope string
		// unsealsAt says which moves still unseal.
		unsealsAt map[move]bool
		annot     string
	}{
		{"strict", map[move]bool{}, ""},
		{"namespace-wide", map[move]bool{{"prod", "other-name"}: true}, ssv1alpha1.SealedSecretNamespaceWideAnnotation},
		{"cluster-wide", map[move]bool{{"prod", "other-name"}: true, {"staging", "db"}: true, {"staging", "other-name"}: true}, ssv1alpha1.SealedSecretClusterWideAnnotation},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			scope, err := ParseScope(tt.scope)
			if err != nil {
				t.Fatal(err)
			}
			in := testSecret()
			orig := in.DeepCopy()
			ss, err := Seal(in, cert, scope)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(in, orig) {
				t.Error("Seal modified its input")
			}
			out, err := Marshal(ss)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out, []byte(canary)) || bytes.Contains(out, []byte("admin")) {
				t.Fatalf("the SealedSecret holds a value in clear:\n%s", out)
			}
			for _, unwanted := range []string{"creationTimestamp", "uid", "resourceVersion", "ownerReferences", "last-applied", ManagedAnnotation, "status"} {
				if bytes.Contains(out, []byte(unwanted)) {
					t.Errorf("output holds %q:\n%s", unwanted, out)
				}
			}
			if tt.annot != "" && !bytes.Contains(out, []byte(tt.annot+`: "true"`)) {
				t.Errorf("output lacks the scope annotation %s:\n%s", tt.annot, out)
			}

			got, err := unseal(t, out, key)
			if err != nil {
				t.Fatalf("unseal: %v", err)
			}
			if !dataEqual(got.Data, orig.Data) {
				t.Errorf("unsealed data differs: keys %v", keysOf(got.Data))
			}
			if got.Type != orig.Type || got.Name != "db" || got.Namespace != "prod" || got.Labels["app"] != "db" || got.Annotations["team"] != "payments" {
				t.Errorf("unsealed metadata: %+v type %s", got.ObjectMeta, got.Type)
			}

			for _, m := range moves {
				moved := bytes.ReplaceAll(out, []byte("name: db\n"), []byte("name: "+m.name+"\n"))
				moved = bytes.ReplaceAll(moved, []byte("namespace: prod\n"), []byte("namespace: "+m.namespace+"\n"))
				_, err := unseal(t, moved, key)
				if tt.unsealsAt[m] && err != nil {
					t.Errorf("%s scope: does not unseal as %s/%s: %v", tt.scope, m.namespace, m.name, err)
				}
				if !tt.unsealsAt[m] && err == nil {
					t.Errorf("%s scope: unseals as %s/%s", tt.scope, m.namespace, m.name)
				}
			}

			// Another controller's key does not unseal it.
			other, _ := keyPair(t)
			if _, err := unseal(t, out, other); err == nil {
				t.Error("unsealed with another key")
			}
		})
	}
}

// dataEqual compares Secret data; an empty value and a nil one are the
// same (JSON cannot tell them apart).
func dataEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if w, ok := a[k]; !ok || !bytes.Equal(w, v) {
			return false
		}
	}
	return true
}

func keysOf(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestSealNeedsNamespace(t *testing.T) {
	_, certPEM := keyPair(t)
	cert, err := ParseCert(certPEM, "test")
	if err != nil {
		t.Fatal(err)
	}
	s := testSecret()
	s.Namespace = ""
	for _, scope := range []ssv1alpha1.SealingScope{ssv1alpha1.StrictScope, ssv1alpha1.NamespaceWideScope} {
		if _, err := Seal(s, cert, scope); err == nil || !strings.Contains(err.Error(), "secret/db has no namespace") {
			t.Errorf("%s: %v", scope.String(), err)
		}
	}
	if _, err := Seal(s, cert, ssv1alpha1.ClusterWideScope); err != nil {
		t.Errorf("cluster-wide without a namespace: %v", err)
	}
}

func TestMarshalSeveral(t *testing.T) {
	key, certPEM := keyPair(t)
	cert, err := ParseCert(certPEM, "test")
	if err != nil {
		t.Fatal(err)
	}
	a, b := testSecret(), testSecret()
	b.Name = "db2"
	ssa, err := Seal(a, cert, ssv1alpha1.StrictScope)
	if err != nil {
		t.Fatal(err)
	}
	ssb, err := Seal(b, cert, ssv1alpha1.StrictScope)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(ssa, ssb)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(out), "---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents:\n%s", len(docs), out)
	}
	for i, d := range docs {
		got, err := unseal(t, []byte(d), key)
		if err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		if string(got.Data["password"]) != canary {
			t.Errorf("document %d: wrong data", i+1)
		}
	}
}

func TestParseCert(t *testing.T) {
	_, certPEM := keyPair(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(good, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := CertFromFile(good)
	if err != nil || c.Key == nil || c.NotAfter.IsZero() {
		t.Fatalf("CertFromFile: %+v, %v", c, err)
	}

	expiredKey, _ := keyPair(t)
	expired, err := crypto.SignKeyWithNotBefore(rand.Reader, expiredKey, time.Now().Add(-2*time.Hour), time.Hour, "old")
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"expired.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: expired.Raw}),
		"garbage.pem": []byte("not a certificate " + canary),
		"key.pem":     pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(expiredKey)}),
	}
	for name, data := range bad {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := CertFromFile(p)
		if err == nil || !strings.HasPrefix(err.Error(), "certificate "+p+": ") {
			t.Errorf("%s: %v", name, err)
		} else if strings.Contains(err.Error(), canary) {
			t.Errorf("%s: error quotes the file: %v", name, err)
		}
	}
	if _, err := CertFromFile(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing: %v", err)
	}
}

func TestParseScope(t *testing.T) {
	for in, want := range map[string]ssv1alpha1.SealingScope{"strict": ssv1alpha1.StrictScope, "namespace-wide": ssv1alpha1.NamespaceWideScope, "cluster-wide": ssv1alpha1.ClusterWideScope} {
		got, err := ParseScope(in)
		if err != nil || got != want || ScopeName(got) != in {
			t.Errorf("ParseScope(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "wide", "Strict"} {
		if _, err := ParseScope(in); err == nil {
			t.Errorf("ParseScope(%q) accepted", in)
		}
	}
}
