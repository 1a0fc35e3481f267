// Package cluster reads a live cluster into the inventory. It owns the
// paginated LISTs through typed client-go clients (Load), the informers
// that keep the same resources cached for the daemon (Watcher), the choice
// of how Secrets are read (as a metadata-only Table by default, so that no
// value crosses the wire), and the translation of client-go failures into
// keyhole's terms: a resource that cannot be listed becomes a
// source.Problem that says what the analysis lacks, and only a cluster that
// cannot be reached at all fails the load, with one line that says why.
//
// The package never prints: it returns everything it has to say. It also
// keeps client-go from logging Secret responses at any klog verbosity.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source"
)

// Ways to read Secrets, for Options.SecretsVia.
const (
	// SecretsViaTable asks the API server for a Table of Secrets with
	// metadata-only rows: type, key names (from managedFields) and
	// metadata arrive, data never does.
	SecretsViaTable = "table"
	// SecretsViaFull lists whole Secrets and drops their values page by
	// page. It knows key names even where managedFields do not, at the
	// price of having every value of one page in memory.
	SecretsViaFull = "full"
)

// Defaults for Options.
const (
	DefaultPageSize       = 500
	DefaultConnectTimeout = 10 * time.Second
	DefaultConcurrency    = 4
)

// Options tune Load.
type Options struct {
	// SecretsVia is SecretsViaTable (the default when empty) or
	// SecretsViaFull.
	SecretsVia string
	// PageSize is the limit of each LIST page; DefaultPageSize when 0.
	PageSize int64
	// ConnectTimeout bounds the first request, which tells an unreachable
	// cluster from a reachable one; DefaultConnectTimeout when 0.
	ConnectTimeout time.Duration
	// Concurrency is how many resources are listed at once;
	// DefaultConcurrency when 0.
	Concurrency int
}

