// Package httpauth owns who may call keyhole serve's protected HTTP
// endpoints. A caller presents a Kubernetes bearer token; the filter asks the
// API server who that is (TokenReview) and whether that identity may perform
// a verb on a virtual resource, by default get reports.keyhole.io
// (SubjectAccessReview): the delegated pattern of kube-rbac-proxy and
// controller-runtime's metrics filters, so that access to the report is
// plain Kubernetes RBAC. It owns the mapping of outcomes to 401, 403 and
// fail-closed 5xx answers, and a short cache of allowed decisions keyed by a
// hash of the token. It does not own routing, TLS, rate limiting nor what
// the wrapped handler serves.
package httpauth

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Defaults for Options.
const (
	DefaultVerb     = "get"
	DefaultGroup    = "keyhole.io"
	DefaultResource = "reports"
	// DefaultCacheTTL matches the allowed-decision cache of the Kubernetes
	// delegated authenticator and authorizer (k8s.io/apiserver), so a
	// revoked grant lingers here no longer than in an aggregated apiserver.
	DefaultCacheTTL = 10 * time.Second
	// DefaultReviewsPerSecond bounds the reviews of uncached tokens, with
	// a burst of twice as many: far above what scrapers and people need,
	// far below what would load an API server.
	DefaultReviewsPerSecond = 20
)

const (
	// maxCacheEntries bounds the cache. Only callers that were allowed add
	// entries, so reaching it takes this many distinct authorized tokens
	// within one TTL; the cost of overflowing is one more pair of reviews
	// per caller.
	maxCacheEntries = 1024

	// reviewTimeout bounds the TokenReview and SubjectAccessReview of one
	// request. A hung API server must not pile up waiting requests; a
	// healthy one answers in milliseconds.
	reviewTimeout = 10 * time.Second

	// failureLogInterval is how often one kind of API failure is logged.
	// A missing ClusterRoleBinding fails every request; one line a minute
	// says so without flooding the log.
	failureLogInterval = time.Minute

	realm = `Bearer realm="keyhole"`
)

// Options configure a Filter. The zero value protects get
// reports.keyhole.io with the API server's default audience.
type Options struct {
	// Verb, Group and Resource name the virtual, cluster-scoped resource a
	// caller must be allowed on. An empty field takes its default (get,
	// keyhole.io, reports); the core group cannot be chosen, which is
	// deliberate: a virtual resource there could collide with a real one.
	Verb, Group, Resource string
	// Audiences are sent in the TokenReview. When set, a token is accepted
	// only if the API server confirms it was issued for one of them, so a
	// token minted for keyhole cannot be replayed against the API server
	// and vice versa. Empty means the API server's own audience.
	Audiences []string
	// CacheTTL is how long an allowed decision is reused: 0 means
	// DefaultCacheTTL, a negative value disables the cache. A token revoked
	// or a binding removed within the TTL keeps working until it ends.
	// Denials are never cached: see Filter.
	CacheTTL time.Duration
	// ReviewsPerSecond bounds the reviews sent to the API server for
	// tokens the cache does not answer: 0 means DefaultReviewsPerSecond,
	// a negative value no bound. Past it, callers get 429: anyone who
	// reaches the port can send random tokens, and each would otherwise
	// cost the API server a TokenReview.
	ReviewsPerSecond float64
	// Logger receives decisions (Debug, Info for 403) and API failures
	// (Error, at most once a minute per kind). Nil means slog.Default().
	// The token is never logged.
	Logger *slog.Logger
}

// Filter authenticates and authorizes HTTP requests against the Kubernetes
// API. Create it with New; it is safe for concurrent use.
//
// Only allowed decisions are cached. Caching a denial adds no security, it
// would make a caller who was just granted access wait out the TTL, and,
// since anyone can send a random token, it would let an unauthenticated
// client fill the bounded cache and evict the entries of real callers.
// The price is one TokenReview (and a SubjectAccessReview when the token
// is valid) per denied request.
type Filter struct {
	client    kubernetes.Interface
	verb      string
	group     string
	resource  string
	audiences []string
	ttl       time.Duration
	log       *slog.Logger

	cache    *cache
	failures *throttle
	reviews  *rate.Limiter
	now      func() time.Time // replaced in tests
}

// New returns a Filter that reviews tokens with client, whose identity
// needs create on tokenreviews.authentication.k8s.io and
// subjectaccessreviews.authorization.k8s.io (the ClusterRole
// system:auth-delegator).
func New(client kubernetes.Interface, opts Options) *Filter {
	if client == nil {
		panic("httpauth.New: nil client")
	}
	f := &Filter{
		client:    client,
		verb:      cmp.Or(opts.Verb, DefaultVerb),
		group:     cmp.Or(opts.Group, DefaultGroup),
		resource:  cmp.Or(opts.Resource, DefaultResource),
		audiences: slices.Clone(opts.Audiences),
		ttl:       opts.CacheTTL,
		log:       opts.Logger,
		cache:     newCache(maxCacheEntries),
		failures:  newThrottle(failureLogInterval),
		now:       time.Now,
	}
	switch rps := cmp.Or(opts.ReviewsPerSecond, DefaultReviewsPerSecond); {
	case rps > 0:
		f.reviews = rate.NewLimiter(rate.Limit(rps), int(max(1, 2*rps)))
	default:
		f.reviews = rate.NewLimiter(rate.Inf, 0)
	}
	if f.ttl == 0 {
		f.ttl = DefaultCacheTTL
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	return f
}

// User is the authenticated caller, as the TokenReview described it.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

func (u User) clone() User {
	u.Groups = slices.Clone(u.Groups)
	if u.Extra != nil {
		extra := make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			extra[k] = slices.Clone(v)
		}
		u.Extra = extra
	}
	return u
}

