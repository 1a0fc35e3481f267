package httpauth

// Unit tests against a fake clientset whose reactors play the API server,
// so that review counts, the clock and API failures are under control.

import (
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/keyhole-sec/keyhole/internal/testlog"
)

// canaryToken must never appear in a response or a log line.
const canaryToken = "KEYHOLE-CANARY-TOKEN-4c1d9e"

// fakeAPI answers TokenReviews from users and SubjectAccessReviews from
// allowed, and counts both. The fake clientset serializes reactor calls.
type fakeAPI struct {
	cs *fake.Clientset

	users   map[string]authenticationv1.UserInfo // token → user
	allowed map[string]bool                      // username → allowed
	// statusAudiences, when non-nil, is what every TokenReview reports;
	// nil echoes the requested audiences, as an audience-aware server does.
	statusAudiences []string
	statusError     string // TokenReview status.error for unknown tokens
	trErr, sarErr   error

	tokenReviews, sars int
	lastTR             *authenticationv1.TokenReview
	lastSAR            *authorizationv1.SubjectAccessReview
}

func newFakeAPI() *fakeAPI {
	fa := &fakeAPI{
		cs:      fake.NewClientset(),
		users:   map[string]authenticationv1.UserInfo{},
		allowed: map[string]bool{},
	}
	fa.cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		fa.tokenReviews++
		if fa.trErr != nil {
			return true, nil, fa.trErr
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		fa.lastTR = tr.DeepCopy()
		if u, ok := fa.users[tr.Spec.Token]; ok {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: u, Audiences: tr.Spec.Audiences}
			if fa.statusAudiences != nil {
				tr.Status.Audiences = fa.statusAudiences
			}
		} else {
			tr.Status = authenticationv1.TokenReviewStatus{Error: fa.statusError}
		}
		return true, tr, nil
	})
	fa.cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		fa.sars++
		if fa.sarErr != nil {
			return true, nil, fa.sarErr
		}
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		fa.lastSAR = sar.DeepCopy()
		sar.Status.Allowed = fa.allowed[sar.Spec.User]
		return true, sar, nil
	})
	return fa
}

func (fa *fakeAPI) counts() (tokenReviews, sars int) {
	// Reactors run under the Fake's lock; take it to read the counters.
	fa.cs.Lock()
	defer fa.cs.Unlock()
	return fa.tokenReviews, fa.sars
}

func debugLogger(buf *testlog.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeClock is a settable clock for the cache and the log throttle.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

type unitEnv struct {
	api     *fakeAPI
	filter  *Filter
	clock   *fakeClock
	logs    *testlog.Buffer
	handler http.Handler
	calls   int      // requests that reached next
	seen    []User   // UserFrom in next
	bodies  []string // every response, headers included, for canary checks
}

func newUnitEnv(t *testing.T, opts Options) *unitEnv {
	t.Helper()
	e := &unitEnv{api: newFakeAPI(), clock: &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, logs: &testlog.Buffer{}}
	opts.Logger = debugLogger(e.logs)
	e.filter = New(e.api.cs, opts)
	e.filter.now = e.clock.now
	e.handler = e.filter.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls++
		u, ok := UserFrom(r.Context())
		if !ok {
			t.Errorf("next called without a user in the context")
		}
		if got := r.Header.Get("Authorization"); got != "" {
			t.Errorf("next sees Authorization %q; want it removed", got)
		}
		e.seen = append(e.seen, u)
		_, _ = w.Write([]byte("report"))
	}))
	return e
}

// do sends a request with the given Authorization header ("" for none).
func (e *unitEnv) do(t *testing.T, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/report", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	if auth != "" && req.Header.Get("Authorization") != auth {
		t.Errorf("the caller's request lost its Authorization header")
	}
	var dump strings.Builder
	_ = rec.Result().Header.Write(&dump)
	dump.WriteString(rec.Body.String())
	e.bodies = append(e.bodies, dump.String())
	return rec
}