func (o Options) withDefaults() (Options, error) {
	var err error
	if o.SecretsVia, err = secretsVia(o.SecretsVia); err != nil {
		return o, err
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	return o, nil
}

// secretsVia checks a way to read Secrets, SecretsViaTable when empty.
func secretsVia(via string) (string, error) {
	switch via {
	case "":
		return SecretsViaTable, nil
	case SecretsViaTable, SecretsViaFull:
		return via, nil
	}
	return "", fmt.Errorf("unknown way to read Secrets %q: want %q or %q", via, SecretsViaTable, SecretsViaFull)
}

// Location is where every object read by Load comes from.
var Location = inventory.Location{Layer: "cluster"}

// resource is one kind the analysis needs: what Load lists and what the
// Watcher watches.
type resource struct {
	// name is the resource as RBAC names it, e.g. "pods".
	name string
	// kind counts the objects in Coverage.
	kind string
	// impact says what the analysis lacks when the LIST fails.
	impact string
	// valueBearing marks a resource whose responses may hold Secret
	// values or credentials (Secrets themselves; ConfigMaps and pod specs,
	// which may hard-code them), so that its error text is vetted and never
	// logged.
	valueBearing bool
	// api reads the resource. Load and the Watcher both take it from
	// here, so that what is listed and what is watched cannot drift apart.
	api func(c kubernetes.Interface, secretsVia string) api
}

// resources is every resource the analysis needs, listed by Load and
// watched by the Watcher, with what is lost without it.
var resources = []resource{
	{name: "namespaces", kind: "Namespace",
		impact: "Namespaces not inventoried: namespace labels and owners missing from findings",
		api: typed(func(c kubernetes.Interface) typedClient[*corev1.NamespaceList] {
			return c.CoreV1().Namespaces()
		}, func(l *corev1.NamespaceList) []corev1.Namespace { return l.Items }, trimNamespace)},
	{name: "secrets", kind: "Secret", valueBearing: true,
		impact: "Secrets not inventoried: no reader analysis possible",
		api:    secretsAPI},
	{name: "serviceaccounts", kind: "ServiceAccount",
		impact: "ServiceAccounts not inventoried: workload identities and legacy token Secrets not tied to accounts",
		api: typed(func(c kubernetes.Interface) typedClient[*corev1.ServiceAccountList] {
			return c.CoreV1().ServiceAccounts("")
		}, func(l *corev1.ServiceAccountList) []corev1.ServiceAccount { return l.Items }, nil)},
	{name: "roles", kind: "Role",
		impact: "RBAC incomplete: readers granted through Roles may be missing",
		api: typed(func(c kubernetes.Interface) typedClient[*rbacv1.RoleList] {
			return c.RbacV1().Roles("")
		}, func(l *rbacv1.RoleList) []rbacv1.Role { return l.Items }, nil)},
	{name: "clusterroles", kind: "ClusterRole",
		impact: "RBAC incomplete: readers granted through ClusterRoles may be missing",
		api: typed(func(c kubernetes.Interface) typedClient[*rbacv1.ClusterRoleList] {
			return c.RbacV1().ClusterRoles()
		}, func(l *rbacv1.ClusterRoleList) []rbacv1.ClusterRole { return l.Items }, nil)},
	{name: "rolebindings", kind: "RoleBinding",
		impact: "RBAC incomplete: readers bound in namespaces may be missing",
		api: typed(func(c kubernetes.Interface) typedClient[*rbacv1.RoleBindingList] {
			return c.RbacV1().RoleBindings("")
		}, func(l *rbacv1.RoleBindingList) []rbacv1.RoleBinding { return l.Items }, nil)},
	{name: "clusterrolebindings", kind: "ClusterRoleBinding",
		impact: "RBAC incomplete: readers bound cluster-wide may be missing",
		api: typed(func(c kubernetes.Interface) typedClient[*rbacv1.ClusterRoleBindingList] {
			return c.RbacV1().ClusterRoleBindings()
		}, func(l *rbacv1.ClusterRoleBindingList) []rbacv1.ClusterRoleBinding { return l.Items }, nil)},
	{name: "pods", kind: "Pod", valueBearing: true,
		impact: "Pods not inventoried: Secret use by bare Pods (env injection, mounted tokens, references) not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*corev1.PodList] {
			return c.CoreV1().Pods("")
		}, func(l *corev1.PodList) []corev1.Pod { return l.Items }, trimPod)},
	{name: "deployments", kind: "Deployment", valueBearing: true,
		impact: "Secret use by Deployments not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*appsv1.DeploymentList] {
			return c.AppsV1().Deployments("")
		}, func(l *appsv1.DeploymentList) []appsv1.Deployment { return l.Items }, trimDeployment)},
	{name: "replicasets", kind: "ReplicaSet", valueBearing: true,
		impact: "Secret use by ReplicaSets not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*appsv1.ReplicaSetList] {
			return c.AppsV1().ReplicaSets("")
		}, func(l *appsv1.ReplicaSetList) []appsv1.ReplicaSet { return l.Items }, trimReplicaSet)},
	{name: "statefulsets", kind: "StatefulSet", valueBearing: true,
		impact: "Secret use by StatefulSets not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*appsv1.StatefulSetList] {
			return c.AppsV1().StatefulSets("")
		}, func(l *appsv1.StatefulSetList) []appsv1.StatefulSet { return l.Items }, trimStatefulSet)},
	{name: "daemonsets", kind: "DaemonSet", valueBearing: true,
		impact: "Secret use by DaemonSets not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*appsv1.DaemonSetList] {
			return c.AppsV1().DaemonSets("")
		}, func(l *appsv1.DaemonSetList) []appsv1.DaemonSet { return l.Items }, trimDaemonSet)},
	{name: "jobs", kind: "Job", valueBearing: true,
		impact: "Secret use by Jobs not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*batchv1.JobList] {
			return c.BatchV1().Jobs("")
		}, func(l *batchv1.JobList) []batchv1.Job { return l.Items }, trimJob)},
	{name: "cronjobs", kind: "CronJob", valueBearing: true,
		impact: "Secret use by CronJobs not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*batchv1.CronJobList] {
			return c.BatchV1().CronJobs("")
		}, func(l *batchv1.CronJobList) []batchv1.CronJob { return l.Items }, trimCronJob)},
	{name: "replicationcontrollers", kind: "ReplicationController", valueBearing: true,
		impact: "Secret use by ReplicationControllers not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*corev1.ReplicationControllerList] {
			return c.CoreV1().ReplicationControllers("")
		}, func(l *corev1.ReplicationControllerList) []corev1.ReplicationController { return l.Items }, trimReplicationController)},
	{name: "configmaps", kind: "ConfigMap", valueBearing: true,
		impact: "ConfigMaps not inventoried: credentials kept outside Secrets not found",
		api: typed(func(c kubernetes.Interface) typedClient[*corev1.ConfigMapList] {
			return c.CoreV1().ConfigMaps("")
		}, func(l *corev1.ConfigMapList) []corev1.ConfigMap { return l.Items }, nil)},
	{name: "nodes", kind: "Node",
		impact: "Nodes not inventoried: access to Secrets through nodes not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*corev1.NodeList] {
			return c.CoreV1().Nodes()
		}, func(l *corev1.NodeList) []corev1.Node { return l.Items }, trimNode)},
	{name: "ingresses", kind: "Ingress",
		impact: "Ingresses not inventoried: TLS Secret references not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*networkingv1.IngressList] {
			return c.NetworkingV1().Ingresses("")
		}, func(l *networkingv1.IngressList) []networkingv1.Ingress { return l.Items }, trimIngress)},
	{name: "persistentvolumeclaims", kind: "PersistentVolumeClaim",
		impact: "PersistentVolumeClaims not inventoried: volumes bound to workloads not traced to their Secrets",
		api: typed(func(c kubernetes.Interface) typedClient[*corev1.PersistentVolumeClaimList] {
			return c.CoreV1().PersistentVolumeClaims("")
		}, func(l *corev1.PersistentVolumeClaimList) []corev1.PersistentVolumeClaim { return l.Items }, trimPersistentVolumeClaim)},
	{name: "persistentvolumes", kind: "PersistentVolume",
		impact: "PersistentVolumes not inventoried: Secret references of volume drivers not analysed",
		api: typed(func(c kubernetes.Interface) typedClient[*corev1.PersistentVolumeList] {
			return c.CoreV1().PersistentVolumes()
		}, func(l *corev1.PersistentVolumeList) []corev1.PersistentVolume { return l.Items }, trimPersistentVolume)},
}

