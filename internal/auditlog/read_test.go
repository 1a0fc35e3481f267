package auditlog

import (
	"strings"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/rbac"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// event is a completed, successful get of shop/db by alice unless edit
// changes it.
func event(edit func(*Event)) *Event {
	ev := &Event{
		Level: "Metadata", AuditID: "id", Stage: StageResponseComplete,
		RequestURI: "/api/v1/namespaces/shop/secrets/db", Verb: "get",
		User:      UserInfo{Username: "alice", Groups: []string{"devs", "system:authenticated"}},
		SourceIPs: []string{"10.0.0.7", "10.0.0.1"}, UserAgent: "kubectl/v1.34.4",
		ObjectRef:      &ObjectRef{Resource: "secrets", Namespace: "shop", Name: "db", APIVersion: "v1"},
		ResponseStatus: &ResponseStatus{Code: 200},
		StageTimestamp: t0,
	}
	if edit != nil {
		edit(ev)
	}
	return ev
}

func TestReadOf(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Event)
		want *Read // nil: not a read
	}{
		{name: "get", want: &Read{User: "alice", Groups: []string{"devs", "system:authenticated"}, Namespace: "shop", Name: "db", Verb: rbac.VerbGet,
			Time: t0, UserAgent: "kubectl/v1.34.4", SourceIP: "10.0.0.7"}},
		{name: "list of a namespace reads every Secret in it", edit: func(e *Event) {
			e.Verb, e.ObjectRef.Name, e.RequestURI = "list", "", "/api/v1/namespaces/shop/secrets?limit=500"
		}, want: &Read{User: "alice", Namespace: "shop", Verb: rbac.VerbList}},
		{name: "watch", edit: func(e *Event) {
			e.Verb, e.ObjectRef.Name, e.RequestURI = "watch", "", "/api/v1/namespaces/shop/secrets?watch=true"
		}, want: &Read{User: "alice", Namespace: "shop", Verb: rbac.VerbWatch}},
		{name: "cluster-wide list reads every Secret", edit: func(e *Event) {
			e.Verb, e.ObjectRef.Name, e.ObjectRef.Namespace, e.RequestURI = "list", "", "", "/api/v1/secrets"
		}, want: &Read{User: "alice", Verb: rbac.VerbList}},
		{name: "list with a metadata.name field selector in the URI", edit: func(e *Event) {
			e.Verb, e.ObjectRef.Name = "list", ""
			e.RequestURI = "/api/v1/namespaces/shop/secrets?fieldSelector=metadata.name%3Dtls&limit=500"
		}, want: &Read{User: "alice", Namespace: "shop", Name: "tls", Verb: rbac.VerbList}},
		{name: "watch with == and another requirement", edit: func(e *Event) {
			e.Verb, e.ObjectRef.Name = "watch", ""
			e.RequestURI = "/api/v1/namespaces/shop/secrets?fieldSelector=type%3DOpaque%2Cmetadata.name%3D%3Dtls&watch=1"
		}, want: &Read{User: "alice", Namespace: "shop", Name: "tls", Verb: rbac.VerbWatch}},
		{name: "list with objectRef.name from the apiserver", edit: func(e *Event) {
			e.Verb, e.ObjectRef.Name = "list", "tls"
			e.RequestURI = "/api/v1/namespaces/shop/secrets?fieldSelector=metadata.name%3Dtls"
		}, want: &Read{User: "alice", Namespace: "shop", Name: "tls", Verb: rbac.VerbList}},
		{name: "a != field selector restricts nothing", edit: func(e *Event) {
			e.Verb, e.ObjectRef.Name = "list", ""
			e.RequestURI = "/api/v1/namespaces/shop/secrets?fieldSelector=metadata.name%21%3Dtls"
		}, want: &Read{User: "alice", Namespace: "shop", Verb: rbac.VerbList}},
		{name: "impersonation: the read is the impersonated user's", edit: func(e *Event) {
			e.User = UserInfo{Username: "admin", Groups: []string{"system:masters"}}
			e.ImpersonatedUser = &UserInfo{Username: "system:serviceaccount:shop:app", Groups: []string{"system:serviceaccounts"}}
		}, want: &Read{User: "system:serviceaccount:shop:app", Groups: []string{"system:serviceaccounts"}, Namespace: "shop", Name: "db", Verb: rbac.VerbGet}},
		{name: "forbidden", edit: func(e *Event) { e.ResponseStatus.Code = 403 }},
		{name: "not found", edit: func(e *Event) { e.ResponseStatus.Code = 404 }},
		{name: "no response status", edit: func(e *Event) { e.ResponseStatus = nil }},
		{name: "RequestReceived stage", edit: func(e *Event) { e.Stage = StageRequestReceived }},
		{name: "ResponseStarted stage (a watch counts when it ends)", edit: func(e *Event) { e.Stage = StageResponseStarted }},
		{name: "panic", edit: func(e *Event) { e.Stage = StagePanic }},
		{name: "write verb", edit: func(e *Event) { e.Verb = "update" }},
		{name: "patch returns the Secret but is not a read verb here", edit: func(e *Event) { e.Verb = "patch" }},
		{name: "configmaps", edit: func(e *Event) { e.ObjectRef.Resource = "configmaps" }},
		{name: "another group's secrets", edit: func(e *Event) { e.ObjectRef.APIGroup = "example.com" }},
		{name: "a subresource", edit: func(e *Event) { e.ObjectRef.Subresource = "status" }},
		{name: "non-resource request", edit: func(e *Event) { e.ObjectRef = nil }},
		{name: "no user", edit: func(e *Event) { e.User.Username = "" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := ReadOf(event(c.edit))
			if c.want == nil {
				if ok {
					t.Fatalf("counted as a read: %+v", got)
				}
				return
			}
			if !ok {
				t.Fatal("not counted as a read")
			}
			if got.User != c.want.User || got.Namespace != c.want.Namespace || got.Name != c.want.Name || got.Verb != c.want.Verb {
				t.Errorf("got user %q target %s/%s verb %v, want %q %s/%s %v", got.User, got.Namespace, got.Name, got.Verb.Names(),
					c.want.User, c.want.Namespace, c.want.Name, c.want.Verb.Names())
			}
			if c.want.Groups != nil && strings.Join(got.Groups, ",") != strings.Join(c.want.Groups, ",") {
				t.Errorf("groups %v, want %v", got.Groups, c.want.Groups)
			}
			if !c.want.Time.IsZero() && (!got.Time.Equal(c.want.Time) || got.UserAgent != c.want.UserAgent || got.SourceIP != c.want.SourceIP) {
				t.Errorf("time %v agent %q ip %q, want %v %q %q", got.Time, got.UserAgent, got.SourceIP, c.want.Time, c.want.UserAgent, c.want.SourceIP)
			}
		})
	}
}