type userKey struct{}

// UserFrom returns the caller that Wrap let through, for the handler's own
// logging. ok is false outside a wrapped handler.
func UserFrom(ctx context.Context) (u User, ok bool) {
	u, ok = ctx.Value(userKey{}).(User)
	return u, ok
}

// Wrap returns a handler that calls next only for callers allowed on the
// Filter's resource. Every other request is answered here: 401 without a
// valid bearer token, 403 when the caller lacks the permission, 500 or 503
// when the API server cannot be asked (fail closed). next sees the caller
// in its context (UserFrom) and no Authorization header.
func (f *Filter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, problem := bearerToken(r.Header)
		if problem != "" {
			f.log.Debug("httpauth: unauthenticated request", "reason", problem, "remote", r.RemoteAddr, "path", r.URL.Path)
			unauthorized(w, problem == noToken)
			return
		}
		u, err := f.decide(r.Context(), token)
		var forbidden *forbiddenError
		var apiErr *apiFailure
		switch {
		case err == nil:
		case errors.Is(err, errTooManyReviews):
			f.log.Debug("httpauth: review rate limit reached", "remote", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("Retry-After", "1")
			http.Error(w, err.Error(), http.StatusTooManyRequests)
			return
		case errors.As(err, &forbidden):
			f.log.Info("httpauth: forbidden", "user", u.Name, "verb", f.verb, "resource", f.qualifiedResource(),
				"evaluation_error", redact(forbidden.evaluationError, token), "remote", r.RemoteAddr, "path", r.URL.Path)
			http.Error(w, forbidden.Error(), http.StatusForbidden)
			return
		case errors.As(err, &apiErr):
			f.logFailure(apiErr, token)
			http.Error(w, apiErr.public, apiErr.status)
			return
		default: // unauthenticated
			f.log.Debug("httpauth: token rejected", "reason", redact(err.Error(), token), "remote", r.RemoteAddr, "path", r.URL.Path)
			unauthorized(w, false)
			return
		}
		f.log.Debug("httpauth: allowed", "user", u.Name, "path", r.URL.Path)
		// A deep copy of the headers, so the caller's request is untouched;
		// the handler has no use for the token and must not be able to log it.
		r = r.Clone(context.WithValue(r.Context(), userKey{}, u.clone()))
		r.Header.Del("Authorization")
		next.ServeHTTP(w, r)
	})
}

const noToken = "no bearer token"

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header, or why there is none. It accepts what kube-apiserver accepts
// (case-insensitive scheme, surrounding spaces) and refuses ambiguity:
// several Authorization headers or a token with spaces inside.
func bearerToken(h http.Header) (token, problem string) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", noToken
	case len(values) > 1:
		return "", "several Authorization headers"
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "Authorization scheme is not Bearer"
	}
	token = strings.TrimSpace(rest)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", "malformed bearer token"
	}
	return token, ""
}

func unauthorized(w http.ResponseWriter, missing bool) {
	// RFC 6750 section 3: no error code when no credentials were sent.
	if missing {
		w.Header().Set("WWW-Authenticate", realm)
		http.Error(w, "unauthorized: send a Kubernetes bearer token (Authorization: Bearer <token>)", http.StatusUnauthorized)
		return
	}
	w.Header().Set("WWW-Authenticate", realm+`, error="invalid_token"`)
	http.Error(w, "unauthorized: the bearer token is malformed, invalid or expired", http.StatusUnauthorized)
}

