package rbac

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func TestRuleAllows(t *testing.T) {
	get := Attributes{Verb: "get", Resource: "secrets", Name: "db"}
	tests := []struct {
		name string
		rule rbacv1.PolicyRule
		attr Attributes
		want bool
	}{
		// Verbs: exact or "*", case-sensitive.
		{"verb exact", rule(s("get"), s(""), s("secrets")), get, true},
		{"verb star", rule(s("*"), s(""), s("secrets")), get, true},
		{"verb other", rule(s("list"), s(""), s("secrets")), get, false},
		{"verb case-sensitive", rule(s("Get"), s(""), s("secrets")), get, false},
		{"verb prefix is not a match", rule(s("ge"), s(""), s("secrets")), get, false},
		// apiGroups: "" (core) or "*".
		{"core group", rule(s("get"), s(""), s("secrets")), get, true},
		{"group star", rule(s("get"), s("*"), s("secrets")), get, true},
		{"secrets in apps do not match", rule(s("get"), s("apps"), s("secrets")), get, false},
		{"secrets in a CRD group do not match", rule(s("get"), s("example.com"), s("secrets")), get, false},
		{"no groups", rule(s("get"), nil, s("secrets")), get, false},
		// resources.
		{"resource star", rule(s("get"), s(""), s("*")), get, true},
		{"resource star matches subresources", rule(s("get"), s(""), s("*")), Attributes{Verb: "get", Resource: "pods", Subresource: "exec"}, true},
		{"secrets matches only the resource", rule(s("get"), s(""), s("secrets")), Attributes{Verb: "get", Resource: "secrets", Subresource: "status"}, false},
		{"secrets/* is not a wildcard", rule(s("get"), s(""), s("secrets/*")), get, false},
		{"secrets/* is not a subresource wildcard", rule(s("get"), s(""), s("secrets/*")), Attributes{Verb: "get", Resource: "secrets", Subresource: "x"}, false},
		{"*/x matches subresource x", rule(s("create"), s(""), s("*/exec")), Attributes{Verb: "create", Resource: "pods", Subresource: "exec"}, true},
		{"*/x does not match the resource", rule(s("get"), s(""), s("*/secrets")), get, false},
		{"*/x does not match another subresource", rule(s("create"), s(""), s("*/exec")), Attributes{Verb: "create", Resource: "pods", Subresource: "attach"}, false},
		{"resource case-sensitive", rule(s("get"), s(""), s("Secrets")), get, false},
		{"singular is not plural", rule(s("get"), s(""), s("secret")), get, false},
		// resourceNames.
		{"names empty means all", rule(s("get"), s(""), s("secrets")), get, true},
		{"name exact", rule(s("get"), s(""), s("secrets"), "db"), get, true},
		{"name other", rule(s("get"), s(""), s("secrets"), "web"), get, false},
		{"name star is literal", rule(s("get"), s(""), s("secrets"), "*"), get, false},
		{"name star matches the literal name *", rule(s("get"), s(""), s("secrets"), "*"), Attributes{Verb: "get", Resource: "secrets", Name: "*"}, true},
		{"named rule does not allow an unnamed list", rule(s("list"), s(""), s("secrets"), "db"), Attributes{Verb: "list", Resource: "secrets"}, false},
		{"named rule allows a list selecting the name", rule(s("list"), s(""), s("secrets"), "db"), Attributes{Verb: "list", Resource: "secrets", Name: "db"}, true},
		{"name case-sensitive", rule(s("get"), s(""), s("secrets"), "DB"), get, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RuleAllows(&tt.rule, tt.attr); got != tt.want {
				t.Errorf("RuleAllows(%+v, %+v) = %v, want %v", tt.rule, tt.attr, got, tt.want)
			}
		})
	}
}

func TestNonResourceURLMatches(t *testing.T) {
	r := rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("/metrics", "/logs/*")}
	for path, want := range map[string]bool{"/metrics": true, "/metrics/x": false, "/logs/": true, "/logs/a/b": true, "/log": false} {
		if got := NonResourceURLMatches(&r, "get", path); got != want {
			t.Errorf("%s: got %v, want %v", path, got, want)
		}
	}
	if NonResourceURLMatches(&r, "post", "/metrics") {
		t.Error("post matched a get-only rule")
	}
}
