package auditlog

import (
	"testing"

	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
)

func rd(kind, ns, name, path string) report.Reader {
	return report.Reader{Subject: report.Subject{Kind: kind, Namespace: ns, Name: name}, Path: path}
}

func TestExplainer(t *testing.T) {
	rep := &report.Report{Secrets: []report.Secret{
		{Namespace: "shop", Name: "db", Readers: report.Readers([]report.Reader{
			rd("Group", "", "system:masters", "direct"),
			rd("User", "", "alice", "direct"),
			rd("Group", "", "auditors", "direct"),
			rd("ServiceAccount", "shop", "app", "direct"),
			rd("User", "", "system:node:n1", "node-authorizer"),
			rd("User", "", "mallory", "pod-create"),
		}...)},
		{Namespace: "shop", Name: "tls", Readers: report.Readers([]report.Reader{
			rd("Group", "", "system:masters", "direct"),
			rd("User", "", "alice", "direct"),
		}...)},
		{Namespace: "other", Name: "x", Readers: report.Readers([]report.Reader{
			rd("Group", "", "system:masters", "direct"),
		}...)},
	}}
	x := NewExplainer(rep)
	cases := []struct {
		name  string
		r     Read
		wants bool
	}{
		{"own grant", Read{User: "alice", Namespace: "shop", Name: "db"}, true},
		{"a group's grant", Read{User: "carol", Groups: []string{"auditors"}, Namespace: "shop", Name: "db"}, true},
		{"a ServiceAccount", Read{User: "system:serviceaccount:shop:app", Namespace: "shop", Name: "db"}, true},
		{"another ServiceAccount of that name", Read{User: "system:serviceaccount:other:app", Namespace: "shop", Name: "db"}, false},
		{"system:masters", Read{User: "root", Groups: []string{"system:masters"}, Namespace: "other", Name: "x"}, true},
		{"the Node authorizer", Read{User: "system:node:n1", Groups: []string{"system:nodes"}, Namespace: "shop", Name: "db"}, true},
		{"an indirect path does not explain an API read", Read{User: "mallory", Namespace: "shop", Name: "db"}, false},
		{"nobody", Read{User: "eve", Namespace: "shop", Name: "db"}, false},
		{"a Secret the report does not hold", Read{User: "eve", Namespace: "shop", Name: "new"}, true},
		{"a list of a namespace alice reads all of", Read{User: "alice", Namespace: "shop"}, true},
		{"a list of a namespace carol reads part of", Read{User: "carol", Groups: []string{"auditors"}, Namespace: "shop"}, false},
		{"a cluster-wide list by alice", Read{User: "alice"}, false},
		{"a cluster-wide list by a superuser", Read{User: "root", Groups: []string{"system:masters"}}, true},
		{"a cluster-wide list of one name", Read{User: "alice", Name: "tls"}, true},
		{"a namespace with no Secret", Read{User: "eve", Namespace: "empty"}, true},
	}
	for _, c := range cases {
		// Twice: the second answer may come from the cache.
		for range 2 {
			if got := x.Explained(&c.r); got != c.wants {
				t.Errorf("%s: explained = %v, want %v", c.name, got, c.wants)
			}
		}
	}
	if !NewExplainer(nil).Explained(&Read{User: "eve", Namespace: "shop", Name: "db"}) {
		t.Error("an explainer without a report flags reads")
	}
}

func TestSubjectMatches(t *testing.T) {
	sa := report.Subject{Kind: rbac.KindServiceAccount, Namespace: "shop", Name: "app"}
	if !SubjectMatches(sa, "system:serviceaccount:shop:app", nil) || SubjectMatches(sa, "app", nil) {
		t.Error("ServiceAccount matching")
	}
	if SubjectMatches(report.Subject{Kind: "Node", Name: "n1"}, "n1", nil) {
		t.Error("an unknown kind matches")
	}
}
