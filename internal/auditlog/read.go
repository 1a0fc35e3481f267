package auditlog

import (
	"net/url"
	"strings"
	"time"

	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// Read is one successful get, list or watch of Secrets, as an audit event
// records it at Metadata level. An empty Namespace is every namespace (a
// cluster-wide list or watch); an empty Name is every Secret of the
// namespace (a list or watch without a metadata.name field selector).
type Read struct {
	// User is the user name the request acted as: the impersonated user
	// when the caller impersonated, else the caller.
	User string
	// Groups are that identity's groups, as the authorizer saw them.
	Groups    []string
	Namespace string
	Name      string
	Verb      rbac.Verbs
	Time      time.Time
	UserAgent string
	SourceIP  string
}

// maxFieldLen bounds the user agent and source address kept per read:
// both come from the client, and the summary must stay small.
const maxFieldLen = 256

// ReadOf returns the Secret read ev stands for, and false when it stands
// for none. An event counts when:
//   - it is about core/v1 secrets (no subresource) with verb get, list or
//     watch;
//   - its stage is ResponseComplete: the response was sent. A watch counts
//     when it ends; RequestReceived has no outcome yet, ResponseStarted
//     would count a watch twice, and Panic sent nothing;
//   - its response code is below 400: a denied or failed read returned no
//     value.
func ReadOf(ev *Event) (Read, bool) {
	o := ev.ObjectRef
	if o == nil || o.Resource != "secrets" || o.APIGroup != "" || o.Subresource != "" {
		return Read{}, false
	}
	verb := rbac.ParseVerb(ev.Verb)
	if verb == 0 || ev.Stage != StageResponseComplete {
		return Read{}, false
	}
	if ev.ResponseStatus == nil || ev.ResponseStatus.Code <= 0 || ev.ResponseStatus.Code >= 400 {
		return Read{}, false
	}
	who := ev.User
	if ev.ImpersonatedUser != nil {
		who = *ev.ImpersonatedUser
	}
	if who.Username == "" {
		return Read{}, false
	}
	r := Read{
		User:      who.Username,
		Groups:    who.Groups,
		Namespace: o.Namespace,
		Name:      o.Name,
		Verb:      verb,
		Time:      ev.StageTimestamp,
		UserAgent: truncate(ev.UserAgent),
	}
	if r.Time.IsZero() {
		r.Time = ev.RequestReceivedTimestamp
	}
	if len(ev.SourceIPs) > 0 {
		// The client first, then the proxies it came through.
		r.SourceIP = truncate(ev.SourceIPs[0])
	}
	if r.Name == "" && verb != rbac.VerbGet {
		// The apiserver fills objectRef.name from a metadata.name field
		// selector; older ones did not, so the URI is the fallback.
		r.Name = nameFromFieldSelector(ev.RequestURI)
	}
	return r, true
}

func truncate(s string) string {
	if len(s) <= maxFieldLen {
		return s
	}
	return strings.ToValidUTF8(s[:maxFieldLen], "")
}

// nameFromFieldSelector returns the name a list or watch is restricted to
// by a metadata.name=NAME (or ==) requirement of its fieldSelector, or "".
// A != requirement restricts nothing. A value with an escape is not a
// valid object name and is ignored.
func nameFromFieldSelector(requestURI string) string {
	u, err := url.ParseRequestURI(requestURI)
	if err != nil {
		return ""
	}
	sel := u.Query().Get("fieldSelector")
	if sel == "" {
		return ""
	}
	for _, req := range strings.Split(sel, ",") {
		field, value, ok := strings.Cut(strings.TrimSpace(req), "=")
		if !ok || strings.HasSuffix(field, "!") {
			continue
		}
		value = strings.TrimPrefix(value, "=")
		if strings.TrimSpace(field) == "metadata.name" && value != "" && !strings.ContainsAny(value, `\,=!`) {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// Subject is the RBAC subject a user name stands for: the ServiceAccount
// for system:serviceaccount:NS:NAME, else the User.
func Subject(user string) rbac.Subject {
	if ns, name, ok := rbac.SplitServiceAccountUsername(user); ok {
		return rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: ns, Name: name}
	}
	return rbac.Subject{Kind: rbac.KindUser, Name: user}
}
