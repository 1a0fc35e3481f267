package analysis_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/audit"
	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// readsWorld has readers of every kind of grant: a role that only reads
// Secrets (shop/readers), a broader role (shop/dave-deploy), a role read
// by name (shop/app-read), an aggregated ClusterRole with a custom source
// (other/agg-read) and the bootstrap edit role (shop/helpers).
const readsWorld = `
apiVersion: v1
kind: Secret
metadata: {namespace: shop, name: db}
type: Opaque
---
apiVersion: v1
kind: Secret
metadata: {namespace: shop, name: api}
type: Opaque
---
apiVersion: v1
kind: Secret
metadata: {namespace: shop, name: tls}
type: Opaque
---
apiVersion: v1
kind: Secret
metadata: {namespace: other, name: x}
type: Opaque
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {namespace: shop, name: secret-reader}
rules:
- {apiGroups: [""], resources: [secrets], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {namespace: shop, name: readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: secret-reader}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
- {kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}
- {kind: Group, name: auditors, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {namespace: shop, name: deployer}
rules:
- {apiGroups: [""], resources: [secrets], verbs: [get]}
- {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {namespace: shop, name: dave-deploy}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects:
- {kind: User, name: dave, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {namespace: shop, name: app-secrets}
rules:
- {apiGroups: [""], resources: [secrets], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {namespace: shop, name: app-read}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: app-secrets}
subjects:
- {kind: ServiceAccount, name: app, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader-agg}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {keyhole.test/aggregate-to-reader: "true"}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: reader-src
  labels: {keyhole.test/aggregate-to-reader: "true"}
rules:
- {apiGroups: [""], resources: [secrets, configmaps], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {namespace: other, name: agg-read}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader-agg}
subjects:
- {kind: User, name: gina, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {namespace: shop, name: helpers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects:
- {kind: User, name: henry, apiGroup: rbac.authorization.k8s.io}
`

var readsNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

const readsWindow = 30 * 24 * time.Hour

func readsSnapshot(covered bool) *auditlog.Snapshot {
	since := readsNow.Add(-2 * readsWindow)
	if !covered {
		since = readsNow.Add(-time.Hour)
	}
	at := readsNow.Add(-time.Hour)
	rs := func(user string, groups []string, ns, name string, verbs rbac.Verbs, count int) auditlog.ReadSummary {
		return auditlog.ReadSummary{User: user, Groups: append(groups, "system:authenticated"), Target: auditlog.Target{Namespace: ns, Name: name},
			Verbs: verbs, LastSeen: at, Count: count, UserAgents: []string{"kubectl/v1.34.4"}, SourceIPs: []string{"10.0.0.7"}}
	}
	return &auditlog.Snapshot{At: readsNow, Since: since, Window: readsWindow, Stats: auditlog.Stats{Entries: 6}, Reads: []auditlog.ReadSummary{
		rs("alice", nil, "shop", "db", rbac.VerbGet, 3),
		rs("alice", nil, "shop", "", rbac.VerbList, 1),
		rs("carol", []string{"auditors"}, "shop", "db", rbac.VerbGet, 2),
		rs("system:serviceaccount:shop:app", []string{"system:serviceaccounts", "system:serviceaccounts:shop"}, "shop", "api", rbac.VerbGet, 40),
		rs("eve", nil, "other", "x", rbac.VerbGet, 1),
		rs("frank", nil, "shop", "tls", rbac.VerbList, 1),
	}}
}

