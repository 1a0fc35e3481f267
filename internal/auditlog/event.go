// Package auditlog owns what keyhole learns from the Kubernetes audit log:
// the few fields of an audit.k8s.io/v1 Event it reads, the Secret reads an
// event stands for (Read), the bounded summary of who read which Secret
// and when (Summary, with its persisted form State and their merge), and
// the check of a read against the RBAC readers of a report (Explainer).
// It is pure: receiving events over HTTP or from a file, and storing the
// summary in the cluster, belong to internal/source/auditevents. It never
// holds a request or response body: the Event type has no field for them,
// so decoding drops them.
package auditlog

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// The audit API group version and kinds keyhole accepts.
const (
	APIVersion    = "audit.k8s.io/v1"
	KindEventList = "EventList"
	KindEvent     = "Event"
)

// Audit stages (k8s.io/apiserver/pkg/apis/audit).
const (
	StageRequestReceived  = "RequestReceived"
	StageResponseStarted  = "ResponseStarted"
	StageResponseComplete = "ResponseComplete"
	StagePanic            = "Panic"
)

// Event is the part of an audit.k8s.io/v1 Event that keyhole reads.
// Everything else, requestObject and responseObject included, is skipped
// by the decoder and never held.
type Event struct {
	Level      string   `json:"level"`
	AuditID    string   `json:"auditID"`
	Stage      string   `json:"stage"`
	RequestURI string   `json:"requestURI"`
	Verb       string   `json:"verb"`
	User       UserInfo `json:"user"`
	// ImpersonatedUser is who the request acts as, when the user
	// impersonates: the identity the authorizer checked.
	ImpersonatedUser *UserInfo       `json:"impersonatedUser,omitempty"`
	SourceIPs        []string        `json:"sourceIPs,omitempty"`
	UserAgent        string          `json:"userAgent,omitempty"`
	ObjectRef        *ObjectRef      `json:"objectRef,omitempty"`
	ResponseStatus   *ResponseStatus `json:"responseStatus,omitempty"`
	// RequestReceivedTimestamp and StageTimestamp are metav1.MicroTime:
	// RFC 3339 with microseconds, which time.Time decodes.
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
	StageTimestamp           time.Time `json:"stageTimestamp"`
}

// UserInfo is an authenticated identity.
type UserInfo struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups,omitempty"`
}

// ObjectRef is the object a request is about.
type ObjectRef struct {
	Resource    string `json:"resource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	APIGroup    string `json:"apiGroup,omitempty"`
	APIVersion  string `json:"apiVersion,omitempty"`
	Subresource string `json:"subresource,omitempty"`
}

// ResponseStatus is the part of the response's metav1.Status kept at
// Metadata level: its code.
type ResponseStatus struct {
	Code int `json:"code"`
}

// EventList is what the webhook backend sends: a batch of events.
type EventList struct {
	APIVersion string  `json:"apiVersion"`
	Kind       string  `json:"kind"`
	Items      []Event `json:"items"`
}

// DecodeEventList reads one audit.k8s.io/v1 EventList from r. Another
// apiVersion or kind is an error: keyhole reads only the v1 schema, which
// the apiserver sends by default (--audit-webhook-version).
func DecodeEventList(r io.Reader) (*EventList, error) {
	var list EventList
	if err := json.NewDecoder(r).Decode(&list); err != nil {
		return nil, fmt.Errorf("decoding the audit EventList: %w", err)
	}
	if list.APIVersion != APIVersion || list.Kind != KindEventList {
		return nil, fmt.Errorf("got apiVersion %q kind %q, want %s %s", list.APIVersion, list.Kind, APIVersion, KindEventList)
	}
	return &list, nil
}

// DecodeEvent reads one event, as the log backend writes one per line
// (--audit-log-format=json, the default). An empty apiVersion or kind is
// accepted there (older log lines carry them, newer ones too, and nothing
// else writes to the log).
func DecodeEvent(line []byte) (*Event, error) {
	var ev struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Event
	}
	if err := json.Unmarshal(line, &ev); err != nil {
		return nil, fmt.Errorf("decoding an audit event: %w", err)
	}
	if (ev.APIVersion != "" && ev.APIVersion != APIVersion) || (ev.Kind != "" && ev.Kind != KindEvent) {
		return nil, fmt.Errorf("got apiVersion %q kind %q, want %s %s", ev.APIVersion, ev.Kind, APIVersion, KindEvent)
	}
	return &ev.Event, nil
}
