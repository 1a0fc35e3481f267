package vault

import (
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/migrate"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// canary is the value every test Secret carries: no output may hold it,
// nor its base64 form.
const canary = "KEYHOLE-CANARY-vault-7f3a"

// binaryCanary is not UTF-8, so it is stored base64-encoded.
var binaryCanary = []byte{0xff, 0xfe, 'K', 'H', 0x00, 0x9c}

func leaks() []string {
	return []string{canary, base64.StdEncoding.EncodeToString([]byte(canary)), base64.StdEncoding.EncodeToString(binaryCanary)}
}

func assertNoLeak(t *testing.T, what, s string) {
	t.Helper()
	for _, l := range leaks() {
		if strings.Contains(s, l) {
			t.Fatalf("%s contains a Secret value (%q)", what, l)
		}
	}
}

func secret(ns, name string, typ corev1.SecretType, data map[string][]byte) migrate.Secret {
	return migrate.Secret{
		Secret: &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"team": "payments"}},
			Type:       typ,
			Data:       data,
		},
		Origin: migrate.Origin{Live: true},
	}
}

func opts(c Consumer) Options {
	return Options{Address: "https://vault.example:8200/", Mount: "secret", PathTemplate: DefaultPathTemplate, Consumer: c}
}

func TestNewPlan(t *testing.T) {
	db := secret("shop", "db", corev1.SecretTypeOpaque, map[string][]byte{"password": []byte(canary), "user": []byte("app"), "keystore": binaryCanary})
	tls := secret("shop", "web-tls", corev1.SecretTypeTLS, map[string][]byte{"tls.crt": []byte(canary), "tls.key": []byte(canary)})
	other := secret("billing", "db", "", map[string][]byte{"password": []byte(canary)})
	tests := []struct {
		name     string
		secrets  []migrate.Secret
		template string
		mount    string
		want     []string // "ref path apiPath keys"
		skipped  []string
		err      string
	}{
		{
			name:    "default template, sorted by namespace and name",
			secrets: []migrate.Secret{tls, db, other},
			want: []string{
				"billing/db billing/db secret/data/billing/db password",
				"shop/db shop/db secret/data/shop/db keystore:base64,password,user",
				"shop/web-tls shop/web-tls secret/data/shop/web-tls tls.crt,tls.key",
			},
		},
		{
			name:     "template sees Type and Labels",
			secrets:  []migrate.Secret{tls},
			template: `k8s/{{.Labels.team}}/{{.Namespace}}/{{.Name}}-{{if eq .Type "kubernetes.io/tls"}}tls{{else}}x{{end}}`,
			mount:    "kv/apps",
			want:     []string{"shop/web-tls k8s/payments/shop/web-tls-tls kv/apps/data/k8s/payments/shop/web-tls-tls tls.crt,tls.key"},
		},
		{
			name:     "a missing label is an error",
			secrets:  []migrate.Secret{db},
			template: "{{.Labels.missing}}/{{.Name}}",
			err:      `map has no entry for key "missing"`,
		},
		{
			name:     "empty segment",
			secrets:  []migrate.Secret{db},
			template: "{{.Namespace}}//{{.Name}}",
			err:      `secret shop/db: --path-template rendered "shop//db" has an empty segment`,
		},
		{
			name:     "dot-dot segment",
			secrets:  []migrate.Secret{db},
			template: "{{.Namespace}}/../{{.Name}}",
			err:      `".." segment`,
		},
		{
			name:     "characters outside the safe set",
			secrets:  []migrate.Secret{db},
			template: "{{.Namespace}}/{{.Name}} x",
			err:      `segment "db x" may hold only`,
		},
		{
			name:     "unknown field",
			secrets:  []migrate.Secret{db},
			template: "{{.Cluster}}/{{.Name}}",
			err:      "can't evaluate field Cluster",
		},
		{
			name:     "two Secrets, one path",
			secrets:  []migrate.Secret{db, other},
			template: "{{.Name}}",
			err:      "secrets billing/db and shop/db both render to path secret/db",
		},
		{
			name:    "bad mount",
			secrets: []migrate.Secret{db},
			mount:   "/secret/",
			err:     `--kv-mount "/secret/" has an empty segment`,
		},
		{
			name: "skipped Secrets",
			secrets: []migrate.Secret{
				secret("kube-system", "sa-token", corev1.SecretTypeServiceAccountToken, map[string][]byte{"token": []byte(canary)}),
				secret("shop", "sh.helm.release.v1.shop.v1", "helm.sh/release.v1", map[string][]byte{"release": []byte(canary)}),
				secret("shop", "empty", corev1.SecretTypeOpaque, nil),
				func() migrate.Secret {
					s := secret("shop", "from-eso", corev1.SecretTypeOpaque, map[string][]byte{"k": []byte(canary)})
					s.Secret.Annotations = map[string]string{"reconcile.external-secrets.io/data-hash": "abc"}
					return s
				}(),
				func() migrate.Secret {
					// Live, owned by a SealedSecret: Clean dropped the
					// ownerReference, Origin kept it.
					s := secret("shop", "unsealed", corev1.SecretTypeOpaque, map[string][]byte{"k": []byte(canary)})
					s.Origin.ControlledBy = "SealedSecret/unsealed"
					return s
				}(),
				db,
			},
			want: []string{"shop/db shop/db secret/data/shop/db keystore:base64,password,user"},
			skipped: []string{
				"kube-system/sa-token: type kubernetes.io/service-account-token: a service account token, which the token controller writes",
				"shop/empty: no data keys: nothing to move",
				"shop/from-eso: already written by the External Secrets Operator",
				"shop/sh.helm.release.v1.shop.v1: type helm.sh/release.v1: Helm's release record, which Helm writes",
				"shop/unsealed: already unsealed from SealedSecret/unsealed",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts(ConsumerESO)
			if tt.template != "" {
				o.PathTemplate = tt.template
			}
			if tt.mount != "" {
				o.Mount = tt.mount
			}
			p, err := NewPlan(tt.secrets, o)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				assertNoLeak(t, "error", err.Error())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range p.Entries {
				var keys []string
				for _, k := range e.Keys {
					if k.Encoding != EncodingNone {
						keys = append(keys, k.Name+":"+string(k.Encoding))
					} else {
						keys = append(keys, k.Name)
					}
				}
				got = append(got, fmt.Sprintf("%s %s %s %s", e.Ref(), e.Path, e.APIPath, strings.Join(keys, ",")))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			var skipped []string
			for _, s := range p.Skipped {
				skipped = append(skipped, s.Ref+": "+s.Reason)
			}
			if strings.Join(skipped, "\n") != strings.Join(tt.skipped, "\n") {
				t.Errorf("skipped:\n%s\nwant:\n%s", strings.Join(skipped, "\n"), strings.Join(tt.skipped, "\n"))
			}
			if p.Address != "https://vault.example:8200" {
				t.Errorf("address %q: the trailing slash should be trimmed", p.Address)
			}
		})
	}
}

func TestCheckOptions(t *testing.T) {
	tests := []struct {
		change func(*Options)
		err    string
	}{
		{func(*Options) {}, ""},
		{func(o *Options) { o.Consumer = "csi" }, `--consumer: unknown consumer "csi"`},
		{func(o *Options) { o.Address = "" }, "--vault-addr"},
		{func(o *Options) { o.Address = "vault:8200" }, `--vault-addr: "vault:8200" is not an http or https URL`},
		{func(o *Options) { o.Address = "http://127.0.0.1:8200" }, ""},
		{func(o *Options) { o.PathTemplate = "{{.Name" }, "--path-template: template: path:1: unclosed action"},
		{func(o *Options) { o.PathTemplate = "" }, "--path-template is empty"},
		{func(o *Options) { o.Mount = "" }, "--kv-mount is empty"},
	}
	for _, tt := range tests {
		o := opts(ConsumerESO)
		tt.change(&o)
		err := CheckOptions(o)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("CheckOptions(%+v) = %v, want %q", o, err, tt.err)
		}
	}
}

