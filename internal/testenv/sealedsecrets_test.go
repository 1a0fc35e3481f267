package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	"github.com/bitnami-labs/sealed-secrets/pkg/kubeseal"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
)

// TestSealedSecretsController seals a Secret the way keyhole and kubeseal
// do (certificate fetched through the service proxy by an ordinary user,
// v1alpha1.NewSealedSecret) and checks that the real controller unseals it
// into a Secret with identical data, without the values reaching its log.
// Then it checks that Stop kills the controller and that a restart keeps
// the sealing key. Values are compared in the test and never printed.
func TestSealedSecretsController(t *testing.T) {
	// No groups: kubeseal's users only need system:authenticated, which
	// the upstream RBAC lets through the service proxy.
	dev := User{Name: "developer"}
	cp := StartT(t, Options{Users: []User{dev}})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	admin := kubernetes.NewForConfigOrDie(cp.Config)
	dyn := dynamic.NewForConfigOrDie(cp.Config)

	began := time.Now()
	ss := StartSealedSecretsControllerT(t, cp)
	t.Logf("controller ready in %v", time.Since(began).Round(time.Millisecond))
	if ss.Namespace != "kube-system" || ss.Name != "sealed-secrets-controller" {
		t.Errorf("controller at %s/%s, want kubeseal's default kube-system/sealed-secrets-controller", ss.Namespace, ss.Name)
	}

	// The wrapper (unshare, sh) must have exec'd the controller, so that
	// the pid Stop signals is the controller's.
	bin, err := SealedSecretsControllerBinary()
	if err != nil {
		t.Fatal(err)
	}
	pid := ss.Pid()
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err != nil || !sameFile(exe, bin) {
		t.Errorf("pid %d runs %q (%v), want the controller %s", pid, exe, err, bin)
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("the controller (pid %d) is in process group %d (%v), want its own, which Stop signals", pid, pgid, err)
	}

	// The certificate, exactly as kubeseal fetches it, as an ordinary user.
	devKubeconfig, err := cp.KubeconfigFor(dev)
	if err != nil {
		t.Fatal(err)
	}
	clientConfig := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: devKubeconfig}, &clientcmd.ConfigOverrides{})
	rc, err := kubeseal.OpenCert(ctx, clientConfig, ss.Namespace, ss.Name, "")
	if err != nil {
		t.Fatalf("kubeseal.OpenCert as %s: %v", dev.Name, err)
	}
	pub, err := kubeseal.ParseKey(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatalf("kubeseal.ParseKey: %v", err)
	}

	// It is the key the controller generated and stored, labelled, in its
	// namespace.
	keys, err := admin.CoreV1().Secrets(ss.Namespace).List(ctx, metav1.ListOptions{LabelSelector: SealedSecretsKeyLabel + "=active"})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Items) != 1 {
		t.Fatalf("%d secrets labelled %s=active in %s, want the controller's one key", len(keys.Items), SealedSecretsKeyLabel, ss.Namespace)
	}
	keyCert := parseCert(t, keys.Items[0].Data[corev1.TLSCertKey])
	if !pub.Equal(keyCert.PublicKey) {
		t.Errorf("the certificate served through the proxy is not secret/%s/%s's", ss.Namespace, keys.Items[0].Name)
	}
	if !pub.Equal(parseCert(t, ss.CertPEM).PublicKey) {
		t.Errorf("CertPEM differs from the certificate kubeseal fetched")
	}

	// Seal a Secret with data a text-only path would mangle.
	const ns, name = "team-a", "db-credentials"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"username": []byte("canary-user-" + randomToken()),
		"password": []byte("canary-pass-" + randomToken()),
		"tls.bin":  append([]byte{0x00, 0xff, 0xfe, '\n', 0x80}, randomBytes(t, 64)...),
		"empty":    {},
	}
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "db"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       want,
	}
	sealed, err := v1alpha1.NewSealedSecret(scheme.Codecs, pub, secret)
	if err != nil {
		t.Fatalf("sealing: %v", err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sealed)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{Object: u}
	obj.SetAPIVersion("bitnami.com/v1alpha1")
	obj.SetKind("SealedSecret")
	if _, err := dyn.Resource(SealedSecretsGVR).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating sealedsecret/%s/%s: %v", ns, name, err)
	}

	got := waitForSecret(ctx, t, admin, ns, name)
	if got.Type != corev1.SecretTypeOpaque {
		t.Errorf("secret/%s/%s type %q, want %q", ns, name, got.Type, corev1.SecretTypeOpaque)
	}
	if got.Labels["app"] != "db" {
		t.Errorf("secret/%s/%s labels %v, want app=db from the template", ns, name, got.Labels)
	}
	for _, d := range dataDiff(got.Data, want) {
		t.Errorf("secret/%s/%s %s", ns, name, d)
	}
	owned := false
	for _, o := range got.OwnerReferences {
		owned = owned || (o.Kind == "SealedSecret" && o.Name == name && o.Controller != nil && *o.Controller)
	}
	if !owned {
		t.Errorf("secret/%s/%s is not controlled by its SealedSecret: %v", ns, name, got.OwnerReferences)
	}
	waitForSynced(ctx, t, dyn, ns, name)

	// No value in the controller's log (the canary).
	logBytes, err := os.ReadFile(ss.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if len(v) > 0 && bytes.Contains(logBytes, v) {
			t.Errorf("the value of key %q appears in the controller's log %s", k, ss.LogPath)
		}
	}

	// Stop kills the controller: the pid is gone and the proxy fails.
	if err := ss.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("after Stop, kill(%d, 0) = %v, want ESRCH", pid, err)
	}
	if _, err := ss.fetchCert(ctx, admin); err == nil {
		t.Errorf("after Stop, the certificate is still served")
	}
	if ss.Pid() != 0 {
		t.Errorf("after Stop, Pid() = %d, want 0", ss.Pid())
	}

	// A restart reuses every object and the stored key.
	again, err := cp.StartSealedSecretsController(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Stop() })
	if !pub.Equal(parseCert(t, again.CertPEM).PublicKey) {
		t.Errorf("after a restart the controller serves another certificate; want the stored key's")
	}
}

