package httpauth

// Integration tests against a real kube-apiserver from internal/testenv:
// real TokenReviews of static and ServiceAccount tokens, real RBAC behind
// the SubjectAccessReviews, and the RBAC that docs/api.md tells users to
// apply.

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/keyhole-sec/keyhole/internal/testenv"
	"github.com/keyhole-sec/keyhole/internal/testlog"
)

const prometheusUser = "system:serviceaccount:monitoring:prometheus"

// server is a Filter in front of a handler that records its callers,
// served over real HTTP.
type server struct {
	url   string
	logs  *testlog.Buffer
	users chan User
	seen  []string // every response, headers included, for canary checks
}

func newServer(t *testing.T, client kubernetes.Interface, opts Options) *server {
	t.Helper()
	s := &server{logs: &testlog.Buffer{}, users: make(chan User, 16)}
	opts.Logger = debugLogger(s.logs)
	h := New(client, opts).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFrom(r.Context())
		s.users <- u
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"findings":[]}`)
	}))
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	s.url = ts.URL + "/api/v1/report"
	return s
}

type response struct {
	status int
	body   string
	header http.Header
}

// get calls the endpoint with the given Authorization header ("" for none).
func (s *server) get(t *testing.T, auth string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var dump strings.Builder
	_ = resp.Header.Write(&dump)
	dump.Write(body)
	s.seen = append(s.seen, dump.String())
	return response{status: resp.StatusCode, body: string(body), header: resp.Header}
}

// nextUser returns the user the handler saw for the last request, or
// fails if the handler was not called.
func (s *server) nextUser(t *testing.T) User {
	t.Helper()
	select {
	case u := <-s.users:
		return u
	default:
		t.Fatalf("the handler was not called")
		return User{}
	}
}

func (s *server) assertHandlerNotCalled(t *testing.T) {
	t.Helper()
	select {
	case u := <-s.users:
		t.Fatalf("the handler was called for %q", u.Name)
	default:
	}
}

// assertNoSecrets fails when any token shows up in a response or the log.
func (s *server) assertNoSecrets(t *testing.T, tokens []string) {
	t.Helper()
	logs := s.logs.String()
	for _, tok := range tokens {
		for i, r := range s.seen {
			if strings.Contains(r, tok) {
				t.Errorf("response %d contains a token:\n%s", i, r)
			}
		}
		if strings.Contains(logs, tok) {
			t.Errorf("log contains a token:\n%s", logs)
		}
	}
}

func TestAgainstAPIServer(t *testing.T) {
	alice := testenv.User{Name: "alice"}                              // bound to the reader role
	bob := testenv.User{Name: "bob", Groups: []string{"readers"}}     // reader through his group
	carol := testenv.User{Name: "carol"}                              // authenticated, no grant
	dave := testenv.User{Name: "dave", Groups: []string{"reviewers"}} // may create tokenreviews only
	cp := testenv.StartT(t, testenv.Options{
		Users: []testenv.User{alice, bob, carol, dave},
		// Nothing here needs a controller: ServiceAccounts are created
		// explicitly and their tokens come from the TokenRequest API.
		NoControllerManager: true,
	})
	ctx := t.Context()
	admin, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	tok := map[string]string{}
	for _, u := range append([]testenv.User{cp.Admin}, cp.Users...) {
		tok[u.Name] = u.Token
	}
	secrets := []string{canaryToken}
	for _, v := range tok {
		secrets = append(secrets, v)
	}

	for _, ns := range []string{"keyhole", "monitoring"} {
		mustCreate(t, func() error {
			_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
	}
	for _, sa := range []struct{ ns, name string }{{"keyhole", "keyhole"}, {"monitoring", "prometheus"}} {
		mustCreate(t, func() error {
			_, err := admin.CoreV1().ServiceAccounts(sa.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa.name}}, metav1.CreateOptions{})
			return err
		})
	}
	// The RBAC exactly as docs/api.md tells users to apply it: the reader
	// ClusterRole bound to monitoring/prometheus, and system:auth-delegator
	// for keyhole/keyhole. The test users reuse the doc's ClusterRole.
	applyDocRBAC(t, admin, "../../docs/api.md")
	bind(t, admin, "test-readers", "keyhole-report-reader",
		rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"},
		rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "readers"})
	clusterRole(t, admin, "tokenreviewer", rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}})
	bind(t, admin, "test-tokenreviewer", "tokenreviewer", rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "reviewers"})

	report := &authorizationv1.ResourceAttributes{Verb: "get", Group: "keyhole.io", Resource: "reports"}
	waitAllowed(t, admin, "alice", nil, report)
	waitAllowed(t, admin, "bob", []string{"readers"}, report)
	waitAllowed(t, admin, prometheusUser, nil, report)
	waitAllowed(t, admin, "system:serviceaccount:keyhole:keyhole", nil,
		&authorizationv1.ResourceAttributes{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"})
	waitAllowed(t, admin, "dave", []string{"reviewers"},
		&authorizationv1.ResourceAttributes{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"})

	keyholeSA := saToken(t, admin, "keyhole", "keyhole", nil)
	prometheusSA := saToken(t, admin, "monitoring", "prometheus", nil)
	prometheusForKeyhole := saToken(t, admin, "monitoring", "prometheus", []string{"keyhole"})
	secrets = append(secrets, keyholeSA, prometheusSA, prometheusForKeyhole)

	clientAs := func(t *testing.T, token string) kubernetes.Interface {
		t.Helper()
		cfg := rest.AnonymousClientConfig(cp.Config)
		cfg.BearerToken = token
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("admin client", func(t *testing.T) {
		s := newServer(t, admin, Options{})
		defer s.assertNoSecrets(t, secrets)

		r := s.get(t, "")
		wantHTTP(t, r, http.StatusUnauthorized, "send a Kubernetes bearer token")
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="keyhole"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
		r = s.get(t, "Bearer "+canaryToken)
		wantHTTP(t, r, http.StatusUnauthorized, "invalid or expired")
		if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q", got)
		}
		wantHTTP(t, s.get(t, "Basic "+tok["alice"]), http.StatusUnauthorized, "")
		s.assertHandlerNotCalled(t)

		wantHTTP(t, s.get(t, "Bearer "+tok["alice"]), http.StatusOK, `{"findings":[]}`)
		u := s.nextUser(t)
		if u.Name != "alice" || u.UID != "uid-alice" || !slices.Contains(u.Groups, "system:authenticated") {
			t.Errorf("handler saw %+v, want alice with UID and groups from the TokenReview", u)
		}

		wantHTTP(t, s.get(t, "Bearer "+tok["carol"]), http.StatusForbidden,
			`forbidden: user "carol" cannot get reports.keyhole.io at the cluster scope`)
		s.assertHandlerNotCalled(t)

		wantHTTP(t, s.get(t, "Bearer "+tok["bob"]), http.StatusOK, "")
		if u := s.nextUser(t); u.Name != "bob" || !slices.Contains(u.Groups, "readers") {
			t.Errorf("handler saw %+v, want bob in readers", u)
		}

		wantHTTP(t, s.get(t, "Bearer "+prometheusSA), http.StatusOK, "")
		if u := s.nextUser(t); u.Name != prometheusUser {
			t.Errorf("handler saw %+v, want the prometheus ServiceAccount", u)
		}
	})

	// keyhole's ServiceAccount with only system:auth-delegator, as
	// deployed: enough to review tokens and access.
	t.Run("auth-delegator service account", func(t *testing.T) {
		s := newServer(t, clientAs(t, keyholeSA), Options{})
		defer s.assertNoSecrets(t, secrets)
		wantHTTP(t, s.get(t, "Bearer "+tok["alice"]), http.StatusOK, "")
		s.nextUser(t)
		wantHTTP(t, s.get(t, "Bearer "+tok["carol"]), http.StatusForbidden, `user "carol"`)
		wantHTTP(t, s.get(t, "Bearer "+canaryToken), http.StatusUnauthorized, "")
		s.assertHandlerNotCalled(t)
	})

	t.Run("audiences", func(t *testing.T) {
		s := newServer(t, admin, Options{Audiences: []string{"keyhole"}})
		defer s.assertNoSecrets(t, secrets)
		wantHTTP(t, s.get(t, "Bearer "+prometheusForKeyhole), http.StatusOK, "")
		s.nextUser(t)
		// A token for the API server is not one for keyhole, and static
		// tokens carry no audience beyond the API server's.
		wantHTTP(t, s.get(t, "Bearer "+prometheusSA), http.StatusUnauthorized, "")
		wantHTTP(t, s.get(t, "Bearer "+tok["alice"]), http.StatusUnauthorized, "")
		s.assertHandlerNotCalled(t)
	})

	t.Run("client may not create tokenreviews", func(t *testing.T) {
		s := newServer(t, clientAs(t, tok["carol"]), Options{})
		defer s.assertNoSecrets(t, secrets)
		for range 2 {
			r := s.get(t, "Bearer "+tok["alice"])
			wantHTTP(t, r, http.StatusInternalServerError, "may not create tokenreviews.authentication.k8s.io")
			if !strings.Contains(r.body, "system:auth-delegator") {
				t.Errorf("body %q does not say which ClusterRole is missing", r.body)
			}
		}
		s.assertHandlerNotCalled(t)
		logs := s.logs.String()
		if strings.Count(logs, "level=ERROR") != 1 || !strings.Contains(logs, "tokenreviews") {
			t.Errorf("want one error line naming tokenreviews, got:\n%s", logs)
		}
	})

	t.Run("client may not create subjectaccessreviews", func(t *testing.T) {
		s := newServer(t, clientAs(t, tok["dave"]), Options{})
		defer s.assertNoSecrets(t, secrets)
		wantHTTP(t, s.get(t, "Bearer "+tok["alice"]), http.StatusInternalServerError,
			"may not create subjectaccessreviews.authorization.k8s.io")
		// Authentication still works: a bad token is a 401, not a 500.
		wantHTTP(t, s.get(t, "Bearer "+canaryToken), http.StatusUnauthorized, "")
		s.assertHandlerNotCalled(t)
	})
}

func TestFailsClosedWhenAPIServerIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(&rest.Config{Host: "http://" + addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, client, Options{})
	for range 2 {
		wantHTTP(t, s.get(t, "Bearer "+canaryToken), http.StatusServiceUnavailable, "tokenreviews.authentication.k8s.io")
	}
	s.assertHandlerNotCalled(t)
	logs := s.logs.String()
	if strings.Count(logs, "level=ERROR") != 1 || !strings.Contains(logs, addr) {
		t.Errorf("want one error line naming %s, got:\n%s", addr, logs)
	}
	s.assertNoSecrets(t, []string{canaryToken})
}

func wantHTTP(t *testing.T, r response, status int, bodyContains string) {
	t.Helper()
	if r.status != status || !strings.Contains(r.body, bodyContains) {
		t.Errorf("got %d %q, want %d with %q", r.status, r.body, status, bodyContains)
	}
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

func clusterRole(t *testing.T, c kubernetes.Interface, name string, rule rbacv1.PolicyRule) {
	t.Helper()
	mustCreate(t, func() error {
		_, err := c.RbacV1().ClusterRoles().Create(t.Context(), &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules:      []rbacv1.PolicyRule{rule},
		}, metav1.CreateOptions{})
		return err
	})
}

func bind(t *testing.T, c kubernetes.Interface, name, role string, subjects ...rbacv1.Subject) {
	t.Helper()
	mustCreate(t, func() error {
		_, err := c.RbacV1().ClusterRoleBindings().Create(t.Context(), &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   subjects,
		}, metav1.CreateOptions{})
		return err
	})
}

// waitAllowed waits until the API server's RBAC caches reflect a new
// binding, so that tests do not race the authorizer's informers.
func waitAllowed(t *testing.T, c kubernetes.Interface, user string, groups []string, attrs *authorizationv1.ResourceAttributes) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		res, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: attrs},
		}, metav1.CreateOptions{})
		if err == nil && res.Status.Allowed {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s is still not allowed to %s %s.%s (last error: %v)", user, attrs.Verb, attrs.Resource, attrs.Group, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func saToken(t *testing.T, c kubernetes.Interface, namespace, sa string, audiences []string) string {
	t.Helper()
	expiry := int64(3600)
	res, err := c.CoreV1().ServiceAccounts(namespace).CreateToken(t.Context(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for serviceaccount/%s/%s: %v", namespace, sa, err)
	}
	return res.Status.Token
}

// applyDocRBAC creates every object of the yaml blocks in the report
// endpoint's section of the Markdown file at path, so that the documented
// RBAC is the tested RBAC. Other sections are left to their own tests.
func applyDocRBAC(t *testing.T, c kubernetes.Interface, path string) {
	t.Helper()
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const heading = "\n## `GET /api/v1/report`\n"
	_, section, ok := strings.Cut(string(md), heading)
	if !ok {
		t.Fatalf("%s: no section %q", path, strings.TrimSpace(heading))
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var docs []string
	for _, block := range strings.Split(section, "```yaml\n")[1:] {
		body, _, ok := strings.Cut(block, "```")
		if !ok {
			t.Fatalf("%s: unterminated yaml block", path)
		}
		docs = append(docs, strings.Split(body, "\n---\n")...)
	}
	kinds := map[string]int{}
	for _, doc := range docs {
		var head struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%s: %v in:\n%s", path, err, doc)
		}
		kinds[head.Kind]++
		switch head.Kind {
		case "ClusterRole":
			var obj rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			mustCreate(t, func() error {
				_, err := c.RbacV1().ClusterRoles().Create(t.Context(), &obj, metav1.CreateOptions{})
				return err
			})
		case "ClusterRoleBinding":
			var obj rbacv1.ClusterRoleBinding
			if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			mustCreate(t, func() error {
				_, err := c.RbacV1().ClusterRoleBindings().Create(t.Context(), &obj, metav1.CreateOptions{})
				return err
			})
		default:
			t.Fatalf("%s: a yaml block holds a %q; this test only knows ClusterRole and ClusterRoleBinding", path, head.Kind)
		}
	}
	if kinds["ClusterRole"] != 1 || kinds["ClusterRoleBinding"] != 2 {
		t.Fatalf("%s: yaml blocks hold %v; want the reader ClusterRole and two ClusterRoleBindings", path, kinds)
	}
}
