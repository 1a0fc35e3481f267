package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOfflineLayersManifestsOverBootstrap: a manifest redefining a
// bootstrap role replaces it, with a note, and the bootstrap layer can be
// left out.
func TestOfflineLayersManifestsOverBootstrap(t *testing.T) {
	dir := t.TempDir()
	view := `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: view}
rules:
- {apiGroups: [""], resources: ["secrets"], verbs: ["get"]}
`
	path := filepath.Join(dir, "view.yaml")
	if err := os.WriteFile(path, []byte(view), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := Offline([]string{path}, OfflineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cr := in.Inventory.ClusterRole("view")
	if cr == nil || cr.AggregationRule != nil || len(cr.Rules) != 1 {
		t.Fatalf("view = %+v, want the manifest's", cr)
	}
	if in.Inventory.ClusterRole("edit") == nil {
		t.Error("the bootstrap layer is missing")
	}
	notes := strings.Join(in.Coverage[len(in.Coverage)-1].Notes, "\n")
	if !strings.Contains(notes, "ClusterRole/view in "+path+":1 replaces the bootstrap policy's") {
		t.Errorf("no replacement note: %q", notes)
	}
	bare, err := Offline([]string{path}, OfflineOptions{NoBootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	if bare.Inventory.ClusterRole("edit") != nil || len(bare.Coverage) != 1 {
		t.Error("--no-bootstrap-policy still layered the bootstrap policy")
	}
}