func waitForSecret(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, name string) *corev1.Secret {
	t.Helper()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		s, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return s
		}
		if !apierrors.IsNotFound(err) {
			t.Fatalf("getting secret/%s/%s: %v", ns, name, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the controller did not create secret/%s/%s: %v", ns, name, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitForSynced waits for the controller to report the SealedSecret
// Synced in its status (which needs its sealedsecrets/status RBAC).
func waitForSynced(ctx context.Context, t *testing.T, dyn dynamic.Interface, ns, name string) {
	t.Helper()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var conds []any
	for {
		u, err := dyn.Resource(SealedSecretsGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("getting sealedsecret/%s/%s: %v", ns, name, err)
		}
		conds, _, _ = unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Synced" && m["status"] == "True" {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sealedsecret/%s/%s never Synced: conditions %v", ns, name, conds)
		case <-tick.C:
		}
	}
}

// dataDiff describes how got differs from want by key name and length
// only: the values must not reach the test output.
func dataDiff(got, want map[string][]byte) []string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("lacks key %q", k))
		case !bytes.Equal(g, want[k]):
			diffs = append(diffs, fmt.Sprintf("key %q differs from what was sealed (%d bytes, want %d)", k, len(g), len(want[k])))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("has unexpected key %q", k))
		}
	}
	return diffs
}