func TestReadOfBoundsClientFields(t *testing.T) {
	r, ok := ReadOf(event(func(e *Event) {
		e.UserAgent = strings.Repeat("é", 1000)
		e.StageTimestamp = time.Time{}
		e.RequestReceivedTimestamp = t0
	}))
	if !ok {
		t.Fatal("not a read")
	}
	if len(r.UserAgent) > maxFieldLen || !strings.HasPrefix(strings.Repeat("é", 1000), r.UserAgent) {
		t.Errorf("user agent of %d bytes not cut cleanly at %d", len(r.UserAgent), maxFieldLen)
	}
	if !r.Time.Equal(t0) {
		t.Errorf("time %v, want the request's %v when the stage has none", r.Time, t0)
	}
}

func TestSubject(t *testing.T) {
	for user, want := range map[string]rbac.Subject{
		"alice":                          {Kind: "User", Name: "alice"},
		"system:serviceaccount:shop:app": {Kind: "ServiceAccount", Namespace: "shop", Name: "app"},
		"system:serviceaccount:bad":      {Kind: "User", Name: "system:serviceaccount:bad"},
		"system:node:n1":                 {Kind: "User", Name: "system:node:n1"},
	} {
		if got := Subject(user); got != want {
			t.Errorf("Subject(%q) = %v, want %v", user, got, want)
		}
	}
}

const eventListJSON = `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[
{"level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/secrets/db","verb":"get",
 "user":{"username":"alice","uid":"u1","groups":["system:authenticated"]},"sourceIPs":["127.0.0.1"],"userAgent":"kubectl",
 "objectRef":{"resource":"secrets","namespace":"shop","name":"db","apiVersion":"v1"},
 "responseStatus":{"metadata":{},"code":200},
 "responseObject":{"kind":"Secret","data":{"password":"S0VZSE9MRS1DQU5BUlk="}},
 "requestReceivedTimestamp":"2026-11-20T10:00:00.000000Z","stageTimestamp":"2026-11-20T10:00:00.012345Z",
 "annotations":{"authorization.k8s.io/decision":"allow"}}
]}`

func TestDecodeEventList(t *testing.T) {
	list, err := DecodeEventList(strings.NewReader(eventListJSON))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d items", len(list.Items))
	}
	r, ok := ReadOf(&list.Items[0])
	if !ok || r.User != "alice" || r.Name != "db" || r.Time.Nanosecond() != 12345000 {
		t.Errorf("read %+v, %v", r, ok)
	}
	for _, bad := range []string{
		`{"kind":"EventList","apiVersion":"audit.k8s.io/v1beta1","items":[]}`,
		`{"kind":"Event","apiVersion":"audit.k8s.io/v1"}`,
		`not json`,
	} {
		if _, err := DecodeEventList(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	ev, err := DecodeEvent([]byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","stage":"ResponseComplete","verb":"list","user":{"username":"bob"},"objectRef":{"resource":"secrets","namespace":"shop"},"responseStatus":{"code":200}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := ReadOf(ev); !ok || r.User != "bob" || r.Name != "" {
		t.Errorf("log line read %+v, %v", r, ok)
	}
	if _, err := DecodeEvent([]byte(`{"kind":"Pod","apiVersion":"v1"}`)); err == nil {
		t.Error("accepted a Pod as an event")
	}
}

// FuzzReadOf: no event, however malformed, makes decoding or reading
// panic, and a read's target never names more than the request did.
func FuzzReadOf(f *testing.F) {
	f.Add([]byte(eventListJSON))
	f.Add([]byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"stage":"ResponseComplete","verb":"list","requestURI":"/api/v1/secrets?fieldSelector=metadata.name%3D%3Dx%2Cmetadata.name%21%3Dy","user":{"username":"u"},"objectRef":{"resource":"secrets"},"responseStatus":{"code":200}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := DecodeEventList(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		for i := range list.Items {
			ev := &list.Items[i]
			r, ok := ReadOf(ev)
			if !ok {
				continue
			}
			if r.Namespace != ev.ObjectRef.Namespace || (ev.ObjectRef.Name != "" && r.Name != ev.ObjectRef.Name) {
				t.Errorf("read %s/%s of a request on %s/%s", r.Namespace, r.Name, ev.ObjectRef.Namespace, ev.ObjectRef.Name)
			}
			if len(r.UserAgent) > maxFieldLen || len(r.SourceIP) > maxFieldLen {
				t.Error("client fields not bounded")
			}
		}
	})
}