// assertNoToken fails when token shows up in a response or the log.
func (e *unitEnv) assertNoToken(t *testing.T, token string) {
	t.Helper()
	for i, b := range e.bodies {
		if strings.Contains(b, token) {
			t.Errorf("response %d contains the token:\n%s", i, b)
		}
	}
	if strings.Contains(e.logs.String(), token) {
		t.Errorf("log contains the token:\n%s", e.logs.String())
	}
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status %d, want %d; body %q", rec.Code, want, rec.Body.String())
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name      string
		values    []string
		token     string
		noToken   bool
		malformed bool
	}{
		{name: "none", noToken: true},
		{name: "bearer", values: []string{"Bearer abc.def-ghi"}, token: "abc.def-ghi"},
		{name: "scheme case and spaces", values: []string{"  bearer   abc  "}, token: "abc"},
		{name: "basic", values: []string{"Basic YWxpY2U6cHc="}, malformed: true},
		{name: "scheme only", values: []string{"Bearer"}, malformed: true},
		{name: "empty token", values: []string{"Bearer    "}, malformed: true},
		{name: "token with space", values: []string{"Bearer abc def"}, malformed: true},
		{name: "token with tab", values: []string{"Bearer abc\tdef"}, malformed: true},
		{name: "two headers", values: []string{"Bearer abc", "Bearer def"}, malformed: true},
		{name: "empty header", values: []string{""}, malformed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.values {
				h.Add("Authorization", v)
			}
			token, problem := bearerToken(h)
			switch {
			case tc.noToken:
				if problem != noToken {
					t.Errorf("problem %q, want %q", problem, noToken)
				}
			case tc.malformed:
				if problem == "" || problem == noToken {
					t.Errorf("got token %q problem %q, want malformed", token, problem)
				}
			default:
				if problem != "" || token != tc.token {
					t.Errorf("got token %q problem %q, want %q", token, problem, tc.token)
				}
			}
			if problem != "" && token != "" {
				t.Errorf("token %q returned with problem %q", token, problem)
			}
		})
	}
}

func TestStatusCodes(t *testing.T) {
	e := newUnitEnv(t, Options{})
	e.api.users["alice-token"] = authenticationv1.UserInfo{Username: "alice", UID: "u1"}
	e.api.users["carol-token"] = authenticationv1.UserInfo{Username: "carol"}
	e.api.allowed["alice"] = true

	rec := e.do(t, "")
	wantStatus(t, rec, http.StatusUnauthorized)
	if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="keyhole"` {
		t.Errorf("no token: WWW-Authenticate %q", got)
	}
	for _, auth := range []string{"Basic YWxpY2U6cHc=", "Bearer " + canaryToken} {
		rec = e.do(t, auth)
		wantStatus(t, rec, http.StatusUnauthorized)
		if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="keyhole", error="invalid_token"` {
			t.Errorf("%q: WWW-Authenticate %q", auth, got)
		}
	}
	rec = e.do(t, "Bearer carol-token")
	wantStatus(t, rec, http.StatusForbidden)
	if want := `forbidden: user "carol" cannot get reports.keyhole.io at the cluster scope`; strings.TrimSpace(rec.Body.String()) != want {
		t.Errorf("403 body %q, want %q", rec.Body.String(), want)
	}
	if e.calls != 0 {
		t.Fatalf("next called %d times for refused requests", e.calls)
	}
	rec = e.do(t, "Bearer alice-token")
	wantStatus(t, rec, http.StatusOK)
	if e.calls != 1 || e.seen[0].Name != "alice" || e.seen[0].UID != "u1" {
		t.Errorf("next: %d calls, users %+v", e.calls, e.seen)
	}
	e.assertNoToken(t, canaryToken)
	e.assertNoToken(t, "alice-token")
	e.assertNoToken(t, "carol-token")
}

