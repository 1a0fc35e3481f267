package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// aggregationSettle is how long the aggregated rules must stay unchanged
// before WaitForAggregation trusts them.
const aggregationSettle = time.Second

// WaitForAggregation waits until the clusterrole-aggregation controller
// has settled: every ClusterRole with an aggregationRule holds exactly the
// rules the controller would compute from the roles it selects (same
// order: the controller sorts selected roles by name and drops
// duplicates), admin, edit and view are non-empty, and all aggregated
// rules have stayed unchanged for a second. It gives up when ctx ends.
//
// Comparing against the recomputed rules, not just "non-empty", matters
// because aggregation chains (view feeds edit feeds admin) converge over
// several controller passes, and a role is non-empty after the first.
func (cp *ControlPlane) WaitForAggregation(ctx context.Context) error {
	poll := rest.CopyConfig(cp.Config)
	poll.Timeout = 5 * time.Second
	client, err := kubernetes.NewForConfig(poll)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	t := time.NewTicker(2 * pollInterval)
	defer t.Stop()
	var (
		lastState string
		since     time.Time
		problem   error
	)
	for {
		list, err := client.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
		if err != nil {
			problem = fmt.Errorf("listing clusterroles: %w", err)
			lastState = ""
		} else if state, err := aggregationState(list.Items); err != nil {
			problem = err
			lastState = ""
		} else if state != lastState {
			problem = fmt.Errorf("aggregated rules still changing")
			lastState, since = state, time.Now()
		} else if time.Since(since) >= aggregationSettle {
			return nil
		}
		if err := cp.controllerManagerExited(); err != nil {
			return fmt.Errorf("testenv: waiting for clusterrole aggregation: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: waiting for clusterrole aggregation: %w (last: %v)", ctx.Err(), problem)
		case <-t.C:
		}
	}
}

// aggregationState returns a fingerprint of all aggregated ClusterRoles'
// rules, or an error naming a role the controller has not finished.
func aggregationState(roles []rbacv1.ClusterRole) (string, error) {
	byName := make(map[string]*rbacv1.ClusterRole, len(roles))
	for i := range roles {
		byName[roles[i].Name] = &roles[i]
	}
	for _, name := range []string{"admin", "edit", "view"} {
		r, ok := byName[name]
		if !ok {
			return "", fmt.Errorf("clusterrole/%s does not exist", name)
		}
		if len(r.Rules) == 0 {
			return "", fmt.Errorf("clusterrole/%s has no rules yet", name)
		}
	}
	sorted := make([]*rbacv1.ClusterRole, 0, len(roles))
	for i := range roles {
		sorted = append(sorted, &roles[i])
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })

	fingerprint := map[string][]rbacv1.PolicyRule{}
	for _, r := range sorted {
		if r.AggregationRule == nil {
			continue
		}
		want, err := aggregatedRules(r, sorted)
		if err != nil {
			return "", err
		}
		// With nothing selected the controller applies no rules field
		// (server-side apply), so rules the role was created with stay.
		if len(want) > 0 && !equality.Semantic.DeepEqual(r.Rules, want) {
			return "", fmt.Errorf("clusterrole/%s has %d rules, aggregation gives %d", r.Name, len(r.Rules), len(want))
		}
		fingerprint[r.Name] = r.Rules
	}
	b, err := json.Marshal(fingerprint) // map keys are sorted
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// aggregatedRules mirrors the clusterrole-aggregation controller's
// computation (pkg/controller/clusterroleaggregation): for each selector
// in order, the selected roles sorted by name, skipping the role itself,
// appending each rule not already present.
func aggregatedRules(role *rbacv1.ClusterRole, sortedRoles []*rbacv1.ClusterRole) ([]rbacv1.PolicyRule, error) {
	var rules []rbacv1.PolicyRule
	for i := range role.AggregationRule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&role.AggregationRule.ClusterRoleSelectors[i])
		if err != nil {
			return nil, fmt.Errorf("clusterrole/%s: aggregationRule selector %d: %w", role.Name, i, err)
		}
		for _, other := range sortedRoles {
			if other.Name == role.Name || !sel.Matches(labels.Set(other.Labels)) {
				continue
			}
			for _, rule := range other.Rules {
				if !containsRule(rules, rule) {
					rules = append(rules, rule)
				}
			}
		}
	}
	return rules, nil
}

func containsRule(rules []rbacv1.PolicyRule, rule rbacv1.PolicyRule) bool {
	for _, r := range rules {
		if equality.Semantic.DeepEqual(r, rule) {
			return true
		}
	}
	return false
}
