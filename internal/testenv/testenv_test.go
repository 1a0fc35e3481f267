package testenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func TestControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	node := User{Name: "system:node:node-1", Groups: []string{"system:nodes"}}
	alice := User{Name: "alice", UID: "alice-uid", Groups: []string{"devs", "qa"}, Token: "alice-token"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	began := time.Now()
	cp, err := Start(ctx, Options{Users: []User{node, alice}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %v", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", cp.Logs())
		}
		_ = cp.Stop()
	})
	admin := kubernetes.NewForConfigOrDie(cp.Config)

	t.Run("readyz", func(t *testing.T) {
		body, err := admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || string(body) != "ok" {
			t.Fatalf("/readyz = %q, %v", body, err)
		}
		if cp.Config.Insecure || len(cp.Config.CAData) == 0 {
			t.Errorf("admin config does not verify TLS")
		}
	})

	t.Run("SubjectAccessReview", func(t *testing.T) {
		for _, tc := range []struct {
			user   string
			groups []string
			want   bool
		}{
			{"alice", []string{"devs"}, false},
			{"someone", []string{"system:masters"}, true},
		} {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: tc.user, Groups: tc.groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: "default"},
			}}
			got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Allowed != tc.want {
				t.Errorf("%s %v: get secrets allowed = %v, want %v (%s)", tc.user, tc.groups, got.Status.Allowed, tc.want, got.Status.Reason)
			}
		}
	})

	whoami := func(t *testing.T, cfg *rest.Config) authenticationv1.UserInfo {
		t.Helper()
		c := kubernetes.NewForConfigOrDie(cfg)
		r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.UserInfo
	}
	checkUser := func(t *testing.T, got authenticationv1.UserInfo, name, uid string, groups ...string) {
		t.Helper()
		if got.Username != name || (uid != "" && got.UID != uid) {
			t.Errorf("user = %q uid %q, want %q uid %q", got.Username, got.UID, name, uid)
		}
		for _, g := range append(groups, "system:authenticated") {
			if !slices.Contains(got.Groups, g) {
				t.Errorf("user %s: groups %v lack %q", name, got.Groups, g)
			}
		}
	}

	t.Run("token users", func(t *testing.T) {
		checkUser(t, whoami(t, cp.Config), cp.Admin.Name, cp.Admin.UID, "system:masters")
		checkUser(t, whoami(t, cp.ConfigFor(node)), "system:node:node-1", "uid-system:node:node-1", "system:nodes")
		checkUser(t, whoami(t, cp.ConfigFor(alice)), "alice", "alice-uid", "devs", "qa")

		path, err := cp.KubeconfigFor(node)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		checkUser(t, whoami(t, cfg), "system:node:node-1", "", "system:nodes")
		cfg, err = clientcmd.BuildConfigFromFlags("", cp.KubeconfigPath)
		if err != nil {
			t.Fatal(err)
		}
		checkUser(t, whoami(t, cfg), cp.Admin.Name, "", "system:masters")
		if _, err := cp.KubeconfigFor(User{Name: "mallory"}); err == nil {
			t.Errorf("KubeconfigFor(unknown user) succeeded")
		}
	})

	t.Run("Impersonate", func(t *testing.T) {
		checkUser(t, whoami(t, cp.Impersonate("bob", "qa")), "bob", "", "qa")
	})

	t.Run("default ServiceAccount", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sa-test"}}
		if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := cp.WaitForServiceAccount(wctx, "sa-test"); err != nil {
			t.Fatal(err)
		}
		t.Logf("default ServiceAccount after %v", time.Since(began).Round(time.Millisecond))
	})

	t.Run("aggregation", func(t *testing.T) {
		began := time.Now()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := cp.WaitForAggregation(wctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("WaitForAggregation took %v", time.Since(began).Round(time.Millisecond))
		view, err := admin.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !grants(view.Rules, "", "pods", "list") {
			t.Errorf("clusterrole/view does not grant list pods: %v", view.Rules)
		}
		for _, name := range []string{"admin", "edit"} {
			r, err := admin.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !grants(r.Rules, "", "secrets", "get") {
				t.Errorf("clusterrole/%s does not grant get secrets", name)
			}
		}
	})

	t.Run("restart keeps data", func(t *testing.T) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "survivor", Namespace: "default"}, Data: map[string]string{"k": "v"}}
		if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		if err := cp.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		stopped := time.Since(began)
		if _, err := admin.CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{}); err == nil {
			t.Fatal("kube-apiserver still answers after StopAPIServer")
		}
		if err := cp.StopAPIServer(); err == nil {
			t.Error("second StopAPIServer succeeded")
		}
		began = time.Now()
		if err := cp.StartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("StopAPIServer took %v, StartAPIServer %v", stopped.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
		got, err := admin.CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Data["k"] != "v" {
			t.Errorf("configmap data after restart = %v", got.Data)
		}
		if err := cp.StartAPIServer(ctx); err == nil {
			t.Error("StartAPIServer on a running apiserver succeeded")
		}
		// The controller manager reconnects: it still creates ServiceAccounts.
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "after-restart"}}
		if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := cp.WaitForServiceAccount(wctx, "after-restart"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Stop leaves nothing", func(t *testing.T) {
		if logs := cp.Logs(); !strings.Contains(logs, "kube-apiserver") {
			t.Errorf("Logs() lacks kube-apiserver:\n%s", logs)
		}
		pids := cp.pids()
		if len(pids) != 3 {
			t.Fatalf("pids = %v, want etcd, kube-apiserver, kube-controller-manager", pids)
		}
		began := time.Now()
		if err := cp.Stop(); err != nil {
			t.Fatal(err)
		}
		t.Logf("Stop took %v", time.Since(began).Round(time.Millisecond))
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process %d still exists after Stop (kill 0: %v)", pid, err)
			}
		}
		if _, err := os.Stat(cp.Dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists after Stop: %v", cp.Dir, err)
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		assertNoChildren(t)
	})
}

