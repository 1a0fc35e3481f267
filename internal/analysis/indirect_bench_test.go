//go:build unix

package analysis_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/bootstrap"
	"github.com/keyhole-sec/keyhole/internal/exposure"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
)

// indirectSizes are the worlds BenchmarkIndirect runs on: the direct
// benchmarks' worlds with 100k pods on 1k nodes and what Size.Indirect
// adds (Pod Security labels, roles granting the permissions indirect paths
// rest on, legacy tokens, CSI volumes with Secret references).
var indirectSizes = []struct {
	name    string
	secrets int
	gated   bool
}{
	{"secrets=10k", 10_000, false},
	{"secrets=100k", 100_000, true},
}

func indirectSize(secrets int) synthetic.Size {
	size := synthetic.Scale(secrets)
	size.Pods, size.Nodes, size.Indirect = 100_000, 1_000, true
	return size
}

// BenchmarkIndirect times the full reader analysis on worlds with pods,
// nodes and every permission indirect paths rest on: resolve the policy,
// index the Secret read grants, build the identity graph and every
// subject's shortest chains (paths.Analyze), then every Secret's readers,
// direct and indirect, and their exposure (analysis.AssessSecrets). The
// world is built once per size, outside the timer, and its shape logged
// (go test -v) for docs/benchmarks.md. Besides the metrics of the other
// benchmarks it reports the reader entries over all Secrets (readers) and
// those whose path is not direct (indirect-readers), from the last
// iteration.
func BenchmarkIndirect(b *testing.B) {
	for _, size := range indirectSizes {
		b.Run(size.name, func(b *testing.B) {
			if size.gated && os.Getenv("KEYHOLE_BENCH_INDIRECT_100K") != "1" {
				b.Skip("set KEYHOLE_BENCH_INDIRECT_100K=1 to run: minutes and over 10 GiB (docs/benchmarks.md)")
			}
			measure(b, indirectSize(size.secrets), logShape, func(b *testing.B, inv *inventory.Inventory, opts exposure.Options) any {
				var res []analysis.SecretExposure
				for b.Loop() {
					p := rbac.NewPolicy(inv, rbac.AggregationComputed)
					res = analysis.AssessSecrets(inv, paths.Analyze(p, rbac.NewReadIndex(p), paths.Options{}), opts)
				}
				var total, indirect int
				for _, se := range res {
					for r := range se.Readers.All() {
						total++
						if r.Kind != paths.Direct {
							indirect++
						}
					}
				}
				b.ReportMetric(float64(total), "readers")
				b.ReportMetric(float64(indirect), "indirect-readers")
				return res
			})
		})
	}
}

// shapePerm is one permission indirect paths rest on: any of its requests
// grants it. Names are ignored when deciding whether a rule grants it, and
// recorded apart.
type shapePerm struct {
	name     string
	requests []rbac.Attributes
}

func shapeRequests(verbs []string, group string, resources ...string) []rbac.Attributes {
	var out []rbac.Attributes
	for _, v := range verbs {
		for _, r := range resources {
			res, sub, _ := strings.Cut(r, "/")
			out = append(out, rbac.Attributes{Verb: v, APIGroup: group, Resource: res, Subresource: sub})
		}
	}
	return out
}

var workloadWrites = append(shapeRequests([]string{"create", "update", "patch"}, "apps", "deployments", "statefulsets", "daemonsets", "replicasets"),
	shapeRequests([]string{"create", "update", "patch"}, "batch", "jobs", "cronjobs")...)