func TestCustomResource(t *testing.T) {
	e := newUnitEnv(t, Options{Verb: "list", Group: "example.com", Resource: "things"})
	e.api.users["t"] = authenticationv1.UserInfo{Username: "carol"}
	rec := e.do(t, "Bearer t")
	wantStatus(t, rec, http.StatusForbidden)
	if !strings.Contains(rec.Body.String(), `user "carol" cannot list things.example.com`) {
		t.Errorf("403 body %q", rec.Body.String())
	}
	ra := e.api.lastSAR.Spec.ResourceAttributes
	if ra.Verb != "list" || ra.Group != "example.com" || ra.Resource != "things" {
		t.Errorf("SAR attributes %+v", ra)
	}
}

func TestSubjectAccessReviewCarriesTheUser(t *testing.T) {
	e := newUnitEnv(t, Options{})
	user := authenticationv1.UserInfo{
		Username: "system:serviceaccount:monitoring:prometheus",
		UID:      "4f6c",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:monitoring", "system:authenticated"},
		Extra: map[string]authenticationv1.ExtraValue{
			"authentication.kubernetes.io/pod-name": {"prometheus-0"},
			"authentication.kubernetes.io/pod-uid":  {"a1b2"},
		},
	}
	e.api.users["sa-token"] = user
	e.api.allowed[user.Username] = true
	wantStatus(t, e.do(t, "Bearer sa-token"), http.StatusOK)

	want := authorizationv1.SubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Group: "keyhole.io", Resource: "reports"},
		User:               user.Username,
		UID:                user.UID,
		Groups:             user.Groups,
		Extra: map[string]authorizationv1.ExtraValue{
			"authentication.kubernetes.io/pod-name": {"prometheus-0"},
			"authentication.kubernetes.io/pod-uid":  {"a1b2"},
		},
	}
	if got := e.api.lastSAR.Spec; !reflect.DeepEqual(got, want) {
		t.Errorf("SAR spec\n got %+v\nwant %+v", got, want)
	}
	gotUser := e.seen[0]
	wantUser := User{Name: user.Username, UID: user.UID, Groups: user.Groups, Extra: map[string][]string{
		"authentication.kubernetes.io/pod-name": {"prometheus-0"},
		"authentication.kubernetes.io/pod-uid":  {"a1b2"},
	}}
	if !reflect.DeepEqual(gotUser, wantUser) {
		t.Errorf("UserFrom\n got %+v\nwant %+v", gotUser, wantUser)
	}
	if len(e.api.lastTR.Spec.Audiences) != 0 {
		t.Errorf("TokenReview audiences %q without Options.Audiences", e.api.lastTR.Spec.Audiences)
	}
}

func TestAudiences(t *testing.T) {
	tests := []struct {
		name            string
		statusAudiences []string // nil: echo the request
		want            int
	}{
		{name: "confirmed", want: http.StatusOK},
		{name: "server ignores audiences", statusAudiences: []string{}, want: http.StatusUnauthorized},
		{name: "other audience", statusAudiences: []string{"https://kubernetes.default.svc"}, want: http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newUnitEnv(t, Options{Audiences: []string{"keyhole", "keyhole.example.com"}})
			e.api.users["t"] = authenticationv1.UserInfo{Username: "alice"}
			e.api.allowed["alice"] = true
			e.api.statusAudiences = tc.statusAudiences
			wantStatus(t, e.do(t, "Bearer t"), tc.want)
			if got := e.api.lastTR.Spec.Audiences; !reflect.DeepEqual(got, []string{"keyhole", "keyhole.example.com"}) {
				t.Errorf("TokenReview audiences %q", got)
			}
		})
	}
}

