package auditevents

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/probe"
	"github.com/keyhole-sec/keyhole/internal/report"
	"github.com/keyhole-sec/keyhole/internal/source/auditevents/webhooktest"
	"github.com/keyhole-sec/keyhole/internal/testlog"
)

// counts is a Recorder that keeps its counts.
type counts struct {
	mu                                     sync.Mutex
	codes                                  map[int]int
	events, reads, dropped, unexplained    int
	persisted, persistErrors, storeDropped int
}

func newCounts() *counts { return &counts{codes: map[int]int{}} }

func (c *counts) Request(code int) { c.mu.Lock(); c.codes[code]++; c.mu.Unlock() }
func (c *counts) Received(e, r int) {
	c.mu.Lock()
	c.events += e
	c.reads += r
	c.mu.Unlock()
}
func (c *counts) Dropped(n int)     { c.mu.Lock(); c.dropped += n; c.mu.Unlock() }
func (c *counts) Unexplained(n int) { c.mu.Lock(); c.unexplained += n; c.mu.Unlock() }
func (c *counts) Persisted(err error, dropped int) {
	c.mu.Lock()
	c.persisted++
	if err != nil {
		c.persistErrors++
	}
	c.storeDropped += dropped
	c.mu.Unlock()
}

// tally is a copy of the counts.
type tally struct {
	codes                                  map[int]int
	events, reads, dropped, unexplained    int
	persisted, persistErrors, storeDropped int
}

func (c *counts) snapshot() tally {
	c.mu.Lock()
	defer c.mu.Unlock()
	codes := map[int]int{}
	for k, v := range c.codes {
		codes[k] = v
	}
	return tally{codes, c.events, c.reads, c.dropped, c.unexplained, c.persisted, c.persistErrors, c.storeDropped}
}

const testToken = "t0k3n-for-the-webhook" //nolint:gosec // G101: a test's bearer token

// canary is a Secret value that a RequestResponse-level event would
// carry; nothing of it may be kept or logged.
const canary = "S0VZSE9MRS1DQU5BUlk=" // base64 of KEYHOLE-CANARY

// withBody adds a response body holding the canary, as a misconfigured
// policy would send.
func withBody(ev map[string]any) map[string]any {
	ev["responseObject"] = map[string]any{"kind": "Secret", "apiVersion": "v1", "data": map[string]any{"password": canary}}
	ev["level"] = "RequestResponse"
	return ev
}

type testServer struct {
	srv     *httptest.Server
	recv    *Receiver
	summary *auditlog.Summary
	rec     *counts
	logs    *testlog.Buffer
	pki     *webhooktest.PKI
}

