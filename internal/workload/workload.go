// Package workload owns keyhole's workload and hygiene rules: how pods and
// pod templates use Secrets (injected as environment variables, referenced
// but missing, a ServiceAccount token that can read Secrets mounted by
// default), credentials hard-coded where Secrets belong (container
// environment, ConfigMaps), and the lifecycle of Secrets themselves
// (unused, stale, legacy ServiceAccount tokens). Its analyzers are pure
// functions of the inventory and their options: the same inputs give the
// same results, in the same order.
package workload

import (
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// DefaultStaleAfter is how long a Secret's data may stay unchanged before
// it is reported as stale.
const DefaultStaleAfter = 90 * 24 * time.Hour

// Options configure the analyzers.
type Options struct {
	// StaleAfter is the age of a Secret's last data write beyond which it
	// is stale; DefaultStaleAfter when zero.
	StaleAfter time.Duration
	// Now is the time of the audit. It is given, never read from the
	// clock, so that the analysis stays a function of its inputs; when
	// zero, staleness is not judged.
	Now time.Time
	// SecretReaders reports whether a ServiceAccount can read at least one
	// Secret through an RBAC grant. The caller answers it from the RBAC
	// analysis; when nil, the rules that depend on it are not applied.
	SecretReaders func(rbac.Subject) bool
	// IndirectSecretReaders reports whether a ServiceAccount can obtain a
	// Secret through an indirect path (docs/paths.md), and how, for
	// messages: "by pod-create (create pods in namespace x)". When nil,
	// only direct reads count.
	IndirectSecretReaders func(rbac.Subject) (string, bool)
	// Complete says that the inventory holds every object of the kinds the
	// rules read, cluster-wide: a live audit that could list them all. A
	// Secret absent from a complete inventory does not exist; absent from
	// manifests, it may just be defined elsewhere.
	Complete bool
}

// Analysis is what AnalyzeAll gives: the findings, and the per-Secret
// counts read in the same walk of the pod specifications.
type Analysis struct {
	// Results are every workload and hygiene rule's results, sorted by
	// rule, object, discriminator and message.
	Results []finding.Result
	// EnvInjections counts, for each Secret, the containers that take
	// any of its keys as environment variables (env
	// valueFrom.secretKeyRef or envFrom.secretRef), over the same
	// specifications as KH201: a Deployment's container counts once, not
	// once per replica.
	EnvInjections map[inventory.Ref]int
}

// Analyze applies every workload and hygiene rule to the inventory and
// returns the results sorted by rule, object, discriminator and message.
func Analyze(inv *inventory.Inventory, opts Options) []finding.Result {
	return AnalyzeAll(inv, opts).Results
}

// AnalyzeAll is Analyze with the Secrets' environment injections, counted
// while KH201 reads the same containers rather than in a second walk.
func AnalyzeAll(inv *inventory.Inventory, opts Options) Analysis {
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	a := newAnalyzer(inv, opts)
	for _, sa := range inv.ServiceAccounts {
		a.serviceAccounts[nsName{sa.Namespace, sa.Name}] = sa
	}
	a.specs = podSpecs(inv)
	for _, s := range envSpecs(a.specs) {
		a.envSecrets(s)
		a.envCredentials(s)
		if !s.ephemeralOnly {
			a.automountedToken(s)
		}
	}
	a.configMapCredentials()
	a.missingSecrets()
	a.unusedSecrets()
	a.legacyTokens()
	a.staleSecrets()
	sortResults(a.results)
	return Analysis{Results: a.results, EnvInjections: a.envInjections}
}

func newAnalyzer(inv *inventory.Inventory, opts Options) *analyzer {
	return &analyzer{inv: inv, opts: opts, serviceAccounts: map[nsName]*corev1.ServiceAccount{}, envInjections: map[inventory.Ref]int{}}
}

type nsName struct{ namespace, name string }

type analyzer struct {
	inv             *inventory.Inventory
	opts            Options
	serviceAccounts map[nsName]*corev1.ServiceAccount
	specs           []podSpec
	results         []finding.Result
	// envInjections is filled by envSecrets (Analysis.EnvInjections).
	envInjections map[inventory.Ref]int
}

func (a *analyzer) add(r finding.Result) { a.results = append(a.results, r) }

// secretReader reports whether a ServiceAccount can read Secrets,
// directly or through an indirect path, and says how for messages: "can
// read Secrets", or "can obtain Secrets by ...". Nil predicates answer no.
func (a *analyzer) secretReader(namespace, serviceAccount string) (string, bool) {
	sa := rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: namespace, Name: serviceAccount}
	if a.opts.SecretReaders != nil && a.opts.SecretReaders(sa) {
		return "can read Secrets", true
	}
	if a.opts.IndirectSecretReaders != nil {
		if how, ok := a.opts.IndirectSecretReaders(sa); ok {
			return "can obtain Secrets " + how, true
		}
	}
	return "", false
}

// podSpec is one pod specification: a Pod's or a workload's template.
type podSpec struct {
	ref  inventory.Ref
	spec *corev1.PodSpec
	// top is false for a Pod or workload whose controller is a workload of
	// the inventory: rules about the spec are reported once, on the
	// outermost owner (the Deployment, not its ReplicaSets and their
	// replicas), since that is where the spec is written and fixed.
	top bool
	// ephemeralOnly marks the spec envSpecs makes of a Pod's ephemeral
	// containers alone.
	ephemeralOnly bool
}

