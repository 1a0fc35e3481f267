package report

import (
	"bytes"
	"strings"
	"testing"
)

// TestExplainCouldVsDid: with an audit log, explain puts who could read
// next to who did, with the change that removes an unused reader, and
// flags a read nothing explains.
func TestExplainCouldVsDid(t *testing.T) {
	binding := &ObjectRef{Kind: "RoleBinding", Namespace: "shop", Name: "readers"}
	s := &Secret{
		Namespace: "shop", Name: "db", Type: "Opaque", AuditWindow: "720h0m0s",
		Readers: Readers([]Reader{
			{Subject: Subject{Kind: "Group", Name: "system:masters"}, Verbs: []string{"get", "list", "watch"}, Path: "direct", Expected: true},
			{Subject: Subject{Kind: "User", Name: "alice"}, Verbs: []string{"get", "list", "watch"}, Path: "direct", Via: []Via{{Binding: binding}}},
			{Subject: Subject{Kind: "User", Name: "bob"}, Verbs: []string{"get", "list", "watch"}, Path: "direct", Via: []Via{{Binding: binding}}},
			{Subject: Subject{Kind: "Group", Name: "auditors"}, Verbs: []string{"get"}, Path: "direct", Via: []Via{{Binding: binding}}},
			{Subject: Subject{Kind: "User", Name: "mallory"}, Path: "pod-create"},
		}...),
		ActualReaders: []ActualReader{
			{Subject: Subject{Kind: "User", Name: "alice"}, LastSeen: "2026-11-20T11:00:00Z", Count: 4, Verbs: []string{"get", "list"}},
			{Subject: Subject{Kind: "User", Name: "carol"}, LastSeen: "2026-11-20T10:00:00Z", Count: 1, Verbs: []string{"get"}},
			{Subject: Subject{Kind: "User", Name: "eve\x1b[2J"}, LastSeen: "2026-11-19T10:00:00Z", Count: 1, Verbs: []string{"list"}, Listed: true, Unexplained: true},
		},
		UnusedReaders: []UnusedReader{{Subject: Subject{Kind: "User", Name: "bob"}, Changes: []RBACChange{{
			Action: ChangeRemoveSubject, Object: *binding, Text: "remove User/bob from the subjects of RoleBinding/shop/readers"}}}},
	}
	var b bytes.Buffer
	if err := WriteExplainTree(&b, s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	// Columns are aligned: compare with runs of spaces as one.
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"could read vs did read (audit log, window 720h0m0s) SUBJECT COULD READ DID READ",
		"User/alice direct get,list,watch 4 reads, last 2026-11-20T11:00:00Z (get,list)",
		"User/carol through a group 1 read",
		`User/eve\x1b[2J cannot read (KH621) 1 read, last 2026-11-19T10:00:00Z (list), by listing its namespace`,
		"User/bob direct get,list,watch no read: remove User/bob from the subjects of RoleBinding/shop/readers (KH620)",
		"Group/auditors direct get through members' reads",
		"Group/system:masters (expected) direct get,list,watch no read (expected reader)",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("a control character reached the terminal")
	}
	if strings.Contains(out[strings.Index(out, "could read vs did read"):strings.Index(out, "\ndirect")], "mallory") {
		t.Errorf("an indirect reader is judged by the audit log:\n%s", out)
	}
	// Without an audit log, no section.
	s.AuditWindow = ""
	b.Reset()
	if err := WriteExplainTree(&b, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "did read") {
		t.Errorf("a section without an audit log:\n%s", b.String())
	}
}