// decide returns the caller behind token, or why it may not pass: an
// unauthenticated error, a *forbiddenError or an *apiFailure.
func (f *Filter) decide(ctx context.Context, token string) (User, error) {
	key := sha256.Sum256([]byte(token))
	// The TTL runs from before the reviews: a decision is never reused
	// longer than TTL after the API server could have made it.
	start := f.now()
	if f.ttl > 0 {
		if u, ok := f.cache.get(key, start); ok {
			return u, nil
		}
	}
	if !f.reviews.Allow() {
		return User{}, errTooManyReviews
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	u, err := f.authenticate(ctx, token)
	if err != nil {
		return User{}, err
	}
	if err := f.authorize(ctx, u); err != nil {
		return u, err
	}
	if f.ttl > 0 {
		f.cache.put(key, u, start.Add(f.ttl), start)
	}
	return u, nil
}

var errUnauthenticated = errors.New("the API server did not authenticate the token")

// errTooManyReviews refuses a request when the reviews' rate limit is
// reached: the caller may retry, the API server is spared.
var errTooManyReviews = errors.New("too many requests to verify: try again in a second")

func (f *Filter) authenticate(ctx context.Context, token string) (User, error) {
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{
		Token:     token,
		Audiences: f.audiences,
	}}
	res, err := f.client.AuthenticationV1().TokenReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return User{}, newAPIFailure("tokenreviews.authentication.k8s.io", "verify the bearer token", err)
	}
	st := res.Status
	if !st.Authenticated {
		if st.Error != "" {
			return User{}, fmt.Errorf("%w: %s", errUnauthenticated, st.Error)
		}
		return User{}, errUnauthenticated
	}
	if st.User.Username == "" {
		return User{}, fmt.Errorf("%w: no username in the TokenReview status", errUnauthenticated)
	}
	// The API server echoes the audiences it checked. An empty list means
	// it checked its own audience only (an authenticator that ignores
	// audiences), which is not what was asked.
	if len(f.audiences) > 0 && !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(f.audiences, a) }) {
		return User{}, fmt.Errorf("%w: token audiences %q do not include any of %q", errUnauthenticated, st.Audiences, f.audiences)
	}
	u := User{
		Name:   st.User.Username,
		UID:    st.User.UID,
		Groups: slices.Clone(st.User.Groups),
	}
	if len(st.User.Extra) > 0 {
		u.Extra = make(map[string][]string, len(st.User.Extra))
		for k, v := range st.User.Extra {
			u.Extra[k] = slices.Clone(v)
		}
	}
	return u, nil
}

func (f *Filter) authorize(ctx context.Context, u User) error {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb:     f.verb,
			Group:    f.group,
			Resource: f.resource,
		},
		User:   u.Name,
		UID:    u.UID,
		Groups: slices.Clone(u.Groups),
	}}
	if len(u.Extra) > 0 {
		sar.Spec.Extra = make(map[string]authorizationv1.ExtraValue, len(u.Extra))
		for k, v := range u.Extra {
			sar.Spec.Extra[k] = slices.Clone(v)
		}
	}
	res, err := f.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return newAPIFailure("subjectaccessreviews.authorization.k8s.io", "check the caller's permission", err)
	}
	if !res.Status.Allowed {
		return &forbiddenError{user: u.Name, verb: f.verb, resource: f.qualifiedResource(), evaluationError: res.Status.EvaluationError}
	}
	return nil
}

func (f *Filter) qualifiedResource() string { return f.resource + "." + f.group }

// forbiddenError is an authenticated caller without the permission. Its
// message is what the caller reads: what is missing, and nothing about
// the cluster's RBAC beyond it.
type forbiddenError struct {
	user, verb, resource string
	evaluationError      string
}

func (e *forbiddenError) Error() string {
	return fmt.Sprintf("forbidden: user %q cannot %s %s at the cluster scope", e.user, e.verb, e.resource)
}

// apiFailure is a review the API server did not answer with a decision.
// The filter then fails closed: status is 500 when retrying cannot help
// (keyhole's own identity lacks a permission or was rejected), 503
// otherwise.
type apiFailure struct {
	status int
	kind   string // throttles logging: one line per kind per interval
	public string // safe for the caller and the log: no token, no internals
	err    error
}

func (e *apiFailure) Error() string { return e.public + ": " + e.err.Error() }
func (e *apiFailure) Unwrap() error { return e.err }

func newAPIFailure(resource, what string, err error) *apiFailure {
	switch {
	case apierrors.IsForbidden(err):
		return &apiFailure{
			status: http.StatusInternalServerError,
			kind:   resource + " forbidden",
			public: fmt.Sprintf("keyhole cannot %s: its own identity may not create %s; bind its ServiceAccount to the ClusterRole system:auth-delegator", what, resource),
			err:    err,
		}
	case apierrors.IsUnauthorized(err):
		return &apiFailure{
			status: http.StatusInternalServerError,
			kind:   resource + " unauthorized",
			public: fmt.Sprintf("keyhole cannot %s: the Kubernetes API rejected keyhole's own credentials when creating %s", what, resource),
			err:    err,
		}
	}
	return &apiFailure{
		status: http.StatusServiceUnavailable,
		kind:   resource + " unavailable",
		public: fmt.Sprintf("keyhole cannot %s: creating %s in the Kubernetes API failed; try again later", what, resource),
		err:    err,
	}
}

func (f *Filter) logFailure(e *apiFailure, token string) {
	ok, suppressed := f.failures.allow(e.kind, f.now())
	if !ok {
		return
	}
	// client-go's errors hold URLs and API statuses, not the request body,
	// but the token is scrubbed anyway: this line must never carry it.
	f.log.Error("httpauth: failing closed", "status", e.status, "problem", e.public,
		"error", redact(e.err.Error(), token), "suppressed_since_last", suppressed)
}

func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[token]")
}
