package encryption

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/keyhole-sec/keyhole/internal/source/cluster"
)

// MetricsPath is the API server's metrics endpoint: a non-resource URL,
// which keyhole's identity needs get on (the bootstrap ClusterRole
// system:monitoring grants it).
const MetricsPath = "/metrics"

// ReadTimeout bounds one read of /metrics.
const ReadTimeout = 30 * time.Second

// Permission is the grant Read needs, as people name it in RBAC.
const Permission = `get on the non-resource URL /metrics (nonResourceURLs: ["/metrics"], verbs: ["get"]; the bootstrap ClusterRole system:monitoring grants it)`

// Read reads the API server's /metrics through the API at cfg and
// decides. It always returns a Status: one that cannot be read or parsed
// is Unknown, with the reason in Error (naming the missing permission
// when the read was forbidden). It never triggers a read of a Secret: a
// GET would need get on secrets, and the watch cache has read every Secret
// once already when the apiserver started (see docs/rules/KH603.md).
func Read(ctx context.Context, cfg *rest.Config) Status {
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	c, err := corev1client.NewForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return Failed("cannot use the Kubernetes API: " + cluster.OneLine(err.Error()))
	}
	body, err := c.RESTClient().Get().AbsPath(MetricsPath).
		// The classic text format, whatever the server could negotiate.
		SetHeader("Accept", "text/plain;version=0.0.4").
		Stream(ctx)
	if err != nil {
		return Failed(readReason(err))
	}
	defer body.Close()
	st, err := Parse(body)
	if err != nil {
		if ctx.Err() != nil {
			return Failed(fmt.Sprintf("GET %s: no complete answer within %s", MetricsPath, ReadTimeout))
		}
		return Failed(fmt.Sprintf("GET %s: the answer is not a Prometheus text exposition: %s", MetricsPath, cluster.OneLine(err.Error())))
	}
	return st
}

// readReason says in one line why GET /metrics failed.
func readReason(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		switch {
		case s.Code == 403 || apierrors.IsForbidden(err):
			msg := cluster.OneLine(s.Message)
			if msg == "" {
				msg = "forbidden"
			}
			if !strings.HasPrefix(msg, "forbidden") {
				msg = "forbidden: " + msg
			}
			return fmt.Sprintf("GET %s %s: keyhole needs %s", MetricsPath, msg, Permission)
		case s.Code == 401:
			return fmt.Sprintf("GET %s: unauthorized (401): the credentials were rejected", MetricsPath)
		case s.Code == 404:
			return fmt.Sprintf("GET %s: not served (404 Not Found): the API server does not expose its metrics there", MetricsPath)
		}
		return fmt.Sprintf("GET %s: the server answered %d %s", MetricsPath, s.Code, s.Reason)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Sprintf("GET %s: %s", MetricsPath, cluster.OneLine(ue.Err.Error()))
	}
	return fmt.Sprintf("GET %s: %s", MetricsPath, cluster.OneLine(err.Error()))
}