// shapePerms are the permissions the shape counts subjects for, one bit
// each. The last four only count in pairs (create rolebindings with bind,
// escalate with update).
var shapePerms = []shapePerm{
	{"create pods", shapeRequests([]string{"create"}, "", "pods")},
	{"create/update/patch workloads (apps, batch)", workloadWrites},
	{"patch pods/ephemeralcontainers", shapeRequests([]string{"patch"}, "", "pods/ephemeralcontainers")},
	{"create or get pods/exec or pods/attach", shapeRequests([]string{"create", "get"}, "", "pods/exec", "pods/attach")},
	{"get nodes/proxy", shapeRequests([]string{"get"}, "", "nodes/proxy")},
	{"patch secrets", shapeRequests([]string{"patch"}, "", "secrets")},
	{"create serviceaccounts/token", shapeRequests([]string{"create"}, "", "serviceaccounts/token")},
	{"impersonate users", shapeRequests([]string{"impersonate"}, "", "users")},
	{"impersonate groups", shapeRequests([]string{"impersonate"}, "", "groups")},
	{"impersonate serviceaccounts", shapeRequests([]string{"impersonate"}, "", "serviceaccounts")},
	{"create rolebindings", shapeRequests([]string{"create"}, rbacv1.GroupName, "rolebindings")},
	{"bind roles or clusterroles", shapeRequests([]string{"bind"}, rbacv1.GroupName, "roles", "clusterroles")},
	{"escalate roles or clusterroles", shapeRequests([]string{"escalate"}, rbacv1.GroupName, "roles", "clusterroles")},
	{"update roles or clusterroles", shapeRequests([]string{"update"}, rbacv1.GroupName, "roles", "clusterroles")},
}

const (
	bitCreateRoleBindings = 10
	bitBind               = 11
	bitEscalate           = 12
	bitUpdateRoles        = 13
)

// permBits returns the permissions rules grant on some name, and those
// they grant on every name.
func permBits(rules []rbacv1.PolicyRule) (some, every uint32) {
	for bit, perm := range shapePerms {
		for i := range rules {
			r := &rules[i]
			for _, a := range perm.requests {
				combined := a.Resource
				if a.Subresource != "" {
					combined += "/" + a.Subresource
				}
				if rbac.VerbMatches(r, a.Verb) && rbac.APIGroupMatches(r, a.APIGroup) && rbac.ResourceMatches(r, combined, a.Subresource) {
					some |= 1 << bit
					if len(r.ResourceNames) == 0 {
						every |= 1 << bit
					}
				}
			}
		}
	}
	return some, every
}

