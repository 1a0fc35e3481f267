package gitscan

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchBlob is one file of the benchmark's repository.
type benchBlob struct {
	path    string
	content []byte
}

// benchRepository builds the files of a realistic GitOps repository:
// mostly Deployments and Services (which the cheap filter mostly skips,
// though imagePullSecrets and secretKeyRef make many of them parse),
// ConfigMaps, Secrets, SealedSecrets, multi-document files, Helm
// templates and values files, and kustomizations.
func benchRepository(n int) []benchBlob {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]benchBlob, 0, n)
	for i := range n {
		app := fmt.Sprintf("app%d", i)
		var b strings.Builder
		path := fmt.Sprintf("apps/%s/%s.yaml", app, "deployment")
		switch x := r.IntN(100); {
		case x < 40:
			benchDeployment(&b, app, r.IntN(2) == 0)
		case x < 55:
			path = fmt.Sprintf("apps/%s/service.yaml", app)
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  labels: {app: %s}\nspec:\n  selector: {app: %s}\n  ports:\n    - {port: 80, targetPort: 8080}\n", app, app, app)
		case x < 65:
			path = fmt.Sprintf("apps/%s/configmap.yaml", app)
			fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  LOG_LEVEL: info\n  application.yaml: |\n    server:\n      port: 8080\n    spring:\n      datasource:\n        url: jdbc:postgresql://db/%s\n        password: ${DB_PASSWORD}\n", app, app)
		case x < 75:
			path = fmt.Sprintf("apps/%s/secret.yaml", app)
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: shop\ntype: Opaque\ndata:\n  password: %s\n  username: %s\nstringData:\n  token: KEYHOLE-CANARY-%d\n",
				app, base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "KEYHOLE-CANARY-%d", r.Int())), base64.StdEncoding.EncodeToString([]byte(app)), i)
		case x < 80:
			path = fmt.Sprintf("apps/%s/sealed.yaml", app)
			fmt.Fprintf(&b, "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: %s}\nspec:\n  encryptedData:\n    password: Ag%s==\n  template:\n    metadata: {name: %s}\n", app, strings.Repeat("QUJD", 90), app)
		case x < 88:
			path = fmt.Sprintf("apps/%s/all.yaml", app)
			benchDeployment(&b, app, true)
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: %s}\nstringData: {password: KEYHOLE-CANARY-%d}\n", app, app, i)
		case x < 93:
			path = fmt.Sprintf("charts/%s/templates/secret.yaml", app)
			fmt.Fprintf(&b, "{{- if .Values.secret.create }}\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ include \"%s.fullname\" . }}\n  labels:\n    {{- include \"%s.labels\" . | nindent 4 }}\ndata:\n  password: {{ .Values.password | default \"KEYHOLE-CANARY-%d\" | b64enc | quote }}\n  token: {{ .Values.token | b64enc }}\n{{- end }}\n", app, app, i)
		case x < 97:
			path = fmt.Sprintf("charts/%s/values.yaml", app)
			fmt.Fprintf(&b, "replicaCount: 2\nimage:\n  repository: registry.example/%s\n  tag: \"1.2.3\"\nservice: {type: ClusterIP, port: 80}\ningress:\n  enabled: false\npostgresql:\n  auth:\n    existingSecret: %s-db\n    password: KEYHOLE-CANARY-%d\nresources:\n  limits: {cpu: 500m, memory: 512Mi}\n", app, app, i)
		default:
			path = fmt.Sprintf("overlays/%s/kustomization.yaml", app)
			fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\nresources: [../../apps/%s]\nsecretGenerator:\n  - name: %s\n    literals: [password=KEYHOLE-CANARY-%d]\n    envs: [secrets.env]\n", app, app, app, i)
		}
		out = append(out, benchBlob{path, []byte(b.String())})
	}
	return out
}

func benchDeployment(b *strings.Builder, app string, pullSecrets bool) {
	fmt.Fprintf(b, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\n  labels: {app: %s}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: %s}\n  template:\n    metadata:\n      labels: {app: %s}\n    spec:\n", app, app, app, app)
	if pullSecrets {
		b.WriteString("      imagePullSecrets: [{name: regcred}]\n")
	}
	fmt.Fprintf(b, "      containers:\n        - name: %s\n          image: registry.example/%s:1.2.3\n          ports: [{containerPort: 8080}]\n          env:\n            - name: LOG_LEVEL\n              value: info\n            - name: DB_PASSWORD\n              valueFrom:\n                secretKeyRef: {name: %s-db, key: password}\n          resources:\n            requests: {cpu: 100m, memory: 128Mi}\n            limits: {cpu: 500m, memory: 512Mi}\n          readinessProbe:\n            httpGet: {path: /healthz, port: 8080}\n", app, app, app)
}

// BenchmarkScan scans a 2,000-file repository per iteration, so that the
// per-blob cost of a history scan is known: see the ns/blob metric.
func BenchmarkScan(b *testing.B) {
	blobs := benchRepository(2000)
	var size int64
	for _, bl := range blobs {
		size += int64(len(bl.content))
	}
	s := NewScanner(fixtureKey)
	b.SetBytes(size)
	b.ReportAllocs()
	leaks := 0
	for b.Loop() {
		leaks = 0
		for _, bl := range blobs {
			if !Candidate(bl.path) {
				b.Fatalf("%s is not a candidate", bl.path)
			}
			l, _ := s.Scan(bl.path, bl.content)
			leaks += len(l)
		}
	}
	if leaks == 0 {
		b.Fatal("the benchmark repository holds no leak")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(blobs)), "ns/blob")
}
