package rbac

import (
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// AggregateClusterRoles computes the rules the ClusterRole aggregation
// controller stores for every ClusterRole with an aggregationRule, by
// running the controller's own step to a fixed point from the stored
// rules: a role's rules become the union, in controller order, of the
// rules of every other ClusterRole its selectors match. Aggregation is
// transitive (a role labelled aggregate-to-edit reaches admin through
// edit).
//
// The controller writes with server-side apply, and an empty union is
// applied as no rules field at all, so a role whose selectors select no
// rules keeps the rules it was created with. A non-empty union replaces
// them.
//
// Roles without an aggregationRule are not in the result. A selector that
// does not parse is returned as an error naming the role; that role then
// aggregates only what its valid selectors match. On a cycle, where roles
// carry rules of their own, the result can depend on the order the real
// controller works in (see OrderDependentAggregation); this computation
// uses name order.
func AggregateClusterRoles(roles []*rbacv1.ClusterRole) (map[string][]rbacv1.PolicyRule, []error) {
	aggs, errs := aggregations(roles)
	rules := make(map[string][]rbacv1.PolicyRule, len(aggs))
	isAggregated := make(map[string]bool, len(aggs))
	for _, a := range aggs {
		isAggregated[a.role.Name] = true
		rules[a.role.Name] = a.role.Rules
	}
	rulesOf := func(m *rbacv1.ClusterRole) []rbacv1.PolicyRule {
		if isAggregated[m.Name] {
			return rules[m.Name]
		}
		return m.Rules
	}
	// Without cycles this settles within len(aggs)+1 passes (each pass
	// settles at least one more level of the selection graph); the bound
	// stops a cycle of stale rules from running forever, and what it
	// leaves is reported as order-dependent anyway.
	for pass := 0; pass <= 2*len(aggs)+2; pass++ {
		changed := false
		for _, a := range aggs {
			var union []rbacv1.PolicyRule
			keys := map[string]bool{}
			for _, m := range a.members {
				for _, rule := range rulesOf(m) {
					if k := ruleKey(&rule); !keys[k] {
						keys[k] = true
						union = append(union, rule)
					}
				}
			}
			if len(union) == 0 || sameOrderedRules(union, rules[a.role.Name]) {
				continue
			}
			rules[a.role.Name] = union
			changed = true
		}
		if !changed {
			break
		}
	}
	return rules, errs
}

func sameOrderedRules(a, b []rbacv1.PolicyRule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if ruleKey(&a[i]) != ruleKey(&b[i]) {
			return false
		}
	}
	return true
}

type aggregated struct {
	role    *rbacv1.ClusterRole
	members []*rbacv1.ClusterRole // matched roles in controller order, deduplicated
}

// aggregations returns every ClusterRole with an aggregationRule, sorted by
// name, with the roles its selectors match.
func aggregations(roles []*rbacv1.ClusterRole) ([]*aggregated, []error) {
	sorted := append([]*rbacv1.ClusterRole(nil), roles...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var errs []error
	var aggs []*aggregated
	for _, r := range sorted {
		if r.AggregationRule == nil {
			continue
		}
		a := &aggregated{role: r}
		seen := map[string]bool{}
		for i := range r.AggregationRule.ClusterRoleSelectors {
			sel, err := metav1.LabelSelectorAsSelector(&r.AggregationRule.ClusterRoleSelectors[i])
			if err != nil {
				errs = append(errs, fmt.Errorf("ClusterRole/%s: aggregationRule selector %d: %v", r.Name, i+1, err))
				continue
			}
			for _, m := range sorted {
				if m.Name == r.Name || seen[m.Name] || !sel.Matches(labels.Set(m.Labels)) {
					continue
				}
				seen[m.Name] = true
				a.members = append(a.members, m)
			}
		}
		aggs = append(aggs, a)
	}
	return aggs, errs
}

// OrderDependentAggregation names the aggregated ClusterRoles whose rules on
// a real cluster depend on the order the controller happens to process
// roles in: those that carry rules of their own and sit on an aggregation
// cycle (A selects B, B selects A). The controller starts from the stored
// rules, so such rules can circulate and survive; AggregateClusterRoles
// drops them, as the controller does for every role outside a cycle.
func OrderDependentAggregation(roles []*rbacv1.ClusterRole) []string {
	aggs, _ := aggregations(roles)
	byName := map[string]*aggregated{}
	for _, a := range aggs {
		byName[a.role.Name] = a
	}
	// reaches reports whether from can reach target through aggregated
	// members; the visited set bounds the walk.
	var reaches func(from, target string, visited map[string]bool) bool
	reaches = func(from, target string, visited map[string]bool) bool {
		for _, m := range byName[from].members {
			if byName[m.Name] == nil || visited[m.Name] {
				continue
			}
			if m.Name == target {
				return true
			}
			visited[m.Name] = true
			if reaches(m.Name, target, visited) {
				return true
			}
		}
		return false
	}
	var out []string
	for _, a := range aggs {
		if len(a.role.Rules) > 0 && reaches(a.role.Name, a.role.Name, map[string]bool{}) {
			out = append(out, a.role.Name)
		}
	}
	return out
}

// SameRules reports whether two rule lists hold the same rules, ignoring
// order and duplicates.
func SameRules(a, b []rbacv1.PolicyRule) bool {
	ka := map[string]bool{}
	for i := range a {
		ka[ruleKey(&a[i])] = true
	}
	kb := map[string]bool{}
	for i := range b {
		kb[ruleKey(&b[i])] = true
	}
	if len(ka) != len(kb) {
		return false
	}
	for k := range ka {
		if !kb[k] {
			return false
		}
	}
	return true
}

// ruleKey is an exact identity for a rule, as the controller's equality
// check sees it (list order matters there, so it matters here).
func ruleKey(r *rbacv1.PolicyRule) string {
	var b strings.Builder
	for _, part := range [][]string{r.Verbs, r.APIGroups, r.Resources, r.ResourceNames, r.NonResourceURLs} {
		fmt.Fprintf(&b, "%d:%q;", len(part), part)
	}
	return b.String()
}