// podSpecs returns every pod specification of the inventory, workloads
// first, each in inventory order.
func podSpecs(inv *inventory.Inventory) []podSpec {
	workloads := make(map[inventory.Ref]*inventory.Workload, len(inv.Workloads))
	for _, w := range inv.Workloads {
		workloads[w.Ref()] = w
	}
	out := make([]podSpec, 0, len(inv.Workloads)+len(inv.Pods))
	for _, w := range inv.Workloads {
		out = append(out, podSpec{ref: w.Ref(), spec: &w.Template.Spec, top: !ownedBy(w.Namespace, w.OwnerReferences, workloads)})
	}
	for _, p := range inv.Pods {
		ref := inventory.Ref{Kind: "Pod", Namespace: p.Namespace, Name: p.Name}
		out = append(out, podSpec{ref: ref, spec: &p.Spec, top: !ownedBy(p.Namespace, p.OwnerReferences, workloads)})
	}
	return out
}

// envSpecs are the specifications whose environment the rules judge:
// every outermost one (the Deployment, not its ReplicaSets and their
// replicas), and for any other Pod the ephemeral containers (kubectl
// debug) added to it, which are never in its owner's template: reported
// on that Pod, as a spec holding them alone (ephemeralOnly).
func envSpecs(specs []podSpec) []podSpec {
	out := make([]podSpec, 0, len(specs))
	for _, s := range specs {
		switch {
		case s.top:
			out = append(out, s)
		case s.ref.Kind == "Pod" && len(s.spec.EphemeralContainers) > 0:
			out = append(out, podSpec{ref: s.ref, spec: &corev1.PodSpec{EphemeralContainers: s.spec.EphemeralContainers}, top: true, ephemeralOnly: true})
		}
	}
	return out
}

// ownedBy reports whether one of the owner references names a workload of
// the inventory that controls the object. A reference that says it is not
// the controller does not count; one that does not say (hand-written
// manifests often omit it) does. When both sides carry a UID they must
// agree, and an apiVersion must name the workload's group.
func ownedBy(namespace string, owners []metav1.OwnerReference, workloads map[inventory.Ref]*inventory.Workload) bool {
	for _, o := range owners {
		if o.Controller != nil && !*o.Controller {
			continue
		}
		w, ok := workloads[inventory.Ref{Kind: o.Kind, Namespace: namespace, Name: o.Name}]
		if !ok {
			continue
		}
		if o.UID != "" && w.UID != "" && o.UID != w.UID {
			continue
		}
		if o.APIVersion != "" && groupOf(o.APIVersion) != groupOf(w.APIVersion) {
			continue
		}
		return true
	}
	return false
}

func groupOf(apiVersion string) string {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return apiVersion
	}
	return gv.Group
}

// container is one container of a pod specification, of any kind.
type container struct {
	// kind is "container", "init container" or "ephemeral container".
	kind    string
	name    string
	env     []corev1.EnvVar
	envFrom []corev1.EnvFromSource
}

func (c container) String() string { return c.kind + " " + c.name }

// containers returns every container of the spec: init containers first,
// then the app containers, then ephemeral ones (which exist on Pods only).
func containers(spec *corev1.PodSpec) []container {
	out := make([]container, 0, len(spec.InitContainers)+len(spec.Containers)+len(spec.EphemeralContainers))
	for _, c := range spec.InitContainers {
		out = append(out, container{kind: "init container", name: c.Name, env: c.Env, envFrom: c.EnvFrom})
	}
	for _, c := range spec.Containers {
		out = append(out, container{kind: "container", name: c.Name, env: c.Env, envFrom: c.EnvFrom})
	}
	for _, c := range spec.EphemeralContainers {
		out = append(out, container{kind: "ephemeral container", name: c.Name, env: c.Env, envFrom: c.EnvFrom})
	}
	return out
}

// serviceAccountName is the ServiceAccount a pod runs as.
func serviceAccountName(spec *corev1.PodSpec) string {
	switch {
	case spec.ServiceAccountName != "":
		return spec.ServiceAccountName
	case spec.DeprecatedServiceAccount != "":
		return spec.DeprecatedServiceAccount
	}
	return "default"
}

func severity(s finding.Severity) *finding.Severity { return &s }

// listSome joins the first few items of a sorted, deduplicated list and
// counts the rest, to keep messages on one line.
func listSome(items []string, show int) string {
	items = sortedUnique(items)
	list := strings.Join(items[:min(show, len(items))], ", ")
	if len(items) > show {
		list += " and " + strconv.Itoa(len(items)-show) + " more"
	}
	return list
}

func sortedUnique(items []string) []string {
	out := append([]string(nil), items...)
	sort.Strings(out)
	n := 0
	for i, s := range out {
		if i == 0 || s != out[n-1] {
			out[n] = s
			n++
		}
	}
	return out[:n]
}

func sortResults(rs []finding.Result) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Object != b.Object {
			return a.Object.Less(b.Object)
		}
		if da, db := strings.Join(a.Discriminator, "\x00"), strings.Join(b.Discriminator, "\x00"); da != db {
			return da < db
		}
		return a.Message < b.Message
	})
}
