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
// controller stores for every ClusterRole with an aggregationRule: the union
// of the rules of every other ClusterRole matched by any of its selectors.
// The role's own rules are replaced, not kept. Aggregation is transitive (a
// role labelled aggregate-to-edit reaches admin through edit), so this is the
// least fixed point, which also terminates on cycles: rules only ever grow
// and there are finitely many.
//
// Roles without an aggregationRule are not in the result. A selector that
// does not parse is returned as an error naming the role; that role then
// aggregates only what its valid selectors match.
func AggregateClusterRoles(roles []*rbacv1.ClusterRole) (map[string][]rbacv1.PolicyRule, []error) {
	sorted := append([]*rbacv1.ClusterRole(nil), roles...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })

	type aggregated struct {
		role    *rbacv1.ClusterRole
		members []*rbacv1.ClusterRole // matched roles in controller order, deduplicated
	}
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

	rules := make(map[string][]rbacv1.PolicyRule, len(aggs))
	isAggregated := make(map[string]bool, len(aggs))
	for _, a := range aggs {
		isAggregated[a.role.Name] = true
		rules[a.role.Name] = nil
	}
	rulesOf := func(m *rbacv1.ClusterRole) []rbacv1.PolicyRule {
		if isAggregated[m.Name] {
			return rules[m.Name]
		}
		return m.Rules
	}
	// Each pass can only add rules; stop when a pass adds none. Every pass
	// that changes something adds at least one rule, so the loop is bounded
	// by the total number of distinct rules.
	for changed := true; changed; {
		changed = false
		for _, a := range aggs {
			current := rules[a.role.Name]
			keys := make(map[string]bool, len(current))
			for i := range current {
				keys[ruleKey(&current[i])] = true
			}
			for _, m := range a.members {
				for _, rule := range rulesOf(m) {
					k := ruleKey(&rule)
					if keys[k] {
						continue
					}
					keys[k] = true
					current = append(current, rule)
					changed = true
				}
			}
			rules[a.role.Name] = current
		}
	}
	return rules, errs
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
