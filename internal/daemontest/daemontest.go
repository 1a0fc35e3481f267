// Package daemontest runs keyhole serve inside a test process: on a free
// loopback port, with its logs kept for the failure message, stopped (and
// required to stop) when the test ends. It takes the daemon as a function,
// so that the daemon's own tests, whose package it cannot import, use it
// as well as the deploy tests.
package daemontest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/keyhole-sec/keyhole/internal/testlog"
)

// RunFunc runs the daemon until ctx ends, logging to logger, and calls
// listening with each address it listens on (daemon.Options.Logger and
// Listening).
type RunFunc func(ctx context.Context, logger *slog.Logger, listening func(addr string)) error

// Daemon is a running daemon.
type Daemon struct {
	// Addr is the first address it listened on.
	Addr string
	// Logs holds everything it logged, at debug level.
	Logs   *testlog.Buffer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	t      testing.TB
}

// URL is the daemon's URL for path.
func (d *Daemon) URL(path string) string { return "http://" + d.Addr + path }

// Start runs the daemon and returns once it listens. When t ends it stops
// the daemon, failing t if the daemon returned an error or took more than
// 15 s, and logs its logs if t failed.
func Start(t testing.TB, run RunFunc) *Daemon {
	t.Helper()
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	addrs := make(chan string, 8)
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{Logs: logs, cancel: cancel, done: make(chan error, 1), t: t}
	go func() { d.done <- run(ctx, logger, func(a string) { addrs <- a }) }()
	select {
	case d.Addr = <-addrs:
	case err := <-d.done:
		cancel()
		t.Fatalf("daemon did not start: %v\nlogs:\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("daemon did not bind its port within 30 s")
	}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("daemon logs:\n%s", d.Logs)
		}
	})
	return d
}

// Stop stops the daemon, once, failing the test if it returns an error or
// takes more than 15 s; later calls do nothing.
func (d *Daemon) Stop() {
	d.once.Do(func() {
		d.cancel()
		select {
		case err := <-d.done:
			if err != nil {
				d.t.Errorf("daemon: %v", err)
			}
		case <-time.After(15 * time.Second):
			d.t.Errorf("daemon did not stop within 15 s of its context's end")
		}
	})
}
