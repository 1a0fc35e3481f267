package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source"
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// SecretsVia is SecretsViaTable (the default when empty) or
	// SecretsViaFull. Either way no value is cached.
	SecretsVia string
	// Resync makes every informer redeliver its objects this often, each
	// as an event; 0 for never.
	Resync time.Duration
	// OnEvent, when set, is called with the resource's name (e.g. "pods")
	// for every object added, deleted, or changed in what the Watcher keeps
	// of it (an update that only touches a dropped field, such as a pod's
	// conditions, is not an event; see transform.go), the initial list
	// included. It is called from the informers' goroutines and must be
	// quick.
	OnEvent func(resource string)
	// OnChange, when set, is called for every event OnEvent is, just
	// before it, with what the event did: which object kind, whether it
	// was added, updated or deleted, and, for a Secret's update, whether
	// its type or ServiceAccount changed (Change). The same rules apply.
	OnChange func(Change)
	// OnSourceUp, when set, is called when a resource is first read
	// (up) or fails (down), and then on every change between the two; see
	// Watcher. err, for down, says what failed in one line ("list pods:
	// forbidden: …") and never holds a value. Calls for one resource are
	// made one at a time, in order, from the informers' goroutines; it
	// must be quick.
	OnSourceUp func(resource string, up bool, err error)
}

// Watcher keeps a cache of every resource Load reads, through one
// informer per resource: the same resources, read by the same clients,
// trimmed to what the analysis needs (transform.go), and Secrets without
// their values.
//
// Each resource's health is the outcome of its last LIST or WATCH request:
// a failure makes it down, and a success makes it up again. A successful
// LIST does not end a WATCH's failure, so that a resource that may be
// listed but not watched stays down rather than flapping at every
// re-list. A failure that the reflector answers by itself, such as an
// expired resource version (410 Gone), is not one.
type Watcher struct {
	target string
	feeds  []*feed
}

// NewWatcher prepares the informers; Run starts them. It fails only on
// invalid options or an unusable cfg: an unreachable cluster is a
// failure of every resource, reported by OnSourceUp and Fill.
func NewWatcher(cfg *rest.Config, opts WatchOptions) (*Watcher, error) {
	via, err := secretsVia(opts.SecretsVia)
	if err != nil {
		return nil, err
	}
	target := serverURL(cfg)
	cs, err := clientset(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot use the Kubernetes API at %s: %s", target, OneLine(err.Error()))
	}
	w := &Watcher{target: target}
	for i := range resources {
		f, err := newFeed(&resources[i], cs, via, opts)
		if err != nil {
			return nil, err
		}
		w.feeds = append(w.feeds, f)
	}
	return w, nil
}

// Resources returns the names of the watched resources, e.g. "pods", in a
// fixed order.
func (w *Watcher) Resources() []string {
	out := make([]string, len(w.feeds))
	for i, f := range w.feeds {
		out[i] = f.res.name
	}
	return out
}

// Run runs every informer until ctx ends, and returns once they have all
// stopped. It must be called once.
func (w *Watcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, f := range w.feeds {
		fctx := ctx
		if f.res.valueBearing {
			// The informer, its reflector and their requests all log
			// through the context's logger.
			fctx = withoutLogging(ctx)
		}
		wg.Go(func() { f.informer.RunWithContext(fctx) })
		// With a handler, settled also means that it was handed every
		// object of the first list: an analysis that starts then has seen
		// every event its inventory holds.
		synced := f.informer.HasSyncedChecker()
		if f.handler != nil {
			synced = f.handler.HasSyncedChecker()
		}
		wg.Go(func() {
			select {
			case <-synced.Done():
				f.settle()
			case <-ctx.Done():
			}
		})
	}
	wg.Wait()
}

