// Package testlog captures what code under test logs, for assertions: a
// buffer that several goroutines may write, and klog redirected into one.
// Tests use it to prove that no Secret value, token or canary reaches a
// log line.
package testlog

import (
	"bytes"
	"flag"
	"os"
	"strconv"
	"sync"
	"testing"

	"k8s.io/klog/v2"
)

// Buffer is a bytes.Buffer that loggers on several goroutines may share.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Klog sends klog's output, at verbosity v, into a Buffer until t ends,
// when klog logs to stderr at verbosity 0 again. client-go logs request
// and response bodies from -v=8, so v=10 shows everything it could leak.
func Klog(t testing.TB, v int) *Buffer {
	t.Helper()
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	logs := &Buffer{}
	klog.SetOutput(logs)
	klog.LogToStderr(false)
	_ = fs.Set("v", strconv.Itoa(v))
	t.Cleanup(func() {
		klog.Flush()
		_ = fs.Set("v", "0")
		klog.LogToStderr(true)
		klog.SetOutput(os.Stderr)
	})
	return logs
}