func analyzeReads(t *testing.T, snap *auditlog.Snapshot) *report.Report {
	t.Helper()
	path := filepath.Join(t.TempDir(), "world.yaml")
	if err := os.WriteFile(path, []byte(readsWorld), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := audit.Offline([]string{path}, audit.OfflineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in.Reads = snap
	rep, err := audit.Analyze(in, audit.Options{Now: readsNow})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Errors {
		t.Errorf("the world does not load cleanly: %s", e.Message)
	}
	return rep
}

func secretOf(t *testing.T, rep *report.Report, ns, name string) *report.Secret {
	t.Helper()
	for i := range rep.Secrets {
		if rep.Secrets[i].Namespace == ns && rep.Secrets[i].Name == name {
			return &rep.Secrets[i]
		}
	}
	t.Fatalf("no Secret %s/%s in the report", ns, name)
	return nil
}

func subjectName(s report.Subject) string {
	if s.Namespace != "" {
		return s.Kind + "/" + s.Namespace + "/" + s.Name
	}
	return s.Kind + "/" + s.Name
}

func TestActualReaders(t *testing.T) {
	rep := analyzeReads(t, readsSnapshot(true))
	want := map[string][]string{
		"shop/db":  {"User/alice", "User/carol"},
		"shop/api": {"ServiceAccount/shop/app", "User/alice"},
		"shop/tls": {"User/alice", "User/frank"},
		"other/x":  {"User/eve"},
	}
	for key, subjects := range want {
		ns, name, _ := strings.Cut(key, "/")
		s := secretOf(t, rep, ns, name)
		var got []string
		for _, ar := range s.ActualReaders {
			got = append(got, subjectName(ar.Subject))
		}
		if !slices.Equal(got, subjects) {
			t.Errorf("%s: actual readers %v, want %v", key, got, subjects)
		}
		if s.AuditWindow != readsWindow.String() {
			t.Errorf("%s: auditWindow %q", key, s.AuditWindow)
		}
	}
	db := secretOf(t, rep, "shop", "db")
	alice := db.ActualReaders[0]
	if alice.Count != 4 || alice.Listed || strings.Join(alice.Verbs, ",") != "get,list" || alice.Unexplained ||
		alice.LastSeen != "2026-11-20T11:00:00Z" || strings.Join(alice.UserAgents, ",") != "kubectl/v1.34.4" {
		t.Errorf("alice on shop/db: %+v", alice)
	}
	if api := secretOf(t, rep, "shop", "api"); !api.ActualReaders[1].Listed {
		t.Errorf("alice reached shop/api only by a list: %+v", api.ActualReaders[1])
	}

	// KH621: eve on other/x, frank on shop/tls; carol reads through her
	// group and the ServiceAccount through its grant.
	var unexplained []string
	for _, f := range rep.Findings {
		if f.Rule == finding.UnexplainedSecretRead {
			unexplained = append(unexplained, f.Object.String())
			if f.Severity != "high" {
				t.Errorf("KH621 severity %s", f.Severity)
			}
		}
	}
	sort.Strings(unexplained)
	if !slices.Equal(unexplained, []string{"Secret/other/x", "Secret/shop/tls"}) {
		t.Errorf("KH621 on %v", unexplained)
	}
	var cov *report.AuditLogCoverage
	for _, src := range rep.Coverage.Sources {
		if src.AuditLog != nil {
			cov = src.AuditLog
		}
	}
	if cov == nil || !cov.Complete || cov.Entries != 6 {
		t.Errorf("audit coverage %+v", cov)
	}
}

func TestUnusedReaders(t *testing.T) {
	rep := analyzeReads(t, readsSnapshot(true))
	type want struct {
		action, object string
		// rules, for role edits: what the role holds afterwards.
		rules string
	}
	db := secretOf(t, rep, "shop", "db")
	got := map[string][]report.RBACChange{}
	reasons := map[string]string{}
	for _, u := range db.UnusedReaders {
		got[subjectName(u.Subject)] = u.Changes
		reasons[subjectName(u.Subject)] = u.Reason
	}
	wants := map[string]want{
		// Only Secret reads in the role: drop bob from the binding.
		"User/bob": {report.ChangeRemoveSubject, "RoleBinding/shop/readers", ""},
		// A role with more: take its unused Secret reads out.
		"User/dave": {report.ChangeDropVerbs, "Role/shop/deployer", "get,list on configmaps"},
		// The ServiceAccount read shop/api through its role: narrow it.
		"ServiceAccount/shop/app": {report.ChangeNarrowResourceNames, "Role/shop/app-secrets", "get on secrets [api]"},
		// The bootstrap edit role is aggregated from reconciled roles:
		// the binding is the target.
		"User/henry": {report.ChangeDeleteBinding, "RoleBinding/shop/helpers", ""},
	}
	for subj, w := range wants {
		cs, ok := got[subj]
		if !ok {
			t.Errorf("shop/db: %s is not an unused reader", subj)
			continue
		}
		if len(cs) != 1 || cs[0].Action != w.action || cs[0].Object.String() != w.object {
			t.Errorf("shop/db: %s: changes %+v (reason %q), want %s on %s", subj, cs, reasons[subj], w.action, w.object)
			continue
		}
		if w.rules != "" {
			if r := rulesText(cs[0].Rules); r != w.rules {
				t.Errorf("shop/db: %s: rules after the change %q, want %q", subj, r, w.rules)
			}
		}
	}
	for _, subj := range []string{"User/alice", "Group/auditors", "User/carol"} {
		if _, ok := got[subj]; ok {
			t.Errorf("shop/db: %s read it (or a member did) but is listed as unused", subj)
		}
	}
	// carol read shop/db through the auditors group, and alice listed
	// the namespace through the same role: nothing narrows the group's
	// grant on shop/api without taking a read away.
	api := secretOf(t, rep, "shop", "api")
	for _, u := range api.UnusedReaders {
		if subjectName(u.Subject) == "Group/auditors" && (len(u.Changes) != 0 || !strings.Contains(u.Reason, "listed or watched")) {
			t.Errorf("shop/api: auditors: %+v", u)
		}
	}
	// The aggregated ClusterRole's custom source is edited, never the
	// aggregate.
	x := secretOf(t, rep, "other", "x")
	var gina *report.UnusedReader
	for i := range x.UnusedReaders {
		if subjectName(x.UnusedReaders[i].Subject) == "User/gina" {
			gina = &x.UnusedReaders[i]
		}
	}
	if gina == nil || len(gina.Changes) != 1 || gina.Changes[0].Object.String() != "ClusterRole/reader-src" || gina.Changes[0].Action != report.ChangeDropVerbs ||
		rulesText(gina.Changes[0].Rules) != "* on configmaps; create,update,patch,delete,deletecollection on secrets" {
		t.Errorf("other/x: gina: %+v", gina)
	}
	// No change anywhere edits an aggregated or reconciled role.
	for _, s := range rep.Secrets {
		for _, u := range s.UnusedReaders {
			for _, c := range u.Changes {
				switch c.Object.String() {
				case "ClusterRole/edit", "ClusterRole/admin", "ClusterRole/reader-agg", "ClusterRole/system:aggregate-to-edit":
					t.Errorf("%s/%s: a change targets %s", s.Namespace, s.Name, c.Object)
				}
			}
		}
	}

	// KH620: one finding per subject and binding, on the binding.
	kh620 := map[string]string{}
	for _, f := range rep.Findings {
		if f.Rule == finding.UnusedSecretGrant {
			if f.Severity != "low" {
				t.Errorf("KH620 severity %s", f.Severity)
			}
			subj, _, _ := strings.Cut(f.Message, " can read")
			kh620[subj+" "+f.Object.String()] = f.Message
		}
	}
	for _, k := range []string{"User/bob RoleBinding/shop/readers", "User/dave RoleBinding/shop/dave-deploy", "ServiceAccount/shop/app RoleBinding/shop/app-read",
		"User/henry RoleBinding/shop/helpers", "User/gina RoleBinding/other/agg-read", "Group/auditors RoleBinding/shop/readers"} {
		if _, ok := kh620[k]; !ok {
			t.Errorf("no KH620 for %s; got %v", k, kh620)
		}
	}
	if m := kh620["ServiceAccount/shop/app RoleBinding/shop/app-read"]; !strings.Contains(m, "read 2 of them not at all") || !strings.Contains(m, "narrow") {
		t.Errorf("KH620 for the ServiceAccount: %s", m)
	}
	if m := kh620["User/bob RoleBinding/shop/readers"]; !strings.Contains(m, "can read 3 Secrets") || !strings.Contains(m, "none of them") || !strings.Contains(m, "30 days") {
		t.Errorf("KH620 for bob: %s", m)
	}
}

// TestUnusedNeedsAWholeWindow: before a whole window is observed, reads
// are reported but no grant is called unused.
func TestUnusedNeedsAWholeWindow(t *testing.T) {
	rep := analyzeReads(t, readsSnapshot(false))
	for _, s := range rep.Secrets {
		if len(s.UnusedReaders) > 0 {
			t.Errorf("%s/%s has unused readers before a whole window", s.Namespace, s.Name)
		}
	}
	for _, f := range rep.Findings {
		if f.Rule == finding.UnusedSecretGrant {
			t.Errorf("KH620 before a whole window: %s", f.Message)
		}
	}
	if len(secretOf(t, rep, "shop", "db").ActualReaders) != 2 {
		t.Error("actual readers missing before a whole window")
	}
	found := false
	for _, n := range rep.Coverage.NotAnalysed {
		found = found || strings.Contains(n, "unused grants (KH620) are reported from")
	}
	if !found {
		t.Errorf("coverage does not say when KH620 starts: %v", rep.Coverage.NotAnalysed)
	}
}

// TestNoReadsNoAuditFields: without an audit log nothing of it appears.
func TestNoReadsNoAuditFields(t *testing.T) {
	rep := analyzeReads(t, nil)
	for _, s := range rep.Secrets {
		if s.ActualReaders != nil || s.UnusedReaders != nil || s.AuditWindow != "" {
			t.Errorf("%s/%s has audit fields without an audit log", s.Namespace, s.Name)
		}
	}
}

func rulesText(rules []report.PolicyRule) string {
	var parts []string
	for _, r := range rules {
		p := strings.Join(r.Verbs, ",") + " on " + strings.Join(r.Resources, ",")
		if len(r.ResourceNames) > 0 {
			p += " [" + strings.Join(r.ResourceNames, ",") + "]"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}