// WaitSettled waits until every resource has either been listed into its
// cache (and, with OnEvent or OnChange, every object of that list handed
// to them) or failed its first LIST, so that Fill reports on each, and
// returns ctx's error if it ends first. A resource that cannot be listed
// does not hold up the others: its informer keeps retrying, with backoff.
func (w *Watcher) WaitSettled(ctx context.Context) error {
	for _, f := range w.feeds {
		select {
		case <-f.settled:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// staleNote ends the Problem of a resource that fails after having been
// listed: the analysis then still sees the objects it had, which are
// likely right but may be out of date. Dropping them would lose more of
// the report (every finding about pods, say) than a stale copy risks.
const staleNote = " (the objects cached before the failure are still analysed)"

// Fill adds a copy of every cached object to b, at Location, and counts
// them as Load does. A resource that has never been listed is a Problem
// worded as Load words it, with its Impact: "list pods: forbidden: …". A
// resource that was listed but whose last request failed is a Problem too,
// but its cached objects are still added (see staleNote).
//
// Fill may be called at any time, concurrently with the informers: it
// reads their stores and copies what it adds, so nothing the inventory's
// users do can change the cache.
func (w *Watcher) Fill(b *inventory.Builder) (source.Coverage, []source.Problem) {
	cov := source.Coverage{Kind: "cluster", Target: w.target}
	var problems []source.Problem
	for _, f := range w.feeds {
		synced := f.informer.HasSynced()
		failure := f.failure()
		switch {
		case !synced && failure == "":
			problems = append(problems, f.res.problem("list "+f.res.name+": not listed yet"))
			continue
		case !synced:
			problems = append(problems, f.res.problem(failure))
			continue
		case failure != "":
			problems = append(problems, f.res.problem(failure+staleNote))
		}
		for _, obj := range f.informer.GetStore().List() {
			f.res.add(b, &cov, copyCached(obj))
		}
	}
	source.SortProblems(problems)
	return cov, problems
}

// copyCached returns what Fill adds for one cached object: a deep copy,
// since the Builder keeps the pointers it is given and the inventory
// hands them to the analyzers.
func copyCached(obj any) any {
	switch o := obj.(type) {
	case *secretMeta:
		return o.inventory()
	case runtime.Object:
		return o.DeepCopyObject()
	}
	return obj
}

// feed is one resource's informer and health.
type feed struct {
	res      *resource
	informer cache.SharedIndexInformer
	// handler is the registration of the OnEvent and OnChange handler;
	// nil without one.
	handler cache.ResourceEventHandlerRegistration
	onUp    func(resource string, up bool, err error)

	// notify orders the OnSourceUp calls of the resource.
	notify sync.Mutex

	mu    sync.Mutex
	state health
	// down is the failure while the state is down, and downVerb the
	// request that failed: "list" or "watch".
	down     ownError
	downVerb string
	// seen is the last error of a request, which the reflector may hand
	// to reflectorFailed again.
	seen error

	settled    chan struct{}
	settleOnce sync.Once
}

type health int

const (
	unknown health = iota
	up
	down
)

func newFeed(r *resource, cs kubernetes.Interface, via string, opts WatchOptions) (*feed, error) {
	a := r.api(cs, via)
	f := &feed{res: r, onUp: opts.OnSourceUp, settled: make(chan struct{})}
	f.informer = cache.NewSharedIndexInformerWithOptions(&listWatch{api: a, feed: f}, a.object,
		cache.SharedIndexInformerOptions{ResyncPeriod: opts.Resync, ObjectDescription: r.name})
	if err := f.informer.SetTransform(a.transform); err != nil {
		return nil, fmt.Errorf("watch %s: %w", r.name, err)
	}
	if err := f.informer.SetWatchErrorHandlerWithContext(f.reflectorFailed); err != nil {
		return nil, fmt.Errorf("watch %s: %w", r.name, err)
	}
	if h := eventHandler(r, opts); h != nil {
		reg, err := f.informer.AddEventHandler(h)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", r.name, err)
		}
		f.handler = reg
	}
	return f, nil
}

// ChangeOp is what an event did to an object.
type ChangeOp int

// The operations of a Change.
const (
	Added ChangeOp = iota + 1
	Updated
	Deleted
)

func (o ChangeOp) String() string {
	switch o {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("ChangeOp(%d)", int(o))
}

// Change is one event, as OnChange reports it.
type Change struct {
	// Resource is the resource's name ("secrets"), Kind the kind of its
	// objects ("Secret").
	Resource, Kind string
	Op             ChangeOp
	// TokenChanged is set on an update of a Secret that changes its type
	// or its kubernetes.io/service-account.name annotation: what makes a
	// Secret a ServiceAccount's legacy token, the only fields of a Secret
	// besides its name that who can read what depends on. It is false for
	// every other event.
	TokenChanged bool
}

// eventHandler is the handler that calls OnChange and OnEvent for the
// events of resource r; nil when neither is set.
func eventHandler(r *resource, opts WatchOptions) cache.ResourceEventHandler {
	if opts.OnEvent == nil && opts.OnChange == nil {
		return nil
	}
	report := func(c Change) {
		if opts.OnChange != nil {
			opts.OnChange(c)
		}
		if opts.OnEvent != nil {
			opts.OnEvent(c.Resource)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { report(Change{Resource: r.name, Kind: r.kind, Op: Added}) },
		UpdateFunc: func(old, cur any) {
			if changed(old, cur) {
				report(Change{Resource: r.name, Kind: r.kind, Op: Updated, TokenChanged: r.kind == "Secret" && tokenChanged(old, cur)})
			}
		},
		DeleteFunc: func(any) { report(Change{Resource: r.name, Kind: r.kind, Op: Deleted}) },
	}
}

// tokenChanged reports whether an update of a cached Secret changed its
// type or the ServiceAccount it names. Objects that are not the cache's
// Secrets, which the transform rules out, count as changed.
func tokenChanged(old, cur any) bool {
	o, ok1 := old.(*secretMeta)
	c, ok2 := cur.(*secretMeta)
	if !ok1 || !ok2 {
		return true
	}
	return o.Type != c.Type || o.Annotations[corev1.ServiceAccountNameKey] != c.Annotations[corev1.ServiceAccountNameKey]
}

func (f *feed) settle() { f.settleOnce.Do(func() { close(f.settled) }) }

// failure is the resource's failure, "" while it is not down.
func (f *feed) failure() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != down {
		return ""
	}
	return string(f.down)
}

// record notes the outcome of a LIST or WATCH request (verb "list" or
// "watch") and reports a change of health.
func (f *feed) record(ctx context.Context, verb string, err error) {
	if err != nil {
		f.mu.Lock()
		f.seen = err
		f.mu.Unlock()
	}
	if ctx.Err() != nil || (err != nil && isExpired(err)) {
		// Shutting down; or a resource version too old, which the
		// reflector answers by listing again.
		return
	}
	f.notify.Lock()
	defer f.notify.Unlock()
	f.mu.Lock()
	was := f.state
	switch {
	case err != nil:
		f.state, f.downVerb = down, verb
		f.down = ownError(verb + " " + f.res.name + ": " + listReason(err, f.res.valueBearing))
	case was == down && f.downVerb == "watch" && verb == "list":
		// Listing says nothing of the watch that failed.
	default:
		f.state, f.down, f.downVerb = up, "", ""
	}
	now, failure := f.state, f.down
	f.mu.Unlock()

	if err != nil && verb == "list" {
		f.settle()
	}
	if now == was || f.onUp == nil {
		return
	}
	if now == up {
		f.onUp(f.res.name, true, nil)
	} else {
		f.onUp(f.res.name, false, failure)
	}
}

// reflectorFailed replaces client-go's default handler, which logs (for
// value-bearing resources, possibly text the server quoted from an
// object). Failures of requests were recorded by the listWatch as they
// happened; what remains are failures to use a list the server sent (to
// extract, transform or store its items), recorded here as the list's.
func (f *feed) reflectorFailed(ctx context.Context, _ *cache.Reflector, err error) {
	f.mu.Lock()
	seen := f.seen != nil && errors.Is(err, f.seen)
	f.mu.Unlock()
	if !seen {
		f.record(ctx, "list", err)
	}
}

// listWatch is the informer's ListerWatcher: the resource's api, with the
// outcome of every request recorded in the feed.
type listWatch struct {
	api  api
	feed *feed
}

func (lw *listWatch) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	l, err := lw.api.list(ctx, opts)
	lw.feed.record(ctx, "list", err)
	return l, err
}

func (lw *listWatch) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	w, err := lw.api.watch(ctx, opts)
	lw.feed.record(ctx, "watch", err)
	if err != nil {
		return nil, err
	}
	// An ERROR event is a failure of the watch, but for an expired
	// resource version (410), after which the reflector lists again.
	return mapEvents(w, func(ev watch.Event) watch.Event {
		if ev.Type == watch.Error {
			lw.feed.record(ctx, "watch", apierrors.FromObject(ev.Object))
		}
		return ev
	}), nil
}

// List and Watch complete cache.ListerWatcher; client-go's reflector
// calls the context-aware methods above.

func (lw *listWatch) List(opts metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(lw.background(), opts)
}

func (lw *listWatch) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(lw.background(), opts)
}