// logShape logs, as Markdown tables, what drives the indirect analysis in
// the world: namespaces by Pod Security level, pods and what they mount,
// and how many subjects hold each permission indirect paths rest on.
func logShape(b *testing.B, inv *inventory.Inventory) {
	b.Helper()
	var out strings.Builder
	row := func(cells ...any) {
		out.WriteString("|")
		for _, c := range cells {
			fmt.Fprintf(&out, " %v |", c)
		}
		out.WriteString("\n")
	}

	levels := map[string]int{}
	privileged := map[string]bool{} // Pod Security lets pods run privileged
	for _, n := range inv.Namespaces {
		level := n.Labels[synthetic.LabelPodSecurityEnforce]
		if level == "" {
			level = "unlabelled"
		}
		levels[level]++
		privileged[n.Name] = level == "privileged" || level == "unlabelled"
	}
	var noToken, projected, envFrom, pullSecrets, privPods, pvcPods int
	for _, p := range inv.Pods {
		if a := p.Spec.AutomountServiceAccountToken; a != nil && !*a {
			noToken++
		}
		if len(p.Spec.ImagePullSecrets) > 0 {
			pullSecrets++
		}
		var proj, pvc, env, priv bool
		for _, v := range p.Spec.Volumes {
			proj = proj || v.Projected != nil
			pvc = pvc || v.PersistentVolumeClaim != nil
		}
		for _, c := range p.Spec.Containers {
			env = env || len(c.EnvFrom) > 0
			priv = priv || c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
		}
		for _, n := range []struct {
			set bool
			c   *int
		}{{proj, &projected}, {pvc, &pvcPods}, {env, &envFrom}, {priv, &privPods}} {
			if n.set {
				*n.c++
			}
		}
	}
	sas := map[string]bool{}
	for _, sa := range inv.ServiceAccounts {
		sas[sa.Namespace+"/"+sa.Name] = true
	}
	legacy := 0
	for _, s := range inv.Secrets {
		if s.Type == corev1.SecretTypeServiceAccountToken && sas[s.Namespace+"/"+s.Annotations[corev1.ServiceAccountNameKey]] {
			legacy++
		}
	}
	csi := 0
	for _, pv := range inv.PersistentVolumes {
		if pv.Spec.CSI != nil && pv.Spec.CSI.NodePublishSecretRef != nil {
			csi++
		}
	}
	fmt.Fprintf(&out, "\n%d Secrets, %d namespaces, %d pods, %d nodes\n\n", len(inv.Secrets), len(inv.Namespaces), len(inv.Pods), len(inv.Nodes))
	row("restricted", "baseline", "privileged", "unlabelled", "pods without a token", "with a projected volume", "with envFrom",
		"with imagePullSecrets", "privileged", "mounting a claim", "CSI PVs with nodePublishSecretRef", "legacy tokens of existing ServiceAccounts")
	row("---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
	row(levels["restricted"], levels["baseline"], levels["privileged"], levels["unlabelled"], noToken, projected, envFrom,
		pullSecrets, privPods, pvcPods, csi, legacy)

	// Per subject: what it holds cluster-wide and per namespace, on some
	// name and on every name.
	type holding struct {
		clusterSome, clusterEvery uint32
		ns                        map[string][2]uint32
	}
	controlPlane, err := bootstrap.ControlPlaneSubjects()
	if err != nil {
		b.Fatal(err)
	}
	held := map[rbac.Subject]*holding{}
	p := rbac.NewPolicy(inv, rbac.AggregationComputed)
	for _, bd := range p.Bindings() {
		var some, every uint32
		if bd.RoleFound {
			some, every = permBits(bd.Rules)
		}
		for _, s := range bd.Subjects {
			h := held[s]
			if h == nil {
				h = &holding{ns: map[string][2]uint32{}}
				held[s] = h
			}
			if bd.Namespace == "" {
				h.clusterSome |= some
				h.clusterEvery |= every
			} else if some != 0 {
				x := h.ns[bd.Namespace]
				h.ns[bd.Namespace] = [2]uint32{x[0] | some, x[1] | every}
			}
		}
	}
	type count struct{ subjects, controlPlane, clusterWide, namesOnly int }
	type shapeRow struct {
		name string
		// has reports whether bits held in one scope grant the row.
		has func(bits uint32) bool
	}
	var rows []shapeRow
	for bit := range bitCreateRoleBindings {
		rows = append(rows, shapeRow{shapePerms[bit].name, func(x uint32) bool { return x&(1<<bit) != 0 }})
	}
	pair := func(a, b int) func(uint32) bool {
		return func(x uint32) bool { return x&(1<<a) != 0 && x&(1<<b) != 0 }
	}
	rows = append(rows,
		shapeRow{"create rolebindings and bind", pair(bitCreateRoleBindings, bitBind)},
		shapeRow{"escalate and update roles", pair(bitEscalate, bitUpdateRoles)})
	counts := make([]count, len(rows))
	escape, escapeCP := 0, 0
	const podsOrWorkloads = 1<<0 | 1<<1
	for s, h := range held {
		cp := controlPlane[s]
		for i, r := range rows {
			some, every, cluster := r.has(h.clusterSome), r.has(h.clusterEvery), r.has(h.clusterSome)
			for _, x := range h.ns {
				some = some || r.has(x[0]|h.clusterSome)
				every = every || r.has(x[1]|h.clusterEvery)
			}
			if !some {
				continue
			}
			c := &counts[i]
			c.subjects++
			if cp {
				c.controlPlane++
			}
			if cluster {
				c.clusterWide++
			}
			if !every {
				c.namesOnly++
			}
		}
		esc := h.clusterEvery&podsOrWorkloads != 0
		for ns, x := range h.ns {
			esc = esc || privileged[ns] && x[1]&podsOrWorkloads != 0
		}
		if esc {
			escape++
			if cp {
				escapeCP++
			}
		}
	}
	cpHeld := 0
	for s := range held {
		if controlPlane[s] {
			cpHeld++
		}
	}
	fmt.Fprintf(&out, "\n%d subjects in bindings (%d of them control-plane identities of the bootstrap policy)\n\n", len(held), cpHeld)
	row("permission", "subjects", "control plane", "cluster-wide", "only on named objects")
	row("---", "---:", "---:", "---:", "---:")
	for i, r := range rows {
		c := counts[i]
		row(r.name, c.subjects, c.controlPlane, c.clusterWide, c.namesOnly)
	}
	row("create pods or workloads where Pod Security allows privileged pods (or cluster-wide)", escape, escapeCP, "", "")
	b.Log(out.String())
}