// Impact returns what the analysis lacks when resource (e.g. "pods")
// cannot be listed, or "" for a resource Load does not read.
func Impact(resourceName string) string {
	for _, r := range resources {
		if r.name == resourceName {
			return r.impact
		}
	}
	return ""
}

// Load lists every resource the analysis needs into b, each object at
// Location. A resource that cannot be listed becomes a Problem and the
// others still load. The error is non-nil only when nothing could be read:
// the cluster is unreachable or rejects the credentials (a *ConnectError,
// one line), or opts is invalid; or when ctx ended during the load, in
// which case b may hold part of the cluster and should be discarded.
func Load(ctx context.Context, cfg *rest.Config, b *inventory.Builder, opts Options) (source.Coverage, []source.Problem, error) {
	cov := source.Coverage{Kind: "cluster", Target: serverURL(cfg)}
	opts, err := opts.withDefaults()
	if err != nil {
		return cov, nil, err
	}
	cs, err := clientset(cfg)
	if err != nil {
		return cov, nil, &ConnectError{Server: cov.Target, err: err,
			msg: fmt.Sprintf("cannot use the Kubernetes API at %s: %s", cov.Target, OneLine(err.Error()))}
	}
	if err := checkReachable(ctx, cs, cfg, cov.Target, opts.ConnectTimeout); err != nil {
		return cov, nil, err
	}

	type result struct {
		res  *resource
		objs []any
		err  error
	}
	results := make(chan result)
	sem := make(chan struct{}, opts.Concurrency)
	var wg sync.WaitGroup
	for i := range resources {
		r := &resources[i]
		wg.Go(func() {
			lctx := ctx
			if r.valueBearing {
				lctx = withoutLogging(ctx)
			}
			sem <- struct{}{}
			objs, err := listAll(lctx, r.api(cs, opts.SecretsVia).pages, opts.PageSize)
			<-sem // free the slot before waiting for the adding goroutine
			results <- result{res: r, objs: objs, err: err}
		})
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	// The Builder is not safe for concurrent use: only this goroutine adds.
	var problems []source.Problem
	for res := range results {
		if res.err != nil {
			problems = append(problems, res.res.problem("list "+res.res.name+": "+listReason(res.err, res.res.valueBearing)))
			continue
		}
		for _, o := range res.objs {
			res.res.add(b, &cov, o)
		}
	}
	if err := ctx.Err(); err != nil {
		return cov, problems, fmt.Errorf("reading the cluster at %s: %w", cov.Target, err)
	}
	source.SortProblems(problems)
	return cov, problems, nil
}

// problem reports the resource as missing from the analysis, with message
// saying why (for example "list pods: forbidden: …").
func (r *resource) problem(message string) source.Problem {
	return source.Problem{Source: "cluster", Location: Location, Resource: r.name, Message: message, Impact: r.impact}
}

// add puts one object of the resource into b and counts it in cov, as read
// or as ignored.
func (r *resource) add(b *inventory.Builder, cov *source.Coverage, obj any) {
	if _, _, err := b.Add(obj, Location); err != nil {
		source.Count(&cov.Ignored, r.kind)
		return
	}
	source.Count(&cov.Objects, r.kind)
}

// checkReachable makes one cheap request, GET /version, so that a cluster
// that cannot be reached fails once with one line rather than twenty
// times with client-go's text.
func checkReachable(ctx context.Context, cs kubernetes.Interface, cfg *rest.Config, server string, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := cs.Discovery().RESTClient().Get().AbsPath("/version").DoRaw(cctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("reading the cluster at %s: %w", server, ctx.Err())
	}
	return connectError(server, cfg, err, timeout)
}

// clientset copies cfg with keyhole's defaults where the caller left them
// unset, and with API warnings dropped: client-go would log them.
func clientset(cfg *rest.Config) (*kubernetes.Clientset, error) {
	c := rest.CopyConfig(cfg)
	if c.UserAgent == "" {
		c.UserAgent = UserAgent()
	}
	if c.QPS == 0 && c.RateLimiter == nil {
		c.QPS, c.Burst = defaultQPS, defaultBurst
	}
	c.WarningHandler = nil
	c.WarningHandlerWithContext = rest.NoWarnings{}
	return kubernetes.NewForConfig(c)
}

// serverURL is the API server's address as a URL, for messages and
// Coverage.Target.
func serverURL(cfg *rest.Config) string {
	u, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil || u == nil {
		return cfg.Host
	}
	return u.String()
}

// pageFunc fetches one page of a LIST: the objects, ready for
// Builder.Add, and the continue token ("" on the last page).
type pageFunc func(ctx context.Context, limit int64, cont string) (objs []any, next string, err error)

// listAll follows continue tokens to the end. When a token expires (410:
// etcd compacted the revision the list started at) it restarts the list
// once from the beginning, dropping what it had; a second expiry is an
// error. Objects are returned only for a complete list, so a resource is
// either wholly in the inventory or reported as a Problem.
func listAll(ctx context.Context, page pageFunc, limit int64) ([]any, error) {
	var all []any
	cont := ""
	restarted := false
	for {
		objs, next, err := page(ctx, limit, cont)
		if err != nil {
			if cont != "" && isExpired(err) {
				if !restarted {
					restarted, all, cont = true, nil, ""
					continue
				}
				return nil, errExpiredTwice
			}
			return nil, err
		}
		all = append(all, objs...)
		if next == "" {
			return all, nil
		}
		cont = next
	}
}

const errExpiredTwice ownError = "the list changed faster than it could be paged (continue token expired twice, 410 Gone); a larger page size may help"

// ownError is an error whose text this package wrote, so it is known to
// hold no value and can be shown as it is.
type ownError string

func (e ownError) Error() string { return string(e) }

func isExpired(err error) bool {
	if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		return true
	}
	var st apierrors.APIStatus
	return errors.As(err, &st) && st.Status().Code == 410
}