func (cp *ControlPlane) pids() []int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var pids []int
	for _, p := range []*process{cp.etcd, cp.apiserver, cp.kcm} {
		if p != nil {
			pids = append(pids, p.cmd.Process.Pid)
		}
	}
	return pids
}

func grants(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}

// assertNoChildren fails if any process has this test binary as parent:
// exited components are reaped, so a child here is a leak.
func assertNoChildren(t *testing.T) {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	if stats == nil {
		t.Log("no /proc: cannot check for leaked processes")
		return
	}
	me := strconv.Itoa(os.Getpid())
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after the parenthesised command: state ppid ...
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == me {
			t.Errorf("leaked child process: %s", strings.TrimSpace(s[:strings.LastIndexByte(s, ')')+1]))
		}
	}
}

func TestStartFailureCleansUp(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	cp, err := Start(ctx, Options{ExtraAPIServerFlags: []string{"--no-such-flag"}})
	if err == nil {
		_ = cp.Stop()
		t.Fatal("Start with a bad kube-apiserver flag succeeded")
	}
	t.Logf("Start failed after %v: %v", time.Since(began).Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "kube-apiserver exited early") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("error does not explain the failure: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("Start left %v in TMPDIR", left)
	}
	assertNoChildren(t)
}

func TestStartHonoursContext(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	cp, err := Start(ctx, Options{})
	if err == nil {
		_ = cp.Stop()
		t.Fatal("Start finished within 500ms; cannot test cancellation")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start error = %v, want context.DeadlineExceeded", err)
	}
	assertNoChildren(t)
}

func TestFillUsers(t *testing.T) {
	users, err := fillUsers([]User{{Name: "admin"}, {Name: "a", Groups: []string{"g"}}})
	if err != nil {
		t.Fatal(err)
	}
	if users[1].UID != "uid-a" || len(users[1].Token) != 32 || users[0].Token == users[1].Token {
		t.Errorf("defaults not filled in: %+v", users)
	}
	for _, bad := range [][]User{
		{{Name: "admin"}, {Name: ""}},
		{{Name: "admin"}, {Name: "admin"}},
		{{Name: "admin", Token: "t"}, {Name: "b", Token: "t"}},
		{{Name: "admin"}, {Name: "b", Groups: []string{"x,y"}}},
	} {
		if _, err := fillUsers(bad); err == nil {
			t.Errorf("fillUsers(%+v) succeeded", bad)
		}
	}
}

