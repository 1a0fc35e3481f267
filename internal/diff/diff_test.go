package diff

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/report"
)

func sa(ns, name string) report.Subject {
	return report.Subject{Kind: "ServiceAccount", Namespace: ns, Name: name}
}

func group(name string) report.Subject { return report.Subject{Kind: "Group", Name: name} }

func crb(name string) report.Via {
	return report.Via{Binding: &report.ObjectRef{Kind: "ClusterRoleBinding", Name: name}, Role: &report.ObjectRef{Kind: "ClusterRole", Name: "r"}}
}

func rb(ns, name string) report.Via {
	return report.Via{Binding: &report.ObjectRef{Kind: "RoleBinding", Namespace: ns, Name: name}, Role: &report.ObjectRef{Kind: "ClusterRole", Name: "r"}}
}

func reader(s report.Subject, via ...report.Via) report.Reader {
	return report.Reader{Subject: s, Verbs: []string{"get", "list", "watch"}, Path: "direct", Via: via, Steps: []report.Step{}}
}

func expected(r report.Reader) report.Reader { r.Expected = true; return r }

func secret(ns, name, sev string, score int, readers ...report.Reader) report.Secret {
	return report.Secret{Namespace: ns, Name: name, Readers: report.Readers(readers...), Exposure: report.Exposure{Severity: sev, Score: score}}
}

func rep(secrets ...report.Secret) *report.Report {
	return &report.Report{Secrets: secrets, Coverage: report.Coverage{NotAnalysed: []string{}}}
}

var masters = expected(report.Reader{Subject: group("system:masters"), Verbs: []string{"get", "list", "watch"}, Path: "direct", Via: []report.Via{{Superuser: true}}})

func compare(base, head *report.Report) *Diff {
	return Compare(base, head, Side{Ref: "old"}, Side{Ref: "new"}, report.Tool{Name: "keyhole", Version: "test"})
}

func TestCompare(t *testing.T) {
	var many []report.Reader
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		many = append(many, reader(sa("search", n), crb("ci-admin")))
	}
	base := rep(
		secret("payments", "db", "high", 72, masters, reader(sa("payments", "app"), rb("payments", "app")), reader(group("devs"), rb("payments", "devs"))),
		secret("payments", "same", "low", 11, masters, reader(sa("payments", "app"), rb("payments", "app"))),
		secret("payments", "widened", "low", 11, masters, reader(sa("payments", "app"), rb("payments", "app"))),
		secret("payments", "narrowed", "low", 11, masters, reader(sa("payments", "app"), rb("payments", "app"))),
		secret("payments", "allowlisted", "low", 11, masters),
		secret("old", "gone", "high", 70, masters, reader(sa("ci", "deployer"), crb("ci"))),
	)
	widened := reader(sa("payments", "app"), rb("payments", "app"), crb("extra"))
	narrowed := reader(sa("payments", "app"), rb("payments", "app"))
	narrowed.Verbs = []string{"get"}
	head := rep(
		secret("payments", "db", "critical", 95, append([]report.Reader{masters, reader(sa("payments", "app"), rb("payments", "app"))}, many...)...),
		secret("payments", "same", "low", 11, masters, reader(sa("payments", "app"), rb("payments", "app"))),
		secret("payments", "widened", "high", 71, masters, widened),
		secret("payments", "narrowed", "low", 11, masters, narrowed),
		secret("payments", "allowlisted", "low", 11, masters, expected(reader(sa("backup", "velero"), crb("velero")))),
		secret("new", "tls", "critical", 90, masters, reader(group("system:authenticated"), rb("new", "all"))),
	)
	d := compare(base, head)

	type brief struct {
		name, change, base, head string
		increased                bool
		added, removed, changed  int
	}
	var got []brief
	for _, s := range d.Secrets {
		got = append(got, brief{s.Namespace + "/" + s.Name, s.Change, s.Severity.Base, s.Severity.Head, s.ExposureIncreased,
			len(s.ReadersAdded), len(s.ReadersRemoved), len(s.ReadersChanged)})
	}
	want := []brief{
		{"new/tls", Added, "", "critical", true, 2, 0, 0},
		{"old/gone", Removed, "high", "", false, 0, 2, 0},
		{"payments/allowlisted", Changed, "low", "low", false, 1, 0, 0}, // an expected reader is no increase
		{"payments/db", Changed, "high", "critical", true, 5, 1, 0},
		{"payments/narrowed", Changed, "low", "low", false, 0, 0, 1}, // fewer verbs
		{"payments/widened", Changed, "low", "high", true, 0, 0, 1},  // a new grant of a reader already there
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("secrets:\n got %+v\nwant %+v", got, want)
	}
	wantSum := Summary{SecretsAdded: 1, SecretsRemoved: 1, SecretsChanged: 4, ReadersAdded: 8, ReadersRemoved: 3,
		ExposureGrew: 3, ExposureShrank: 0, SeverityRaised: 2}
	if d.Summary != wantSum {
		t.Errorf("summary %+v, want %+v", d.Summary, wantSum)
	}
	for _, tc := range []struct {
		threshold finding.Severity
		want      []string
	}{
		{finding.Critical, []string{"new/tls", "payments/db"}},
		{finding.High, []string{"new/tls", "payments/db", "payments/widened"}},
		{finding.Info, []string{"new/tls", "payments/db", "payments/widened"}},
	} {
		var names []string
		for _, s := range d.Increases(tc.threshold) {
			names = append(names, s.Namespace+"/"+s.Name)
		}
		if !reflect.DeepEqual(names, tc.want) {
			t.Errorf("Increases(%s) = %v, want %v", tc.threshold, names, tc.want)
		}
	}

	var text bytes.Buffer
	if err := WriteText(&text, d); err != nil {
		t.Fatal(err)
	}
	wantText := `keyhole test: exposure from old to new
new/tls: new Secret, readable by 1 principal (critical)
old/gone: Secret removed (was high)
payments/allowlisted: readable by expected ServiceAccount backup/velero through ClusterRoleBinding velero (low)
payments/db (high → critical):
  readable by 5 more ServiceAccounts through ClusterRoleBinding ci-admin
  no longer readable by Group devs through RoleBinding payments/devs
payments/narrowed: ServiceAccount payments/app can now get (was get, list, watch) (low)
payments/widened: ServiceAccount payments/app now also reads through ClusterRoleBinding extra (low → high)

6 Secrets changed (1 added, 1 removed); 8 readers added, 3 removed; exposure increased on 3 Secrets
`
	if text.String() != wantText {
		t.Errorf("text:\n%s\nwant:\n%s", text.String(), wantText)
	}
}

