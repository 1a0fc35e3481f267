package differential

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/bootstrap"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/cluster"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

// defaultWorlds is what CI runs; `make fuzz-rbac` sets KEYHOLE_RBAC_WORLDS.
const defaultWorlds = 20

var readVerbs = []string{"get", "list", "watch"}

// TestDifferential applies random RBAC worlds to a real kube-apiserver and
// requires keyhole live, keyhole offline and SubjectAccessReview to agree
// on every (subject, Secret, verb) triple.
func TestDifferential(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{})
	cfg := *cp.Config
	cfg.QPS, cfg.Burst = 500, 1000
	client := kubernetes.NewForConfigOrDie(&cfg)

	worlds := defaultWorlds
	if v := os.Getenv("KEYHOLE_RBAC_WORLDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KEYHOLE_RBAC_WORLDS=%q: want a positive number", v)
		}
		worlds = n
	}
	base := uint64(1)
	if v := os.Getenv("KEYHOLE_RBAC_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KEYHOLE_RBAC_SEED=%q: %v", v, err)
		}
		base = n
	}

	var cases []*World
	fixtures, _ := filepath.Glob(filepath.Join("testdata", "regressions", "*.yaml"))
	for _, f := range fixtures {
		w, err := readWorld(f)
		if err != nil {
			t.Fatalf("regression fixture %s: %v", f, err)
		}
		cases = append(cases, w)
	}
	for i := 0; i < worlds; i++ {
		cases = append(cases, Generate(base+uint64(i), fmt.Sprintf("w%d-", i)))
	}

	var total stats
	for _, w := range cases {
		s := checkWorld(t, cp, client, w)
		total.add(s)
		if t.Failed() {
			break
		}
	}
	t.Logf("differential: %d worlds (first seed %d, %d regression fixtures), %d (subject, request) pairs checked (Secret reads, and the permissions indirect paths rest on), %d allowed, %d denied: keyhole live, keyhole offline and SubjectAccessReview agree on all",
		len(cases), base, len(fixtures), total.triples, total.allowed, total.triples-total.allowed)
	// The worlds must exercise both answers, or agreement proves little.
	if total.allowed <= total.masters || total.triples == total.allowed {
		t.Errorf("degenerate worlds: %d triples, %d allowed, %d of them by system:masters", total.triples, total.allowed, total.masters)
	}
}

type stats struct{ triples, allowed, masters int }

func (s *stats) add(o stats) {
	s.triples += o.triples
	s.allowed += o.allowed
	s.masters += o.masters
}

