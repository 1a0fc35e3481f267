package git

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// benchShape sizes a generated repository.
type benchShape struct {
	Commits    int // at least this many commits, merges and side branches included
	Manifests  int // manifest files (YAML and JSON) besides the planted ones
	Plants     int // planted Secrets
	BigBlobs   int // large binary non-manifest blobs
	BigBlobLen int
	Seed       uint64
}

// Plant kinds: every way of writing a Secret the issue lists, plus where
// it was put in history.
const (
	plantYAMLData       = "yaml-data"
	plantYAMLStringData = "yaml-stringData"
	plantYAMLKeyOrder   = "yaml-data-kind-last"
	plantJSONData       = "json-data"
	plantJSONStringData = "json-stringData"
	plantFlow           = "yaml-flow"
	plantList           = "list-item"
	plantMultiDoc       = "multi-document"
	plantMerge          = "merge-commit"    // only in a merge commit's own diff
	plantDeleted        = "deleted-later"   // gone at HEAD
	plantBranch         = "unmerged-branch" // only on a branch never merged
)

var plantKinds = []string{
	plantYAMLData, plantYAMLStringData, plantYAMLKeyOrder, plantJSONData, plantJSONStringData,
	plantFlow, plantList, plantMultiDoc, plantMerge, plantDeleted, plantBranch,
}

// plant is one planted Secret value.
type plant struct {
	Path  string
	Kind  string
	Key   string
	Value string // the plaintext value
}

// benchGen writes a git fast-import stream: far faster than one git
// commit per commit, and as deterministic (fixed seed, fixed dates).
type benchGen struct {
	w      *bufio.Writer
	rng    *rand.Rand
	mark   int
	when   int64
	plants []plant
}

func (g *benchGen) nextMark() int { g.mark++; return g.mark }

// op is one file change; a nil content deletes the path.
type op struct {
	path    string
	content *string
}

func put(path, content string) op { return op{path: path, content: &content} }
func del(path string) op          { return op{path: path} }

// commit writes a commit on ref and returns its mark. from and merge are
// parent marks (0 for none).
func (g *benchGen) commit(ref string, from, merge int, msg string, ops []op) int {
	m := g.nextMark()
	g.when += 60
	fmt.Fprintf(g.w, "commit %s\nmark :%d\n", ref, m)
	fmt.Fprintf(g.w, "author Bench <bench@example.com> %d +0000\ncommitter Bench <bench@example.com> %d +0000\n", g.when, g.when)
	fmt.Fprintf(g.w, "data %d\n%s\n", len(msg), msg)
	if from != 0 {
		fmt.Fprintf(g.w, "from :%d\n", from)
	}
	if merge != 0 {
		fmt.Fprintf(g.w, "merge :%d\n", merge)
	}
	for _, o := range ops {
		if o.content == nil {
			fmt.Fprintf(g.w, "D %s\n", o.path)
			continue
		}
		fmt.Fprintf(g.w, "M 100644 inline %s\ndata %d\n%s\n", o.path, len(*o.content), *o.content)
	}
	fmt.Fprintln(g.w)
	return m
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func (g *benchGen) token(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[g.rng.IntN(len(alnum))]
	}
	return string(b)
}

// noise is version v of one ordinary manifest: a Deployment, a Service, a
// ConfigMap without credentials, or a JSON ServiceAccount, ~1 KB.
func noise(path string, v int) string {
	app := strings.TrimSuffix(filepath.Base(filepath.Dir(path)), "/")
	switch {
	case strings.HasSuffix(path, "deployment.yaml"):
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: team-%[3]d
  labels: {app: %[1]s, tier: backend}
spec:
  replicas: %[4]d
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      serviceAccountName: %[1]s
      containers:
      - name: main
        image: registry.example.com/%[1]s:v1.%[2]d.0
        ports: [{containerPort: 8080}]
        env:
        - name: LOG_LEVEL
          value: info
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: %[1]s-db, key: password}}
        resources:
          requests: {cpu: 100m, memory: 128Mi}
          limits: {cpu: "1", memory: 512Mi}
`, app, v, len(app)%7, 1+v%5)
	case strings.HasSuffix(path, "service.yaml"):
		return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  annotations: {revision: "%[2]d"}
spec:
  selector: {app: %[1]s}
  ports:
  - port: 80
    targetPort: 8080
`, app, v)
	case strings.HasSuffix(path, ".json"):
		return fmt.Sprintf(`{"apiVersion": "v1", "kind": "ServiceAccount",
 "metadata": {"name": %q, "annotations": {"revision": "%d"}}}
`, app, v)
	default:
		return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: %[1]s-config