func TestBinDirNamesMissingBinaries(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "etcd"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KEYHOLE_CONTROL_PLANE_DIR", dir)
	_, err := BinDir()
	if err == nil {
		t.Fatal("BinDir succeeded without binaries")
	}
	for _, want := range []string{"kube-apiserver, kube-controller-manager, kubectl", "make control-plane", dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "missing from "+dir+": etcd") {
		t.Errorf("error lists etcd, which exists: %v", err)
	}
}

// TestScriptVersions keeps KubeVersion and EtcdVersion in step with the
// build script, which names the cache directory BinDir looks in.
func TestScriptVersions(t *testing.T) {
	b, err := os.ReadFile("build-control-plane.sh")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"KUBE_VERSION": KubeVersion, "ETCD_VERSION": EtcdVersion} {
		m := regexp.MustCompile(name + `=\$\{` + name + `:-([^}]+)\}`).FindSubmatch(b)
		if m == nil {
			t.Errorf("build-control-plane.sh does not default %s", name)
		} else if string(m[1]) != want {
			t.Errorf("build-control-plane.sh defaults %s=%s, testenv expects %s", name, m[1], want)
		}
	}
}

func TestAggregationState(t *testing.T) {
	sel := func(label string) *rbacv1.AggregationRule {
		return &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{label: "true"}}}}
	}
	get := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	create := rbacv1.PolicyRule{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	del := rbacv1.PolicyRule{Verbs: []string{"delete"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	roles := func(viewRules, editRules, adminRules []rbacv1.PolicyRule) []rbacv1.ClusterRole {
		return []rbacv1.ClusterRole{
			{ObjectMeta: metav1.ObjectMeta{Name: "admin"}, AggregationRule: sel("to-admin"), Rules: adminRules},
			{ObjectMeta: metav1.ObjectMeta{Name: "edit", Labels: map[string]string{"to-admin": "true"}}, AggregationRule: sel("to-edit"), Rules: editRules},
			{ObjectMeta: metav1.ObjectMeta{Name: "view", Labels: map[string]string{"to-edit": "true"}}, AggregationRule: sel("to-view"), Rules: viewRules},
			{ObjectMeta: metav1.ObjectMeta{Name: "z-view-part", Labels: map[string]string{"to-view": "true"}}, Rules: []rbacv1.PolicyRule{get}},
			{ObjectMeta: metav1.ObjectMeta{Name: "a-edit-part", Labels: map[string]string{"to-edit": "true"}}, Rules: []rbacv1.PolicyRule{create, get}},
			{ObjectMeta: metav1.ObjectMeta{Name: "admin-part", Labels: map[string]string{"to-admin": "true"}}, Rules: []rbacv1.PolicyRule{del}},
		}
	}
	r := []rbacv1.PolicyRule{}
	for _, tc := range []struct {
		name              string
		view, edit, admin []rbacv1.PolicyRule
		settled           bool
	}{
		{"nothing aggregated", nil, nil, nil, false},
		{"first pass of a chain", []rbacv1.PolicyRule{get}, []rbacv1.PolicyRule{create, get}, []rbacv1.PolicyRule{del, create, get}, true},
		{"admin missed edit's update", []rbacv1.PolicyRule{get}, []rbacv1.PolicyRule{create, get}, []rbacv1.PolicyRule{del}, false},
		{"same rules, other order", []rbacv1.PolicyRule{get}, []rbacv1.PolicyRule{get, create}, []rbacv1.PolicyRule{del, get, create}, false},
		{"empty view", r, []rbacv1.PolicyRule{create, get}, []rbacv1.PolicyRule{del, create, get}, false},
	} {
		_, err := aggregationState(roles(tc.view, tc.edit, tc.admin))
		if (err == nil) != tc.settled {
			t.Errorf("%s: settled = %v (%v), want %v", tc.name, err == nil, err, tc.settled)
		}
	}
}
