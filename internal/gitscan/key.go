package gitscan

import "crypto/rand"

// NewRandomKey draws a key of MinKeyLen bytes from crypto/rand for a run
// that has no operator key: the HMAC under which values are compared
// (NewScanner, the live Secrets' digests, the Vault read-back) without
// being kept. The key must stay in the process that drew it; a digest
// under it is then useless outside that run.
//
// crypto/rand.Read has not returned an error since Go 1.24 (it crashes
// instead); the error is kept so that callers say what failed should that
// ever change.
func NewRandomKey() ([]byte, error) {
	key := make([]byte, MinKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return key, nil
}