func checkWorld(t *testing.T, cp *testenv.ControlPlane, client kubernetes.Interface, w *World) stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := apply(ctx, client, w); err != nil {
		t.Fatalf("world %d: apply: %v", w.Seed, err)
	}
	defer cleanup(t, client, w)
	if err := cp.WaitForAggregation(ctx); err != nil {
		t.Fatalf("world %d: %v", w.Seed, err)
	}

	// keyhole live.
	liveIn, err := audit.Live(ctx, cp.Config, cluster.Options{})
	if err != nil {
		t.Fatalf("world %d: live: %v", w.Seed, err)
	}
	live := mustAnalyze(t, liveIn)
	// keyhole offline: the same world as manifests, over the bootstrap policy.
	path := filepath.Join(t.TempDir(), "world.yaml")
	if err := os.WriteFile(path, worldYAML(w), 0o600); err != nil {
		t.Fatal(err)
	}
	offIn, err := audit.Offline([]string{path}, audit.OfflineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	offline := mustAnalyze(t, offIn)

	subjects := worldSubjects(w)
	liveReaders, offReaders := readerVerbs(live), readerVerbs(offline)
	// A reader keyhole reports must be one the triples check: otherwise a
	// wrong extra reader would go unnoticed.
	checked := map[string]bool{}
	for _, s := range subjects {
		checked[s.String()] = true
	}
	for _, sec := range w.Secrets {
		key := sec.Namespace + "/" + sec.Name
		for side, readers := range map[string]map[string][]string{"live": liveReaders[key], "offline": offReaders[key]} {
			for subject := range readers {
				if !checked[subject] {
					t.Errorf("world %d: %s reports reader %s of %s, who is named by no binding", w.Seed, side, subject, key)
				}
			}
		}
	}

	// Every check is one (subject, request) pair: what keyhole says live
	// and offline, and a question for the real authorizer.
	type check struct {
		desc          string
		subject       rbac.Subject
		live, offline bool
		ask           func(context.Context) (bool, error)
	}
	var checks []check
	for _, s := range subjects {
		for _, sec := range w.Secrets {
			key := sec.Namespace + "/" + sec.Name
			for _, v := range readVerbs {
				checks = append(checks, check{
					desc:    fmt.Sprintf("%s %s secret %s", s, v, key),
					subject: s,
					live:    has(liveReaders[key][s.String()], v),
					offline: has(offReaders[key][s.String()], v),
					ask: func(ctx context.Context) (bool, error) {
						return reaches(ctx, client, s, sec.Namespace, sec.Name, v)
					},
				})
			}
		}
	}
	// Beyond Secret reads: the permissions behind indirect exposure
	// (creating pods, exec, tokens, impersonation, binding), answered by
	// Policy.WhoCan.
	livePolicy := rbac.NewPolicy(liveIn.Inventory, liveIn.Aggregation)
	offPolicy := rbac.NewPolicy(offIn.Inventory, offIn.Aggregation)
	for _, pr := range probes(w) {
		liveWho, offWho := grantees(livePolicy.WhoCan(pr.attrs, pr.ns)), grantees(offPolicy.WhoCan(pr.attrs, pr.ns))
		for _, s := range subjects {
			masters := s == rbac.Superuser.Subject
			checks = append(checks, check{
				desc:    fmt.Sprintf("%s %s", s, pr),
				subject: s,
				live:    masters || liveWho[s],
				offline: masters || offWho[s],
				ask: func(ctx context.Context) (bool, error) {
					return sarAttributes(ctx, client, s, pr.ns, pr.attrs)
				},
			})
		}
	}
	var st stats
	var mu sync.Mutex
	var mismatches []string
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(checks) {
					return
				}
				c := checks[i]
				allowed, err := c.ask(ctx)
				mu.Lock()
				st.triples++
				if allowed {
					st.allowed++
					if c.subject == rbac.Superuser.Subject {
						st.masters++
					}
				}
				switch {
				case err != nil:
					mismatches = append(mismatches, fmt.Sprintf("SAR %s: %v", c.desc, err))
				case c.live != allowed || c.offline != allowed:
					mismatches = append(mismatches, fmt.Sprintf("%s: SubjectAccessReview=%v live=%v offline=%v", c.desc, allowed, c.live, c.offline))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(live.Errors) > 0 || len(offline.Errors) > 0 {
		t.Errorf("world %d: report errors: live %+v, offline %+v", w.Seed, live.Errors, offline.Errors)
	}
	if len(mismatches) > 0 {
		sort.Strings(mismatches)
		fixture := writeRegression(t, w)
		if len(mismatches) > 25 {
			mismatches = append(mismatches[:25], fmt.Sprintf("... and %d more", len(mismatches)-25))
		}
		t.Errorf("world seed %d (%s): %d of %d checks disagree (regression fixture written to %s):\n  %s",
			w.Seed, w.Prefix, len(mismatches), len(checks), fixture, strings.Join(mismatches, "\n  "))
	}
	return st
}

func mustAnalyze(t *testing.T, in analysis.Input) *report.Report {
	t.Helper()
	r, err := audit.Analyze(in, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// worldSubjects are the subjects named by the world's bindings and by the
// bootstrap policy's, plus system:masters, normalised as keyhole reports
// them.
func worldSubjects(w *World) []rbac.Subject {
	set := map[rbac.Subject]bool{rbac.Superuser.Subject: true}
	add := func(subjects []rbacv1.Subject, ns string) {
		for _, s := range subjects {
			if n, err := rbac.NormalizeSubject(s, ns); err == nil {
				set[n] = true
			}
		}
	}
	for _, b := range w.RoleBindings {
		add(b.Subjects, b.Namespace)
	}
	for _, b := range w.ClusterRoleBindings {
		add(b.Subjects, "")
	}
	bootstrapSubjects, err := bootstrap.BindingSubjects()
	if err != nil {
		panic(err)
	}
	for _, s := range bootstrapSubjects {
		set[s] = true
	}
	out := make([]rbac.Subject, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// readerVerbs maps "namespace/name" → subject → verbs from a report.
func readerVerbs(r *report.Report) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	for _, s := range r.Secrets {
		m := map[string][]string{}
		for rd := range s.Readers.All() {
			if rd.Path != "direct" {
				continue
			}
			m[rd.Subject.String()] = rd.Verbs
		}
		out[s.Namespace+"/"+s.Name] = m
	}
	return out
}

func has(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// probe is one request beyond Secret reads, asked of every subject.
type probe struct {
	ns    string // "" for a cluster-scoped request
	attrs rbac.Attributes
}

func (p probe) String() string {
	res := p.attrs.Resource
	if p.attrs.Subresource != "" {
		res += "/" + p.attrs.Subresource
	}
	if p.attrs.APIGroup != "" {
		res += "." + p.attrs.APIGroup
	}
	where := "cluster-wide"
	if p.ns != "" {
		where = "in " + p.ns
	}
	return fmt.Sprintf("%s %s %q %s", p.attrs.Verb, res, p.attrs.Name, where)
}

// probes are the permissions the indirect paths of a Secret rest on, in the
// world's namespaces and cluster-wide.
func probes(w *World) []probe {
	const rbacGroup = "rbac.authorization.k8s.io"
	var out []probe
	for _, ns := range w.Namespaces {
		n := ns.Name
		out = append(out,
			probe{n, rbac.Attributes{Verb: "create", Resource: "pods"}},
			probe{n, rbac.Attributes{Verb: "create", Resource: "pods", Subresource: "exec", Name: "web"}},
			probe{n, rbac.Attributes{Verb: "get", Resource: "pods", Subresource: "exec", Name: "web"}},
			probe{n, rbac.Attributes{Verb: "patch", Resource: "secrets", Name: "db"}},
			probe{n, rbac.Attributes{Verb: "create", Resource: "serviceaccounts", Subresource: "token", Name: "sa1"}},
			probe{n, rbac.Attributes{Verb: "patch", APIGroup: "apps", Resource: "deployments", Name: "web"}},
			probe{n, rbac.Attributes{Verb: "create", APIGroup: rbacGroup, Resource: "rolebindings"}},
			probe{n, rbac.Attributes{Verb: "bind", APIGroup: rbacGroup, Resource: "clusterroles", Name: "admin"}},
			probe{n, rbac.Attributes{Verb: "impersonate", Resource: "serviceaccounts", Name: "sa1"}},
		)
	}
	return append(out,
		probe{"", rbac.Attributes{Verb: "impersonate", Resource: "users", Name: "alice"}},
		probe{"", rbac.Attributes{Verb: "impersonate", Resource: "groups", Name: "system:masters"}},
		probe{"", rbac.Attributes{Verb: "get", Resource: "nodes", Subresource: "proxy", Name: "node-1"}},
		probe{"", rbac.Attributes{Verb: "escalate", APIGroup: rbacGroup, Resource: "clusterroles", Name: "edit"}},
	)
}

func grantees(gs []rbac.Grantee) map[rbac.Subject]bool {
	out := make(map[rbac.Subject]bool, len(gs))
	for _, g := range gs {
		out[g.Subject] = true
	}
	return out
}

// sarAttributes asks the real authorizer whether the subject alone may make
// the request.
func sarAttributes(ctx context.Context, client kubernetes.Interface, s rbac.Subject, ns string, a rbac.Attributes) (bool, error) {
	spec := authorizationv1.SubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
		Namespace: ns, Verb: a.Verb, Group: a.APIGroup, Resource: a.Resource, Subresource: a.Subresource, Name: a.Name,
	}}
	if s.Kind == rbac.KindGroup {
		spec.Groups = []string{s.Name}
	} else {
		spec.User = s.Username()
	}
	res, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return res.Status.Allowed, nil
}

// reaches asks the real authorizer whether the subject can obtain the
// Secret's value with verb: by a request naming it, or, for list and
// watch, by an unfiltered request (authorized with an empty name), whose
// response includes it.
func reaches(ctx context.Context, client kubernetes.Interface, s rbac.Subject, ns, name, verb string) (bool, error) {
	allowed, err := sar(ctx, client, s, ns, name, verb)
	if err != nil || allowed || verb == "get" {
		return allowed, err
	}
	return sar(ctx, client, s, ns, "", verb)
}

// sar asks the real authorizer whether the subject alone may do verb on
// the Secret.
func sar(ctx context.Context, client kubernetes.Interface, s rbac.Subject, ns, name, verb string) (bool, error) {
	return sarAttributes(ctx, client, s, ns, rbac.Attributes{Verb: verb, Resource: "secrets", Name: name})
}

func apply(ctx context.Context, client kubernetes.Interface, w *World) error {
	opts := metav1.CreateOptions{}
	for _, o := range w.Namespaces {
		if _, err := client.CoreV1().Namespaces().Create(ctx, o, opts); err != nil {
			return fmt.Errorf("Namespace/%s: %w", o.Name, err)
		}
	}
	for _, o := range w.Secrets {
		if _, err := client.CoreV1().Secrets(o.Namespace).Create(ctx, o, opts); err != nil {
			return fmt.Errorf("Secret/%s/%s: %w", o.Namespace, o.Name, err)
		}
	}
	for _, o := range w.ClusterRoles {
		if _, err := client.RbacV1().ClusterRoles().Create(ctx, o, opts); err != nil {
			return fmt.Errorf("ClusterRole/%s: %w", o.Name, err)
		}
	}
	for _, o := range w.Roles {
		if _, err := client.RbacV1().Roles(o.Namespace).Create(ctx, o, opts); err != nil {
			return fmt.Errorf("Role/%s/%s: %w", o.Namespace, o.Name, err)
		}
	}
	for _, o := range w.ClusterRoleBindings {
		if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, o, opts); err != nil {
			return fmt.Errorf("ClusterRoleBinding/%s: %w", o.Name, err)
		}
	}
	for _, o := range w.RoleBindings {
		if _, err := client.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts); err != nil {
			return fmt.Errorf("RoleBinding/%s/%s: %w", o.Namespace, o.Name, err)
		}
	}
	return nil
}

// cleanup deletes the world's cluster-scoped objects, which would
// otherwise grant in the next world's namespaces, and its namespaces.
func cleanup(t *testing.T, client kubernetes.Interface, w *World) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []string
	for _, o := range w.ClusterRoleBindings {
		if err := client.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	for _, o := range w.ClusterRoles {
		if err := client.RbacV1().ClusterRoles().Delete(ctx, o.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	for _, o := range w.Namespaces {
		if err := client.CoreV1().Namespaces().Delete(ctx, o.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		t.Errorf("cleanup of world %d: %s", w.Seed, strings.Join(errs, "; "))
	}
}

func worldYAML(w *World) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# differential world, seed %d, prefix %s\n", w.Seed, w.Prefix)
	for _, o := range w.Objects() {
		b, err := yaml.Marshal(o)
		if err != nil {
			panic(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes()
}

// writeRegression saves a failing world as a fixture that every later run
// replays first. It is regenerated under its own prefix so that it never
// collides with the generated worlds.
func writeRegression(t *testing.T, w *World) string {
	if strings.HasPrefix(w.Prefix, "reg") {
		return "(already a fixture)"
	}
	fixture := Generate(w.Seed, fmt.Sprintf("reg%d-", w.Seed))
	path := filepath.Join("testdata", "regressions", fmt.Sprintf("seed-%d.yaml", w.Seed))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Logf("cannot write regression fixture: %v", err)
		return "(not written)"
	}
	if err := os.WriteFile(path, worldYAML(fixture), 0o644); err != nil {
		t.Logf("cannot write regression fixture: %v", err)
		return "(not written)"
	}
	return path
}

// readWorld decodes a regression fixture.
func readWorld(path string) (*World, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	w := &World{Prefix: "reg-" + filepath.Base(path)}
	for i, doc := range strings.Split(string(data), "\n---\n") {
		if strings.TrimSpace(doc) == "" || strings.HasPrefix(strings.TrimSpace(doc), "#") && !strings.Contains(doc, "kind:") {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if err := w.add(obj); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	return w, nil
}

func (w *World) add(obj runtime.Object) error {
	switch o := obj.(type) {
	case *corev1.Namespace:
		w.Namespaces = append(w.Namespaces, o)
	case *corev1.Secret:
		w.Secrets = append(w.Secrets, o)
	case *rbacv1.Role:
		w.Roles = append(w.Roles, o)
	case *rbacv1.ClusterRole:
		w.ClusterRoles = append(w.ClusterRoles, o)
	case *rbacv1.RoleBinding:
		w.RoleBindings = append(w.RoleBindings, o)
	case *rbacv1.ClusterRoleBinding:
		w.ClusterRoleBindings = append(w.ClusterRoleBindings, o)
	default:
		return fmt.Errorf("unexpected %T", obj)
	}
	return nil
}