// api is how one resource is read: in pages by Load, and listed and
// watched by the Watcher's informer.
type api struct {
	pages pageFunc
	// list and watch serve the informer's reflector. list returns one page
	// of the options' Limit and Continue: the reflector pages.
	list  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
	// object is of the type watch delivers, for the reflector's check.
	object runtime.Object
	// transform trims each object before the informer caches it.
	transform cache.TransformFunc
}

// typedClient is the part of a typed client-go client that reads.
type typedClient[L any] interface {
	List(context.Context, metav1.ListOptions) (L, error)
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
}

// typed makes the api of a resource that a typed client reads. trim
// removes, from each object the Watcher caches, what the analysis does not
// read (see transform.go); nil keeps everything but the metadata trimMeta
// drops. Load does not trim: it keeps nothing for long.
func typed[T any, P interface {
	*T
	metav1.Object
	runtime.Object
}, L interface {
	metav1.ListInterface
	runtime.Object
}](client func(kubernetes.Interface) typedClient[L], items func(L) []T, trim func(P)) func(kubernetes.Interface, string) api {
	return func(c kubernetes.Interface, _ string) api {
		cl := client(c)
		return api{
			pages: typedPages[T, P](cl.List, items),
			list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				l, err := cl.List(ctx, o)
				if err != nil {
					return nil, err
				}
				return l, nil
			},
			watch:     cl.Watch,
			object:    P(new(T)),
			transform: trimmer(trim),
		}
	}
}

// typedPages adapts a typed client's List to a pageFunc. managedFields are
// dropped from every object: the analysis does not read them outside
// Secrets, and they are often a third of an object's size.
func typedPages[T any, P interface {
	*T
	metav1.Object
}, L metav1.ListInterface](list func(context.Context, metav1.ListOptions) (L, error), items func(L) []T) pageFunc {
	return func(ctx context.Context, limit int64, cont string) ([]any, string, error) {
		l, err := list(ctx, metav1.ListOptions{Limit: limit, Continue: cont})
		if err != nil {
			return nil, "", err
		}
		its := items(l)
		out := make([]any, len(its))
		for i := range its {
			p := P(&its[i])
			p.SetManagedFields(nil)
			out[i] = p
		}
		return out, l.GetContinue(), nil
	}
}
