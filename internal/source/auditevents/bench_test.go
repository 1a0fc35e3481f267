package auditevents

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/source/auditevents/webhooktest"
)

// Sizes of the benchmark's world: enough distinct (subject, Secret) pairs
// that the summary must evict to stay within its bound.
const (
	benchBatch      = 400 // the apiserver's default --audit-webhook-batch-max-size
	benchUsers      = 5000
	benchNamespaces = 200
	benchSecrets    = 100 // per namespace
	benchMaxEntries = 10_000
	benchBatches    = 64 // distinct pre-encoded batches, sent in turn
	benchSenders    = 2
)

// BenchmarkWebhook sends audit batches over loopback TLS (bearer token)
// to the receiver, whose worker records them in a bounded summary. Each
// iteration is one batch of 400 events, one in ten a list of a
// namespace; with -benchtime=2500x that is 1M events. It reports events
// per second, the reads dropped on a full queue, the summary's entries
// and evictions, and the heap in use once the queue is drained (after a
// GC, less the heap before the first event: what the receiver and the
// summary retain): the summary's bound, not the event count, sets it.
//
// The queue=1 case leaves the webhook almost no queue, so that it drops
// (and counts) what the worker cannot take at once.
//
//	go test ./internal/source/auditevents -run '^$' -bench Webhook -benchtime 2500x -benchmem
func BenchmarkWebhook(b *testing.B) {
	for _, queue := range []int{DefaultQueueSize, 1} {
		b.Run(fmt.Sprintf("queue=%d", queue), func(b *testing.B) { benchmarkWebhook(b, queue) })
	}
}

func benchmarkWebhook(b *testing.B, queue int) {
	pki, err := webhooktest.NewPKI(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	summary := auditlog.NewSummary(auditlog.Options{MaxEntries: benchMaxEntries})
	rec := newCounts()
	recv, err := NewReceiver(ReceiverOptions{Summary: summary, Token: []byte(testToken), Recorder: rec, QueueSize: queue})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go recv.Run(ctx)

	cert, err := tls.LoadX509KeyPair(pki.ServerCertFile, pki.ServerKeyFile)
	if err != nil {
		b.Fatal(err)
	}
	srv := newTLSServer(b, recv, cert)
	defer srv.Close()

	batches := make([][]byte, benchBatches)
	at := time.Now()
	rnd := rand.New(rand.NewPCG(1, 2)) // the same world every run
	n := 0
	for i := range batches {
		events := make([]map[string]any, benchBatch)
		for j := range events {
			n++
			ns := fmt.Sprintf("ns-%d", rnd.IntN(benchNamespaces))
			name := fmt.Sprintf("secret-%d", rnd.IntN(benchSecrets))
			if n%10 == 0 {
				name = ""
			}
			events[j] = webhooktest.Event(n, fmt.Sprintf("system:serviceaccount:%s:sa-%d", ns, rnd.IntN(benchUsers)), ns, name, at)
		}
		batches[i] = webhooktest.EventList(events)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pki.Pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: benchSenders,
	}, Timeout: 30 * time.Second}

	// The heap before the first event: the batches above are the
	// benchmark's, not the receiver's.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range benchSenders {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, srv.URL+Path, bytes.NewReader(batches[i%benchBatches]))
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	answered := time.Since(start)
	for !recv.Idle() {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d requests failed", f)
	}
	c := rec.snapshot()
	events := b.N * benchBatch
	if c.events != events {
		b.Fatalf("received %d events, sent %d", c.events, events)
	}
	st := summary.Stats()
	if st.Entries > benchMaxEntries {
		b.Fatalf("the summary holds %d entries, over its bound %d", st.Entries, benchMaxEntries)
	}
	if uint64(c.reads-c.dropped) != st.Reads {
		b.Fatalf("%d reads received, %d dropped, %d recorded", c.reads, c.dropped, st.Reads)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(events)/answered.Seconds(), "events/s")
	b.ReportMetric(float64(c.dropped), "dropped")
	b.ReportMetric(float64(st.Entries), "entries")
	b.ReportMetric(float64(st.Evicted), "evicted")
	b.ReportMetric((float64(ms.HeapAlloc)-float64(before.HeapAlloc))/(1<<20), "retained-MiB")
	// Measured while the summary and the receiver are still live.
	runtime.KeepAlive(summary)
	runtime.KeepAlive(recv)
	runtime.KeepAlive(batches)
}

type tlsServer struct {
	URL   string
	close func()
}

func (s *tlsServer) Close() { s.close() }

func newTLSServer(tb testing.TB, h http.Handler, cert tls.Certificate) *tlsServer {
	tb.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &tlsServer{URL: "https://" + l.Addr().String(), close: func() { _ = srv.Close() }}
}