// TestValuesNeverPrinted formats a plan every way it can be formatted,
// including fmt's %+v and %#v of its entries, and looks for the values.
func TestValuesNeverPrinted(t *testing.T) {
	for _, c := range Consumers {
		t.Run(string(c), func(t *testing.T) {
			p, files := demoFiles(t, c)
			for _, f := range files {
				assertNoLeak(t, f.Path, string(f.Data))
			}
			assertNoLeak(t, "plan text", planText(t, p, files, ""))
			assertNoLeak(t, "%+v of an entry", fmt.Sprintf("%+v %#v %v", p.Entries[0], *p.Entries[0], p))
		})
	}
}

// demoPlan is two Secrets of one namespace, one with a value that is not
// UTF-8, and a Deployment reading both as environment variables.
func demoPlan(t *testing.T, c Consumer) *Plan {
	t.Helper()
	p, err := NewPlan([]migrate.Secret{
		secret("shop", "db", corev1.SecretTypeOpaque, map[string][]byte{"password": []byte(canary), "username": []byte("app"), "keystore.p12": binaryCanary}),
		secret("shop", "api-tls", corev1.SecretTypeTLS, map[string][]byte{"tls.crt": []byte(canary), "tls.key": []byte(canary)}),
	}, opts(c))
	if err != nil {
		t.Fatal(err)
	}
	p.AddWorkloads([]Workload{demoDeployment()}, []string{"cannot list pods in namespace shop (forbidden: needs list on pods)"})
	return p
}

