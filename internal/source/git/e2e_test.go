package git

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/gitscan"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestRealScanner runs the whole chain with gitscan's Scanner: YAML
// stringData, JSON data, a List item, flow style, a value added in a
// merge and one deleted later; a SealedSecret's encryptedData is not a
// leak.
func TestRealScanner(t *testing.T) {
	r := newTestRepo(t)
	r.write("deploy/db.yaml", `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
stringData:
  password: `+canary+`-yaml-stringdata
`)
	r.write("deploy/api.json", fmt.Sprintf(`{"apiVersion": "v1", "kind": "Secret",
 "metadata": {"name": "api", "namespace": "prod"},
 "data": {"token": %q}}
`, b64(canary+"-json-data")))
	r.write("deploy/sealed.yaml", `apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata: {name: sealed, namespace: prod}
spec:
  encryptedData:
    password: AgBy3i4OJSWK+PiTySYZZA9rO43cGDEq
`)
	first := r.commit("manifests")
	r.git("checkout", "-q", "-b", "side")
	r.write("lists/list.yaml", fmt.Sprintf(`apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Secret, metadata: {name: flow, namespace: dev}, data: {key: %s}}
`, b64(canary+"-flow-list")))
	side := r.commit("list")
	r.git("checkout", "-q", "main")
	r.write("README.md", "x")
	r.commit("readme")
	r.merge("side")
	r.git("rm", "-q", "deploy/api.json")
	removed := r.commit("remove api")

	key := bytes.Repeat([]byte{7}, gitscan.MinKeyLen)
	res, err := Scan(context.Background(), r.dir, NewDetector(gitscan.NewScanner(key)), Options{History: true})
	if err != nil {
		t.Fatal(err)
	}
	assertNoCanary(t, res)
	if len(res.Problems) != 0 {
		t.Errorf("problems: %v", res.Problems)
	}
	want := map[string]struct {
		object, key, commit, removed string
		head                         bool
	}{
		"deploy/db.yaml":  {"Secret/prod/db", "password", first, "", true},
		"deploy/api.json": {"Secret/prod/api", "token", first, removed, false},
		"lists/list.yaml": {"Secret/dev/flow", "key", side, "", true},
	}
	if len(res.Findings) != len(want) {
		t.Fatalf("want %d findings, got %s", len(want), describe(res))
	}
	for _, f := range res.Findings {
		w, ok := want[f.Path]
		if !ok || f.Leak.Object.String() != w.object || f.Leak.Key != w.key || f.Commit != w.commit ||
			f.RemovedIn != w.removed || f.PresentAtHead != w.head || len(f.Leak.Digest) != 32 {
			t.Errorf("%s: got %+v, want %+v", f.Path, f, w)
		}
		if f.Leak.Rule != finding.PlaintextSecretInGit {
			t.Errorf("%s: rule %s", f.Path, f.Leak.Rule)
		}
	}

	// The same repository, the index and the working tree, agree on
	// what HEAD holds.
	for _, opts := range []Options{{Staged: true}, {}} {
		snap, err := Scan(context.Background(), r.dir, NewDetector(gitscan.NewScanner(key)), opts)
		if err != nil {
			t.Fatal(err)
		}
		assertNoCanary(t, snap)
		if len(snap.Findings) != 2 {
			t.Errorf("%+v: %s", opts, describe(snap))
		}
		for _, f := range snap.Findings {
			if !f.PresentAtHead {
				t.Errorf("%+v: %s not at HEAD", opts, f.Path)
			}
		}
	}
}