func TestCacheReusesAllowedDecisionsForTTL(t *testing.T) {
	e := newUnitEnv(t, Options{CacheTTL: 10 * time.Second})
	e.api.users["alice-token"] = authenticationv1.UserInfo{Username: "alice"}
	e.api.allowed["alice"] = true

	wantStatus(t, e.do(t, "Bearer alice-token"), http.StatusOK)
	if tr, sar := e.api.counts(); tr != 1 || sar != 1 {
		t.Fatalf("first request: %d TokenReviews, %d SARs; want 1, 1", tr, sar)
	}
	e.clock.advance(9 * time.Second)
	wantStatus(t, e.do(t, "Bearer alice-token"), http.StatusOK)
	if tr, sar := e.api.counts(); tr != 1 || sar != 1 {
		t.Fatalf("within TTL: %d TokenReviews, %d SARs; want no new review", tr, sar)
	}
	// The grant is revoked: the cached decision hides it until the TTL
	// ends, as documented, and not a moment longer.
	e.api.allowed["alice"] = false
	wantStatus(t, e.do(t, "Bearer alice-token"), http.StatusOK)
	e.clock.advance(time.Second)
	wantStatus(t, e.do(t, "Bearer alice-token"), http.StatusForbidden)
	if tr, sar := e.api.counts(); tr != 2 || sar != 2 {
		t.Fatalf("after TTL: %d TokenReviews, %d SARs; want 2, 2", tr, sar)
	}
	if e.calls != 3 {
		t.Errorf("next called %d times, want 3", e.calls)
	}
	// The entry is keyed by the token's SHA-256, never the token.
	e.api.allowed["alice"] = true
	wantStatus(t, e.do(t, "Bearer alice-token"), http.StatusOK)
	e.filter.cache.mu.Lock()
	_, hashed := e.filter.cache.entries[sha256.Sum256([]byte("alice-token"))]
	n := len(e.filter.cache.entries)
	e.filter.cache.mu.Unlock()
	if !hashed || n != 1 {
		t.Errorf("cache has %d entries, keyed by SHA-256 of the token: %v", n, hashed)
	}
}

func TestCacheNeverHoldsDenials(t *testing.T) {
	e := newUnitEnv(t, Options{CacheTTL: time.Minute})
	e.api.users["carol-token"] = authenticationv1.UserInfo{Username: "carol"}

	for range 2 {
		wantStatus(t, e.do(t, "Bearer "+canaryToken), http.StatusUnauthorized)
	}
	if tr, sar := e.api.counts(); tr != 2 || sar != 0 {
		t.Fatalf("unauthenticated twice: %d TokenReviews, %d SARs; want 2, 0", tr, sar)
	}
	wantStatus(t, e.do(t, "Bearer carol-token"), http.StatusForbidden)
	// Granted right after the 403: the next request must see it at once.
	e.api.allowed["carol"] = true
	wantStatus(t, e.do(t, "Bearer carol-token"), http.StatusOK)
	if tr, sar := e.api.counts(); tr != 4 || sar != 2 {
		t.Fatalf("forbidden then allowed: %d TokenReviews, %d SARs; want 4, 2", tr, sar)
	}
	if n := e.filter.cache.len(); n != 1 {
		t.Errorf("cache holds %d entries, want only carol's allowed one", n)
	}
}

func TestCacheDisabled(t *testing.T) {
	e := newUnitEnv(t, Options{CacheTTL: -1})
	e.api.users["t"] = authenticationv1.UserInfo{Username: "alice"}
	e.api.allowed["alice"] = true
	for range 3 {
		wantStatus(t, e.do(t, "Bearer t"), http.StatusOK)
	}
	if tr, sar := e.api.counts(); tr != 3 || sar != 3 {
		t.Errorf("%d TokenReviews, %d SARs; want 3, 3", tr, sar)
	}
}

func TestCacheIsBounded(t *testing.T) {
	e := newUnitEnv(t, Options{CacheTTL: 10 * time.Second})
	e.filter.cache = newCache(2)
	for _, name := range []string{"a", "b", "c", "d"} {
		e.api.users[name+"-token"] = authenticationv1.UserInfo{Username: name}
		e.api.allowed[name] = true
	}
	reviews := func() int { tr, _ := e.api.counts(); return tr }

	wantStatus(t, e.do(t, "Bearer a-token"), http.StatusOK)
	e.clock.advance(8 * time.Second)
	wantStatus(t, e.do(t, "Bearer b-token"), http.StatusOK)
	e.clock.advance(4 * time.Second) // a has expired, b has not
	// Full: the expired entry makes room, b stays.
	wantStatus(t, e.do(t, "Bearer c-token"), http.StatusOK)
	if n := e.filter.cache.len(); n != 2 {
		t.Fatalf("after sweeping the expired entry: %d entries, want 2", n)
	}
	before := reviews()
	wantStatus(t, e.do(t, "Bearer b-token"), http.StatusOK)
	if reviews() != before {
		t.Fatalf("b was reviewed again; its entry should have survived the sweep")
	}
	// Full of live entries: everything is dropped, then d is added.
	wantStatus(t, e.do(t, "Bearer d-token"), http.StatusOK)
	if n := e.filter.cache.len(); n != 1 {
		t.Fatalf("after overflowing: %d entries, want 1", n)
	}
	before = reviews()
	wantStatus(t, e.do(t, "Bearer b-token"), http.StatusOK)
	if reviews() != before+1 {
		t.Fatalf("b was not reviewed again after the cache was dropped")
	}
}

