package audit

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/gitscan"
)

// TestValueDigestIsGitscans: --correlate compares the digests of live
// values, taken with ValueDigest, with the digests gitscan gives the same
// values in a file, whichever way the file writes them. If the two ever
// drift apart, no live value is ever found in git, silently.
func TestValueDigestIsGitscans(t *testing.T) {
	key := bytes.Repeat([]byte{42}, gitscan.MinKeyLen)
	value := "KEYHOLE-CANARY-correlate\n"
	file := "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\n" +
		"data:\n  encoded: " + base64.StdEncoding.EncodeToString([]byte(value)) + "\n" +
		"stringData:\n  block: |\n    KEYHOLE-CANARY-correlate\n"
	leaks, problems := gitscan.NewScanner(key).Scan("s.yaml", []byte(file))
	if len(leaks) != 2 || len(problems) != 0 {
		t.Fatalf("leaks %+v, problems %+v", leaks, problems)
	}
	want := ValueDigest(key)([]byte(value))
	for _, l := range leaks {
		if !bytes.Equal(l.Digest, want) {
			t.Errorf("%s (%s): gitscan's digest differs from ValueDigest's", l.Key, l.Form)
		}
	}
	if bytes.Equal(ValueDigest(bytes.Repeat([]byte{43}, gitscan.MinKeyLen))([]byte(value)), want) {
		t.Error("the digest does not depend on the key")
	}
}