// demoFiles is the demo plan for c and its files.
func demoFiles(t *testing.T, c Consumer) (*Plan, []File) {
	t.Helper()
	p := demoPlan(t, c)
	files, err := p.Files()
	if err != nil {
		t.Fatal(err)
	}
	return p, files
}

// planText is the plan for people, with files written under dir (or
// following, when dir is empty).
func planText(t *testing.T, p *Plan, files []File, dir string) string {
	t.Helper()
	var b strings.Builder
	if err := p.WriteText(&b, files, dir, false); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestGolden holds every file of the demo plan, for each consumer, to
// testdata/golden/<consumer>/; -update rewrites them.
func TestGolden(t *testing.T) {
	for _, c := range Consumers {
		t.Run(string(c), func(t *testing.T) {
			p, files := demoFiles(t, c)
			files = append(files, File{Path: "plan.txt", Data: []byte(planText(t, p, files, "out"))})
			dir := filepath.Join("testdata", "golden", string(c))
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range files {
				golden := filepath.Join(dir, filepath.FromSlash(f.Path))
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, f.Data, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if string(want) != string(f.Data) {
					t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", f.Path, golden, f.Data)
				}
			}
		})
	}
}

// decodeAll parses a multi-document YAML file into objects.
func decodeAll(t *testing.T, f File) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(string(f.Data), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

func fileByPath(t *testing.T, files []File, path string) File {
	t.Helper()
	for _, f := range files {
		if f.Path == path {
			return f
		}
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Path)
	}
	t.Fatalf("no file %s among %v", path, names)
	return File{}
}

func str(t *testing.T, o *unstructured.Unstructured, fields ...string) string {
	t.Helper()
	v, found, err := unstructured.NestedFieldNoCopy(o.Object, fields...)
	if err != nil || !found {
		t.Fatalf("%s %s: no field %s", o.GetKind(), o.GetName(), strings.Join(fields, "."))
	}
	return fmt.Sprint(v)
}

func TestESOManifests(t *testing.T) {
	p, files := demoFiles(t, ConsumerESO)
	store := decodeAll(t, fileByPath(t, files, "eso/cluster-secret-store.yaml"))[0]
	if gvk := store.GroupVersionKind().String(); gvk != "external-secrets.io/v1, Kind=ClusterSecretStore" {
		t.Errorf("store GVK %s", gvk)
	}
	for path, want := range map[string]string{
		"spec.provider.vault.server":                                 "https://vault.example:8200",
		"spec.provider.vault.path":                                   "secret",
		"spec.provider.vault.version":                                "v2",
		"spec.provider.vault.auth.kubernetes.mountPath":              "kubernetes",
		"spec.provider.vault.auth.kubernetes.role":                   "fill-in-vault-role",
		"spec.provider.vault.auth.kubernetes.serviceAccountRef.name": "fill-in-service-account",
	} {
		if got := str(t, store, strings.Split(path, ".")...); got != want {
			t.Errorf("store %s = %q, want %q", path, got, want)
		}
	}
	es := decodeAll(t, fileByPath(t, files, "eso/shop/db.external-secret.yaml"))[0]
	if gvk := es.GroupVersionKind().String(); gvk != "external-secrets.io/v1, Kind=ExternalSecret" {
		t.Errorf("ExternalSecret GVK %s", gvk)
	}
	if es.GetNamespace() != "shop" || es.GetName() != "db" {
		t.Errorf("ExternalSecret %s/%s", es.GetNamespace(), es.GetName())
	}
	for path, want := range map[string]string{
		"spec.secretStoreRef.kind":   "ClusterSecretStore",
		"spec.secretStoreRef.name":   store.GetName(),
		"spec.target.name":           "db",
		"spec.target.creationPolicy": "Owner",
	} {
		if got := str(t, es, strings.Split(path, ".")...); got != want {
			t.Errorf("ExternalSecret %s = %q, want %q", path, got, want)
		}
	}
	data, _, _ := unstructured.NestedSlice(es.Object, "spec", "data")
	var got []string
	for _, d := range data {
		m := d.(map[string]any)
		ref := m["remoteRef"].(map[string]any)
		got = append(got, fmt.Sprintf("%s<-%s#%s%v", m["secretKey"], ref["key"], ref["property"], ref["decodingStrategy"]))
	}
	want := "keystore.p12<-shop/db#keystore.p12Base64 password<-shop/db#password<nil> username<-shop/db#username<nil>"
	if strings.Join(got, " ") != want {
		t.Errorf("ExternalSecret data %v, want %s", got, want)
	}
	tls := decodeAll(t, fileByPath(t, files, "eso/shop/api-tls.external-secret.yaml"))[0]
	if got := str(t, tls, "spec", "target", "template", "type"); got != "kubernetes.io/tls" {
		t.Errorf("TLS ExternalSecret template type %q", got)
	}
	assertNote(t, p, "ESO still writes a Kubernetes Secret")
}

func assertNote(t *testing.T, p *Plan, text string) {
	t.Helper()
	for _, n := range p.Notes {
		if strings.Contains(n, text) {
			return
		}
	}
	t.Errorf("no note says %q: %q", text, p.Notes)
}

func TestVSOManifests(t *testing.T) {
	p, files := demoFiles(t, ConsumerVSO)
	objs := decodeAll(t, fileByPath(t, files, "vso/shop/vault-auth.yaml"))
	if len(objs) != 2 {
		t.Fatalf("vault-auth.yaml has %d objects, want VaultConnection and VaultAuth", len(objs))
	}
	conn, auth := objs[0], objs[1]
	if gvk := conn.GroupVersionKind().String(); gvk != "secrets.hashicorp.com/v1beta1, Kind=VaultConnection" {
		t.Errorf("GVK %s", gvk)
	}
	if got := str(t, conn, "spec", "address"); got != "https://vault.example:8200" {
		t.Errorf("VaultConnection address %q", got)
	}
	if gvk := auth.GroupVersionKind().String(); gvk != "secrets.hashicorp.com/v1beta1, Kind=VaultAuth" {
		t.Errorf("GVK %s", gvk)
	}
	for path, want := range map[string]string{
		"spec.method":                    "kubernetes",
		"spec.mount":                     "kubernetes",
		"spec.vaultConnectionRef":        conn.GetName(),
		"spec.kubernetes.role":           "fill-in-vault-role",
		"spec.kubernetes.serviceAccount": "fill-in-service-account",
	} {
		if got := str(t, auth, strings.Split(path, ".")...); got != want {
			t.Errorf("VaultAuth %s = %q, want %q", path, got, want)
		}
	}
	vss := decodeAll(t, fileByPath(t, files, "vso/shop/db.vault-static-secret.yaml"))[0]
	if gvk := vss.GroupVersionKind().String(); gvk != "secrets.hashicorp.com/v1beta1, Kind=VaultStaticSecret" {
		t.Errorf("GVK %s", gvk)
	}
	for path, want := range map[string]string{
		"spec.type":                  "kv-v2",
		"spec.mount":                 "secret",
		"spec.path":                  "shop/db",
		"spec.vaultAuthRef":          auth.GetName(),
		"spec.destination.name":      "db",
		"spec.destination.create":    "true",
		"spec.destination.overwrite": "true",
		"spec.destination.transformation.templates.keystore.p12.text": `{{- get .Secrets "keystore.p12" | b64dec -}}`,
	} {
		fields := strings.Split(path, ".")
		if strings.HasSuffix(path, "keystore.p12.text") {
			fields = []string{"spec", "destination", "transformation", "templates", "keystore.p12", "text"}
		}
		if got := str(t, vss, fields...); got != want {
			t.Errorf("VaultStaticSecret %s = %q, want %q", path, got, want)
		}
	}
	targets, _, _ := unstructured.NestedSlice(vss.Object, "spec", "rolloutRestartTargets")
	if fmt.Sprint(targets) != "[map[kind:Deployment name:api]]" {
		t.Errorf("rolloutRestartTargets %v, want the api Deployment", targets)
	}
	tls := decodeAll(t, fileByPath(t, files, "vso/shop/api-tls.vault-static-secret.yaml"))[0]
	if got := str(t, tls, "spec", "destination", "type"); got != "kubernetes.io/tls" {
		t.Errorf("TLS destination type %q", got)
	}
	if _, found, _ := unstructured.NestedMap(tls.Object, "spec", "destination", "transformation"); found {
		t.Errorf("a Secret with only UTF-8 values needs no transformation")
	}
	assertNote(t, p, "VSO still writes a Kubernetes Secret")
}

func TestAgentAnnotations(t *testing.T) {
	p, files := demoFiles(t, ConsumerAgent)
	snippet := decodeAll(t, fileByPath(t, files, "agent/shop/db.annotations.yaml"))[0]
	ann, _, _ := unstructured.NestedStringMap(snippet.Object, "spec", "template", "metadata", "annotations")
	want := map[string]string{
		"vault.hashicorp.com/agent-inject":                          "true",
		"vault.hashicorp.com/role":                                  "fill-in-vault-role",
		"vault.hashicorp.com/agent-inject-secret-db-password":       "secret/data/shop/db",
		"vault.hashicorp.com/agent-inject-template-db-password":     `{{- with secret "secret/data/shop/db" -}}{{ index .Data.data "password" }}{{- end -}}`,
		"vault.hashicorp.com/agent-inject-secret-db-keystore.p12":   "secret/data/shop/db",
		"vault.hashicorp.com/agent-inject-template-db-keystore.p12": `{{- with secret "secret/data/shop/db" -}}{{ index .Data.data "keystore.p12" | base64Decode }}{{- end -}}`,
		"vault.hashicorp.com/agent-inject-secret-db-username":       "secret/data/shop/db",
		"vault.hashicorp.com/agent-inject-template-db-username":     `{{- with secret "secret/data/shop/db" -}}{{ index .Data.data "username" }}{{- end -}}`,
	}
	if fmt.Sprint(ann) != fmt.Sprint(want) {
		t.Errorf("annotations:\n%v\nwant:\n%v", ann, want)
	}
	for k, v := range ann {
		if strings.HasPrefix(k, "vault.hashicorp.com/agent-inject-secret-") && !strings.Contains(v, "/data/") {
			t.Errorf("%s: %q is not a KV v2 data path", k, v)
		}
	}
	assertNote(t, p, "never sits in etcd")
}

func TestAgentFileFor(t *testing.T) {
	tests := []struct{ secret, key, id, name string }{
		{"db", "password", "db-password", "db-password"},
		{"db", ".dockerconfigjson", "db-.dockerconfigjson", "db-.dockerconfigjson"},
		// An annotation name may not end in '.', and has at most 63
		// characters: both get a hashed suffix and a file annotation.
		{"db", "weird.", "db-weird-", "db-weird."},
		{"a-rather-long-secret-name", "and-an-even-longer-key-name", "a-rather-long-secret-name-and-an", "a-rather-long-secret-name-and-an-even-longer-key-name"},
	}
	for _, tt := range tests {
		f := agentFileFor(tt.secret, tt.key)
		if !strings.HasPrefix(f.id, tt.id) || f.name != tt.name {
			t.Errorf("agentFileFor(%q, %q) = %+v, want id %s..., name %s", tt.secret, tt.key, f, tt.id, tt.name)
		}
		if !validAnnotation("agent-inject-template-"+f.id) || !validAnnotation("agent-inject-secret-"+f.id) {
			t.Errorf("agentFileFor(%q, %q): id %q is not a valid annotation suffix", tt.secret, tt.key, f.id)
		}
		a := agentAnnotations(&Entry{Name: tt.secret, APIPath: "secret/data/x"}, []Key{{Name: tt.key}})
		if (f.id != f.name) != (a[agentAnnotation+"agent-inject-file-"+f.id] == f.name) {
			t.Errorf("agentFileFor(%q, %q): file annotation %q", tt.secret, tt.key, a[agentAnnotation+"agent-inject-file-"+f.id])
		}
	}
}
