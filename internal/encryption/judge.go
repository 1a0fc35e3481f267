package encryption

import (
	"fmt"
	"strings"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// Object is what KH601-KH603 are about: the secrets resource of the
// cluster, stored by the API server. It is no object of the inventory, so
// no annotation exempts it: the config file's rules or the baseline do.
var Object = inventory.Ref{Kind: "Resource", Name: "secrets"}

// Posture is the report's encryptionAtRest for s.
func (s Status) Posture() *report.EncryptionAtRest {
	return &report.EncryptionAtRest{
		Provider:         s.Provider,
		Configured:       s.Configured,
		Source:           Source,
		APIServerVersion: s.Version,
		WrittenWith:      s.WrittenWith(),
		StoredWith:       s.StoredWith(),
		Evidence:         s.evidence(),
		Error:            s.Error,
	}
}

func (s Status) server() string {
	if s.Version != "" {
		return "kube-apiserver " + s.Version
	}
	return "the API server"
}

func describe(providers []string) string {
	out := make([]string, len(providers))
	for i, p := range providers {
		out[i] = p
		if p == Identity {
			out[i] = "identity (plain base64)"
		}
	}
	return strings.Join(out, ", ")
}

// evidence says what the metrics showed, in one sentence without counts
// (they grow with every request; the conclusion does not).
func (s Status) evidence() string {
	if s.Error != "" {
		return "the API server's " + MetricsPath + " could not be read, so whether Secrets are encrypted is unknown"
	}
	var b strings.Builder
	srv := s.server()
	ops := familyOperations + `{resource="secrets"}`
	switch {
	case len(s.Writes) > 0:
		fmt.Fprintf(&b, "%s wrote Secrets to etcd with %s since it started", srv, describe(s.WrittenWith()))
		if len(s.Reads) > 0 {
			fmt.Fprintf(&b, ", and read Secrets stored with %s", describe(s.StoredWith()))
		}
		b.WriteString(" (" + ops + ")")
	case len(s.Reads) > 0:
		fmt.Fprintf(&b, "%s wrote no Secret since it started, and read Secrets stored with %s (%s)", srv, describe(s.StoredWith()), ops)
	case s.Configured != nil && !*s.Configured:
		fmt.Fprintf(&b, "%s exports neither %s nor %s: it runs without an EncryptionConfiguration, so Secrets go to etcd as plain base64", srv, familyConfigInfo, ops)
	case s.Configured != nil:
		fmt.Fprintf(&b, "%s runs with an EncryptionConfiguration (%s), but exports no %s: it has neither read nor written a Secret through it since it started, so the provider is not known", srv, familyConfigInfo, ops)
	default:
		fmt.Fprintf(&b, "%s exports neither %s (which Kubernetes exports from v1.34 on) nor %s: whether Secrets are encrypted is not known", srv, familyConfigInfo, ops)
	}
	if s.Unreadable > 0 {
		b.WriteString("; some Secrets could not be read back: no configured provider matches how they are stored")
	}
	return b.String()
}

// Results are the findings s raises. secrets is how many Secrets the
// cluster holds (0 when unknown): an apiserver with its watch cache on,
// the default, reads every Secret from etcd when it starts and every
// Secret written since, so a configuration that reports no Secret
// transformation while Secrets exist most likely does not cover them.
// That is said, not concluded: the provider stays unknown.
func (s Status) Results(secrets int) []finding.Result {
	result := func(rule, message string) []finding.Result {
		return []finding.Result{{Rule: rule, Object: Object, Message: message}}
	}
	switch s.Provider {
	case Identity:
		return result(finding.SecretsNotEncrypted, s.identityMessage())
	case Unknown:
		return result(finding.EncryptionAtRestUnknown, s.unknownMessage(secrets))
	}
	var out []finding.Result
	if s.Reads[Identity] > 0 {
		out = append(out, result(finding.SecretsNotEncrypted, fmt.Sprintf(
			"Some Secrets are still stored in etcd unencrypted: %s encrypts what it writes with %s, but read Secrets stored as plain base64, written before encryption was enabled or while identity came first. "+
				"Rewrite every Secret so that it is stored again with the current provider (kubectl get secrets --all-namespaces -o json | kubectl replace -f -)",
			s.server(), s.Provider))...)
	}
	if msg := weakMessage(s.Provider); msg != "" {
		out = append(out, result(finding.WeakEncryptionProvider, msg)...)
	}
	return out
}

func (s Status) identityMessage() string {
	fix := "Run the API server with --encryption-provider-config naming a kms provider of apiVersion v2 first for secrets, then rewrite every Secret (kubectl get secrets --all-namespaces -o json | kubectl replace -f -)"
	switch {
	case s.Configured != nil && !*s.Configured:
		return fmt.Sprintf("Secrets are stored in etcd unencrypted: %s runs without an EncryptionConfiguration, so whoever reads etcd, its disk or its backups reads every Secret's value. %s", s.server(), fix)
	case len(s.Writes) > 0:
		return fmt.Sprintf("Secrets are written to etcd unencrypted: the EncryptionConfiguration of %s lists identity first for secrets, so every Secret written is stored as plain base64. %s", s.server(), fix)
	}
	return fmt.Sprintf("Secrets are stored in etcd unencrypted: %s read Secrets stored as plain base64. %s", s.server(), fix)
}

func (s Status) unknownMessage(secrets int) string {
	if s.Error != "" {
		return "Whether Secrets are encrypted at rest is unknown: " + s.Error
	}
	msg := "Whether Secrets are encrypted at rest is unknown: "
	if s.Configured != nil {
		msg += s.server() + " runs with an EncryptionConfiguration but reports no transformation of a Secret since it started"
	} else {
		msg += s.server() + " (older than v1.34) does not export whether it runs with an EncryptionConfiguration, and reports no transformation of a Secret since it started"
	}
	if secrets == 0 {
		return msg + "; the provider shows once a Secret is written"
	}
	msg += fmt.Sprintf(", although the cluster holds %d Secrets. With its watch cache on (the default), the API server reads every Secret from etcd when it starts and every Secret written since, so ", secrets)
	if s.Configured != nil {
		return msg + "the configuration most likely does not list secrets among its resources, and Secrets are stored as plain base64: check its resources"
	}
	return msg + "most likely no encryption provider covers Secrets, which are then stored as plain base64: check the API server's --encryption-provider-config"
}

// weakMessage is KH602's message for a provider, "" for one that raises
// none (KMS v2; an unknown k8s:enc: provider, of which nothing is known).
// Why each is weaker than KMS v2 is docs/rules/KH602.md.
func weakMessage(provider string) string {
	const move = "; move to a kms provider of apiVersion v2, which keeps the key encryption key in an external KMS"
	switch provider {
	case AESCBC:
		return "Secrets are encrypted with aescbc, which upstream rates weak and does not recommend (its documentation cites CBC's exposure to padding-oracle attacks), and whose key is kept in the EncryptionConfiguration file on every control-plane host" + move
	case AESGCM:
		return "Secrets are encrypted with aesgcm, whose random nonces make its key safe for about 200,000 writes only: upstream does not recommend it without automated key rotation, and its key is kept in the EncryptionConfiguration file on every control-plane host" + move
	case Secretbox:
		return "Secrets are encrypted with secretbox (XSalsa20-Poly1305, a sound cipher), but its key is kept in the EncryptionConfiguration file on every control-plane host, where whoever reaches etcd's host or backups is likely to find it too" + move
	case KMSv1:
		return "Secrets are encrypted through KMS v1, deprecated since Kubernetes v1.28 and disabled by default since v1.29: it calls the KMS for every write and for every read that misses its cache" + move
	}
	return ""
}