func TestDataDiff(t *testing.T) {
	value := []byte("canary-" + randomToken())
	same := append([]byte(nil), value...)
	if d := dataDiff(map[string][]byte{"k": same, "e": {}}, map[string][]byte{"k": value, "e": nil}); len(d) != 0 {
		t.Errorf("equal data: %q, want no differences", d)
	}
	got := dataDiff(
		map[string][]byte{"k": []byte("other-" + randomToken()), "x": nil},
		map[string][]byte{"k": value, "y": value})
	want := []string{
		`key "k" differs from what was sealed (38 bytes, want 39)`,
		`lacks key "y"`,
		`has unexpected key "x"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("dataDiff = %q, want %q", got, want)
	}
	for _, d := range got {
		if strings.Contains(d, string(value)) || strings.Contains(d, "other-") {
			t.Errorf("dataDiff prints a value: %q", d)
		}
	}
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatalf("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// TestSealedSecretsVersions keeps the controller that tests run, the CRD
// they install and the sealing code keyhole links (go.mod) at one version.
func TestSealedSecretsVersions(t *testing.T) {
	script, err := os.ReadFile("build-sealed-secrets.sh")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`SEALED_SECRETS_VERSION=\$\{SEALED_SECRETS_VERSION:-([^}]+)\}`).FindSubmatch(script); m == nil {
		t.Errorf("build-sealed-secrets.sh does not default SEALED_SECRETS_VERSION")
	} else if string(m[1]) != SealedSecretsVersion {
		t.Errorf("build-sealed-secrets.sh defaults SEALED_SECRETS_VERSION=%s, testenv expects %s", m[1], SealedSecretsVersion)
	}

	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^\s*github\.com/bitnami-labs/sealed-secrets (\S+)`).FindSubmatch(gomod); m == nil {
		t.Errorf("go.mod does not require github.com/bitnami-labs/sealed-secrets")
	} else if string(m[1]) != SealedSecretsVersion {
		t.Errorf("go.mod requires sealed-secrets %s, the test controller is %s", m[1], SealedSecretsVersion)
	}

	crd, err := os.ReadFile(filepath.Join("..", "..", sealedSecretsCRDFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(crd, []byte("github.com/bitnami-labs/sealed-secrets@"+SealedSecretsVersion+"\n")) {
		t.Errorf("%s does not say it was copied from sealed-secrets %s", sealedSecretsCRDFile, SealedSecretsVersion)
	}
	obj, err := readSealedSecretsCRD()
	if err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(obj.Object, "spec", "versions")
	if len(versions) != 1 || versions[0].(map[string]any)["name"] != SealedSecretsGVR.Version {
		t.Errorf("the CRD serves %v, want only %s", versions, SealedSecretsGVR.Version)
	}
}

func TestSealedSecretsControllerBinary(t *testing.T) {
	t.Run("missing from the cache", func(t *testing.T) {
		t.Setenv("KEYHOLE_SEALED_SECRETS_CONTROLLER", "")
		cache := t.TempDir()
		t.Setenv("XDG_CACHE_HOME", cache)
		_, err := SealedSecretsControllerBinary()
		if err == nil {
			t.Fatal("no error for an empty cache")
		}
		for _, want := range []string{filepath.Join(cache, "keyhole", "tools", "sealed-secrets-controller-"+SealedSecretsVersion, "controller"), "make sealed-secrets"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})
	t.Run("override", func(t *testing.T) {
		dir := t.TempDir()
		bin := filepath.Join(dir, "controller")
		t.Setenv("KEYHOLE_SEALED_SECRETS_CONTROLLER", bin)
		if _, err := SealedSecretsControllerBinary(); err == nil || !strings.Contains(err.Error(), "KEYHOLE_SEALED_SECRETS_CONTROLLER") {
			t.Errorf("missing override: error %v, want one naming KEYHOLE_SEALED_SECRETS_CONTROLLER", err)
		}
		if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := SealedSecretsControllerBinary(); err == nil {
			t.Errorf("a non-executable override is accepted")
		}
		if err := os.Chmod(bin, 0o700); err != nil {
			t.Fatal(err)
		}
		if got, err := SealedSecretsControllerBinary(); err != nil || got != bin {
			t.Errorf("SealedSecretsControllerBinary() = %q, %v; want %q", got, err, bin)
		}
	})
}
