// Package probe is what integration tests use to watch a running keyhole
// from outside: a GET with an optional bearer token, and polling a
// condition until it holds. It exists so that the daemon's tests and the
// deploy tests probe alike.
package probe

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// Get fetches url, with "Authorization: Bearer token" unless token is
// empty, and returns the status and the body.
func Get(url, token string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Eventually polls cond every 100 ms until it holds, and returns how long
// that took; after timeout it fails t with what cond said it saw last.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < timeout {
		ok, seen := cond()
		if ok {
			return time.Since(start)
		}
		last = seen
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last seen: %s", what, timeout, last)
	return 0
}