data:
  LOG_LEVEL: info
  FEATURE_FLAGS: "a,b,c"
  CACHE_TTL: "%[2]ds"
  UPSTREAM_URL: http://%[1]s.internal:8080
`, app, v)
	}
}

// planted writes one Secret of kind k holding value under key.
func planted(k, name, key, value string) string {
	b := base64.StdEncoding.EncodeToString([]byte(value))
	switch k {
	case plantYAMLStringData:
		return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\ntype: Opaque\nstringData:\n  %s: %s\n", name, key, value)
	case plantYAMLKeyOrder:
		return fmt.Sprintf("data:\n  %s: %s\nmetadata:\n  name: %s\napiVersion: v1\nkind: Secret\n", key, b, name)
	case plantJSONData:
		return fmt.Sprintf("{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Secret\",\n  \"metadata\": {\"name\": %q},\n  \"data\": {%q: %q}\n}\n", name, key, b)
	case plantJSONStringData:
		return fmt.Sprintf("{\"kind\": \"Secret\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": %q}, \"stringData\": {%q: %q}}\n", name, key, value)
	case plantFlow:
		return fmt.Sprintf("{apiVersion: v1, kind: Secret, metadata: {name: %s}, data: {%s: %s}}\n", name, key, b)
	case plantList:
		return fmt.Sprintf("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: %s-cm}\n  data: {mode: fast}\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: %s\n  data:\n    %s: %s\n", name, name, key, b)
	case plantMultiDoc:
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-cm\ndata:\n  mode: fast\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\ndata:\n  %s: %s\n", name, name, key, b)
	default: // yaml-data, and the history kinds
		return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: prod\ntype: Opaque\ndata:\n  %s: %s\n", name, key, b)
	}
}

// genBenchRepo creates a repository in dir (which must not exist) and
// returns the planted values.
//
// History: commits on main change one to three files (mostly manifests,
// some source files); every 200 main commits a side branch of 8 commits
// is merged with --no-ff; a few branches are never merged. Plants are
// spread evenly over history, one Secret per file; "merge-commit" plants
// appear only in a merge commit's diff (an "evil merge"), "deleted-later"
// plants are deleted 40 commits on, "unmerged-branch" plants live on a
// branch that is never merged. Large random blobs (non-manifests) come in
// at even intervals.
func genBenchRepo(dir string, s benchShape) ([]plant, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	run := func(stdin io.Reader, args ...string) error {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = gitEnv(os.Environ(), false)
		cmd.Stdin = stdin
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", args[0], err, out)
		}
		return nil
	}
	if err := run(nil, "init", "-q", "-b", "main"); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(pr, "fast-import", "--quiet") }()

	g := &benchGen{w: bufio.NewWriterSize(pw, 1<<20), rng: rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15)), when: 1600000000}
	genErr := g.history(s)
	if err := g.w.Flush(); err != nil && genErr == nil {
		genErr = err
	}
	pw.Close()
	if err := <-done; err != nil {
		return nil, err
	}
	if genErr != nil {
		return nil, genErr
	}
	sort.Slice(g.plants, func(i, j int) bool { return g.plants[i].Path < g.plants[j].Path })
	return g.plants, nil
}

func (g *benchGen) history(s benchShape) error {
	// The manifests: apps of four files each, and some source files.
	var manifests []string
	for i := 0; len(manifests) < s.Manifests; i++ {
		app := fmt.Sprintf("apps/svc-%04d/", i)
		manifests = append(manifests, app+"deployment.yaml", app+"service.yaml", app+"configmap.yaml", app+"serviceaccount.json")
	}
	manifests = manifests[:s.Manifests]
	sources := make([]string, s.Manifests/10+1)
	for i := range sources {
		sources[i] = fmt.Sprintf("src/pkg%03d/file.go", i)
	}
	versions := map[string]int{}
	bump := func(path string) op {
		versions[path]++
		if strings.HasPrefix(path, "src/") {
			return put(path, fmt.Sprintf("package pkg\n\n// Version %d.\nconst Version = %d\n", versions[path], versions[path]))
		}
		return put(path, noise(path, versions[path]))
	}

	// The first commit holds every manifest, as an import would.
	var first []op
	for _, p := range manifests {
		first = append(first, bump(p))
	}
	head := g.commit("refs/heads/main", 0, 0, "import", first)
	commits := 1

	// Plans, by main commit number.
	mainCommits := s.Commits * 200 / (200 + 9) // the rest are side commits and merges
	plantAt := map[int][]int{}                 // main commit → plant numbers
	for i := range s.Plants {
		at := 1 + (2*i+1)*(mainCommits-50)/(2*s.Plants)
		plantAt[at] = append(plantAt[at], i)
	}
	bigAt := map[int]int{}
	for i := range s.BigBlobs {
		bigAt[1+(2*i+1)*mainCommits/(2*s.BigBlobs)] = i
	}
	deleteAt := map[int][]string{}
	var pendingMerge []op // planted in the next merge commit
	branchNo := 0

	for n := 1; commits < s.Commits; n++ {
		var ops []op
		for range 1 + g.rng.IntN(3) {
			if g.rng.IntN(10) < 7 {
				ops = append(ops, bump(manifests[g.rng.IntN(len(manifests))]))
			} else {
				ops = append(ops, bump(sources[g.rng.IntN(len(sources))]))
			}
		}
		if i, ok := bigAt[n]; ok {
			blob := make([]byte, s.BigBlobLen)
			for j := range blob {
				blob[j] = byte(g.rng.Uint32())
			}
			ops = append(ops, put(fmt.Sprintf("assets/model-%d.bin", i), string(blob)))
		}
		for _, p := range deleteAt[n] {
			ops = append(ops, del(p))
		}
		for _, i := range plantAt[n] {
			kind := plantKinds[i%len(plantKinds)]
			key := []string{"password", "api-token", "client_secret", "db-pass"}[i%4]
			p := plant{Kind: kind, Key: key, Value: "kh" + g.token(22)}
			name := fmt.Sprintf("plant-%03d", i)
			ext := ".yaml"
			if kind == plantJSONData || kind == plantJSONStringData {
				ext = ".json"
			}
			p.Path = fmt.Sprintf("deploy/%s/%s%s", kind, name, ext)
			content := put(p.Path, planted(kind, name, key, p.Value))
			g.plants = append(g.plants, p)
			switch kind {
			case plantMerge:
				pendingMerge = append(pendingMerge, content)
			case plantBranch:
				branchNo++
				ref := fmt.Sprintf("refs/heads/wip-%d", branchNo)
				g.commit(ref, head, 0, "wip: "+name, []op{content})
				commits++
			case plantDeleted:
				ops = append(ops, content)
				deleteAt[n+40] = append(deleteAt[n+40], p.Path)
			default:
				ops = append(ops, content)
			}
		}
		head = g.commit("refs/heads/main", head, 0, fmt.Sprintf("change %d", n), ops)
		commits++

		if n%200 == 0 {
			head, commits = g.merge(head, commits, &branchNo, 8, bump, manifests, pendingMerge)
			pendingMerge = nil
		}
	}
	if len(pendingMerge) > 0 {
		g.merge(head, commits, &branchNo, 1, bump, manifests, pendingMerge)
	}
	return nil
}

// merge makes a side branch of n commits off head and merges it into
// main with a merge commit that also adds extra (the evil merge's own
// changes). It returns the new head and commit count.
func (g *benchGen) merge(head, commits int, branchNo *int, n int, bump func(string) op, manifests []string, extra []op) (int, int) {
	*branchNo++
	ref := fmt.Sprintf("refs/heads/feature-%d", *branchNo)
	tip := head
	var merged []op
	for k := range n {
		o := bump(manifests[g.rng.IntN(len(manifests))])
		merged = append(merged, o)
		tip = g.commit(ref, tip, 0, fmt.Sprintf("feature %d.%d", *branchNo, k), []op{o})
		commits++
	}
	// fast-import takes a merge's tree as given: main's, plus the
	// branch's changes, plus whatever the merge itself adds.
	head = g.commit("refs/heads/main", head, tip, "Merge "+ref, append(merged, extra...))
	return head, commits + 1
}

// writePlants records the planted set next to the repository.
func writePlants(path string, plants []plant) error {
	b, err := json.MarshalIndent(plants, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func readPlants(path string) ([]plant, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var plants []plant
	return plants, json.Unmarshal(b, &plants)
}