// newTestServer serves a receiver over TLS with the client CA of a fresh
// PKI, a token, and the given queue size; the worker runs unless
// noWorker.
func newTestServer(t *testing.T, queue int, noWorker bool, explain *auditlog.Explainer) *testServer {
	t.Helper()
	pki, err := webhooktest.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{summary: auditlog.NewSummary(auditlog.Options{}), rec: newCounts(), logs: &testlog.Buffer{}, pki: pki}
	ts.recv, err = NewReceiver(ReceiverOptions{
		Summary: ts.summary, Token: []byte(testToken), QueueSize: queue, MaxBodyBytes: 64 << 10,
		Explainer: func() *auditlog.Explainer { return explain }, Recorder: ts.rec,
		Logger: slog.New(slog.NewTextHandler(ts.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = httptest.NewUnstartedServer(ts.recv)
	cert, err := tls.LoadX509KeyPair(pki.ServerCertFile, pki.ServerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pki.Pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	ts.srv.StartTLS()
	t.Cleanup(ts.srv.Close)
	if !noWorker {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { ts.recv.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return ts
}

// post sends body with the given client certificate (none when nil) and
// token (none when empty), and returns the status.
func (ts *testServer) post(t *testing.T, method string, body []byte, cert *tls.Certificate, token string) int {
	t.Helper()
	cfg := &tls.Config{RootCAs: ts.pki.Pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	req, err := http.NewRequest(method, ts.srv.URL+Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func batch(n int, user string) []byte {
	at := time.Now()
	events := make([]map[string]any, n)
	for i := range events {
		events[i] = withBody(webhooktest.Event(i, user, "shop", fmt.Sprintf("s%d", i%3), at))
	}
	return webhooktest.EventList(events)
}

func TestWebhookAuthentication(t *testing.T) {
	ts := newTestServer(t, 0, false, nil)
	body := batch(2, "alice")
	cases := []struct {
		name  string
		cert  *tls.Certificate
		token string
		want  int
	}{
		{"no credentials", nil, "", http.StatusUnauthorized},
		{"wrong token", nil, "not-the-token", http.StatusForbidden},
		{"token prefix", nil, testToken[:5], http.StatusForbidden},
		{"token", nil, testToken, http.StatusOK},
		{"client certificate", &ts.pki.Client, "", http.StatusOK},
	}
	for _, c := range cases {
		if got := ts.post(t, http.MethodPost, body, c.cert, c.token); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	// A certificate from another CA fails the handshake or, offered
	// anyway, is not verified: never accepted.
	other, err := webhooktest.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: ts.pki.Pool, Certificates: []tls.Certificate{other.Client}, MinVersion: tls.VersionTLS12}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}).Post(ts.srv.URL+Path, "application/json", bytes.NewReader(body))
	if err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("a client certificate of another CA was accepted")
		}
	}
	probe.Eventually(t, 10*time.Second, "the accepted batches reach the summary", func() (bool, string) {
		st := ts.summary.Stats()
		return st.Reads == 4, fmt.Sprintf("%+v", st)
	})
	c := ts.rec.snapshot()
	if c.codes[200] != 2 || c.codes[401] != 1 || c.codes[403] != 2 || c.events != 4 || c.reads != 4 {
		t.Errorf("recorded %+v", c)
	}
	if strings.Contains(ts.logs.String(), canary) || strings.Contains(ts.logs.String(), testToken) {
		t.Errorf("the logs hold the canary or the token:\n%s", ts.logs)
	}
}

func TestWebhookRejects(t *testing.T) {
	ts := newTestServer(t, 0, false, nil)
	if got := ts.post(t, http.MethodGet, nil, nil, testToken); got != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", got)
	}
	if got := ts.post(t, http.MethodPost, []byte(`{"kind":"Pod"}`), nil, testToken); got != http.StatusBadRequest {
		t.Errorf("not an EventList: %d", got)
	}
	if got := ts.post(t, http.MethodPost, batch(500, "alice"), nil, testToken); got != http.StatusRequestEntityTooLarge {
		t.Errorf("a batch over the limit: %d", got)
	}
	if st := ts.summary.Stats(); st.Reads != 0 {
		t.Errorf("rejected requests recorded %d reads", st.Reads)
	}
	if strings.Contains(ts.logs.String(), canary) {
		t.Errorf("the logs hold the canary:\n%s", ts.logs)
	}
}

// TestWebhookDropsWhenFull: with no worker draining the queue, the
// webhook still answers 200 at once, and counts what it drops.
func TestWebhookDropsWhenFull(t *testing.T) {
	ts := newTestServer(t, 2, true, nil)
	for range 5 {
		if got := ts.post(t, http.MethodPost, batch(10, "alice"), nil, testToken); got != http.StatusOK {
			t.Fatalf("status %d", got)
		}
	}
	c := ts.rec.snapshot()
	if c.reads != 50 || c.dropped != 30 {
		t.Errorf("received %d reads, dropped %d; want 50 and 30 (a queue of 2 batches of 10)", c.reads, c.dropped)
	}
	if ts.recv.Idle() {
		t.Error("the queue is empty with no worker")
	}
	// The worker drains what was queued.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ts.recv.Run(ctx)
	if st := ts.summary.Stats(); st.Reads != 20 || !ts.recv.Idle() {
		t.Errorf("after draining: %+v, idle %v", st, ts.recv.Idle())
	}
}

// TestWebhookCountsUnexplained: each read is checked against the latest
// report as it arrives.
func TestWebhookCountsUnexplained(t *testing.T) {
	rep := &report.Report{Secrets: []report.Secret{
		{Namespace: "shop", Name: "s0", Readers: report.Readers([]report.Reader{{Subject: report.Subject{Kind: "User", Name: "alice"}, Path: "direct"}}...)},
		{Namespace: "shop", Name: "s1", Readers: report.Readers([]report.Reader{{Subject: report.Subject{Kind: "User", Name: "alice"}, Path: "direct"}}...)},
		{Namespace: "shop", Name: "s2"},
	}}
	ts := newTestServer(t, 0, false, auditlog.NewExplainer(rep))
	if got := ts.post(t, http.MethodPost, batch(6, "alice"), nil, testToken); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}
	probe.Eventually(t, 10*time.Second, "the batch is applied", func() (bool, string) {
		return ts.recv.Idle() && ts.summary.Stats().Reads == 6, fmt.Sprintf("%+v", ts.summary.Stats())
	})
	if c := ts.rec.snapshot(); c.unexplained != 2 {
		t.Errorf("%d unexplained reads, want 2 (the two of shop/s2)", c.unexplained)
	}
}