func TestAPIFailuresFailClosed(t *testing.T) {
	trGR := schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}
	sarGR := schema.GroupResource{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}
	tests := []struct {
		name         string
		trErr        error
		sarErr       error
		status       int
		bodyContains []string
	}{
		{
			name:         "tokenreviews forbidden",
			trErr:        apierrors.NewForbidden(trGR, "", errors.New(`User "keyhole" cannot create resource`)),
			status:       http.StatusInternalServerError,
			bodyContains: []string{"tokenreviews.authentication.k8s.io", "system:auth-delegator"},
		},
		{
			name:         "subjectaccessreviews forbidden",
			sarErr:       apierrors.NewForbidden(sarGR, "", errors.New(`User "keyhole" cannot create resource`)),
			status:       http.StatusInternalServerError,
			bodyContains: []string{"subjectaccessreviews.authorization.k8s.io", "system:auth-delegator"},
		},
		{
			name:         "keyhole's credentials rejected",
			trErr:        apierrors.NewUnauthorized("token expired"),
			status:       http.StatusInternalServerError,
			bodyContains: []string{"keyhole's own credentials"},
		},
		{
			// The error quotes the token, which must still stay out of
			// the log.
			name:         "transport error",
			trErr:        errors.New(`Post "https://10.0.0.1/apis/authentication.k8s.io/v1/tokenreviews": connection refused; token ` + canaryToken),
			status:       http.StatusServiceUnavailable,
			bodyContains: []string{"tokenreviews.authentication.k8s.io", "try again later"},
		},
		{
			name:         "apiserver error on SAR",
			sarErr:       apierrors.NewInternalError(errors.New("etcd timeout")),
			status:       http.StatusServiceUnavailable,
			bodyContains: []string{"subjectaccessreviews.authorization.k8s.io"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newUnitEnv(t, Options{})
			e.api.users[canaryToken] = authenticationv1.UserInfo{Username: "alice"}
			e.api.allowed["alice"] = true
			e.api.trErr, e.api.sarErr = tc.trErr, tc.sarErr

			for range 3 {
				rec := e.do(t, "Bearer "+canaryToken)
				wantStatus(t, rec, tc.status)
				for _, s := range tc.bodyContains {
					if !strings.Contains(rec.Body.String(), s) {
						t.Errorf("body %q does not name %q", rec.Body.String(), s)
					}
				}
			}
			if e.calls != 0 {
				t.Fatalf("next called %d times while failing closed", e.calls)
			}
			if got := strings.Count(e.logs.String(), "level=ERROR"); got != 1 {
				t.Errorf("3 failures logged %d error lines, want 1:\n%s", got, e.logs.String())
			}
			// A minute later the failure is logged again, with a count.
			e.clock.advance(failureLogInterval)
			wantStatus(t, e.do(t, "Bearer "+canaryToken), tc.status)
			if !strings.Contains(e.logs.String(), "suppressed_since_last=2") {
				t.Errorf("second error line does not count the 2 suppressed:\n%s", e.logs.String())
			}
			// Failures are not cached: once the API answers, so does the
			// filter.
			e.api.trErr, e.api.sarErr = nil, nil
			wantStatus(t, e.do(t, "Bearer "+canaryToken), http.StatusOK)
			e.assertNoToken(t, canaryToken)
		})
	}
}

