//go:build unix

package analysis_test

import (
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/analysis"
	"github.com/keyhole-sec/keyhole/internal/bootstrap"
	"github.com/keyhole-sec/keyhole/internal/exposure"
	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/paths"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/synthetic"
)

// benchSizes are the worlds the benchmarks run on, proportional to the
// reference world (100k Secrets, 5k namespaces, 20k roles, 50k bindings,
// 30k ServiceAccounts). 1M needs about 16 GiB and minutes per benchmark, so
// it only runs with KEYHOLE_BENCH_1M=1.
var benchSizes = []struct {
	name    string
	secrets int
	gated   bool
}{
	{"secrets=10k", 10_000, false},
	{"secrets=100k", 100_000, false},
	{"secrets=1M", 1_000_000, true},
}

const benchSeed = 1

// benchWorld is what an offline audit of the synthetic world sees: the
// bootstrap policy with the generated objects layered over it.
func benchWorld(b *testing.B, size synthetic.Size) (*inventory.Inventory, exposure.Options) {
	b.Helper()
	builder := inventory.NewBuilder()
	if _, err := bootstrap.AddTo(builder); err != nil {
		b.Fatal(err)
	}
	for _, o := range synthetic.Generate(benchSeed, size) {
		if _, _, err := builder.Add(o, inventory.Location{Layer: "synthetic"}); err != nil {
			b.Fatal(err)
		}
	}
	expected, err := bootstrap.ControlPlaneSubjects()
	if err != nil {
		b.Fatal(err)
	}
	return builder.Build(), exposure.Options{Expected: expected}
}

// runSizes runs bench once per world size, building each world outside
// the timer (b.Loop runs the function body once, so the world is built
// once per size).
func runSizes(b *testing.B, bench func(b *testing.B, inv *inventory.Inventory, opts exposure.Options) any) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			if size.gated && os.Getenv("KEYHOLE_BENCH_1M") != "1" {
				b.Skip("set KEYHOLE_BENCH_1M=1 to run: needs about 16 GiB and minutes per benchmark")
			}
			measure(b, synthetic.Scale(size.secrets), nil, bench)
		})
	}
}

// measure builds the world of size, calls describe on it (when not nil),
// then runs bench on it and reports the metrics of docs/benchmarks.md.
// bench's result stays referenced while the live heap is measured.
func measure(b *testing.B, size synthetic.Size, describe func(*testing.B, *inventory.Inventory), bench func(b *testing.B, inv *inventory.Inventory, opts exposure.Options) any) {
	inv, opts := benchWorld(b, size)
	if describe != nil {
		describe(b, inv)
	}
	b.ReportAllocs()
	inventoryBytes := liveHeap()
	peak := startPeakSampler()
	cpu := cpuTime()

	result := bench(b, inv, opts)

	cpuPerOp := (cpuTime() - cpu) / time.Duration(b.N)
	peakBytes := peak.stop()
	liveBytes := liveHeap()
	runtime.KeepAlive(result)
	runtime.KeepAlive(inv)
	const mib = 1 << 20
	b.ReportMetric(float64(inventoryBytes)/mib, "inventory-MiB")
	b.ReportMetric(float64(liveBytes)/mib, "live-heap-MiB")
	b.ReportMetric(float64(peakBytes)/mib, "peak-heap-MiB")
	b.ReportMetric(cpuPerOp.Seconds(), "cpu-s/op")
}

// BenchmarkReaders times the reader analysis alone: resolve the policy,
// index the Secret read grants, find the indirect paths, then every
// Secret's readers and exposure. These worlds have no pods, so their
// indirect paths are those of RBAC alone (the bootstrap controllers' pod
// creation, impersonation, tokens); BenchmarkIndirect adds pods and
// nodes. The last iteration's readers and assessments stay referenced
// while the live heap is measured.
func BenchmarkReaders(b *testing.B) {
	runSizes(b, func(b *testing.B, inv *inventory.Inventory, opts exposure.Options) any {
		var res []analysis.SecretExposure
		for b.Loop() {
			p := rbac.NewPolicy(inv, rbac.AggregationComputed)
			ix := rbac.NewReadIndex(p)
			res = analysis.AssessSecrets(inv, paths.Analyze(p, ix, paths.Options{Offline: true}), opts)
		}
		return res
	})
}

// BenchmarkReadIndex times the direct-reader half of BenchmarkReaders alone
// (policy, index, every Secret's readers, no scoring), to tell the cost
// of finding readers from the cost of scoring them.
func BenchmarkReadIndex(b *testing.B) {
	runSizes(b, func(b *testing.B, inv *inventory.Inventory, opts exposure.Options) any {
		var readers [][]rbac.Reader
		for b.Loop() {
			ix := rbac.NewReadIndex(rbac.NewPolicy(inv, rbac.AggregationComputed))
			readers = make([][]rbac.Reader, len(inv.Secrets))
			for i, s := range inv.Secrets {
				readers[i] = ix.Readers(s.Namespace, s.Name)
			}
		}
		return readers
	})
}

// BenchmarkReport times analysis.Run: the reader analysis plus
// the binding findings and the assembly of the whole report.
func BenchmarkReport(b *testing.B) {
	runSizes(b, func(b *testing.B, inv *inventory.Inventory, opts exposure.Options) any {
		var res any
		for b.Loop() {
			res = analysis.Run(analysis.Input{Inventory: inv, Aggregation: rbac.AggregationComputed},
				analysis.Options{Exposure: opts, ToolVersion: "bench"})
		}
		return res
	})
}

// cpuTime is the process's user plus system CPU time, every thread (the
// garbage collector's included). On a shared machine it is steadier than
// ns/op, which counts the time other processes hold the cores.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapObjects is live plus not-yet-swept heap objects; right after a GC it
// is the live heap.
const heapObjects = "/memory/classes/heap/objects:bytes"

func readHeapObjects() uint64 {
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// liveHeap forces a collection and returns the bytes of live heap
// objects: everything still referenced.
func liveHeap() uint64 {
	runtime.GC()
	return readHeapObjects()
}

// peakSampler polls the heap every millisecond. Its peak includes garbage
// not collected yet, so it depends on GOGC: it is the heap the process
// needed, not what the analysis keeps.
type peakSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak uint64
}

func startPeakSampler() *peakSampler {
	p := &peakSampler{done: make(chan struct{}), peak: readHeapObjects()}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.peak = max(p.peak, readHeapObjects())
			}
		}
	}()
	return p
}

func (p *peakSampler) stop() uint64 {
	close(p.done)
	p.wg.Wait()
	return max(p.peak, readHeapObjects())
}