func (lw *listWatch) background() context.Context {
	if lw.feed.res.valueBearing {
		return withoutLogging(context.Background())
	}
	return context.Background()
}

// IsWatchListSemanticsUnSupported keeps the reflector to LIST then WATCH
// (see k8s.io/client-go/util/watchlist). Its streaming list would need a
// WATCH that sends the initial objects and bookmarks the way a typed
// client decodes them; the Tables of Secrets are not read that way, and
// every resource is read alike.
func (lw *listWatch) IsWatchListSemanticsUnSupported() bool { return true }

// changed reports whether an update changes what the Watcher keeps of an
// object, its resource version aside. A resync, which redelivers an
// object as it is, counts: WatchOptions.Resync asked for it.
func changed(old, cur any) bool {
	o, ok1 := old.(runtime.Object)
	c, ok2 := cur.(runtime.Object)
	if !ok1 || !ok2 {
		return true
	}
	om, err1 := meta.Accessor(o)
	cm, err2 := meta.Accessor(c)
	if err1 != nil || err2 != nil || om.GetResourceVersion() == cm.GetResourceVersion() {
		return true
	}
	o, c = o.DeepCopyObject(), c.DeepCopyObject()
	for _, x := range []runtime.Object{o, c} {
		if m, err := meta.Accessor(x); err == nil {
			m.SetResourceVersion("")
		}
	}
	return !equality.Semantic.DeepEqual(o, c)
}

// mapWatch passes each event of a watch through a function. It is
// watch.Filter, but for a Stop that cannot leave its goroutine blocked on
// a consumer that has gone.
type mapWatch struct {
	src  watch.Interface
	out  chan watch.Event
	done chan struct{}
	stop sync.Once
}

func mapEvents(src watch.Interface, fn func(watch.Event) watch.Event) watch.Interface {
	m := &mapWatch{src: src, out: make(chan watch.Event), done: make(chan struct{})}
	go func() {
		defer close(m.out)
		for ev := range src.ResultChan() {
			// Stop closes done before it stops src, so an event src sends
			// after Stop (client-go reports the read on the body it has
			// just closed as an ERROR event) is never passed to fn.
			select {
			case <-m.done:
				return
			default:
			}
			select {
			case m.out <- fn(ev):
			case <-m.done:
				return
			}
		}
	}()
	return m
}

func (m *mapWatch) ResultChan() <-chan watch.Event { return m.out }

func (m *mapWatch) Stop() {
	m.stop.Do(func() {
		close(m.done)
		m.src.Stop()
	})
}