func TestTokenReviewErrorIsNotLoggedWithTheToken(t *testing.T) {
	e := newUnitEnv(t, Options{})
	e.api.statusError = "invalid bearer token " + canaryToken
	wantStatus(t, e.do(t, "Bearer "+canaryToken), http.StatusUnauthorized)
	if !strings.Contains(e.logs.String(), "invalid bearer token [token]") {
		t.Errorf("the TokenReview's error is not logged, redacted:\n%s", e.logs.String())
	}
	e.assertNoToken(t, canaryToken)
}

func TestUserFromIsACopy(t *testing.T) {
	e := newUnitEnv(t, Options{})
	e.api.users["t"] = authenticationv1.UserInfo{Username: "alice", Groups: []string{"g"}, Extra: map[string]authenticationv1.ExtraValue{"k": {"v"}}}
	e.api.allowed["alice"] = true
	wantStatus(t, e.do(t, "Bearer t"), http.StatusOK)
	e.seen[0].Groups[0] = "system:masters"
	e.seen[0].Extra["k"][0] = "changed"
	wantStatus(t, e.do(t, "Bearer t"), http.StatusOK) // from the cache
	if got := e.seen[1]; got.Groups[0] != "g" || got.Extra["k"][0] != "v" {
		t.Errorf("a handler's change to its User leaked into the cache: %+v", got)
	}
	if _, ok := UserFrom(t.Context()); ok {
		t.Errorf("UserFrom found a user in a plain context")
	}
}

// TestConcurrentRequests is for -race: the cache (kept small so that it
// overflows), the log throttle and the reviews under parallel callers.
func TestConcurrentRequests(t *testing.T) {
	api := newFakeAPI()
	for _, name := range []string{"a", "b", "c", "d"} {
		api.users[name+"-token"] = authenticationv1.UserInfo{Username: name, Groups: []string{"g"}}
		api.allowed[name] = name != "d"
	}
	// Unbounded reviews: this test is about races, not the rate limit.
	f := New(api.cs, Options{Logger: debugLogger(&testlog.Buffer{}), ReviewsPerSecond: -1})
	f.cache = newCache(2)
	h := f.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := UserFrom(r.Context()); !ok || u.Name == "d" {
			t.Errorf("next called for %+v", u)
		}
	}))
	want := map[string]int{"a": 200, "b": 200, "c": 200, "d": 403, "x": 401}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				name := []string{"a", "b", "c", "d", "x"}[(g+i)%5]
				req := httptest.NewRequest(http.MethodGet, "/api/v1/report", nil)
				req.Header.Set("Authorization", "Bearer "+name+"-token")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != want[name] {
					t.Errorf("%s: status %d, want %d", name, rec.Code, want[name])
					return
				}
			}
		})
	}
	wg.Wait()
	if n := f.cache.len(); n > 2 {
		t.Errorf("cache grew to %d entries past its bound of 2", n)
	}
}

// TestReviewRateLimit: past the bound, uncached tokens get 429 without a
// review reaching the API server, while a cached caller still gets in.
func TestReviewRateLimit(t *testing.T) {
	e := newUnitEnv(t, Options{CacheTTL: time.Minute, ReviewsPerSecond: 1}) // burst 2
	e.api.users["alice-token"] = authenticationv1.UserInfo{Username: "alice"}
	e.api.allowed["alice"] = true
	wantStatus(t, e.do(t, "Bearer alice-token"), http.StatusOK)            // 1st review, cached
	wantStatus(t, e.do(t, "Bearer "+canaryToken), http.StatusUnauthorized) // 2nd review
	rec := e.do(t, "Bearer "+canaryToken)
	wantStatus(t, rec, http.StatusTooManyRequests)
	if rec.Header().Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	wantStatus(t, e.do(t, "Bearer alice-token"), http.StatusOK) // from the cache
	if tr, _ := e.api.counts(); tr != 2 {
		t.Errorf("%d TokenReviews, want 2: the limited request must not reach the API server", tr)
	}
	e.assertNoToken(t, canaryToken)
}
