package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyhole-sec/keyhole/internal/report"
)

// withPosture adds what the API server's metrics said about Secrets at
// rest to r.
func withPosture(r *report.Report) *report.Report {
	r.Posture = &report.Posture{EncryptionAtRest: &report.EncryptionAtRest{Provider: "aescbc", Source: "apiserver-metrics", Evidence: canary}}
	return r
}

// TestEtcdEncryption: keyhole_etcd_encryption is one series naming the
// report's provider, follows the report when the provider changes, and is
// absent from a report that did not read it (offline, or before the
// daemon's first read of /metrics), as from a follower's scrape.
func TestEtcdEncryption(t *testing.T) {
	h := newHolder(withPosture(world()))
	c := h.collector(Options{})
	head := "\n# HELP keyhole_etcd_encryption " + definition(nameEtcdEncryption).Help + "\n# TYPE keyhole_etcd_encryption gauge\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(head+`keyhole_etcd_encryption{provider="aescbc"} 1`+"\n"), nameEtcdEncryption); err != nil {
		t.Error(err)
	}

	for _, provider := range []string{"identity", "unknown", "kms-v2"} {
		next := withPosture(world())
		next.Posture.EncryptionAtRest.Provider = provider
		h.report.Store(next)
		if err := testutil.CollectAndCompare(c, strings.NewReader(head+`keyhole_etcd_encryption{provider="`+provider+`"} 1`+"\n"), nameEtcdEncryption); err != nil {
			t.Errorf("%s: %v", provider, err)
		}
	}

	h.report.Store(world())
	if n := testutil.CollectAndCount(c, nameEtcdEncryption); n != 0 {
		t.Errorf("a report without posture: %d series, want none", n)
	}
	h.report.Store(withPosture(world()))
	h.exporting.Store(false)
	if n := testutil.CollectAndCount(c, nameEtcdEncryption); n != 0 {
		t.Errorf("not exporting: %d series, want none", n)
	}
}