func TestCompareNoChange(t *testing.T) {
	r := rep(secret("a", "s", "low", 11, masters))
	d := compare(r, r)
	if len(d.Secrets) != 0 || d.Summary != (Summary{}) {
		t.Errorf("a report compared with itself has changes: %+v", d)
	}
	var text bytes.Buffer
	if err := WriteText(&text, d); err != nil {
		t.Fatal(err)
	}
	if want := "keyhole test: exposure from old to new\nno change in who can read any of 1 Secrets\n"; text.String() != want {
		t.Errorf("text %q, want %q", text.String(), want)
	}
}

func TestTextGroups(t *testing.T) {
	base := rep(secret("a", "s", "low", 11))
	head := rep(secret("a", "s", "high", 75,
		reader(sa("x", "one"), crb("c1")),
		reader(sa("x", "two"), crb("c1")),
		reader(group("g"), crb("c1"), rb("a", "r1"), rb("a", "r2")),
		reader(report.Subject{Kind: "User", Name: "u"}, crb("c1"), crb("c2")),
	))
	var text bytes.Buffer
	if err := WriteText(&text, compare(base, head)); err != nil {
		t.Fatal(err)
	}
	want := `a/s (low → high):
  readable by 2 more ServiceAccounts (x/one, x/two) through ClusterRoleBinding c1
  readable by User u through ClusterRoleBinding c1 and ClusterRoleBinding c2
  readable by Group g through ClusterRoleBinding c1, RoleBinding a/r1 and 1 more
`
	if !strings.Contains(text.String(), want) {
		t.Errorf("text:\n%s\nwant it to contain:\n%s", text.String(), want)
	}
}

// TestJSON pins the document's envelope and that lists are [] not null.
func TestJSON(t *testing.T) {
	d := Compare(rep(secret("a", "s", "low", 11)), rep(secret("a", "s", "high", 75, reader(sa("x", "y"), crb("c")))),
		Side{Ref: "main", Commit: "0123456789abcdef0123456789abcdef01234567"}, Side{}, report.Tool{Name: "keyhole", Version: "v1"})
	d.Errors = append(d.Errors, Error{Side: "head", Error: report.Error{Source: "manifests", Message: "x.yaml: bad"}})
	var buf bytes.Buffer
	if err := WriteJSON(&buf, d); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["apiVersion"] != "keyhole.io/v1alpha1" || m["kind"] != "ExposureDiff" {
		t.Errorf("envelope %v %v", m["apiVersion"], m["kind"])
	}
	for _, want := range []string{
		`"base": {
    "ref": "main",
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "secrets": 1,
    "notAnalysed": []
  }`,
		`"readersRemoved": []`,
		`"readersChanged": []`,
		`"severity": {
        "base": "low",
        "head": "high"
      }`,
		`"errors": [
    {
      "side": "head",
      "source": "manifests",
      "message": "x.yaml: bad"
    }
  ]`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, buf.String())
		}
	}
}
