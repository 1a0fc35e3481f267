package daemon

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// analysisRuns collects the analyses of a daemon (Options.analyzed).
type analysisRuns struct {
	mu   sync.Mutex
	runs []analysisRun
}

func (a *analysisRuns) add(r analysisRun) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.runs = append(a.runs, r)
}

func (a *analysisRuns) since(n int) []analysisRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]analysisRun(nil), a.runs[min(n, len(a.runs)):]...)
}

func (a *analysisRuns) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.runs)
}

// waitFor waits for an analysis after the first n whose input satisfies
// ok, and returns the analyses after n up to it, it last.
func (a *analysisRuns) waitFor(t *testing.T, what string, n int, ok func(*inventory.Inventory) bool) []analysisRun {
	t.Helper()
	var out []analysisRun
	probe.Eventually(t, 30*time.Second, what, func() (bool, string) {
		runs := a.since(n)
		for i, r := range runs {
			if ok(r.in.Inventory) {
				out = runs[:i+1]
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d analyses, none of it", len(runs))
	})
	return out
}

// testAccessReuse runs a daemon that reports each analysis to the test.
// A new ConfigMap and a relabelled Secret are analysed on the previous
// analysis's access stage, into the report a full audit.Analyze makes of
// the same caches; a RoleBinding that lets a new user get the Secret makes
// the access stage run anew, and the user a reader in the report and the
// metrics.
func testAccessReuse(ctx context.Context, t *testing.T, c kubernetes.Interface, cfg *rest.Config) {
	runs := &analysisRuns{}
	d := startInProcess(t, cfg, func(o *Options) {
		o.Metrics.ReaderInfo = true
		o.analyzed = runs.add
	})
	waitReady(t, d)
	t.Cleanup(func() {
		bg := context.Background()
		_ = c.RbacV1().RoleBindings(ns).Delete(bg, "mallory-reads-db", metav1.DeleteOptions{})
		_ = c.RbacV1().Roles(ns).Delete(bg, "mallory-reads-db", metav1.DeleteOptions{})
		for _, name := range []string{"access-reuse", "access-settle-0", "access-settle-1", "access-settle-2", "access-settle-3", "access-settle-4"} {
			_ = c.CoreV1().ConfigMaps(ns).Delete(bg, name, metav1.DeleteOptions{})
		}
	})

	// The informers may deliver the last events of their first lists
	// after the first analysis read the caches, which makes the next one
	// run the access stage anew. Nudge with ConfigMaps until an analysis
	// reuses it: from then on, only the test changes the cluster.
	settled := false
	for i := 0; i < 5 && !settled; i++ {
		name := fmt.Sprintf("access-settle-%d", i)
		n := runs.len()
		must(t, create(ctx, c.CoreV1().ConfigMaps(ns), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}))
		got := runs.waitFor(t, "an analysis of ConfigMap "+name, n, func(inv *inventory.Inventory) bool { return hasConfigMap(inv, name) })
		settled = got[len(got)-1].snapshot.accessWhy == ""
		if !settled {
			t.Logf("nudge %d: access recomputed because %q", i, got[len(got)-1].snapshot.accessWhy)
		}
	}
	if !settled {
		t.Fatalf("no analysis reused the access stage after five ConfigMaps; the last ran it because %q", runs.since(runs.len() - 1)[0].snapshot.accessWhy)
	}

	// Outside what the access stage reads: reused.
	n := runs.len()
	must(t, create(ctx, c.CoreV1().ConfigMaps(ns), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "access-reuse"},
		Data: map[string]string{"LOG_LEVEL": "debug"}}))
	_, err := c.CoreV1().Secrets(ns).Patch(ctx, secret, types.MergePatchType, []byte(`{"metadata":{"labels":{"keyhole-test":"relabelled"}}}`), metav1.PatchOptions{})
	must(t, err)
	got := runs.waitFor(t, "an analysis of the new ConfigMap and the relabelled Secret", n, func(inv *inventory.Inventory) bool {
		s := inv.Secret(ns, secret)
		return hasConfigMap(inv, "access-reuse") && s != nil && s.Labels["keyhole-test"] == "relabelled"
	})
	for _, r := range got {
		if why := r.snapshot.accessWhy; why != "" {
			t.Errorf("an analysis after a ConfigMap and a Secret's label ran the access stage anew, because %q", why)
		}
	}
	last := got[len(got)-1]
	assertFullAnalysis(t, last)
	if !strings.Contains(d.logs.String(), `msg="analysis done"`) || !strings.Contains(d.logs.String(), "access=reused") {
		t.Error(`no "analysis done" log line says access=reused`)
	}

	// A new reader: recomputed.
	n = runs.len()
	must(t, create(ctx, c.RbacV1().Roles(ns), &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "mallory-reads-db"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{secret}, Verbs: []string{"get"}}},
	}))
	must(t, create(ctx, c.RbacV1().RoleBindings(ns), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "mallory-reads-db"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "mallory-reads-db"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}},
	}))
	got = runs.waitFor(t, "an analysis of mallory's RoleBinding", n, func(inv *inventory.Inventory) bool {
		for _, b := range inv.RoleBindings {
			if b.Namespace == ns && b.Name == "mallory-reads-db" {
				return true
			}
		}
		return false
	})
	last = got[len(got)-1]
	why := last.snapshot.accessWhy
	t.Logf("a new Role and RoleBinding: access recomputed because %q", why)
	if why != "rolebindings added" && why != "roles added" {
		t.Errorf("the analysis of a new RoleBinding ran the access stage because %q, want the Role's or the RoleBinding's creation", why)
	}
	if !regexp.MustCompile(`inventory_took=\S+ .*access=recomputed because="` + regexp.QuoteMeta(why) + `" access_took=\S+`).MatchString(d.logs.String()) {
		t.Errorf(`no "analysis done" log line says access=recomputed because=%q with the stages' times`, why)
	}
	if !readsDB(last, "mallory") {
		t.Error("mallory is not a reader of the Secret in the report of the analysis that recomputed access")
	}
	assertFullAnalysis(t, last)
	malloryInfo := map[string]string{"namespace": ns, "secret": secret, "subject_kind": "User", "subject": "mallory", "path": "direct"}
	probe.Eventually(t, 10*time.Second, "mallory's read in the metrics", func() (bool, string) {
		fams, _, err := scrape(d.url("/metrics"))
		if err != nil {
			return false, err.Error()
		}
		_, ok := fams.value("keyhole_secret_reader_info", malloryInfo)
		return ok, fams.labelsOf("keyhole_secret_reader_info")
	})
}

// assertFullAnalysis checks an analysis's report against audit.Analyze of
// the same input, byte for byte.
func assertFullAnalysis(t *testing.T, r analysisRun) {
	t.Helper()
	full, err := audit.Analyze(r.in, r.opts)
	must(t, err)
	if got, want := reportText(t, r.snapshot.report), reportText(t, full); got != want {
		t.Errorf("the daemon's report (access reused %v) differs from a full audit.Analyze of the same caches", r.snapshot.accessWhy == "")
	}
	if containsValue(reportText(t, r.snapshot.report)) {
		t.Error("the Secret's value is in the report")
	}
}

func hasConfigMap(inv *inventory.Inventory, name string) bool {
	for _, cm := range inv.ConfigMaps {
		if cm.Namespace == ns && cm.Name == name {
			return true
		}
	}
	return false
}

func readsDB(r analysisRun, user string) bool {
	for _, s := range r.snapshot.report.Secrets {
		if s.Namespace != ns || s.Name != secret {
			continue
		}
		for rd := range s.Readers.All() {
			if rd.Subject.Kind == rbac.KindUser && rd.Subject.Name == user {
				return true
			}
		}
	}
	return false
}
