package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// ConnectError is the one fatal outcome of Load: the API server could not
// be reached or refused the credentials, so nothing at all was read. Its
// message is one line meant for people; Unwrap gives client-go's error.
type ConnectError struct {
	// Server is the API server's URL.
	Server string
	msg    string
	err    error
}

func (e *ConnectError) Error() string { return e.msg }
func (e *ConnectError) Unwrap() error { return e.err }

// connectError turns the failure of the first request into a ConnectError,
// or returns nil when the server answered at all (a 403 or 404 on /version
// is left for the per-resource LISTs to report).
func connectError(server string, cfg *rest.Config, err error, timeout time.Duration) error {
	if apierrors.IsUnauthorized(err) {
		return &ConnectError{Server: server, err: err, msg: fmt.Sprintf(
			"the Kubernetes API at %s rejected the credentials (401 Unauthorized): %s", server, credentialHint(cfg))}
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return nil
	}
	var msg string
	switch kind, reason := transportReason(err, timeout); kind {
	case failTLS:
		msg = fmt.Sprintf("TLS with the Kubernetes API at %s failed: %s", server, reason)
	case failUnknownCA:
		msg = fmt.Sprintf("the Kubernetes API at %s presented a certificate signed by an unknown authority (x509): check certificate-authority in the kubeconfig", server)
	case failPlainHTTP:
		msg = fmt.Sprintf("the Kubernetes API at %s answered an HTTPS request in plain HTTP: check the server URL's scheme", server)
	case failCredentials:
		msg = fmt.Sprintf("cannot get credentials for the Kubernetes API at %s: %s", server, reason)
	default:
		msg = fmt.Sprintf("cannot reach the Kubernetes API at %s: %s", server, reason)
	}
	return &ConnectError{Server: server, err: err, msg: msg}
}

func credentialHint(cfg *rest.Config) string {
	switch {
	case cfg.ExecProvider != nil || cfg.AuthProvider != nil:
		return "the credential plugin's token may be expired or meant for another cluster"
	case cfg.BearerToken != "" || cfg.BearerTokenFile != "":
		return "the token may be expired"
	case len(cfg.CertData) > 0 || cfg.CertFile != "":
		return "the client certificate may be expired or not issued by this cluster's CA"
	case cfg.Username != "":
		return "the username or password is wrong"
	}
	return "no credentials are configured"
}

type failKind int

const (
	failNetwork failKind = iota
	failTLS
	failUnknownCA
	failPlainHTTP
	failCredentials
)

// transportReason reduces an error that happened before any HTTP answer to
// its cause in a few words, without client-go's "Get \"https://…\": dial
// tcp …:" framing.
func transportReason(err error, timeout time.Duration) (failKind, string) {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
		alert     tls.AlertError
		dns       *net.DNSError
		errno     syscall.Errno
		netErr    net.Error
	)
	text := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		return failUnknownCA, "x509: certificate signed by unknown authority"
	case errors.As(err, &hostname):
		return failTLS, OneLine(hostname.Error())
	case errors.As(err, &invalid):
		return failTLS, OneLine(invalid.Error())
	case strings.Contains(text, "server gave HTTP response to HTTPS client"):
		return failPlainHTTP, "plain HTTP answer"
	case errors.As(err, &record):
		return failTLS, "the server does not speak TLS"
	case errors.As(err, &alert):
		return failTLS, "the server ended the handshake: " + OneLine(alert.Error())
	case strings.Contains(text, "remote error: tls:"):
		_, after, _ := strings.Cut(text, "remote error: tls:")
		return failTLS, "the server ended the handshake: remote error: tls:" + after
	case strings.Contains(text, "x509: "):
		_, after, _ := strings.Cut(text, "x509: ")
		return failTLS, OneLine("x509: " + after)
	case strings.Contains(text, "getting credentials:"):
		return failCredentials, OneLine(text[strings.Index(text, "getting credentials:")+len("getting credentials:"):])
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return failNetwork, fmt.Sprintf("no such host %q", dns.Name)
		}
		return failNetwork, fmt.Sprintf("cannot resolve %q: %s", dns.Name, dns.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return failNetwork, "connection refused"
	case errors.As(err, &errno):
		return failNetwork, errno.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		if timeout > 0 {
			return failNetwork, fmt.Sprintf("no answer within %s", timeout)
		}
		return failNetwork, "no answer in time"
	case errors.Is(err, context.Canceled):
		return failNetwork, "cancelled"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return failNetwork, OneLine(ue.Err.Error())
	}
	return failNetwork, OneLine(text)
}

// listReason says in one line why a LIST failed. For Secrets only text the
// API server wrote about the request (never about an object) or a transport
// cause is passed on; anything else, such as a decoding error that might
// quote the body, is replaced by a fixed phrase.
func listReason(err error, valueBearing bool) string {
	var own ownError
	if errors.As(err, &own) {
		return own.Error()
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		msg := OneLine(s.Message)
		switch {
		case valueBearing && decodedByClient(s):
			// Not the server's words: client-go's account of a watch
			// event it could not decode, which may quote the event.
			return "the server's answer could not be read"
		case s.Reason == metav1.StatusReasonForbidden || s.Code == 403:
			if i := strings.Index(msg, " is forbidden: "); i >= 0 {
				msg = msg[i+len(" is forbidden: "):]
			}
			return "forbidden: " + msg
		case s.Code == 401:
			return "unauthorized (401): the credentials were rejected"
		case s.Reason == metav1.StatusReasonNotFound || s.Code == 404:
			return "not served by this API server (404 Not Found)"
		case msg == "" || msg == "unknown":
			return fmt.Sprintf("the server answered %d %s", s.Code, s.Reason)
		}
		return fmt.Sprintf("%s (%d %s)", msg, s.Code, s.Reason)
	}
	var ue *url.Error
	if errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		_, reason := transportReason(err, 0)
		return reason
	}
	if valueBearing {
		return "the server's answer could not be read"
	}
	return OneLine(err.Error())
}

// decodedByClient reports a Status that client-go made up for a watch
// event it could not decode.
func decodedByClient(s metav1.Status) bool {
	if s.Details == nil {
		return false
	}
	for _, c := range s.Details.Causes {
		if c.Type == "ClientWatchDecoding" {
			return true
		}
	}
	return false
}

// OneLine folds whitespace runs, newlines included, into single spaces and
// caps the length, so that a message fits one line of a report or a log.
func OneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 300
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
