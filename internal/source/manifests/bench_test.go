package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// BenchmarkLoadSecrets reads a directory of small Secrets, one per file,
// the shape of a GitOps repository. It reports the cost per file; 100k
// files take 100k times that.
func BenchmarkLoadSecrets(b *testing.B) {
	const files = 2000
	dir := b.TempDir()
	for i := range files {
		sub := filepath.Join(dir, fmt.Sprintf("ns%02d", i%20))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		content := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s%d\n  namespace: ns%d\n"+
			"  labels: {app: web}\ntype: Opaque\ndata:\n  password: aHVudGVyMg==\n  user: YWRtaW4=\n", i, i%20)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("s%05d.yaml", i)), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		covs, problems := Load([]string{dir}, inventory.NewBuilder(), Options{})
		if covs[0].Objects["Secret"] != files || len(problems) > 0 {
			b.Fatalf("read %v, problems %v", covs[0].Objects, problems)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*files), "ns/file")
}

// BenchmarkLoadList reads one large kubectl get -o yaml List.
func BenchmarkLoadList(b *testing.B) {
	const items = 2000
	data := []byte("apiVersion: v1\nkind: List\nitems:\n")
	for i := range items {
		data = fmt.Appendf(data, "- apiVersion: v1\n  kind: Secret\n  metadata: {name: s%d, namespace: x}\n  data: {a: YQ==}\n", i)
	}
	b.ResetTimer()
	for b.Loop() {
		_, cov, _ := loadContent("list.yaml", data, false)
		if cov.Objects["Secret"] != items {
			b.Fatalf("read %v", cov.Objects)
		}
	}
}
